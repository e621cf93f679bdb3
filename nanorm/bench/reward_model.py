"""
Reward-model batching, K-wise vs pairs: the same loss, the forwards and the time; and the scoring rate.

    python -m nanorm.bench.reward_model --threads=1

A prompt with K ranked responses gives C(K,2) comparisons. K-wise batching (InstructGPT sec. 3.5;
nanorm/reward.py) forwards the K responses once and indexes the pairs into their K scores: K forwards.
Pair batching forwards the winner and the loser of every pair: 2 * C(K,2) forwards (72 instead of 9 for
K = 9). Both compute the same loss, InstructGPT eq. 1: the check below compares the loss and every
gradient at the same weights. Then each method trains its own copy of the RM for one epoch over the
same batches (in turns, batch by batch), and the wall times are compared.

The comparisons are the world's demonstrations (K ~ U{k_min..k_max} per prompt), ranked by a simulated
labeler; the RM is the default-size model (randomly initialised: speed does not depend on the weights).
"""

import copy
import math
import random
import sys
import time
from dataclasses import asdict, dataclass

import torch

from nanorm import world
from nanorm.bench.common import machine_info, model_config, print_table, setup, sync, time_interleaved, write_json
from nanorm.config import autocast, parse_config
from nanorm.data import pack_sequences
from nanorm.model import ScalarHeadModel
from nanorm.reward import bradley_terry_loss, kwise_pairs, ranking_to_pairs
from nanorm.tokenizer import load_tokenizer


@dataclass
class RewardModelBenchConfig:
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    threads: int = 1                   # torch CPU threads; 0 = torch's default
    dtype: str = "float32"             # float32 | bfloat16 (autocast)
    config: str = "default"            # the RM's size: default (CPU) | gpu (nanorm/bench/gpu_config.py)
    n_prompts: int = 200               # training prompts, one ranking of K responses each
    k_min: int = 4                     # K ~ U{k_min..k_max} responses per prompt
    k_max: int = 9                     # (inclusive)
    prompts_per_batch: int = 8         # prompts per training step (both batchings see the same batches)
    score_batch: int = 128             # responses per forward when timing the RM's scoring rate
    repeats: int = 3                   # timed passes over all responses for the scoring rate (median)
    out: str = "reward_model"          # the JSON's name: $OUT/NAME.json or out/bench/NAME.json


def make_comparisons(tok, n_prompts, k_min, k_max, seed=0):
    """[(sequences [(prompt ids, response ids)] * K, ranking)] for n_prompts training prompts."""
    rng = random.Random(seed)
    labeler = world.make_labelers(3, seed=seed)[0]
    records = []
    for p in world.make_split("train", n_prompts, seed=seed):
        responses = [world.demonstration(p, rng) for _ in range(rng.randint(k_min, k_max))]
        ranking = labeler.rank(p, responses, rng)
        prompt = tok.encode_prompt(p.text)
        records.append(([(prompt, tok.encode_response(r)[:48]) for r in responses], ranking))
    return records


def scores(rm, seqs, pad_id, device, dtype):
    tokens, mask, _ = pack_sequences([p for p, _ in seqs], [r for _, r in seqs], pad_id, device)
    with autocast(device, dtype):
        return rm.score(tokens, mask).float()                   # (len(seqs),)


def kwise_loss(rm, batch, pad_id, device, dtype):
    """K-wise: every response once (M = sum K forwards), pairs index into the M scores."""
    r = scores(rm, [s for seqs, _ in batch for s in seqs], pad_id, device, dtype)          # (M,)
    idx_w, idx_l, group = kwise_pairs([ranking for _, ranking in batch])
    return bradley_terry_loss(r, idx_w.to(device), idx_l.to(device), group.to(device)), len(r)


def pair_loss(rm, batch, pad_id, device, dtype):
    """Pair batching: winner and loser of every pair forwarded (2 * sum C(K,2) forwards), the same loss:
    mean over prompts of  -1/C(K,2) * sum_pairs log sigma(r_w - r_l)."""
    winners, losers, group = [], [], []
    for i, (seqs, ranking) in enumerate(batch):
        for w, l in ranking_to_pairs(ranking):
            winners.append(seqs[w])
            losers.append(seqs[l])
            group.append(i)
    r = scores(rm, winners + losers, pad_id, device, dtype)                               # (2P,)
    n = len(winners)   # pair j: winner r[j], loser r[n + j]; the loss itself is the same function
    idx_w, idx_l = torch.arange(n, device=device), torch.arange(n, 2 * n, device=device)
    return bradley_terry_loss(r, idx_w, idx_l, torch.tensor(group, device=device)), len(r)


def main(argv=None):
    flags = parse_config(RewardModelBenchConfig, sys.argv[1:] if argv is None else argv)
    device = setup(flags)
    tok = load_tokenizer()
    records = make_comparisons(tok, flags.n_prompts, flags.k_min, flags.k_max)
    batches = [records[i:i + flags.prompts_per_batch] for i in range(0, len(records), flags.prompts_per_batch)]
    torch.manual_seed(0)
    base = ScalarHeadModel(model_config(flags.config, tok.vocab_size)).to(device)
    methods = {"k-wise": kwise_loss, "pairs": pair_loss}

    # 1. Same loss, same gradients, at the same weights (the first batch)
    grads, losses = {}, {}
    for name, fn in methods.items():
        rm = copy.deepcopy(base)
        loss, _ = fn(rm, batches[0], tok.pad_id, device, flags.dtype)
        loss.backward()
        losses[name] = loss.item()
        grads[name] = [p.grad.clone() for p in rm.parameters()]
    max_grad_diff = max((a - b).abs().max().item() for a, b in zip(grads["k-wise"], grads["pairs"]))
    tol = 1e-4 if flags.dtype == "float32" else 2e-2
    same_loss = abs(losses["k-wise"] - losses["pairs"]) <= tol * max(1.0, abs(losses["k-wise"]))
    same_grad = max_grad_diff <= tol * max(g.abs().max().item() for g in grads["k-wise"])

    # 2. One training epoch each, batch by batch in turns
    runs = {}
    for name in methods:
        rm = copy.deepcopy(base).train()
        runs[name] = {"rm": rm, "opt": torch.optim.AdamW(rm.parameters(), lr=3e-4, weight_decay=0.0),
                      "seconds": 0.0, "forwards": 0, "losses": []}
    for batch in batches:
        for name, fn in methods.items():
            run = runs[name]
            sync(device)
            t0 = time.perf_counter()
            loss, n_forward = fn(run["rm"], batch, tok.pad_id, device, flags.dtype)
            run["opt"].zero_grad(set_to_none=True)
            loss.backward()
            run["opt"].step()
            run["losses"].append(loss.item())
            sync(device)
            run["seconds"] += time.perf_counter() - t0
            run["forwards"] += n_forward
    n_pairs = sum(math.comb(len(seqs), 2) for seqs, _ in records)
    rows = [{"method": name, "forwards": run["forwards"], "seconds": run["seconds"],
             "forwards_vs_kwise": run["forwards"] / runs["k-wise"]["forwards"],
             "time_vs_kwise": run["seconds"] / runs["k-wise"]["seconds"],
             "mean_loss": sum(run["losses"]) / len(run["losses"])} for name, run in runs.items()]
    drift = max(abs(a - b) for a, b in zip(runs["k-wise"]["losses"], runs["pairs"]["losses"]))

    # 3. Scoring rate: responses per second, no gradient, batches of score_batch (as train_ppo/evaluate do)
    rm = base.eval()
    seqs = [s for seqs, _ in records for s in seqs]

    @torch.no_grad()
    def score_all():
        for i in range(0, len(seqs), flags.score_batch):
            scores(rm, seqs[i:i + flags.score_batch], tok.pad_id, device, flags.dtype)
    t = time_interleaved({"score": score_all}, device, repeats=flags.repeats)["score"]

    print(f"\none epoch of RM training over {len(records)} prompts ({n_pairs} comparisons, "
          f"K = {flags.k_min}..{flags.k_max}), {flags.prompts_per_batch} prompts per step, {device}:")
    print_table(rows, [("method", "batching", "{}"), ("forwards", "sequences forwarded", "{:,}"),
                       ("forwards_vs_kwise", "vs k-wise", "{:.2f}x"), ("seconds", "epoch s", "{:.1f}"),
                       ("time_vs_kwise", "time vs k-wise", "{:.2f}x"), ("mean_loss", "mean loss", "{:.4f}")])
    print(f"  same weights, first batch: loss k-wise {losses['k-wise']:.6f} vs pairs {losses['pairs']:.6f} "
          f"(same: {same_loss}); max |grad difference| {max_grad_diff:.2e} (same: {same_grad})")
    print(f"  training each copy for an epoch, the losses drift apart by at most {drift:.2e} (float rounding)")
    print(f"  RM scoring (no grad, batches of {flags.score_batch}): {len(seqs) / t:,.0f} responses/s")
    report = {"flags": asdict(flags), "machine": machine_info(device), "n_prompts": len(records),
              "n_responses": len(seqs), "n_comparisons": n_pairs, "epoch": rows,
              "forward_ratio": rows[1]["forwards"] / rows[0]["forwards"],
              "time_ratio": rows[1]["seconds"] / rows[0]["seconds"],
              "same_loss": bool(same_loss and same_grad), "loss_kwise": losses["k-wise"], "loss_pairs": losses["pairs"],
              "max_grad_diff": max_grad_diff, "max_loss_drift_over_epoch": drift,
              "scoring_responses_per_s": len(seqs) / t}
    write_json(flags.out, report)
    return report


if __name__ == "__main__":
    main()
