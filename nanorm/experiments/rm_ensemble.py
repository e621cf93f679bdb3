"""
Beyond the document: does an ensemble of reward models hold off overoptimisation? (Coste et al. 2024,
"Reward Model Ensembles Help Mitigate Overoptimization".)

Lesson 06's curve: at a small KL coefficient PPO raises the RM's score without end while gold peaks and
then falls below SFT's. One RM's errors are partly its own (its seed, its samples, its labeler draws);
several RMs share the labelers' biases but not each other's accidents. So a policy that pleases all of
them, or is charged for their disagreement, may have less to exploit. This experiment:

  1. trains the ensemble: the default RM (--rm_ckpt) and --members - 1 more train_rm.py runs from the same
     SFT model, seeds seed+1, seed+2, ...: each its own labelers (drawn around the same population
     biases), samples, order and init;
  2. runs train_ppo.py at one small beta for each objective in --objectives, against
        single : the default RM alone (lesson 06's run),
        mean   : the members' mean reward,
        worst  : their minimum (worst-case optimisation),
        uwo    : mean - uwo_lambda * variance across members (uncertainty-weighted optimisation),
     every other setting the same (nanorm/reward.py::ensemble_reward; train_ppo.py --rm_objective);
  3. measures the SFT policy the way every run's evaluations do (iteration 0, KL 0);
  4. reads each run's evaluations (validation prompts every --eval_interval iterations: proxy, gold, KL,
     failure-mode rates) and its final test-set gold win rate over SFT;
  5. writes out/ensemble/rm_ensemble.{json,png}: gold and proxy against d = sqrt(KL), one line per objective.

    python -m nanorm.experiments.rm_ensemble                    # after train_sft.py, train_rm.py
    python -m nanorm.experiments.rm_ensemble --publish=true     # and copy the figure to lessons/figures/

Every stage runs in a process of its own, --jobs at a time, its log beside its out_dir; one finished with
the same flags is read back. What it cannot show: one seed of the whole experiment, one beta, members
that differ only in seed (Coste et al. also bootstrap the data), and a proxy that differs per objective
(so compare gold and KL, not proxy, across the runs).
"""

import json
import math
import os
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import stages, world
from nanorm.checkpoint import read_jsonl
from nanorm.config import at_least, at_most_prompts, get_device, parse_config, require
from nanorm.evaluate import load_policy_ref_rm, validation_point
from nanorm.experiments.common import stage, write_results
from nanorm.reward import ENSEMBLE_OBJECTIVES
from nanorm.tokenizer import load_tokenizer

OBJECTIVES = ("single",) + ENSEMBLE_OBJECTIVES


@dataclass
class EnsembleConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # the policy's start and KL reference; every member samples from it
    rm_ckpt: str = "out/rm/ckpt.pt"      # member 0, the default RM (the "single" run optimises it alone)
    members: int = 4                     # RMs in the ensemble: member 0 and members - 1 more train_rm.py runs
    out_dir: str = "out/ensemble"        # OUT_DIR/rm_seed<S>/ per new member, OUT_DIR/ppo_<objective>/ per run
    objectives: str = "single,mean,worst,uwo"
    uwo_lambda: float = 1.0              # uwo: mean - lambda * variance (rewards normalised to std 1 on SFT samples)
    beta: float = 0.02                   # lesson 06: at 0.02 the single RM's gold peaks, then falls below SFT's
    n_iters: int = 60                    # PPO iterations per run (lesson 06's)
    eval_interval: int = 5               # iterations between evaluations: the points of the curves
    n_eval_prompts: int = 300            # validation prompts per evaluation (gold mean's standard error ~0.04)
    rm_flags: str = ""                   # more flags for every new member's train_rm.py (the tests: a tiny run)
    ppo_flags: str = ""                  # ... for every train_ppo.py
    jobs: int = 2                        # stages at once, each a process with --threads
    threads: int = 1
    seed: int = 1337                     # train_rm.py's default: member 0's; member i gets seed + i
    publish: bool = False                # copy the figure to lessons/figures/rm_ensemble.png

    def objective_list(self):
        return [o.strip() for o in self.objectives.split(",") if o.strip()]

    def check(self):
        at_least(self, 2, "members")
        at_least(self, 1, "n_iters", "eval_interval", "n_eval_prompts", "jobs")
        at_least(self, 0, "beta", "uwo_lambda", "threads")
        objectives = self.objective_list()
        require(self, "objectives", objectives and all(o in OBJECTIVES for o in objectives)
                and len(set(objectives)) == len(objectives), f"expected some of {','.join(OBJECTIVES)}, each once")
        at_most_prompts(self, n_eval_prompts="val")
        for flag in ("sft_ckpt", "rm_ckpt"):
            require(self, flag, os.path.exists(getattr(self, flag)),
                    "not found (run train_sft.py and train_rm.py first)")
        require(self, "rm_ckpt", os.path.exists(os.path.join(os.path.dirname(self.rm_ckpt), "eval.json")),
                "has no eval.json beside it (train_rm.py writes one): its held-out accuracy is reported")


# ----------------------------------------------------------------------------------------------------
# Step 1: the members


def train_members(cfg):
    """Paths of the members' checkpoints: member 0 is --rm_ckpt; the others train here (--jobs at a time)."""
    def one(i):
        out = os.path.join(cfg.out_dir, f"rm_seed{cfg.seed + i}")
        report = stage("rm", out + ".log", cfg.rm_flags, sft_ckpt=cfg.sft_ckpt, out_dir=out, seed=cfg.seed + i,
                       threads=cfg.threads)
        return os.path.join(out, "ckpt.pt"), report
    with ThreadPoolExecutor(cfg.jobs) as pool:
        trained = list(pool.map(one, range(1, cfg.members)))
    with open(os.path.join(os.path.dirname(cfg.rm_ckpt), "eval.json"), encoding="utf-8") as f:
        first = json.load(f)                                   # train_rm.py's report, beside its checkpoint
    seed0 = torch.load(cfg.rm_ckpt, map_location="cpu", weights_only=True)["config"]["seed"]
    keep = ("accuracy", "inter_labeler_agreement", "gold_accuracy")
    rows = [{"ckpt": cfg.rm_ckpt, "seed": seed0, **{k: first[k] for k in keep}}]
    rows += [{"ckpt": path, "seed": cfg.seed + i, **{k: rep[k] for k in keep}}
             for i, (path, rep) in enumerate(trained, start=1)]
    return rows


# ----------------------------------------------------------------------------------------------------
# Step 2: PPO against each objective; step 3: the SFT point


def ppo_overrides(cfg, objective, members):
    """One run's train_ppo.py settings: everything the same but the reward it optimises."""
    rm_ckpt = members[0] if objective == "single" else ",".join(members)
    return {"sft_ckpt": cfg.sft_ckpt, "rm_ckpt": rm_ckpt,
            "rm_objective": "mean" if objective == "single" else objective,
            "uwo_lambda": cfg.uwo_lambda, "out_dir": os.path.join(cfg.out_dir, f"ppo_{objective}"), "beta": cfg.beta,
            "n_iters": cfg.n_iters, "eval_interval": cfg.eval_interval, "n_eval_prompts": cfg.n_eval_prompts,
            "best_of": 0, "seed": cfg.seed, "threads": cfg.threads}


def run_ppo(cfg, objectives, members):
    """{objective: (train_ppo.py's eval.json, the evaluation points of its metrics.jsonl)}."""
    def one(objective):
        o = ppo_overrides(cfg, objective, members)
        report = stage("ppo", o["out_dir"] + ".log", cfg.ppo_flags, **o)
        points = [{"iter": m["iter"], **m["eval"]} for m in read_jsonl(os.path.join(o["out_dir"], "metrics.jsonl"))
                  if "eval" in m]
        return report, points
    with ThreadPoolExecutor(cfg.jobs) as pool:
        return dict(zip(objectives, pool.map(one, objectives)))


def sft_points(cfg, objectives, members):
    """The SFT policy evaluated exactly as each run's evaluations are (same prompts, same sampling stream),
    its proxy under each objective: the curves' iteration 0. Also the standard error of its gold mean."""
    ppo_cfg = parse_config(type(stages.config("ppo")), [f"--{k}={v}" for k, v in ppo_overrides(
        cfg, objectives[0], members).items()] + shlex.split(cfg.ppo_flags))
    device = get_device(ppo_cfg.device)                       # where the runs sampled: the same stream
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tok = load_tokenizer(ppo_cfg.tokenizer)
    prompts = world.make_split("val", cfg.n_eval_prompts, seed=ppo_cfg.seed)
    points, se = {}, None
    for objective in objectives:
        o = ppo_overrides(cfg, objective, members)
        _, ref, rm, _ = load_policy_ref_rm(cfg.sft_ckpt, o["rm_ckpt"], tok, device, o["rm_objective"], cfg.uwo_lambda)
        point, rows = validation_point(ref, ref, rm, tok, prompts, ppo_cfg, device)
        points[objective] = {"iter": 0, **point}
        se = float(np.std([r["gold"] for r in rows]) / math.sqrt(len(rows)))
    return points, se


# ----------------------------------------------------------------------------------------------------
# Step 4: what each run did


def summary(sft, points, report):
    """One run's curve read in numbers: its gold peak (the SFT point included), the end, the test win rate."""
    curve = [sft] + points
    peak = max(curve, key=lambda p: p["gold"])
    end = curve[-1]
    return {"peak_gold": peak["gold"], "peak_iter": peak["iter"], "peak_kl": peak["kl"],
            "final_gold": end["gold"], "final_kl": end["kl"], "final_proxy": end["proxy"],
            "final_length": end["length"], "final_sycophancy": end["sycophancy"],
            "final_gibberish": end["gibberish_rate"], "test_win_rate": report["ppo"]["win_rate_vs_sft"]}


def draw(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    se = res["gold_standard_error"]
    for objective, run in res["runs"].items():
        curve = [run["sft_point"]] + run["points"]
        d = [math.sqrt(max(p["kl"], 0.0)) for p in curve]
        axes[0].plot(d, [p["gold"] for p in curve], marker="o", ms=3, label=objective)
        axes[1].plot(d, [p["proxy"] for p in curve], marker="o", ms=3, label=objective)
    sft_gold = next(iter(res["runs"].values()))["sft_point"]["gold"]
    axes[0].axhspan(sft_gold - se, sft_gold + se, color="grey", alpha=0.2, label="SFT ± 1 s.e.")
    axes[0].set_ylabel("gold (validation prompts)")
    axes[1].set_ylabel("proxy: the reward each run optimises")
    for ax in axes:
        ax.set_xlabel("d = sqrt(KL to SFT), nats^0.5")
        ax.legend(fontsize=8)
    fig.suptitle(f"PPO at beta = {res['config']['beta']:g} against one RM and an ensemble of "
                 f"{res['config']['members']} (one seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    cfg = parse_config(EnsembleConfig, sys.argv[1:] if argv is None else argv)
    os.makedirs(cfg.out_dir, exist_ok=True)
    objectives = cfg.objective_list()
    member_rows = train_members(cfg)
    members = [row["ckpt"] for row in member_rows]
    reports = run_ppo(cfg, objectives, members)
    sft, se = sft_points(cfg, objectives, members)
    runs = {o: {"sft_point": sft[o], "points": reports[o][1], **summary(sft[o], reports[o][1], reports[o][0])}
            for o in objectives}
    res = {"config": asdict(cfg), "members": member_rows, "runs": runs, "gold_standard_error": se}
    accuracies = ", ".join(f"{r['accuracy']:.3f}" for r in member_rows)
    print(f"\nPPO at beta={cfg.beta:g}, {cfg.n_iters} iterations, against one RM or {cfg.members} "
          f"(members' held-out accuracy: {accuracies})")
    print(f"  {'objective':9s} {'peak gold':>9s} {'at iter':>7s} {'KL':>6s} {'final gold':>10s} {'KL':>6s} "
          f"{'proxy':>6s} {'words':>6s} {'test win':>8s}")
    print(f"  {'SFT':9s} {sft[objectives[0]]['gold']:+9.3f}")
    for o, r in runs.items():
        print(f"  {o:9s} {r['peak_gold']:+9.3f} {r['peak_iter']:7d} {r['peak_kl']:6.2f} {r['final_gold']:+10.3f} "
              f"{r['final_kl']:6.2f} {r['final_proxy']:+6.2f} {r['final_length']:6.1f} {r['test_win_rate']:8.3f}")
    write_results(res, cfg.out_dir, "rm_ensemble", draw, cfg.publish)
    return res


if __name__ == "__main__":
    main()
