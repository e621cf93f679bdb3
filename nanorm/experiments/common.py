"""
Pieces the experiments share, so that no experiment imports another:

    load_sft_and_rm   the SFT policy and the normalised reward model of a config's checkpoints
    load_rm_study     what an RM-training experiment starts from: the SFT trunk and the rankings
    fresh_rm          an RM copied from the SFT trunk, with train_rm.py's optimiser and schedule
    train_study_rm    one such RM trained on records with a given loss, and its held-out report
    stage             a stage's report: read back from a finished run of the same flags, else run in a child
    write_results     an experiment's JSON and figure into its out_dir (the figure also to lessons/figures/)
    predicts_ppo      how well each measure of an RM made without PPO ranks RMs as PPO's gold win rate does
"""

import itertools
import math
import os
import random
import shlex
import shutil
import time
from dataclasses import asdict

import numpy as np
import torch

import train_rm
from nanorm import stages
from nanorm.bench.pipeline import finished_run
from nanorm.checkpoint import write_json
from nanorm.config import parse_config, print_config, seed_everything
from nanorm.evaluate import evaluate_rm, load_policy, load_reward_model
from nanorm.model import ScalarHeadModel
from nanorm.prefdata import load_comparisons
from nanorm.tokenizer import load_tokenizer


def load_sft_and_rm(cfg):
    """What an analysis needs from a config with sft_ckpt, rm_ckpt, tokenizer, threads and device:
    (device, tokenizer, SFT policy, normalised reward model)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    tok = load_tokenizer(cfg.tokenizer)
    sft, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
    rm, _ = load_reward_model(cfg.rm_ckpt, tok, device)
    return device, tok, sft, rm


def load_rm_study(cfg, n_records=None):
    """For an experiment that trains reward models on train_rm.py's rankings (a config with sft_ckpt,
    tokenizer, comparisons, eval_comparisons, n_prompts, out_dir, threads): the config printed, its
    out_dir made; returns (tokenizer, SFT policy on the CPU, its max response tokens, the first n_records
    (default n_prompts) training rankings, the held-out rankings)."""
    print_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.makedirs(cfg.out_dir, exist_ok=True)
    tok = load_tokenizer(cfg.tokenizer)
    sft, ckpt = load_policy(cfg.sft_ckpt, tok, torch.device("cpu"), kinds="sft")
    records = load_comparisons(cfg.comparisons)[0][:n_records or cfg.n_prompts]
    return tok, sft, ckpt["config"]["max_response_tokens"], records, load_comparisons(cfg.eval_comparisons)[0]


def fresh_rm(sft, lr, steps, wrap=None):
    """An RM copied from the SFT trunk (wrap(rm): a model built around it), AdamW without weight decay and the
    cosine decay to lr / 10 over `steps` (train_rm.py's): (rm, optimizer, scheduler)."""
    rm = ScalarHeadModel.from_gpt(sft)
    rm = wrap(rm) if wrap else rm
    optimizer = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.0)
    return rm, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 10)


def train_study_rm(name, loss_of, sft, records, eval_records, heldout, tok, cfg, max_new, wrap=None):
    """One RM from the SFT trunk (wrap: as in fresh_rm), trained on `records` with loss_of(rm, batch, args)
    (cfg: seed, lr, epochs, prompts_per_batch; train_rm.py's optimiser, schedule and clipping), then judged on
    the held-out rankings by evaluate_rm. Returns (rm, its rewards (M,) of the held-out responses, {"way": name,
    "steps", "seconds", accuracy, agreement, ceiling, gold, ECE, per-family accuracy}); prints one line."""
    seed_everything(cfg.seed)
    steps = math.ceil(len(records) / cfg.prompts_per_batch) * cfg.epochs
    rm, optimizer, scheduler = fresh_rm(sft, cfg.lr, steps, wrap)
    args = (tok, max_new, torch.device("cpu"), "float32")
    t0 = time.time()
    rm.train()
    for epoch in range(cfg.epochs):
        order = list(range(len(records)))
        random.Random(cfg.seed + epoch).shuffle(order)
        for at in range(0, len(order), cfg.prompts_per_batch):
            loss = loss_of(rm, [records[j] for j in order[at:at + cfg.prompts_per_batch]], args)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
    r = train_rm.rewards_and_loss(rm, eval_records, *args)[0]
    report = evaluate_rm(r, eval_records, *heldout, seed=cfg.seed)
    keep = ("accuracy", "inter_labeler_agreement", "bayes_ceiling", "gold_accuracy", "ece", "accuracy_per_family")
    print(f"  {name:14s} held-out accuracy {report['accuracy']:.3f} (agreement {report['inter_labeler_agreement']:.3f}), "
          f"vs gold {report['gold_accuracy']:.3f} ({time.time() - t0:.0f}s)", flush=True)
    return rm, r, {"way": name, "steps": steps, "seconds": round(time.time() - t0, 1), **{k: report[k] for k in keep}}


def stage(name, log_path, flags, **overrides):
    """A stage's eval.json: read back if its out_dir holds a finished run of these flags, else run it.
    flags: command-line flags (a string), applied after the overrides."""
    args = [f"--{k}={v}" for k, v in overrides.items()] + shlex.split(flags)
    cfg = parse_config(type(stages.config(name)), args)   # read as the script's command line
    done = finished_run(cfg)
    if done is not None:
        print(f"[{name}] {cfg.out_dir}: finished with these flags, read back\n", end="", flush=True)
        return done
    print(f"[{name}] {cfg.out_dir} (log: {log_path})\n", end="", flush=True)   # one write: stages run in threads
    os.makedirs(cfg.out_dir, exist_ok=True)
    return stages.run_in_child(name, log_path, **asdict(cfg))["report"]


LESSON_FIGURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "lessons", "figures")


def write_results(res, out_dir, name, draw, publish=False):
    """draw(res, path) makes OUT_DIR/NAME.png, recorded in res["figure"]; then OUT_DIR/NAME.json. publish:
    also copy the figure to lessons/figures/NAME.png, for the lesson that shows it."""
    figure = os.path.join(out_dir, f"{name}.png")
    draw(res, figure)
    res["figure"] = os.path.abspath(figure)
    write_json(os.path.join(out_dir, f"{name}.json"), res)
    if publish:
        shutil.copyfile(figure, os.path.join(LESSON_FIGURES, f"{name}.png"))
    print(f"wrote {out_dir}/{name}.json and {figure}")


# What an RM earns without PPO, each tried as a predictor of PPO's gold win rate (section 1 of lesson 07)
MEASURES = (("held-out accuracy", "accuracy"), ("gold accuracy", "gold_accuracy"),
            ("calibration error (ECE)", "ece"), ("minimal pairs (mean of families)", "minimal_pairs_mean"),
            ("best-of-n gold win rate", "best_of_n_win_rate"))


def ranks(v):
    """0-based ranks of v, ties sharing the mean of the ranks they span."""
    v = np.asarray(v, dtype=float)
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    for value in np.unique(v):
        r[v == value] = r[v == value].mean()
    return r


def spearman(x, y):
    """Spearman's rank correlation: the Pearson correlation of the ranks."""
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def permutation_p(x, y, n_random=20000, seed=0):
    """Two-sided p-value of Spearman's rho under "no relation": the share of orderings of y whose |rho| is at
    least the observed one. Every ordering for up to 8 points (exact), else n_random random ones."""
    rho = abs(spearman(x, y))
    if rho != rho:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    rng = np.random.default_rng(seed)
    n = len(ry)
    orders = itertools.permutations(range(n)) if n <= 8 else (rng.permutation(n) for _ in range(n_random))
    hits = [abs(np.corrcoef(rx, ry[list(o)])[0, 1]) >= rho - 1e-12 for o in orders]
    return float(np.mean(hits))


def predicts_ppo(rows):
    """For each measure of MEASURES: Spearman's rho with PPO's gold win rate across the RMs (rows) that have
    both, and its permutation p-value."""
    out = {}
    for _, key in MEASURES:
        pairs = [(r[key], r["ppo_win_rate"]) for r in rows if r.get(key) is not None and "ppo_win_rate" in r]
        enough = len(pairs) > 2
        out[key] = {"n": len(pairs), "spearman": spearman(*zip(*pairs)) if enough else None,
                    "p": permutation_p(*zip(*pairs)) if enough else None}
    return out


def print_predicts_ppo(predicts):
    """predicts_ppo's result, one line per measure."""
    print("\nDoes the measure rank the RMs as PPO's gold win rate does? (Spearman's rho, permutation p)")
    for name, key in MEASURES:
        got = predicts[key]
        shown = "n/a" if got["spearman"] is None else f"{got['spearman']:+.2f}   p {got['p']:.3f}"
        print(f"  {name:34s} {shown}  ({got['n']} RMs)")
