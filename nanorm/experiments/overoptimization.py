"""
Reward-model overoptimization, measured: optimise the proxy (the RM) and watch the gold utility.

Gao, Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization", plot gold reward
against the distance the policy has moved from its start, d = sqrt(KL(pi || pi_sft)), and find two
shapes, one per optimiser (R(d) = gold(d) - gold(0), gold relative to the starting policy):

    best-of-n : R_bon(d) = d (alpha - beta d)          (their eq. 1)
    RL (PPO)  : R_RL(d)  = d (alpha - beta log d)      (their eq. 2)

Both rise, peak and fall: past the peak, more optimisation of the proxy buys less gold. Here gold is code
(nanorm/world/judging.py::gold), so both curves are measured, not estimated. This module

  1. runs train_ppo.py once per KL coefficient in --betas (each in a process of its own, --jobs at a time); the smallest
     beta runs in two legs, stopping at --peak_iters to keep an "early" checkpoint, then resuming (the
     resume is exact: the two legs give the numbers one uninterrupted run would);
  2. meanwhile measures the SFT policy itself (iteration 0, KL 0) with exactly the evaluation train_ppo.py
     logs every --eval_interval iterations (same validation prompts, same sampling seed), and best-of-n
     against the proxy for n in --bon_ns from one pool of max(n) SFT samples per prompt (prefixes);
  3. reads every run's "eval" entries from its metrics.jsonl: proxy, gold, KL, length, format, and the rates
     of the document's failure modes (too long, formatted, gibberish, sycophantic);
  4. fits the two forms above by linear least squares on the gold curves, each relative to its own SFT
     baseline: the iteration-0 evaluation for PPO, the mean of all the SFT samples for best-of-n (the
     maths: nanorm/experiments/gao.py);
  5. evaluates each run's final policy (and the early one) per prompt family: what did it learn to do?
  6. writes overoptimization.json, three PNG figures and the printed tables (nanorm/experiments/overoptimization_report.py)
     and prints a summary table.

`main` runs these steps in this order, one function each. Everything that knows how train_ppo.py is
run (its settings, its defaults, its process) is in one section below, "train_ppo.py".

    python -m nanorm.experiments.overoptimization                     # ~12 minutes on a 2-core CPU
    python -m nanorm.experiments.overoptimization --smoke=true        # tiny settings, under a minute
    python -m nanorm.experiments.overoptimization --publish=true      # also copy the figures to lessons/figures/
    python -m nanorm.experiments.overoptimization --skip_done=true    # reuse finished PPO runs, redo the analysis

Reads  : out/sft/ckpt.pt, out/rm/ckpt.pt (run train_sft.py and train_rm.py first)
Writes : out/hacking/ppo_beta_<beta>/ (each PPO run: ckpt.pt, metrics.jsonl, train_ppo.log; the smallest beta
         also early_ckpt.pt), out/hacking/overoptimization.json, out/hacking/overoptimization_*.png

The KL that every d here comes from:
  - PPO: the Monte-Carlo estimate that train_ppo.py logs, sum_t log pi(y_t) - log pi_sft(y_t) on the
    policy's own samples, averaged over prompts (nats per response); d = sqrt(max(KL, 0)).
  - best-of-n: the analytic KL_bon = log n - (n - 1) / n (Stiennon et al. 2020, appendix G.3), exact for
    continuous rewards without ties; an upper bound otherwise.
"""

import json
import math
import os
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np
import torch

from nanorm import stages, world
from nanorm.checkpoint import read_jsonl
from nanorm.config import (SEED_BEST_OF_N_CURVE, SEED_VAL_EVAL, at_least, at_most_prompts, get_device,
                           parse_config, print_config, require)
from nanorm.data import sample_responses
from nanorm.evaluate import curve_point, describe, evaluate_on, load_policy, load_reward_model, rm_scores, summarise
from nanorm.experiments.gao import fit_bon, fit_rl, kl_bon
from nanorm.experiments.overoptimization_report import make_figures, print_report
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class OveroptConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"     # the starting policy and KL reference
    rm_ckpt: str = "out/rm/ckpt.pt"       # the proxy reward model
    out_dir: str = "out/hacking"
    betas: str = "0.002,0.02,0.2"         # KL coefficients, one PPO run each (0.2 is train_ppo.py's default)
    n_iters: int = 60                     # PPO iterations per run
    peak_iters: int = 20                  # the smallest beta stops here first; that checkpoint is the "early" policy
    eval_interval: int = 5                # PPO iterations between evaluations (points on the curves)
    n_eval_prompts: int = 300             # validation prompts per evaluation (train_ppo.py's --n_eval_prompts; the
                                          # split has 317): the standard error of one gold mean is then about
                                          # 0.04 (128 prompts: 0.064)
    n_test_prompts: int = 16              # train_ppo.py's own final test-set report (not used here; kept small)
    ppo_args: str = ""                    # extra flags for every train_ppo.py run, e.g. "--lr=1e-4 --batch_size=32"
    jobs: int = 3                         # PPO runs at once (each a process of its own with --threads)
    bon_ns: str = "1,2,4,8,16,32,64"      # best-of-n: the n to measure, from one pool of max(n) samples per prompt
    n_bon_prompts: int = 64               # validation prompts for best-of-n
    n_examples: int = 8                   # prompts whose responses (SFT, early, final) are shown and saved
    skip_done: bool = False               # reuse a PPO run already in out_dir when its settings match
    publish: bool = False                 # also copy the figures to lessons/figures/ (for the lesson)
    smoke: bool = False                   # tiny settings for a quick check: 2 betas, 4 iterations, n up to 4
    seed: int = 1337
    device: str = "auto"
    threads: int = 1                      # torch threads here and in each PPO run (1 is the fastest on a busy CPU)

    def check(self):
        require(self, "betas", _numbers(self.betas, float) and all(b >= 0 for b in self.beta_list),
                "expected non-negative numbers, comma-separated")
        require(self, "betas", len(set(self.beta_list)) == len(self.beta_list), "each beta once")
        require(self, "bon_ns", _numbers(self.bon_ns, int) and all(n >= 1 for n in self.n_list),
                "expected positive integers, comma-separated")
        require(self, "peak_iters", 0 < self.peak_iters < self.n_iters,
                f"must be between 0 and --n_iters={self.n_iters}")
        at_least(self, 1, "eval_interval", "jobs", "n_eval_prompts", "n_bon_prompts")
        at_most_prompts(self, n_eval_prompts="val", n_bon_prompts="val")

    @property
    def beta_list(self):
        return sorted(float(b) for b in self.betas.split(",") if b.strip())

    @property
    def n_list(self):
        return sorted({int(n) for n in self.bon_ns.split(",") if n.strip()})


def _numbers(text, kind):
    """Does text read as a non-empty comma-separated list of `kind` (float or int)?"""
    try:
        return bool([kind(x) for x in text.split(",") if x.strip()])
    except ValueError:
        return False


def smoke_settings(cfg):
    """--smoke=true: the smallest and the largest beta, 4 iterations, 32 eval prompts, n up to 4."""
    betas = cfg.beta_list
    cfg.betas = f"{betas[0]},{betas[-1]}" if len(betas) > 1 else f"{betas[0]}"
    cfg.n_iters, cfg.peak_iters, cfg.eval_interval = 4, 2, 2
    cfg.n_eval_prompts, cfg.n_test_prompts, cfg.n_bon_prompts, cfg.n_examples = 32, 4, 8, 4
    cfg.bon_ns = "1,2,4"
    cfg.ppo_args = ("--batch_size=16 --minibatch_size=8 " + cfg.ppo_args).strip()
    cfg.check()
    return cfg


# ----------------------------------------------------------------------------------------------------
# train_ppo.py: the only place that knows how this experiment runs it. Each run is train_ppo.main(cfg)
# in a fresh process of its own (nanorm/stages.py), --jobs at a time: settings in, its checkpoint and
# metrics.jsonl out.


def ppo_settings(cfg):
    """The settings every PPO run uses: train_ppo.py's defaults with --ppo_args applied, read as its own
    command line would read them. The evaluations made here sample and score exactly as its own do."""
    settings = asdict(parse_config(type(stages.config("ppo")), shlex.split(cfg.ppo_args)))
    if settings["beta"] not in cfg.beta_list and "--beta=" not in cfg.ppo_args:
        print(f"note: train_ppo.py's default beta ({settings['beta']}) is not among --betas={cfg.betas}")
    return settings


def ppo_overrides(cfg, settings, beta, run_dir, n_iters):
    """One run's (or leg's) PPOConfig: the common settings, then what this experiment sets for each run."""
    return {**settings, "sft_ckpt": os.path.abspath(cfg.sft_ckpt), "rm_ckpt": os.path.abspath(cfg.rm_ckpt),
            "out_dir": run_dir, "beta": beta, "n_iters": n_iters, "eval_interval": cfg.eval_interval,
            "n_eval_prompts": cfg.n_eval_prompts, "best_of": 0, "n_test_prompts": cfg.n_test_prompts,
            "seed": cfg.seed, "device": cfg.device, "threads": cfg.threads}


def train_ppo(overrides, log_path):
    """One train_ppo.main run in a process of its own; its output goes to log_path."""
    try:
        stages.run_in_child("ppo", log_path, **overrides)
    except stages.StageFailed as e:
        raise RuntimeError(f"train_ppo.py failed: {e}") from None


def _same_run(ckpt_path, overrides):
    """Does the checkpoint come from a run with these settings (--skip_done)? Compares every field."""
    if not os.path.exists(ckpt_path):
        return False
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("config", {})
    return all(saved.get(k) == v for k, v in overrides.items() if k not in ("out_dir", "resume", "device", "threads"))


# ----------------------------------------------------------------------------------------------------
# Step 1: the PPO runs, one output directory per beta, --jobs at a time in the background


def run_name(beta):
    return f"ppo_beta_{beta:g}"


def run_beta(cfg, settings, beta, early):
    """All of one beta's PPO: a single run, or (early=True) two legs, keeping the checkpoint in between."""
    run_dir = os.path.join(cfg.out_dir, run_name(beta))
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "train_ppo.log")
    ckpt, early_ckpt = os.path.join(run_dir, "ckpt.pt"), os.path.join(run_dir, "early_ckpt.pt")
    final = ppo_overrides(cfg, settings, beta, run_dir, cfg.n_iters)
    first_leg = ppo_overrides(cfg, settings, beta, run_dir, cfg.peak_iters)
    if cfg.skip_done and _same_run(ckpt, final) and (not early or _same_run(early_ckpt, first_leg)):
        print(f"beta={beta:g}: reusing the finished run in {run_dir}")
        return run_dir, 0.0
    t0 = time.time()
    open(log_path, "w").close()
    if early:
        train_ppo(first_leg, log_path)                            # leg 1: iterations 1..peak_iters
        shutil.copyfile(ckpt, early_ckpt)                         # keep the early policy
        train_ppo({**final, "resume": early_ckpt}, log_path)      # leg 2: continued exactly, on to n_iters
    else:
        train_ppo(final, log_path)
    seconds = time.time() - t0
    print(f"beta={beta:g}: PPO done in {seconds:.0f}s ({run_dir})", flush=True)
    return run_dir, seconds


def start_ppo_runs(cfg, settings):
    """Start every beta's PPO (the smallest in two legs); returns (the pool, {beta: future})."""
    betas = cfg.beta_list
    workers = ThreadPoolExecutor(max_workers=cfg.jobs)
    futures = {beta: workers.submit(run_beta, cfg, settings, beta, beta == betas[0]) for beta in betas}
    print(f"started {len(betas)} PPO runs ({cfg.jobs} at a time); logs in {cfg.out_dir}/ppo_beta_*/train_ppo.log")
    return workers, futures


def wait_for_ppo(workers, futures):
    """{beta: seconds its PPO took}, once every run has finished; stops at the first that failed."""
    ppo_seconds = {}
    for beta, future in futures.items():
        try:
            _, ppo_seconds[beta] = future.result()
        except RuntimeError as e:
            workers.shutdown(cancel_futures=True)
            raise SystemExit(f"error: beta={beta:g}: {e}") from None
    workers.shutdown()
    return ppo_seconds


# ----------------------------------------------------------------------------------------------------
# Step 2: the SFT policy and best-of-n, measured while PPO runs


@dataclass
class Evaluator:
    """Evaluates a policy exactly as train_ppo.py's run_eval does: the same validation prompts, the same
    sampling stream (SEED_VAL_EVAL) and settings, against the frozen SFT reference and the proxy RM."""
    ref: torch.nn.Module          # the SFT policy: the KL reference, and the policy at iteration 0
    rm: torch.nn.Module           # the proxy
    tok: object
    prompts: list                 # the validation prompts of every evaluation
    settings: dict                # train_ppo.py's settings (ppo_settings)
    seed: int
    device: torch.device

    def __call__(self, policy):
        """(summary, rows) of nanorm.evaluate.evaluate_policy on the validation prompts."""
        run_cfg = SimpleNamespace(**{**self.settings, "seed": self.seed})       # as one PPO run's PPOConfig
        return evaluate_on(policy, self.ref, self.rm, self.tok, self.prompts, run_cfg, SEED_VAL_EVAL, self.device)


def load_evaluator(cfg, settings, device):
    """The SFT policy and the RM, frozen, and the validation prompts of every evaluation."""
    tok = load_tokenizer(settings["tokenizer"])
    ref, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
    rm, _ = load_reward_model(cfg.rm_ckpt, tok, device)
    for p in list(ref.parameters()) + list(rm.parameters()):
        p.requires_grad_(False)
    return Evaluator(ref, rm, tok, world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed), settings, cfg.seed,
                     device)


def at_iter(it, point):
    """A point of a gold curve: what train_ppo.py logs of an evaluation (nanorm/evaluate.py::curve_point),
    with its iteration and its distance d = sqrt(KL)."""
    return {"iter": it, **point, "d": math.sqrt(max(point["kl"], 0.0))}


def measure_sft(evaluate):
    """The SFT policy, evaluated as train_ppo.py evaluates: the iteration-0, KL-0 point of every curve.
    Returns {"summary", "rows", "point", "gold_std"}."""
    summary, rows = evaluate(evaluate.ref)
    sft = {"summary": summary, "rows": rows, "point": at_iter(0, curve_point(summary)),
           "gold_std": float(np.std([r["gold"] for r in rows]))}
    print(f"SFT on {len(evaluate.prompts)} validation prompts: proxy {summary['proxy']:+.3f} | "
          f"gold {summary['gold']:+.3f} (std {sft['gold_std']:.3f}) | {summary['length']:.1f} words")
    return sft


@torch.no_grad()
def best_of_n_curve(ref, rm, tok, prompts, ns, settings, generator, device):
    """Best-of-n against the proxy for each n in ns, from one pool of max(ns) SFT samples per prompt (the
    first n of them for each n); returns (points, the pool's mean proxy and gold)."""
    N = max(ns)
    flat = [p for p in prompts for _ in range(N)]                 # prompt i's samples are rows i*N .. i*N+N-1
    texts, finished, token_lists = sample_responses(ref, tok, [p.text for p in flat], settings["max_response_tokens"],
                                                    temperature=settings["temperature"], generator=generator,
                                                    device=device, dtype=settings["dtype"])
    proxy = rm_scores(rm, tok, [p.text for p in flat], token_lists, finished, settings["truncation_penalty"],
                      device, settings["dtype"]).view(len(prompts), N)               # (P, N)
    rows = describe(flat, texts, finished)
    gold = torch.tensor([r["gold"] for r in rows]).view(len(prompts), N)             # (P, N)
    points = []
    for n in ns:
        best = proxy[:, :n].argmax(dim=1)                                            # (P,) the RM's pick among the first n
        pick = [i * N + b for i, b in enumerate(best.tolist())]
        kl = kl_bon(n)
        s = summarise([rows[i] for i in pick], proxy[torch.arange(len(prompts)), best],
                      torch.full((len(prompts),), kl))
        points.append({"n": n, **curve_point(s), "d": math.sqrt(kl), "per_family": per_family(s)})
    # the SFT policy on these same prompts, from all N samples: the expectation of best-of-1, precisely
    pool = {"proxy": proxy.mean().item(), "gold": gold.mean().item(), "n_samples": len(flat)}
    return points, pool


def measure_best_of_n(cfg, evaluate, started):
    """Best-of-n on its own validation prompts; returns {"n_prompts", "pool", "points"} (the fit comes later)."""
    prompts = world.make_split("val", cfg.n_bon_prompts, seed=cfg.seed)
    points, pool = best_of_n_curve(evaluate.ref, evaluate.rm, evaluate.tok, prompts, cfg.n_list, evaluate.settings,
                                   torch.Generator(device=evaluate.device).manual_seed(cfg.seed + SEED_BEST_OF_N_CURVE), evaluate.device)
    print(f"best-of-n on {len(prompts)} prompts x {max(cfg.n_list)} samples ({time.time() - started:.0f}s):")
    for p in points:
        print(f"  n={p['n']:3d} KL {p['kl']:.2f} | proxy {p['proxy']:+.3f} | gold {p['gold']:+.3f}")
    return {"n_prompts": len(prompts), "pool": pool, "points": points}


# ----------------------------------------------------------------------------------------------------
# Steps 3 and 4: each run's curve from its metrics.jsonl, and the fits of R(d) = gold(d) - gold(SFT)


def eval_curve(run_dir, sft_point):
    """The run's evaluation entries (validation prompts) as points, with the SFT point as iteration 0."""
    points = [sft_point]
    for rec in read_jsonl(os.path.join(run_dir, "metrics.jsonl")):
        if "eval" in rec:
            points.append(at_iter(rec["iter"], rec["eval"]))
    iters = [p["iter"] for p in points]
    assert iters == sorted(set(iters)), f"{run_dir}/metrics.jsonl: evaluation iterations out of order: {iters}"
    return points


def ppo_curves(cfg, sft_point, ppo_seconds, default_beta):
    """One entry per beta: its evaluation curve (the SFT point first), its peak and its R_RL fit."""
    runs = []
    for beta in cfg.beta_list:
        run_dir = os.path.join(cfg.out_dir, run_name(beta))
        curve = eval_curve(run_dir, sft_point)
        peak = max(curve, key=lambda p: p["gold"])
        runs.append({"beta": beta, "is_default": beta == default_beta, "run_dir": run_dir, "curve": curve,
                     "ppo_seconds": round(ppo_seconds[beta], 1),
                     "fit": fit_rl([p["d"] for p in curve], [p["gold"] - sft_point["gold"] for p in curve]),
                     "peak": {"iter": peak["iter"], "gold": peak["gold"], "d": peak["d"], "kl": peak["kl"]}})
    return runs


def fit_best_of_n(bon):
    """The R_bon fit. Best-of-n has its own prompts: its gold(0) is the mean over all its SFT samples there."""
    return fit_bon([p["d"] for p in bon["points"]], [p["gold"] - bon["pool"]["gold"] for p in bon["points"]])


# ----------------------------------------------------------------------------------------------------
# Step 5: what the policies learned: per-family behaviour and example responses


BEHAVIOUR = ("gold", "length", "format", "agree_rate", "sycophancy_rate", "eos_rate", "over_budget_rate",
             "format_rate", "gibberish_rate")


def per_family(summary):
    return {fam: {k: s[k] for k in BEHAVIOUR if k in s} for fam, s in summary["per_family"].items()}


def pick_examples(prompts, n):
    """n prompt indices, taken round-robin over the families so that every family shows up."""
    by_family = {f: [i for i, p in enumerate(prompts) if p.family == f] for f in world.FAMILIES}
    out = []
    while len(out) < min(n, len(prompts)):
        for f in world.FAMILIES:
            if by_family[f] and len(out) < n:
                out.append(by_family[f].pop(0))
    return out


def evaluate_policies(runs, evaluate, sft):
    """Each run's final policy, and the smallest beta's early one, evaluated on the validation prompts:
    adds "final" to every run (and "early" to the first); returns {name: (summary, rows)}, SFT first."""
    policies = {"sft": (sft["summary"], sft["rows"])}
    for r in runs:
        policy, ckpt = load_policy(os.path.join(r["run_dir"], "ckpt.pt"), evaluate.tok, evaluate.device, kinds="ppo")
        summary, rows = evaluate(policy)
        r["final"] = {**at_iter(ckpt["step"], curve_point(summary)), "per_family": per_family(summary)}
        policies[f"beta={r['beta']:g} final"] = (summary, rows)
    small = runs[0]
    policy, ckpt = load_policy(os.path.join(small["run_dir"], "early_ckpt.pt"), evaluate.tok, evaluate.device,
                               kinds="ppo")
    summary, rows = evaluate(policy)
    small["early"] = {**at_iter(ckpt["step"], curve_point(summary)), "per_family": per_family(summary)}
    policies[f"beta={small['beta']:g} early"] = (summary, rows)
    return policies


def example_responses(prompts, policies, beta, n):
    """n prompts (every family) with the SFT, early and final responses of the run with this beta."""
    examples = []
    for i in pick_examples(prompts, n):
        ex = {"prompt": prompts[i].text, "family": prompts[i].family}
        for name, key in [("sft", "sft"), (f"beta={beta:g} early", "early"), (f"beta={beta:g} final", "final")]:
            row = policies[name][1][i]
            ex[key] = {"text": row["text"], "proxy": row["proxy"], "gold": row["gold"], "finished": row["finished"]}
        examples.append(ex)
    return examples


# ----------------------------------------------------------------------------------------------------
# Step 6: the results, saved and printed


def results(cfg, settings, n_eval_prompts, sft, runs, bon, examples):
    """What overoptimization.json holds, but the figures and the timings; adds each run's summary."""
    eval_settings = {k: settings[k] for k in ("max_response_tokens", "temperature", "truncation_penalty", "dtype")}
    res = {"config": asdict(cfg), "default_beta": settings["beta"], "eval_settings": eval_settings,
           "n_eval_prompts": n_eval_prompts, "sft": {**sft["point"], "gold_std": sft["gold_std"],
                                                     "per_family": per_family(sft["summary"])},
           "gold_standard_error": sft["gold_std"] / math.sqrt(n_eval_prompts),
           "runs": runs, "best_of_n": bon, "examples": examples}
    for r in runs:
        last = r["curve"][-1]
        fall = r["peak"]["gold"] - last["gold"]
        r["summary"] = {"final_proxy": last["proxy"], "final_gold": last["gold"], "peak_gold": r["peak"]["gold"],
                        "peak_iter": r["peak"]["iter"], "fall": fall,
                        "fall_in_sft_std": fall / sft["gold_std"] if sft["gold_std"] > 0 else None,
                        "final_kl": last["kl"], "final_length": last["length"], "final_sycophancy": last["sycophancy"],
                        "peak_in_se": (r["peak"]["gold"] - sft["point"]["gold"]) / res["gold_standard_error"]
                        if res["gold_standard_error"] > 0 else None}
    res["hacking"] = hacking(runs[0], sft["point"])
    return res


HACKS = {"over_budget_rate": "too long", "format_rate": "formatted", "sycophancy": "sycophantic",
         "gibberish_rate": "gibberish"}


def hacking(run, sft_point):
    """The document's failure modes in one run (the smallest beta): the share of answers showing each, at SFT,
    at the gold peak and at the end; "rises" when it ends above both while gold ends below its peak."""
    peak = next(p for p in run["curve"] if p["iter"] == run["peak"]["iter"])
    last = run["curve"][-1]
    out = {"beta": run["beta"], "gold": {"sft": sft_point["gold"], "peak": peak["gold"], "final": last["gold"]},
           "rates": {}}
    for key, name in HACKS.items():
        at = {"sft": sft_point.get(key), "peak": peak.get(key), "final": last.get(key)}
        at["rises"] = (None not in at.values() and at["final"] > max(at["sft"], at["peak"])
                       and last["gold"] < peak["gold"])
        out["rates"][name] = at
    return out


def save_results(res, cfg, t_start, t_bon):
    """The figures (also copied to lessons/figures/ with --publish), then overoptimization.json."""
    res["figures"] = {k: os.path.abspath(v) for k, v in make_figures(res, cfg.out_dir).items()}
    if cfg.publish:
        dest = os.path.join(ROOT, "lessons", "figures")
        os.makedirs(dest, exist_ok=True)
        for path in res["figures"].values():
            shutil.copyfile(path, os.path.join(dest, os.path.basename(path)))
        print(f"published the figures to {dest}")
    res["seconds"] = {"best_of_n": round(t_bon, 1), "total": round(time.time() - t_start, 1)}
    with open(os.path.join(cfg.out_dir, "overoptimization.json"), "w") as f:
        json.dump(res, f, indent=1, allow_nan=False)


# ----------------------------------------------------------------------------------------------------
# The experiment, top to bottom


def configure(argv):
    """The config (--smoke applied), printed; the device; torch's threads."""
    cfg = parse_config(OveroptConfig, argv)
    if cfg.smoke:
        cfg = smoke_settings(cfg)
    print_config(cfg)
    device = get_device(cfg.device)
    print(f"device: {device}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return cfg, device


def main(argv):
    cfg, device = configure(argv)
    t_start = time.time()
    os.makedirs(cfg.out_dir, exist_ok=True)
    settings = ppo_settings(cfg)
    workers, futures = start_ppo_runs(cfg, settings)                                # 1. PPO, in the background
    evaluate = load_evaluator(cfg, settings, device)                        # 2. meanwhile: SFT, best-of-n
    t0 = time.time()
    sft = measure_sft(evaluate)
    bon = measure_best_of_n(cfg, evaluate, t0)
    t_bon = time.time() - t0
    ppo_seconds = wait_for_ppo(workers, futures)                            # 3. each run's curve and
    runs = ppo_curves(cfg, sft["point"], ppo_seconds, settings["beta"])     # 4. the fits
    bon["fit"] = fit_best_of_n(bon)
    policies = evaluate_policies(runs, evaluate, sft)                       # 5. what the policies learned
    examples = example_responses(evaluate.prompts, policies, runs[0]["beta"], cfg.n_examples)
    res = results(cfg, settings, len(evaluate.prompts), sft, runs, bon, examples)   # 6. saved, printed
    save_results(res, cfg, t_start, t_bon)
    print_report(res, policies, cfg)
    return res


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
