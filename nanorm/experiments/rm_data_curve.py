"""
SFT initialisation vs random initialisation of the reward model, as a function of the amount of data.

The source document claims that starting the RM from the SFT model "requires far less data than
training from scratch". This experiment measures it in the world: it trains train_rm.py on the first
N prompts of the comparisons that the default run collected (out/rm/comparisons.jsonl), for several N,
once with --init=sft and once with --init=random, and plots held-out accuracy (against the held-out
labeler, beside the inter-labeler agreement and the Bayes ceiling) against the number of comparisons.

    python -m nanorm.experiments.rm_data_curve                 # after python train_sft.py && python train_rm.py
    python -m nanorm.experiments.rm_data_curve --sizes=100,400 --inits=sft     # a quicker look

Writes out/rm_curve/rm_data_curve.json and rm_data_curve.png (copied to lessons/figures/ with --publish=true).
"""

import os
import shlex
import sys
from dataclasses import asdict, dataclass

from nanorm import stages
from nanorm.config import parse_config
from nanorm.experiments.common import write_results


@dataclass
class CurveConfig:
    comparisons: str = "out/rm/comparisons.jsonl"   # collected by the default train_rm.py run
    sft_ckpt: str = "out/sft/ckpt.pt"
    out_dir: str = "out/rm_curve"
    sizes: str = "90,180,360,720,1369"              # numbers of training prompts (each ~20 comparisons; 1369 = all)
    inits: str = "sft,random"
    extra: str = ""                                  # more flags for every train_rm.py run
    publish: bool = False                            # copy the figure to lessons/figures/
    threads: int = 0


def draw(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    rows = res["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for init, marker in (("sft", "o"), ("random", "s")):
        pts = [r for r in rows if r["init"] == init]
        if pts:
            ax.plot([r["n_pairs"] for r in pts], [r["accuracy"] for r in pts], marker=marker,
                    label=f"RM init = {init}")
    ax.axhline(rows[0]["agreement"], color="gray", ls="--", label="inter-labeler agreement")
    ax.axhline(rows[0]["bayes_ceiling"], color="black", ls=":", label="Bayes ceiling")
    ax.axhline(0.5, color="lightgray", lw=1)
    ax.set_xscale("log")
    ticks = sorted({r["n_pairs"] for r in rows if r["init"] == rows[0]["init"]})   # one label per size
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{n:,}" for n in ticks], rotation=30, ha="right", fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())   # (log axes label their minor ticks too: they overlap)
    ax.set_xlabel("training comparisons (pairs)")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_title("Reward model: SFT init vs random init")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    cfg = parse_config(CurveConfig, argv)
    os.makedirs(cfg.out_dir, exist_ok=True)
    base = asdict(parse_config(type(stages.config("rm")), shlex.split(cfg.extra)))   # --extra, read as train_rm.py would
    res = {"config": asdict(cfg), "rows": []}
    for init in cfg.inits.split(","):
        for n in [int(s) for s in cfg.sizes.split(",")]:
            out = os.path.join(cfg.out_dir, f"{init}_{n}")
            flags = {**base, "data": cfg.comparisons, "sft_ckpt": cfg.sft_ckpt, "n_prompts": n, "init": init,
                     "out_dir": out, "threads": cfg.threads}
            print("train_rm.py " + " ".join(f"--{k}={flags[k]}" for k in ("data", "n_prompts", "init", "out_dir")),
                  flush=True)
            ev = stages.run("rm", **flags)
            row = {"init": init, "n_prompts": ev["n_train_prompts"], "n_pairs": ev["n_train_pairs"],
                   "accuracy": ev["accuracy"], "gold_accuracy": ev.get("gold_accuracy"),
                   "agreement": ev.get("inter_labeler_agreement"), "bayes_ceiling": ev.get("bayes_ceiling")}
            res["rows"].append(row)
            print(f"  init={init:6s} prompts={row['n_prompts']:5d} pairs={row['n_pairs']:6d} "
                  f"accuracy {row['accuracy']:.3f} (gold {row['gold_accuracy']:.3f})", flush=True)
    write_results(res, cfg.out_dir, "rm_data_curve", draw, cfg.publish)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
