"""
How large should the reward model be, next to the policy? One of the document's open questions, measured.

One policy writes every sample: the default SFT model (out/sft, d_model 128). Each reward model is the
same recipe on the same rankings (train_rm.py with --sft_ckpt pointing at that policy, so the same seed
draws the same samples and labels); only its trunk changes: --init_ckpt, an SFT model of the RM's own
width trained by train_sft.py on the same demonstrations (the document: "the RM starts from an SFT
model"). The width equal to the policy's is the default RM itself. For each width:

    held-out accuracy against labeler A, beside labeler B's agreement, and accuracy against gold
                                                              (train_rm.py's eval.json)
    minimal pairs per family: a correct answer against the same text with one fact changed
                                                              (python -m nanorm.experiments.what_the_rm_sees)
    best-of-16 by the RM, and PPO against it (the policy and every PPO flag fixed): gold win rate over
    SFT, PPO's KL to SFT                                      (train_ppo.py's eval.json; --run_ppo=false: not)

    python -m nanorm.experiments.rm_size                     # widths 64,128,256: about 50 minutes on 2 cores
    python -m nanorm.experiments.rm_size --run_ppo=false     # the RMs only: about 25 minutes
    python -m nanorm.experiments.rm_size --publish=true      # and copy the figure to lessons/figures/

Every stage runs in a fresh process (its log beside its out_dir); one already finished with the same flags
is read back, so a run that was stopped goes on where it stopped. Writes out/rm_size/rm_size.{json,png}.
Lesson 07 reads the figure. What it cannot show: one seed, one policy size, three RM sizes and PPO at one
fixed beta (so the KL differs between RMs: compare the KL column before the win rates).
"""

import os
import shlex
import sys
from dataclasses import asdict, dataclass

import torch

from nanorm import stages
from nanorm.bench.pipeline import finished_run
from nanorm.config import parse_config, require
from nanorm.experiments import what_the_rm_sees
from nanorm.experiments.common import write_results


@dataclass
class RMSizeConfig:
    widths: str = "64,128,256"         # d_model of each RM's trunk (n_layer and n_head stay the policy's)
    sft_ckpt: str = "out/sft/ckpt.pt"  # the policy: writes every sample, PPO starts from it
    out_dir: str = "out/rm_size"       # OUT_DIR/{sft,rm,ppo}_W/ per width W; the table and figure
    run_ppo: bool = True               # also run PPO against each RM (train_ppo.py's defaults)
    sft_flags: str = ""                # more flags for each trunk's train_sft.py (the tests: a tiny run)
    rm_flags: str = ""                 # ... for every train_rm.py
    ppo_flags: str = ""                # ... for every train_ppo.py
    see_flags: str = ""                # ... for every what_the_rm_sees
    threads: int = 0                   # --threads of every stage (0 = torch's default)
    publish: bool = False              # copy the figure to lessons/figures/rm_size.png

    def check(self):
        widths = self.widths.split(",")
        require(self, "widths", all(w.isdigit() and int(w) > 0 for w in widths), "expected widths like 64,128,256")
        require(self, "widths", len(set(widths)) == len(widths), "a width is listed twice")
        require(self, "sft_ckpt", os.path.exists(self.sft_ckpt), "not found (run train_sft.py first)")


def stage(name, log_path, flags, **overrides):
    """A stage's eval.json: read back if its out_dir holds a finished run of these flags, else run it.
    flags: command-line flags (a string), applied after the overrides."""
    args = [f"--{k}={v}" for k, v in overrides.items()] + shlex.split(flags)
    cfg = parse_config(type(stages.config(name)), args)   # read as the script's command line
    done = finished_run(cfg)
    if done is not None:
        print(f"[{name}] {cfg.out_dir}: finished with these flags, read back", flush=True)
        return done
    print(f"[{name}] {cfg.out_dir} (log: {log_path})", flush=True)
    os.makedirs(cfg.out_dir, exist_ok=True)
    return stages.run_in_child(name, log_path, **asdict(cfg))["report"]


def one_width(cfg, width, policy):
    """The row of one RM width: its trunk's size and every measurement of the docstring."""
    out = lambda kind: os.path.join(cfg.out_dir, f"{kind}_{width}")
    init_ckpt = ""   # the policy's own width: the default RM, initialised from the policy itself
    if width != policy["n_embd"]:   # an SFT model of this width (the policy's depth, heads and block)
        stage("sft", out("sft") + ".log", cfg.sft_flags, out_dir=out("sft"), n_embd=width, n_layer=policy["n_layer"],
              n_head=policy["n_head"], block_size=policy["block_size"], threads=cfg.threads)
        init_ckpt = os.path.join(out("sft"), "ckpt.pt")
    rm = stage("rm", out("rm") + ".log", cfg.rm_flags, sft_ckpt=cfg.sft_ckpt, init_ckpt=init_ckpt, out_dir=out("rm"),
               threads=cfg.threads)
    rm_ckpt = os.path.join(out("rm"), "ckpt.pt")
    n_params = sum(v.numel() for v in torch.load(rm_ckpt, map_location="cpu", weights_only=True)["state_dict"].values())
    seen = what_the_rm_sees.main([f"--sft_ckpt={cfg.sft_ckpt}", f"--rm_ckpt={rm_ckpt}",
                                  f"--out={out('rm')}/what_the_rm_sees.json", *shlex.split(cfg.see_flags)])
    row = {"width": width, "rm_params": n_params, "accuracy": rm["accuracy"],
           "agreement": rm["inter_labeler_agreement"], "gold_accuracy": rm["gold_accuracy"],
           "minimal_pairs": {fam: v["rm"] for fam, v in seen["minimal_pairs"].items()}}
    if cfg.run_ppo:
        ppo = stage("ppo", out("ppo") + ".log", cfg.ppo_flags, sft_ckpt=cfg.sft_ckpt, rm_ckpt=rm_ckpt,
                    out_dir=out("ppo"), threads=cfg.threads)
        best_of = next(k for k in ppo if k.startswith("best_of_"))   # "best_of_16": train_ppo.py's --best_of
        row.update({"best_of_n": int(best_of.split("_")[-1]), "best_of_n_win_rate": ppo[best_of]["win_rate_vs_sft"],
                    "ppo_win_rate": ppo["ppo"]["win_rate_vs_sft"], "ppo_kl": ppo["ppo"]["kl"],
                    "ppo_gold_gain": ppo["ppo"]["gold"] - ppo["sft"]["gold"]})
    return row


def draw(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = res["rows"]
    x = [r["rm_params"] / 1e6 for r in rows]
    policy_x = next((r["rm_params"] / 1e6 for r in rows if r["width"] == res["policy_width"]), None)
    panels = [("held-out accuracy", [("RM vs labeler A", "accuracy"), ("labeler B vs A", "agreement"),
                                     ("RM vs gold", "gold_accuracy")]),
              ("minimal pairs: RM prefers the correct answer",
               [(fam, lambda r, fam=fam: r["minimal_pairs"].get(fam)) for fam in rows[0]["minimal_pairs"]])]
    if "ppo_win_rate" in rows[0]:
        panels.append(("gold win rate over SFT", [(f"best-of-{rows[0]['best_of_n']} by the RM", "best_of_n_win_rate"),
                                                  ("PPO against the RM", "ppo_win_rate")]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (title, lines) in zip(axes, panels):
        for label, key in lines:
            ax.plot(x, [key(r) if callable(key) else r[key] for r in rows], marker="o", label=label)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        if policy_x is not None:
            ax.axvline(policy_x, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("RM parameters (millions; dashed: the policy's size)")
        ax.set_title(title, fontsize=10)
        if ax.get_legend_handles_labels()[0]:   # (no minimal pairs when no greedy answer was correct)
            ax.legend(fontsize=7)
    fig.suptitle(f"RM size at a fixed policy ({os.path.basename(res['config']['sft_ckpt'])}, d_model "
                 f"{res['policy_width']}): one seed", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    cfg = parse_config(RMSizeConfig, sys.argv[1:] if argv is None else argv)
    os.makedirs(cfg.out_dir, exist_ok=True)
    policy = torch.load(cfg.sft_ckpt, map_location="cpu", weights_only=True)["model_config"]
    res = {"config": asdict(cfg), "policy_width": policy["n_embd"], "rows": []}
    for width in sorted(map(int, cfg.widths.split(","))):   # the JSON and figure after every width
        res["rows"].append(one_width(cfg, width, policy))
        write_results(res, cfg.out_dir, "rm_size", draw)
    rows = res["rows"]
    families = list(rows[0]["minimal_pairs"])
    print(f"\nRM size at a fixed policy (d_model {policy['n_embd']}); minimal pairs: {', '.join(families)}")
    print(f"  {'width':>5s} {'params':>7s} {'acc':>6s} {'B vs A':>6s} {'gold':>6s}  {'minimal pairs':24s}"
          + ("  best-of-n  PPO win  PPO KL" if cfg.run_ppo else ""))
    for r in rows:
        minimal = " / ".join(f"{r['minimal_pairs'].get(f, float('nan')):.2f}" for f in families)
        tail = f"  {r['best_of_n_win_rate']:9.3f} {r['ppo_win_rate']:8.3f} {r['ppo_kl']:7.2f}" if cfg.run_ppo else ""
        print(f"  {r['width']:5d} {r['rm_params'] / 1e6:6.2f}M {r['accuracy']:6.3f} {r['agreement']:6.3f} "
              f"{r['gold_accuracy']:6.3f}  {minimal:24s}{tail}")
    write_results(res, cfg.out_dir, "rm_size", draw, cfg.publish)
    return res


if __name__ == "__main__":
    main()
