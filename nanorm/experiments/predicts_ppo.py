"""
Does what an RM earns without PPO predict what PPO makes of it? Every RM of the experiments that ran
PPO against their RMs, in one scatter (the first open question of the document, lesson 07 section 1).

Each experiment below trains several RMs for the same default SFT policy and runs the default
train_ppo.py against each; this module reads their JSON files and pools the RMs:

    rm_size         seven RMs: three trunk widths, fewer prompts (342, 171, 86), a trunk from scratch
    labeler_votes   five RMs (with --ppo=all): one labeler, three times the prompts, a majority of three,
                    the soft vote, a reward per labeler

For each measure of common.MEASURES (held-out accuracy, gold accuracy, ECE, minimal pairs, best-of-16's
gold win rate) it gives Spearman's rho with PPO's test-set gold win rate over SFT, across all the RMs,
with a permutation p-value (the chance of a |rho| this large if the measure said nothing about PPO).
Best-of-16 is each experiment's own: train_ppo.py's on its 500 test prompts for rm_size, 300 test prompts
of labeler_votes' pool for the others; both are one RM-picked answer of 16 against one SFT sample.

    python -m nanorm.experiments.rm_size --threads=1          # first (about 1.5 h in two processes, lesson 07)
    python -m nanorm.experiments.labeler_votes --ppo=all      # (about 40 minutes)
    python -m nanorm.experiments.predicts_ppo                 # seconds; --publish=true copies the figure

Writes out/predicts_ppo/predicts_ppo.{json,png}. What it cannot show: one seed per RM (PPO's win rate
moves by about 0.02 between seeds of the whole pipeline, as much as it moves between most of these RMs),
one policy and one PPO setting, and RMs that are all near the same accuracy.
"""

import json
import os
import sys
from dataclasses import asdict, dataclass

from nanorm.config import parse_config, require
from nanorm.experiments.common import MEASURES, predicts_ppo, print_predicts_ppo, write_results


@dataclass
class PredictsConfig:
    sources: str = "out/rm_size/rm_size.json,out/labeler_votes/labeler_votes.json"   # JSONs to pool
    out_dir: str = "out/predicts_ppo"
    publish: bool = False              # copy the figure to lessons/figures/predicts_ppo.png

    def source_list(self):
        return [s.strip() for s in self.sources.split(",") if s.strip()]

    def check(self):
        require(self, "sources", self.source_list(), "expected JSON files, comma-separated")


def rm_name(row):
    """An RM's label in the table and figure: labeler_votes' way, or rm_size's variant or width."""
    if "way" in row:
        return row["way"]
    return row["variant"].replace("--", "") or f"d_model {row['width']}"


def pooled_rows(paths):
    """[{"experiment", "rm", each measure, "ppo_win_rate", "ppo_kl"}] of every RM with a PPO run, from
    every JSON of `paths` that exists (a missing one is named and skipped)."""
    rows = []
    for path in paths:
        if not os.path.exists(path):
            print(f"{path}: not found, skipped (run its experiment first: see this module's docstring)")
            continue
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
        experiment = os.path.splitext(os.path.basename(path))[0]
        found = [r for r in res.get("rows", res.get("runs", [])) if "ppo_win_rate" in r]
        print(f"{path}: {len(found)} RMs with a PPO run")
        for r in found:
            rows.append({"experiment": experiment, "rm": rm_name(r), "ppo_win_rate": r["ppo_win_rate"],
                         "ppo_kl": r.get("ppo_kl"), **{key: r.get(key) for _, key in MEASURES}})
    return rows


def draw(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    experiments = sorted({r["experiment"] for r in res["rows"]})
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(3.6 * len(MEASURES), 3.8), squeeze=False)
    for ax, (title, key) in zip(axes[0], MEASURES):
        for k, experiment in enumerate(experiments):
            mine = [r for r in res["rows"] if r["experiment"] == experiment and r[key] is not None]
            ax.scatter([r[key] for r in mine], [r["ppo_win_rate"] for r in mine], color=f"C{k}", label=experiment)
            for r in mine:
                ax.annotate(r["rm"], (r[key], r["ppo_win_rate"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        got = res["predicts_ppo"][key]
        if got["spearman"] is not None:
            ax.set_title(f"rho = {got['spearman']:+.2f} (p = {got['p']:.2f}, {got['n']} RMs)", fontsize=9)
        ax.set_xlabel(title)
        ax.set_ylabel("PPO gold win rate over SFT")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Each RM's measure without PPO against what PPO made of it (one seed per RM)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    cfg = parse_config(PredictsConfig, sys.argv[1:] if argv is None else argv)
    rows = pooled_rows(cfg.source_list())
    if len(rows) < 3:
        raise SystemExit(f"error: --sources={cfg.sources}: {len(rows)} RMs with a PPO run; at least 3 are needed")
    os.makedirs(cfg.out_dir, exist_ok=True)
    res = {"config": asdict(cfg), "rows": rows, "predicts_ppo": predicts_ppo(rows)}
    wins = [r["ppo_win_rate"] for r in rows]
    print(f"\n{len(rows)} RMs; PPO's gold win rate over SFT spans {min(wins):.3f} to {max(wins):.3f}")
    print(f"  {'experiment':14s} {'RM':16s} " + " ".join(f"{key[:10]:>10s}" for _, key in MEASURES) + "    PPO win")
    for r in rows:
        cells = " ".join(f"{'n/a':>10s}" if r[key] is None else f"{r[key]:10.3f}" for _, key in MEASURES)
        print(f"  {r['experiment']:14s} {r['rm']:16s} {cells} {r['ppo_win_rate']:10.3f}")
    print_predicts_ppo(res["predicts_ppo"])
    write_results(res, cfg.out_dir, "predicts_ppo", draw, cfg.publish)
    return res


if __name__ == "__main__":
    main()
