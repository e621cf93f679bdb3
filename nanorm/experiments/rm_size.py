"""
How large should the reward model be, next to the policy? And do an RM's own measures predict what PPO
makes of it? Two of the document's open questions, measured at one fixed policy.

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

Beside the three widths, --variants adds RMs of the policy's width made worse (or different) in other
ways, one train_rm.py flag string each: fewer rankings (--n_prompts) and no SFT start (--init=random).
With every RM measured the same way, the figure's second row asks the question of lesson 07 section 1:
which number an RM earns without PPO (held-out accuracy, gold accuracy, minimal pairs, best-of-16) ranks
the RMs the way PPO's gold win rate does? (Spearman's rank correlation, printed and in the JSON.)

    python -m nanorm.experiments.rm_size                     # 3 widths + 4 variants: ~2.7 h of stage time
    python -m nanorm.experiments.rm_size --variants=         # the widths only: ~1.7 h
    python -m nanorm.experiments.rm_size --run_ppo=false     # the RMs only, no PPO
    python -m nanorm.experiments.rm_size --publish=true      # and copy the figure to lessons/figures/

Every stage runs in a fresh process (its log beside its out_dir); one already finished with the same flags
is read back, so a run that was stopped goes on where it stopped. Writes out/rm_size/rm_size.{json,png}.
Lesson 07 reads the figure. What it cannot show: one seed, one policy size, seven RMs and PPO at one
fixed beta (so the KL differs between RMs: compare the KL column before the win rates).
"""

import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass

import torch

from nanorm.config import parse_config, require
from nanorm.experiments import what_the_rm_sees
from nanorm.experiments.common import MEASURES, predicts_ppo, print_predicts_ppo, stage, write_results


@dataclass
class RMSizeConfig:
    widths: str = "64,128,256"         # d_model of each RM's trunk (n_layer and n_head stay the policy's)
    variants: str = "--n_prompts=342;--n_prompts=171;--n_prompts=86;--init=random"
                                       # more RMs of the policy's width: train_rm.py flags, ';' between RMs
    sft_ckpt: str = "out/sft/ckpt.pt"  # the policy: writes every sample, PPO starts from it
    out_dir: str = "out/rm_size"       # OUT_DIR/{sft,rm,ppo}_W/ per width W; the table and figure
    run_ppo: bool = True               # also run PPO against each RM (train_ppo.py's defaults)
    sft_flags: str = ""                # more flags for each trunk's train_sft.py (the tests: a tiny run)
    rm_flags: str = ""                 # ... for every train_rm.py
    ppo_flags: str = ""                # ... for every train_ppo.py
    see_flags: str = ""                # ... for every what_the_rm_sees
    threads: int = 0                   # --threads of every stage (0 = torch's default)
    publish: bool = False              # copy the figure to lessons/figures/rm_size.png

    def width_list(self):   # empty --widths=: the variants only
        return [w for w in self.widths.split(",") if w]

    def variant_list(self):
        return [v.strip() for v in self.variants.split(";") if v.strip()]

    def check(self):
        widths, variants = self.width_list(), self.variant_list()
        require(self, "widths", all(w.isdigit() and int(w) > 0 for w in widths), "expected widths like 64,128,256")
        require(self, "widths", len(set(widths)) == len(widths), "a width is listed twice")
        require(self, "variants", len(set(map(tag, variants))) == len(variants), "a variant is listed twice")
        require(self, "variants", all(v.startswith("--") for v in variants),
                "expected train_rm.py flags like --n_prompts=342;--init=random")
        require(self, "sft_ckpt", os.path.exists(self.sft_ckpt), "not found (run train_sft.py first)")


def tag(variant):
    """A variant's name in its folders: "--n_prompts=342 --epochs=2" -> "n_prompts342_epochs2"."""
    return "_".join(re.sub(r"[^A-Za-z0-9._]", "", f) for f in shlex.split(variant))


def one_rm(cfg, width, policy, variant=""):
    """The row of one RM (a width, or a variant at the policy's width): its size and every measurement
    of the docstring."""
    name = f"{width}_{tag(variant)}" if variant else f"{width}"
    out = lambda kind: os.path.join(cfg.out_dir, f"{kind}_{name}")
    init_ckpt = ""   # the policy's own width: the default RM, initialised from the policy itself
    if width != policy["n_embd"]:   # an SFT model of this width (the policy's depth, heads and block)
        stage("sft", out("sft") + ".log", cfg.sft_flags, out_dir=out("sft"), n_embd=width, n_layer=policy["n_layer"],
              n_head=policy["n_head"], block_size=policy["block_size"], threads=cfg.threads)
        init_ckpt = os.path.join(out("sft"), "ckpt.pt")
    rm = stage("rm", out("rm") + ".log", f"{cfg.rm_flags} {variant}", sft_ckpt=cfg.sft_ckpt, init_ckpt=init_ckpt,
               out_dir=out("rm"), threads=cfg.threads)
    rm_ckpt = os.path.join(out("rm"), "ckpt.pt")
    n_params = sum(v.numel() for v in torch.load(rm_ckpt, map_location="cpu", weights_only=True)["state_dict"].values())
    seen = what_the_rm_sees.main([f"--sft_ckpt={cfg.sft_ckpt}", f"--rm_ckpt={rm_ckpt}",
                                  f"--out={out('rm')}/what_the_rm_sees.json", *shlex.split(cfg.see_flags)])
    minimal = {fam: v["rm"] for fam, v in seen["minimal_pairs"].items()}
    row = {"width": width, "variant": variant, "rm_params": n_params, "n_train_prompts": rm["n_train_prompts"],
           "accuracy": rm["accuracy"], "agreement": rm["inter_labeler_agreement"],
           "gold_accuracy": rm["gold_accuracy"], "ece": rm["ece"], "minimal_pairs": minimal,
           "minimal_pairs_mean": sum(minimal.values()) / len(minimal) if minimal else None}
    if cfg.run_ppo:
        ppo = stage("ppo", out("ppo") + ".log", cfg.ppo_flags, sft_ckpt=cfg.sft_ckpt, rm_ckpt=rm_ckpt,
                    out_dir=out("ppo"), threads=cfg.threads)
        best_of = next(k for k in ppo if k.startswith("best_of_"))   # "best_of_16": train_ppo.py's --best_of
        row.update({"best_of_n": int(best_of.split("_")[-1]), "best_of_n_win_rate": ppo[best_of]["win_rate_vs_sft"],
                    "ppo_win_rate": ppo["ppo"]["win_rate_vs_sft"], "ppo_kl": ppo["ppo"]["kl"],
                    "ppo_gold_gain": ppo["ppo"]["gold"] - ppo["sft"]["gold"]})
    return row


def label(row):
    return row["variant"].replace("--", "") or f"d_model {row['width']}"


def draw(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    sizes = [r for r in res["rows"] if not r["variant"]]   # the width curves: full data, SFT start
    first = res["rows"][0]
    x = [r["rm_params"] / 1e6 for r in sizes]
    policy_x = next((r["rm_params"] / 1e6 for r in sizes if r["width"] == res["policy_width"]), None)
    panels = [("held-out accuracy", [("RM vs labeler A", "accuracy"), ("labeler B vs A", "agreement"),
                                     ("RM vs gold", "gold_accuracy")]),
              ("minimal pairs: RM prefers the correct answer",
               [(fam, lambda r, fam=fam: r["minimal_pairs"].get(fam)) for fam in first["minimal_pairs"]])]
    with_ppo = "ppo_win_rate" in first
    if with_ppo:
        panels.append(("gold win rate over SFT", [(f"best-of-{first['best_of_n']} by the RM", "best_of_n_win_rate"),
                                                  ("PPO against the RM", "ppo_win_rate")]))
    n_cols = len(MEASURES) if with_ppo else len(panels)
    fig, axes = plt.subplots(2 if with_ppo else 1, n_cols, figsize=(4.0 * n_cols, 7.2 if with_ppo else 3.6),
                             squeeze=False)
    for ax, (title, lines) in zip(axes[0] if sizes else [], panels):   # (--widths= : no size curves)
        for name, key in lines:
            ax.plot(x, [key(r) if callable(key) else r[key] for r in sizes], marker="o", label=name)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        if policy_x is not None:
            ax.axvline(policy_x, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(x)                             # one label per RM (log axes label minor ticks too: they overlap)
        ax.set_xticklabels([f"{v:.2f}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("RM parameters (millions; dashed: the policy's size)")
        ax.set_title(title, fontsize=10)
        if ax.get_legend_handles_labels()[0]:   # (no minimal pairs when no greedy answer was correct)
            ax.legend(fontsize=7)
    for ax in axes[0][len(panels) if sizes else 0:]:
        ax.axis("off")
    if with_ppo:   # the second row: every RM, its offline measure against PPO's gold win rate
        for ax, (title, key) in zip(axes[1], MEASURES):
            for r in res["rows"]:
                if r.get(key) is not None:
                    ax.scatter(r[key], r["ppo_win_rate"], marker="s" if r["variant"] else "o",
                               color="tab:orange" if r["variant"] else "tab:blue")
                    ax.annotate(label(r), (r[key], r["ppo_win_rate"]), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
            rho = res["predicts_ppo"][key]["spearman"]
            ax.set_xlabel(title)
            ax.set_ylabel("PPO gold win rate over SFT")
            ax.set_title(f"Spearman rho = {rho:.2f}" if rho is not None and rho == rho else "", fontsize=10)
    fig.suptitle(f"RMs at a fixed policy ({os.path.basename(res['config']['sft_ckpt'])}, d_model "
                 f"{res['policy_width']}), one seed. Top: RM size (full data, SFT start). Bottom: every RM "
                 f"(squares: the variants at the policy's width)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    cfg = parse_config(RMSizeConfig, sys.argv[1:] if argv is None else argv)
    os.makedirs(cfg.out_dir, exist_ok=True)
    policy = torch.load(cfg.sft_ckpt, map_location="cpu", weights_only=True)["model_config"]
    res = {"config": asdict(cfg), "policy_width": policy["n_embd"], "rows": []}
    runs = [(width, "") for width in sorted(map(int, cfg.width_list()))]
    runs += [(policy["n_embd"], v) for v in cfg.variant_list()]
    for width, variant in runs:   # the JSON and figure after every RM
        res["rows"].append(one_rm(cfg, width, policy, variant))
        res["predicts_ppo"] = predicts_ppo(res["rows"])
        write_results(res, cfg.out_dir, "rm_size", draw)
    rows = res["rows"]
    families = list(rows[0]["minimal_pairs"])
    print(f"\nRMs at a fixed policy (d_model {policy['n_embd']}); minimal pairs: {', '.join(families)}")
    print(f"  {'RM':18s} {'params':>7s} {'prompts':>7s} {'acc':>6s} {'B vs A':>6s} {'gold':>6s} {'ECE':>6s}  "
          f"{'minimal pairs':24s}" + ("  best-of-n  PPO win  PPO KL" if cfg.run_ppo else ""))
    for r in rows:
        minimal = " / ".join(f"{r['minimal_pairs'].get(f, float('nan')):.2f}" for f in families)
        tail = f"  {r['best_of_n_win_rate']:9.3f} {r['ppo_win_rate']:8.3f} {r['ppo_kl']:7.2f}" if cfg.run_ppo else ""
        print(f"  {label(r):18s} {r['rm_params'] / 1e6:6.2f}M {r['n_train_prompts']:7d} {r['accuracy']:6.3f} "
              f"{r['agreement']:6.3f} {r['gold_accuracy']:6.3f} {r['ece']:6.3f}  {minimal:24s}{tail}")
    if cfg.run_ppo:
        print_predicts_ppo(res["predicts_ppo"])
    write_results(res, cfg.out_dir, "rm_size", draw, cfg.publish)
    return res


if __name__ == "__main__":
    main()
