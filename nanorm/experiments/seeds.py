"""
How much of a figure is the seed? The default pipeline over several seeds, and each headline figure's range.

One seed gives one number per figure, and a student whose run gives another cannot tell a bug from luck.
This runs the whole default pipeline (SFT, RM, PPO, DPO, then the best-of-16 headroom table) once per
seed and writes, for every headline figure, its value on each seed and their mean, standard deviation,
min and max. README.md and the lessons quote these ranges; `python -m nanorm.ontrack` compares a
student's own run with them.

    python -m nanorm.experiments.seeds                     # seeds 1337,1,2,3,4: about 70 minutes on 2 cores
    python -m nanorm.experiments.seeds --publish=true      # and write data/ranges.json (what ontrack reads)
    python -m nanorm.experiments.seeds --seeds=1337,1 --extra="--max_iters=50"   # any stage flag, every seed

Each seed is `python -m nanorm.bench.pipeline --stages=sft,rm,ppo,dpo --extra="--seed=N"` into
out/seeds/seed_N/ (its JSON: out/bench/seeds_N.json), with --resume: a stage already finished with the
same flags is read back, so a sweep that was stopped goes on where it stopped. Only the seed changes between
runs: every other source of variation (the machine, --threads) is held fixed, so the spread is the
seed's alone. A different machine or thread count moves the numbers by about as much (float sums in
another order), which is why the ranges, not the digits, are what a run is checked against.
"""

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass

from nanorm.bench import pipeline
from nanorm.checkpoint import write_json
from nanorm.config import parse_config
from nanorm.experiments import headroom

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUBLISHED = os.path.join(ROOT, "data", "ranges.json")


@dataclass
class SeedsConfig:
    seeds: str = "1337,1,2,3,4"        # comma-separated; 1337 is every script's default
    extra: str = ""                    # flags for every stage of every seed (the default configuration: none)
    out_dir: str = "out/seeds"         # seed N's stages go to OUT_DIR/seed_N/{sft,rm,ppo,dpo}
    headroom_prompts: int = 500        # test prompts of the best-of-16 headroom table (0 = skip it)
    publish: bool = False              # also write data/ranges.json (python -m nanorm.ontrack reads it)


# The headline figures: name -> (where it comes from, what it is). `where` is a path into the seed's
# results {"sft": eval.json, "rm": ..., "ppo": ..., "dpo": ..., "headroom": headroom.json}.
FIGURES = {
    "sft.gold": ("sft/gold_mean", "SFT mean gold utility on 500 test prompts"),
    "sft.val_loss": ("sft/val_loss", "SFT validation loss (nats per response token)"),
    "rm.accuracy": ("rm/accuracy", "RM held-out accuracy against held-out labelers"),
    "rm.agreement": ("rm/inter_labeler_agreement", "inter-labeler agreement on the same held-out pairs"),
    "rm.gold_accuracy": ("rm/gold_accuracy", "RM accuracy against gold on the same pairs"),
    "rm.bayes_ceiling": ("rm/bayes_ceiling", "the Bayes ceiling: mean of max(p, 1 - p) over labeler A's pair probabilities"),
    "ppo.win_rate": ("ppo/ppo/win_rate_vs_sft", "PPO gold win rate against SFT (500 test prompts)"),
    "ppo.gold_gain": ("ppo/ppo/gold - ppo/sft/gold", "PPO mean gold minus SFT mean gold"),
    "ppo.kl": ("ppo/ppo/kl", "PPO KL to SFT per response (nats)"),
    "ppo.sycophancy": ("ppo/ppo/sycophancy_rate", "PPO: agrees with the user and is wrong, over claim prompts"),
    "best_of_16.win_rate": ("ppo/best_of_16/win_rate_vs_sft", "best-of-16 by the RM, win rate against SFT"),
    "dpo.win_rate": ("dpo/dpo/win_rate_vs_sft", "DPO gold win rate against SFT"),
    "dpo.win_rate_vs_ppo": ("dpo/dpo/win_rate_vs_ppo", "DPO gold win rate against PPO"),
    "dpo.kl": ("dpo/dpo/kl", "DPO KL to SFT per response (nats)"),
    "headroom.gold": ("headroom/win_rate_vs_sft/gold/all", "best-of-16 picked by gold (the ceiling)"),
    "headroom.labelers": ("headroom/win_rate_vs_sft/labelers/all", "best-of-16 picked by the labelers' mean"),
    "headroom.rm": ("headroom/win_rate_vs_sft/rm/all", "best-of-16 picked by the RM"),
    "headroom.labelers_share": ("headroom/labelers_share_of_gold_headroom", "(L - 0.5) / (G - 0.5)"),
}


def lookup(results, where):
    """The value at `where` ("a/b/c", or "x - y" of two such paths), or None if any part is missing."""
    if " - " in where:
        a, b = (lookup(results, w) for w in where.split(" - "))
        return None if a is None or b is None else a - b
    value = results
    for key in where.split("/"):
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def summarise(values):
    """{mean, sd, min, max, n} of a list of numbers (sd: the sample standard deviation, 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "n": n}


def ranges(per_seed):
    """{figure: {"per_seed": {seed: value}, mean, sd, min, max, n, what}} over the seeds that have it."""
    out = {}
    for name, (where, what) in FIGURES.items():
        values = {seed: lookup(results, where) for seed, results in per_seed.items()}
        values = {seed: v for seed, v in values.items() if v is not None}
        if values:
            out[name] = {"per_seed": values, **summarise(list(values.values())), "what": what}
    return out


def run_seed(seed, cfg):
    """Seed `seed`'s whole pipeline (and headroom table): {stage: its report}, and the stages' seconds."""
    out_dir = f"{cfg.out_dir}/seed_{seed}"
    report = pipeline.main([f"--out_dir={out_dir}", f"--out=seeds_{seed}", "--stages=sft,rm,ppo,dpo",
                            f"--extra=--seed={seed} {cfg.extra}".strip(), "--resume=true"])
    results = {stage: s["eval"] for stage, s in report["stages"].items()}
    seconds = {stage: s.get("seconds") for stage, s in report["stages"].items()}
    if cfg.headroom_prompts:
        argv = [f"--sft_ckpt={out_dir}/sft/ckpt.pt", f"--rm_ckpt={out_dir}/rm/ckpt.pt", f"--labeler_seed={seed}",
                f"--n_prompts={cfg.headroom_prompts}", f"--out={out_dir}/headroom.json"]
        path = f"{out_dir}/headroom.json"
        wanted = asdict(parse_config(headroom.HeadroomConfig, argv))
        earlier = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
        if earlier.get("config") == wanted:
            print(f"[headroom] already measured with these flags: {path}")
            results["headroom"] = earlier
        else:
            t0 = time.time()
            results["headroom"] = headroom.main(argv)
            seconds["headroom"] = round(time.time() - t0, 1)
    return results, seconds


def print_ranges(table, seeds):
    print(f"\nheadline figures over seeds {', '.join(map(str, seeds))}:")
    width = max(len(name) for name in table)
    print(f"  {'figure':{width}s}  {'mean':>7s}  {'sd':>6s}  {'min':>7s}  {'max':>7s}  per seed")
    for name, r in table.items():
        per = " ".join(f"{r['per_seed'][s]:+.3f}" if s in r["per_seed"] else "-" for s in seeds)
        print(f"  {name:{width}s}  {r['mean']:+7.3f}  {r['sd']:6.3f}  {r['min']:+7.3f}  {r['max']:+7.3f}  {per}")


def main(argv):
    cfg = parse_config(SeedsConfig, argv)
    try:
        seeds = [int(s) for s in cfg.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds={cfg.seeds}: expected comma-separated integers, e.g. 1337,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"error: --seeds={cfg.seeds}: a seed is listed twice")
    t0 = time.time()
    per_seed, seconds = {}, {}
    for seed in seeds:
        print(f"\n===== seed {seed} =====", flush=True)
        per_seed[seed], seconds[seed] = run_seed(seed, cfg)
    table = ranges(per_seed)
    print_ranges(table, seeds)
    res = {"config": asdict(cfg), "seeds": seeds, "figures": table, "seconds": seconds,
           "sweep_seconds": round(time.time() - t0, 1),
           "stage_seconds_total": round(sum(s or 0 for per in seconds.values() for s in per.values()), 1)}
    path = os.path.join(cfg.out_dir, "ranges.json")
    os.makedirs(cfg.out_dir, exist_ok=True)
    write_json(path, res)
    print(f"wrote {path} ({res['stage_seconds_total']:.0f} s of stage runs, {res['sweep_seconds']:.0f} s this time)")
    if cfg.publish:
        shutil.copy(path, PUBLISHED)
        print(f"published the ranges to {PUBLISHED}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
