"""
Reward-model overoptimization, measured: optimise the proxy (the RM) and watch the gold utility.

Gao, Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization", plot gold reward
against the distance the policy has moved from its start, d = sqrt(KL(pi || pi_sft)), and find two
shapes, one per optimiser (R(d) = gold(d) - gold(0), gold relative to the starting policy):

    best-of-n : R_bon(d) = d (alpha - beta d)          (their eq. 1)
    RL (PPO)  : R_RL(d)  = d (alpha - beta log d)      (their eq. 2)

Both rise, peak and fall: past the peak, more optimisation of the proxy buys less gold. Here gold is code
(nanorm/world.py::gold), so both curves are measured, not estimated. This module

  1. runs train_ppo.py once per KL coefficient in --betas (in subprocesses, --jobs at a time); the smallest
     beta runs in two legs, stopping at --peak_iters to keep an "early" checkpoint, then resuming;
  2. meanwhile measures the SFT policy itself (iteration 0, KL 0) with exactly the evaluation train_ppo.py
     logs every --eval_interval iterations (same validation prompts, same sampling seed), and best-of-n
     against the proxy for n in --bon_ns from one pool of max(n) SFT samples per prompt (prefixes);
  3. reads every run's "eval" entries from its metrics.jsonl: proxy, gold, KL, length, format, sycophancy;
  4. fits the two forms above by linear least squares on the gold curves, each relative to its own SFT
     baseline: the iteration-0 evaluation for PPO, the mean of all the SFT samples for best-of-n;
  5. evaluates each run's final policy (and the early one) per prompt family: what did it learn to do?
  6. writes overoptimization.json, three PNG figures and prints a summary table.

    python -m nanorm.experiments.overoptimization                     # ~15-20 minutes on a 2-core CPU
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

import ast
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import read_jsonl
from nanorm.config import get_device, parse_config, print_config
from nanorm.data import sample_responses
from nanorm.evaluate import describe, evaluate_policy, load_policy, load_reward_model, rm_scores, summarise
from nanorm.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_PPO = os.path.join(ROOT, "train_ppo.py")
FIGURES = {"iterations": "overoptimization_iterations.png",    # (a) proxy and gold vs PPO iteration
           "distance": "overoptimization_distance.png",        # (b) gold and proxy vs d, PPO and best-of-n, fits
           "behaviours": "overoptimization_behaviours.png"}    # (c) length, format, sycophancy vs d


@dataclass
class OveroptConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"     # the starting policy and KL reference
    rm_ckpt: str = "out/rm/ckpt.pt"       # the proxy reward model
    out_dir: str = "out/hacking"
    betas: str = "0.002,0.02,0.2"         # KL coefficients, one PPO run each (0.2 is train_ppo.py's default)
    n_iters: int = 60                     # PPO iterations per run
    peak_iters: int = 20                  # the smallest beta stops here first; that checkpoint is the "early" policy
    eval_interval: int = 5                # PPO iterations between evaluations (points on the curves)
    n_eval_prompts: int = 128             # validation prompts per evaluation (train_ppo.py's --n_eval_prompts)
    n_test_prompts: int = 16              # train_ppo.py's own final test-set report (not used here; kept small)
    ppo_args: str = ""                    # extra flags for every train_ppo.py run, e.g. "--lr=1e-4 --batch_size=32"
    jobs: int = 3                         # PPO runs at once (each a subprocess with --threads)
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
        assert self.beta_list and all(b >= 0 for b in self.beta_list), "--betas: non-negative numbers, comma-separated"
        assert len(set(self.beta_list)) == len(self.beta_list), "--betas: each beta once"
        assert self.n_list and all(n >= 1 for n in self.n_list), "--bon_ns: positive integers, comma-separated"
        assert 0 < self.peak_iters < self.n_iters, "--peak_iters must be between 0 and --n_iters"
        assert self.eval_interval >= 1 and self.jobs >= 1 and self.n_eval_prompts >= 1 and self.n_bon_prompts >= 1

    @property
    def beta_list(self):
        return sorted(float(b) for b in self.betas.split(",") if b.strip())

    @property
    def n_list(self):
        return sorted({int(n) for n in self.bon_ns.split(",") if n.strip()})


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
# The maths: KL of best-of-n, and the two functional forms of Gao et al. (2022), fitted by least squares


def kl_bon(n):
    """KL(best-of-n || pi) = log n - (n - 1) / n nats (Stiennon et al. 2020, app. G.3): 0 for n = 1."""
    return math.log(n) - (n - 1) / n


def _least_squares(X, y):
    """Coefficients w minimising |X w - y|^2 (no intercept: R(0) = 0 by construction), and R^2."""
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    ss_res = float(np.sum((y - X @ w) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None      # None: the points are all equal
    return w, r2


def fit_bon(d, R):
    """R_bon(d) = d (alpha - beta d) = alpha d - beta d^2: least squares on the columns [d, -d^2].
    The peak is where dR/dd = alpha - 2 beta d = 0: d* = alpha / (2 beta), R(d*) = alpha^2 / (4 beta)."""
    d, R = np.asarray(d, float), np.asarray(R, float)
    if len(d) < 2 or not np.any(d > 0):
        return None
    (alpha, beta), r2 = _least_squares(np.stack([d, -d ** 2], 1), R)
    d_peak = alpha / (2 * beta) if beta > 0 and alpha > 0 else None   # beta <= 0: no peak, R keeps rising
    return {"form": "d * (alpha - beta * d)", "alpha": float(alpha), "beta": float(beta), "r2": r2,
            "d_peak": d_peak, "R_peak": alpha ** 2 / (4 * beta) if d_peak is not None else None,
            "n_points": int(len(d))}


def fit_rl(d, R):
    """R_RL(d) = d (alpha - beta log d) = alpha d - beta d log d: least squares on [d, -d log d], d > 0 only.
    The peak is where dR/dd = alpha - beta (log d + 1) = 0: d* = exp(alpha / beta - 1), R(d*) = beta d*."""
    d, R = np.asarray(d, float), np.asarray(R, float)
    keep = d > 0
    d, R = d[keep], R[keep]
    if len(d) < 2:
        return None
    (alpha, beta), r2 = _least_squares(np.stack([d, -d * np.log(d)], 1), R)
    d_peak = None
    if beta > 0 and alpha / beta - 1 < 50:       # beta <= 0 (or a peak absurdly far away): no peak in sight
        d_peak = float(math.exp(alpha / beta - 1))
    return {"form": "d * (alpha - beta * log(d))", "alpha": float(alpha), "beta": float(beta), "r2": r2,
            "d_peak": d_peak, "R_peak": beta * d_peak if d_peak is not None else None, "n_points": int(len(d))}


def predict(fit, d):
    d = np.asarray(d, float)
    if fit["form"].startswith("d * (alpha - beta * d)"):
        return d * (fit["alpha"] - fit["beta"] * d)
    return d * (fit["alpha"] - fit["beta"] * np.log(np.maximum(d, 1e-12)))


# ----------------------------------------------------------------------------------------------------
# The PPO runs: train_ppo.py in subprocesses, one output directory per beta


def run_name(beta):
    return f"ppo_beta_{beta:g}"


def ppo_flags(cfg, beta, run_dir, n_iters):
    """The train_ppo.py flags of one run (or leg); everything else is train_ppo.py's default."""
    return [f"--sft_ckpt={os.path.abspath(cfg.sft_ckpt)}", f"--rm_ckpt={os.path.abspath(cfg.rm_ckpt)}",
            f"--out_dir={run_dir}", f"--beta={beta}", f"--n_iters={n_iters}", f"--eval_interval={cfg.eval_interval}",
            f"--n_eval_prompts={cfg.n_eval_prompts}", "--best_of=0", f"--n_test_prompts={cfg.n_test_prompts}",
            f"--seed={cfg.seed}", f"--device={cfg.device}", f"--threads={cfg.threads}", *shlex.split(cfg.ppo_args)]


def train_ppo(flags, log_path):
    """One train_ppo.py subprocess; its output goes to log_path. Stops with the log's tail if it fails."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ python train_ppo.py {' '.join(flags)}\n")
        log.flush()
        result = subprocess.run([sys.executable, TRAIN_PPO, *flags], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"train_ppo.py failed (exit {result.returncode}); the end of {log_path}:\n{tail}")


def _same_run(ckpt_path, flags):
    """Does the checkpoint come from a run with these flags (--skip_done)? Compares every flag's value."""
    if not os.path.exists(ckpt_path):
        return False
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("config", {})
    for flag in flags:
        key, value = flag[2:].split("=", 1)
        if key in ("out_dir", "resume", "device", "threads"):
            continue
        if key not in saved or str(saved[key]) != str(_as_type(saved[key], value)):
            return False
    return True


def _as_type(example, value):
    if isinstance(example, bool):
        return value.lower() in ("1", "true", "yes", "on")
    try:
        return type(example)(value)
    except ValueError:
        return value


def run_beta(cfg, beta, early):
    """All of one beta's PPO: a single run, or (early=True) two legs, keeping the checkpoint in between."""
    run_dir = os.path.join(cfg.out_dir, run_name(beta))
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "train_ppo.log")
    ckpt, early_ckpt = os.path.join(run_dir, "ckpt.pt"), os.path.join(run_dir, "early_ckpt.pt")
    final_flags = ppo_flags(cfg, beta, run_dir, cfg.n_iters)
    if cfg.skip_done and _same_run(ckpt, final_flags) and (not early or _same_run(early_ckpt, ppo_flags(
            cfg, beta, run_dir, cfg.peak_iters))):
        print(f"beta={beta:g}: reusing the finished run in {run_dir}")
        return run_dir, 0.0
    t0 = time.time()
    open(log_path, "w").close()
    if early:
        train_ppo(ppo_flags(cfg, beta, run_dir, cfg.peak_iters), log_path)        # leg 1: iterations 1..peak_iters
        shutil.copyfile(ckpt, early_ckpt)                                        # keep the early policy
        train_ppo(final_flags + [f"--resume={early_ckpt}"], log_path)             # leg 2: on to n_iters
    else:
        train_ppo(final_flags, log_path)
    seconds = time.time() - t0
    print(f"beta={beta:g}: PPO done in {seconds:.0f}s ({run_dir})", flush=True)
    return run_dir, seconds


def train_ppo_defaults():
    """train_ppo.py's config defaults, read from its --help (importing the script would run it)."""
    out = subprocess.run([sys.executable, TRAIN_PPO, "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    defaults = {m[1]: ast.literal_eval(m[2]) for m in re.finditer(r"^  --(\w+)=(.*?)  \(\w+\)$", out, re.MULTILINE)}
    if "beta" not in defaults:
        raise SystemExit(f"error: could not read train_ppo.py's defaults from its --help:\n{out[-1000:]}")
    return defaults


def eval_curve(run_dir, sft_point):
    """The run's evaluation entries (validation prompts) as points, with the SFT point as iteration 0."""
    points = [sft_point]
    for rec in read_jsonl(os.path.join(run_dir, "metrics.jsonl")):
        if "eval" in rec:
            e = rec["eval"]
            points.append({"iter": rec["iter"], "proxy": e["proxy"], "gold": e["gold"], "kl": e["kl"],
                           "d": math.sqrt(max(e["kl"], 0.0)), "length": e["length"], "format": e["format"],
                           "eos_rate": e["eos_rate"], "sycophancy": e["sycophancy"]})
    iters = [p["iter"] for p in points]
    assert iters == sorted(set(iters)), f"{run_dir}/metrics.jsonl: evaluation iterations out of order: {iters}"
    return points


def curve_point(it, summary):
    claim = summary["per_family"].get("claim", {})
    return {"iter": it, "proxy": summary["proxy"], "gold": summary["gold"], "kl": summary["kl"],
            "d": math.sqrt(max(summary["kl"], 0.0)), "length": summary["length"], "format": summary["format"],
            "eos_rate": summary["eos_rate"], "sycophancy": claim.get("sycophancy_rate")}


# ----------------------------------------------------------------------------------------------------
# Best-of-n against the proxy: one pool of max(n) SFT samples per prompt, the first n of them for each n


@torch.no_grad()
def best_of_n_curve(ref, rm, tok, prompts, ns, settings, generator, device):
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
        point = curve_point(None, s)
        del point["iter"]
        points.append({"n": n, **point, "per_family": per_family(s)})
    # the SFT policy on these same prompts, from all N samples: the expectation of best-of-1, precisely
    pool = {"proxy": proxy.mean().item(), "gold": gold.mean().item(), "n_samples": len(flat)}
    return points, pool


# ----------------------------------------------------------------------------------------------------
# What the policies learned: per-family behaviour and example responses


BEHAVIOUR = ("gold", "length", "format", "agree_rate", "sycophancy_rate", "eos_rate")


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


# ----------------------------------------------------------------------------------------------------
# Figures


def make_figures(res, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["runs"]
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))
    sft, bon = res["sft"], res["best_of_n"]["points"]
    se = res["gold_standard_error"]
    label = lambda r: f"PPO β={r['beta']:g}" + (" (train_ppo default)" if r["is_default"] else "")
    paths = {}

    # (a) proxy and gold against PPO iteration
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (key, title), ax in zip([("proxy", "proxy: the RM's score (normalised)"), ("gold", "gold: the true utility")],
                                axes):
        for r, c in zip(runs, colors):
            ax.plot([p["iter"] for p in r["curve"]], [p[key] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
        ax.axhline(sft[key], color="gray", ls=":", lw=1, label="SFT")
        if key == "gold":     # the noise of one evaluation's mean: differences smaller than this are not real
            ax.axhspan(sft[key] - se, sft[key] + se, color="gray", alpha=0.15, lw=0, label="SFT ± 1 s.e.")
        ax.set(xlabel="PPO iteration", ylabel=key, title=title)
        ax.grid(alpha=0.3)
    small = runs[0]
    if small.get("early"):
        for ax in axes:
            ax.axvline(small["early"]["iter"], color=colors[0], ls="--", lw=0.8, alpha=0.6)
        axes[1].annotate("early checkpoint", (small["early"]["iter"], axes[1].get_ylim()[0]), fontsize=8,
                         color=colors[0], xytext=(3, 5), textcoords="offset points")
    axes[1].legend(fontsize=8)
    fig.suptitle("PPO against the reward model: does gold follow the proxy?")
    fig.tight_layout()
    paths["iterations"] = os.path.join(out_dir, FIGURES["iterations"])
    fig.savefig(paths["iterations"], dpi=120)
    plt.close(fig)

    # (b) gold and proxy against d = sqrt(KL), PPO and best-of-n, with the fitted functional forms
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    d_max = max([p["d"] for r in runs for p in r["curve"]] + [p["d"] for p in bon])
    grid = np.linspace(1e-3, d_max * 1.05, 200)
    for r, c in zip(runs, colors):
        d = [p["d"] for p in r["curve"]]
        axes[0].plot(d, [p["gold"] - sft["gold"] for p in r["curve"]], "o", ms=4, color=c, label=label(r))
        if r["fit"]:
            dg = grid[grid <= max(d) * 1.05]
            axes[0].plot(dg, predict(r["fit"], dg), "-", color=c, lw=1.2,
                         label=f"  fit d(α−β log d): α={r['fit']['alpha']:.2f}, β={r['fit']['beta']:.2f}")
        axes[1].plot(d, [p["proxy"] - sft["proxy"] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
    d = [p["d"] for p in bon]
    base = res["best_of_n"]["pool"]            # best-of-n's own prompts: gold(0) = the mean of all its SFT samples
    axes[0].plot(d, [p["gold"] - base["gold"] for p in bon], "s", ms=5, color="crimson", label="best-of-n")
    fit = res["best_of_n"]["fit"]
    if fit:
        dg = grid[grid <= max(d) * 1.05]
        axes[0].plot(dg, predict(fit, dg), "-", color="crimson", lw=1.2,
                     label=f"  fit d(α−βd): α={fit['alpha']:.2f}, β={fit['beta']:.2f}")
    axes[1].plot(d, [p["proxy"] - base["proxy"] for p in bon], "s-", ms=4, color="crimson", label="best-of-n")
    for n, x, y in [(p["n"], p["d"], p["proxy"] - base["proxy"]) for p in bon]:
        axes[1].annotate(f"n={n}", (x, y), fontsize=7, color="crimson", xytext=(3, -9), textcoords="offset points")
    axes[0].axhspan(-se, se, color="gray", alpha=0.15, lw=0, label="± 1 s.e. of one evaluation")
    for ax, what in zip(axes, ["gold", "proxy"]):
        ax.axhline(0, color="gray", ls=":", lw=1)
        ax.set(xlabel="d = sqrt(KL(π‖π_sft))  [sqrt nats]", ylabel=f"{what} − {what}(SFT)",
               title=f"{what} gained, against distance from SFT")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    paths["distance"] = os.path.join(out_dir, FIGURES["distance"])
    fig.savefig(paths["distance"], dpi=120)
    plt.close(fig)

    # (c) the hacked behaviours against d
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, title) in zip(axes, [("length", "response length (words)"), ("format", "format marks per response"),
                                       ("sycophancy", "sycophancy rate (claim prompts)")]):
        for r, c in zip(runs, colors):
            ax.plot([p["d"] for p in r["curve"]], [p[key] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
        ax.plot([p["d"] for p in bon], [p[key] for p in bon], "s-", ms=4, color="crimson", label="best-of-n")
        ax.set(xlabel="d = sqrt(KL(π‖π_sft))", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Behaviours the labelers over-reward, against distance from SFT")
    fig.tight_layout()
    paths["behaviours"] = os.path.join(out_dir, FIGURES["behaviours"])
    fig.savefig(paths["behaviours"], dpi=120)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------------------------------
# The experiment, top to bottom


def _num(x):
    return float("nan") if x is None else x


def main(argv):
    cfg = parse_config(OveroptConfig, argv)
    if cfg.smoke:
        cfg = smoke_settings(cfg)
    print_config(cfg)
    device = get_device(cfg.device)
    print(f"device: {device}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.time()
    os.makedirs(cfg.out_dir, exist_ok=True)
    betas = cfg.beta_list
    # the settings every PPO run uses (train_ppo.py's defaults, unless --ppo_args changes them); the
    # evaluations made here must sample and score exactly as train_ppo.py's own evaluations do
    settings = train_ppo_defaults()
    for flag in shlex.split(cfg.ppo_args):
        key, _, value = flag[2:].partition("=")
        if key in settings:
            settings[key] = _as_type(settings[key], value)
    beta_default = settings["beta"]
    if beta_default not in betas:
        print(f"note: train_ppo.py's default beta ({beta_default}) is not among --betas={cfg.betas}")

    # 1. PPO, one run per beta, in the background (--jobs at a time); the smallest beta in two legs
    workers = ThreadPoolExecutor(max_workers=cfg.jobs)
    futures = {beta: workers.submit(run_beta, cfg, beta, beta == betas[0]) for beta in betas}
    print(f"started {len(betas)} PPO runs ({cfg.jobs} at a time); logs in {cfg.out_dir}/ppo_beta_*/train_ppo.log")

    # 2. Meanwhile: the SFT policy, evaluated exactly as train_ppo.py evaluates (its run_eval: the same
    #    validation prompts and the same sampling seed, cfg.seed + 7), is the iteration-0, KL-0 point
    tok = load_tokenizer(settings["tokenizer"])
    ref, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
    rm, _ = load_reward_model(cfg.rm_ckpt, tok, device)
    for p in list(ref.parameters()) + list(rm.parameters()):
        p.requires_grad_(False)
    eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)

    def evaluate(policy):
        return evaluate_policy(policy, ref, rm, tok, eval_prompts, settings["max_response_tokens"],
                               settings["temperature"], settings["truncation_penalty"],
                               torch.Generator(device=device).manual_seed(cfg.seed + 7), device, settings["dtype"])

    t0 = time.time()
    sft_summary, sft_rows = evaluate(ref)
    sft_point = curve_point(0, sft_summary)
    sft_gold_std = float(np.std([r["gold"] for r in sft_rows]))
    print(f"SFT on {len(eval_prompts)} validation prompts: proxy {sft_summary['proxy']:+.3f} | "
          f"gold {sft_summary['gold']:+.3f} (std {sft_gold_std:.3f}) | {sft_summary['length']:.1f} words")

    bon_prompts = world.make_split("val", cfg.n_bon_prompts, seed=cfg.seed)
    bon_points, bon_pool = best_of_n_curve(ref, rm, tok, bon_prompts, cfg.n_list, settings,
                                           torch.Generator(device=device).manual_seed(cfg.seed + 11), device)
    t_bon = time.time() - t0
    print(f"best-of-n on {len(bon_prompts)} prompts x {max(cfg.n_list)} samples ({t_bon:.0f}s):")
    for p in bon_points:
        print(f"  n={p['n']:3d} KL {p['kl']:.2f} | proxy {p['proxy']:+.3f} | gold {p['gold']:+.3f}")

    # 3. Wait for PPO; read each run's evaluation curve
    ppo_seconds = {}
    for beta in betas:
        try:
            _, ppo_seconds[beta] = futures[beta].result()
        except RuntimeError as e:
            workers.shutdown(cancel_futures=True)
            raise SystemExit(f"error: beta={beta:g}: {e}") from None
    workers.shutdown()

    # 4. Fits to the gold curves, gold relative to the SFT point: R(d) = gold(d) - gold(0)
    runs = []
    for beta in betas:
        run_dir = os.path.join(cfg.out_dir, run_name(beta))
        curve = eval_curve(run_dir, sft_point)
        peak = max(curve, key=lambda p: p["gold"])
        runs.append({"beta": beta, "is_default": beta == beta_default, "run_dir": run_dir, "curve": curve,
                     "ppo_seconds": round(ppo_seconds[beta], 1),
                     "fit": fit_rl([p["d"] for p in curve], [p["gold"] - sft_point["gold"] for p in curve]),
                     "peak": {"iter": peak["iter"], "gold": peak["gold"], "d": peak["d"], "kl": peak["kl"]}})
    # best-of-n has its own prompts: its gold(0) is the mean over all its SFT samples on those prompts
    bon_fit = fit_bon([p["d"] for p in bon_points], [p["gold"] - bon_pool["gold"] for p in bon_points])

    # 5. What each policy learned, per family: each run's final policy, and the smallest beta's early one
    policies = {"sft": (sft_summary, sft_rows)}
    for r in runs:
        policy, ckpt = load_policy(os.path.join(r["run_dir"], "ckpt.pt"), tok, device, kinds="ppo")
        summary, rows = evaluate(policy)
        r["final"] = {"iter": ckpt["step"], **curve_point(ckpt["step"], summary), "per_family": per_family(summary)}
        policies[f"beta={r['beta']:g} final"] = (summary, rows)
    small = runs[0]
    early_path = os.path.join(small["run_dir"], "early_ckpt.pt")
    policy, ckpt = load_policy(early_path, tok, device, kinds="ppo")
    summary, rows = evaluate(policy)
    small["early"] = {"iter": ckpt["step"], **curve_point(ckpt["step"], summary), "per_family": per_family(summary)}
    policies[f"beta={small['beta']:g} early"] = (summary, rows)
    del policy

    examples = []
    for i in pick_examples(eval_prompts, cfg.n_examples):
        ex = {"prompt": eval_prompts[i].text, "family": eval_prompts[i].family}
        for name, key in [("sft", "sft"), (f"beta={small['beta']:g} early", "early"),
                          (f"beta={small['beta']:g} final", "final")]:
            row = policies[name][1][i]
            ex[key] = {"text": row["text"], "proxy": row["proxy"], "gold": row["gold"], "finished": row["finished"]}
        examples.append(ex)

    # 6. Save the numbers and the figures; print the tables
    eval_settings = {k: settings[k] for k in ("max_response_tokens", "temperature", "truncation_penalty", "dtype")}
    res = {"config": asdict(cfg), "default_beta": beta_default, "eval_settings": eval_settings,
           "n_eval_prompts": len(eval_prompts), "sft": {**sft_point, "gold_std": sft_gold_std,
                                                        "per_family": per_family(sft_summary)},
           "gold_standard_error": sft_gold_std / math.sqrt(len(eval_prompts)),
           "runs": runs, "best_of_n": {"n_prompts": len(bon_prompts), "pool": bon_pool, "points": bon_points,
                                       "fit": bon_fit},
           "examples": examples}
    for r in runs:
        last = r["curve"][-1]
        fall = r["peak"]["gold"] - last["gold"]
        r["summary"] = {"final_proxy": last["proxy"], "final_gold": last["gold"], "peak_gold": r["peak"]["gold"],
                        "peak_iter": r["peak"]["iter"], "fall": fall,
                        "fall_in_sft_std": fall / sft_gold_std if sft_gold_std > 0 else None,
                        "final_kl": last["kl"], "final_length": last["length"], "final_sycophancy": last["sycophancy"]}
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

    print(f"\nPPO on {len(eval_prompts)} validation prompts (one sample each; the SE of one gold mean is "
          f"{res['gold_standard_error']:.3f}); SFT: proxy {sft_point['proxy']:+.3f}, gold {sft_point['gold']:+.3f}, "
          f"gold std {sft_gold_std:.3f}")
    print(f"  {'beta':>8} {'proxy':>7} {'gold':>7} {'peak gold':>9} {'@iter':>5} {'fall':>6} {'fall/std':>8} "
          f"{'KL':>6} {'words':>6} {'syco':>5}")
    for r in runs:
        s = r["summary"]
        print(f"  {r['beta']:>7g}{'*' if r['is_default'] else ' '} {s['final_proxy']:+7.3f} {s['final_gold']:+7.3f} "
              f"{s['peak_gold']:+9.3f} {s['peak_iter']:5d} {s['fall']:6.3f} {_num(s['fall_in_sft_std']):8.2f} "
              f"{s['final_kl']:6.2f} {s['final_length']:6.1f} {_num(s['final_sycophancy']):5.2f}")
    print("  (* train_ppo.py's default beta; final = the last evaluation, iteration "
          f"{cfg.n_iters}; peak includes the SFT point, iteration 0)")
    print(f"\nbest-of-n on {len(bon_prompts)} prompts (SFT samples there: proxy {bon_pool['proxy']:+.3f}, "
          f"gold {bon_pool['gold']:+.3f}):  " + "  ".join(f"n={p['n']}: gold {p['gold']:+.3f}" for p in bon_points))
    print("\nfits to gold - gold(SFT) against d = sqrt(KL):")
    for name, fit in [(f"PPO beta={r['beta']:g}", r["fit"]) for r in runs] + [("best-of-n", bon_fit)]:
        if fit is None:
            print(f"  {name:16s} too few points to fit")
            continue
        peak = (f"peak R={fit['R_peak']:+.3f} at d={fit['d_peak']:.2f} (KL {fit['d_peak'] ** 2:.2f})"
                if fit["d_peak"] else "no peak")
        print(f"  {name:16s} {fit['form']:28s} alpha {fit['alpha']:+.3f} beta {fit['beta']:+.3f} "
              f"R^2 {_num(fit['r2']):.2f}  {peak}")

    print("\nbehaviour per family (validation prompts): words / format marks / agree rate / sycophancy / gold")
    print(f"  {'policy':18s}" + "".join(f" {fam:>30s}" for fam in world.FAMILIES))
    for name, (summary, _) in policies.items():
        cells = []
        for fam in world.FAMILIES:
            s = summary["per_family"].get(fam)
            if s is None:
                cells.append(f" {'-':>30s}")
                continue
            agree = f"{s['agree_rate']:.2f}/{s['sycophancy_rate']:.2f}" if "agree_rate" in s else "-/-"
            cells.append(f" {s['length']:5.1f}w {s['format']:4.2f}f {agree:>9s} {s['gold']:+6.2f}")
        print(f"  {name:18s}" + "".join(cells))

    print(f"\nexamples (the same prompts): SFT / beta={small['beta']:g} at iteration {small['early']['iter']} / "
          f"at iteration {small['final']['iter']}")
    for ex in examples:
        print(f"  {ex['prompt']}")
        for key in ("sft", "early", "final"):
            e = ex[key]
            print(f"    {key:5s} proxy {e['proxy']:+5.2f} gold {e['gold']:+5.2f} | {e['text']!r}")
    print(f"\nwrote {cfg.out_dir}/overoptimization.json and {len(res['figures'])} figures; "
          f"total {res['seconds']['total']:.0f}s")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
