"""
Am I on track? Your run's figures against the published ranges, after any stage.

    python -m nanorm.ontrack                 # reads out/sft, out/rm, out/ppo, out/dpo: whichever have finished
    python -m nanorm.ontrack --out=out/mine  # another folder holding sft/ rm/ ppo/ dpo/
    python -m nanorm.experiments.headroom && python -m nanorm.ontrack   # the headroom figures too

The ranges (data/ranges.json) come from `python -m nanorm.experiments.seeds --publish=true`: the
default pipeline run over several seeds on one machine. A figure is "in range" when it lies within the
seeds' min..max widened to mean +- 3 sd: a new seed, another machine or another --threads moves a figure
by about that much, so a run inside is indistinguishable from the reference. A figure outside gets what
it usually means. The ranges are for the default flags: a run with other flags (its checkpoint's config
says which) is told so, and its verdicts are only a rough guide.
"""

import json
import os
import sys
from dataclasses import dataclass

import torch

from nanorm.config import parse_config
from nanorm.experiments.seeds import FIGURES, PUBLISHED, lookup


@dataclass
class OnTrackConfig:
    out: str = "out"                 # the folder holding sft/ rm/ ppo/ dpo/ (each with eval.json and ckpt.pt)
    ranges: str = PUBLISHED          # the published ranges
    headroom: str = ""               # the headroom table, if run; empty = OUT/experiments/headroom.json


# Flags that do not change what a stage computes (where it reads and writes, how fast) or that the ranges
# already cover (the seed): a run that differs from the defaults only in these is a default run.
NEUTRAL = {"out_dir", "sft_ckpt", "rm_ckpt", "rm_dir", "ppo_ckpt", "resume", "device", "threads", "seed"}

# figure -> (what a value BELOW the range usually means, what a value ABOVE it usually means)
HINTS = {
    "sft.gold": ("the SFT model answers worse than the reference: is the loss on response tokens and EOS only "
                 "(exercise 2.1)? Is attention causal and blind to padding (exercise 1.1)?",
                 "better than every reference seed: fine if you changed the model or the steps on purpose"),
    "sft.val_loss": ("lower than every reference seed: is the validation set really the val split?",
                     "SFT learned less: exercise 2.1's mask and 1.1's attention mask are the usual suspects"),
    "rm.accuracy": ("the RM ranks held-out pairs worse than the reference: the Bradley-Terry loss's sign or mean "
                    "(3.3), the pairs of a ranking (3.4, 3.5), or the head reading the wrong token (3.2)",
                    "better than every reference seed: are the held-out pairs really held out?"),
    "rm.agreement": ("agreement depends only on the world and the held-out labelers, not on your code: "
                     "is the world's code changed, or the labelers' seed?", "same as below the range"),
    "rm.gold_accuracy": ("the RM agrees with gold less than usual: see rm.accuracy", "see rm.accuracy"),
    "rm.bayes_ceiling": ("the ceiling depends only on the world and the labelers: is exercise 4.3 right?",
                         "see below the range"),
    "ppo.win_rate": ("PPO improved less than the reference: the KL penalty's sign or scale (5.1), GAE (5.2), "
                     "the clipped losses (5.3, 5.4); an RM below its range lands here too",
                     "better than every reference seed: check ppo.kl and the samples for a hacked reward"),
    "ppo.gold_gain": ("see ppo.win_rate", "see ppo.win_rate"),
    "ppo.kl": ("the policy barely moved from SFT: a learning rate of 0, advantages that are all zero (5.2, 5.5), "
               "or a KL penalty far too large (5.1, 5.6)",
               "the policy moved further than any reference run: a KL penalty with the wrong sign or "
               "too small (5.1), or the adaptive controller (5.6) running the wrong way"),
    "ppo.sycophancy": ("the policy agrees with false claims less than usual", "the policy flatters more "
                       "than usual: it has found the labelers' agreement bias (lesson 06)"),
    "best_of_16.win_rate": ("best-of-16 needs only SFT and the RM: if it is low, the RM is (see rm.accuracy)",
                            "see below the range"),
    "dpo.win_rate": ("DPO improved less than the reference: the DPO loss (8.1) or the sequence log-probs (8.2)",
                     "better than every reference seed: check dpo.kl"),
    "dpo.win_rate_vs_ppo": ("see dpo.win_rate and ppo.win_rate", "see dpo.win_rate and ppo.win_rate"),
    "dpo.kl": ("the DPO policy barely moved: is the loss's gradient zero (8.1)?",
               "the DPO policy moved further than usual: the sign or the beta in 8.1"),
    "headroom.gold": ("gold's pick depends only on the SFT samples: see sft.gold", "see below the range"),
    "headroom.labelers": ("depends only on the SFT samples and the world's labelers: see sft.gold",
                          "see below the range"),
    "headroom.rm": ("the RM picks worse than usual: see rm.accuracy", "the RM picks better than any reference"),
    "headroom.labelers_share": ("see headroom.labelers", "see headroom.labelers"),
}

STAGES = ("sft", "rm", "ppo", "dpo")


def verdict(value, r):
    """"in range", "low" or "high": against min..max widened to mean +- 3 sd."""
    low, high = min(r["min"], r["mean"] - 3 * r["sd"]), max(r["max"], r["mean"] + 3 * r["sd"])
    return "low" if value < low else "high" if value > high else "in range"


def changed_flags(stage, ckpt_config):
    """The flags of a finished run that differ from the stage's defaults (apart from NEUTRAL ones)."""
    from nanorm import stages
    defaults = stages.defaults(stage)
    return {k: v for k, v in ckpt_config.items() if k not in NEUTRAL and k in defaults and defaults[k] != v}


def read_stage(folder):
    """(eval.json, the checkpoint's config) of a finished stage, or None."""
    eval_path, ckpt_path = os.path.join(folder, "eval.json"), os.path.join(folder, "ckpt.pt")
    if not os.path.exists(eval_path):
        return None
    try:
        with open(eval_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {eval_path}: not readable JSON ({e})") from None
    config = {}
    if os.path.exists(ckpt_path):
        config = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("config", {})
    return report, config


def main(argv):
    cfg = parse_config(OnTrackConfig, argv)
    if not os.path.exists(cfg.ranges):
        raise SystemExit(f"error: {cfg.ranges} not found: run python -m nanorm.experiments.seeds --publish=true")
    with open(cfg.ranges, encoding="utf-8") as f:
        published = json.load(f)
    results, rows = {}, []
    for stage in STAGES:
        got = read_stage(os.path.join(cfg.out, stage))
        if got is None:
            continue
        results[stage], config = got
        changed = changed_flags(stage, config)
        if changed:
            flags = " ".join(f"--{k}={v}" for k, v in changed.items())
            print(f"note: {cfg.out}/{stage} ran with {flags}; the ranges are for the defaults (a rough guide only)")
    if not results:
        raise SystemExit(f"error: no finished stage under {cfg.out}/ (no {cfg.out}/sft/eval.json ...): "
                         f"run train_sft.py first")
    headroom = cfg.headroom or os.path.join(cfg.out, "experiments", "headroom.json")
    if os.path.exists(headroom):   # python -m nanorm.experiments.headroom's default output
        with open(headroom, encoding="utf-8") as f:
            results["headroom"] = json.load(f)
    seeds = ", ".join(map(str, published["seeds"]))
    print(f"your run ({cfg.out}/) against {len(published['seeds'])} reference seeds ({seeds}; {cfg.ranges}):")
    print(f"  {'figure':22s} {'yours':>8s}  {'reference: mean':>15s} {'min':>7s} {'max':>7s}  verdict")
    for name, (where, _) in FIGURES.items():
        r = published["figures"].get(name)
        value = lookup(results, where)
        if r is None or value is None:
            continue
        v = verdict(value, r)
        rows.append({"figure": name, "value": value, "verdict": v})
        print(f"  {name:22s} {value:+8.3f}  {r['mean']:+15.3f} {r['min']:+7.3f} {r['max']:+7.3f}  {v}")
    off = [row for row in rows if row["verdict"] != "in range"]
    for row in off:
        print(f"  {row['figure']} is {row['verdict']}: {HINTS[row['figure']][row['verdict'] == 'high']}")
    if rows and not off:
        print("  every figure lies in the reference range: your run behaves like the reference")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
