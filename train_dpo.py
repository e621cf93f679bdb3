"""
Beside stage 3: Direct Preference Optimization (DPO, Rafailov et al. 2023) on the SAME comparisons the
reward model was trained on, judged by gold beside PPO.

DPO skips the reward model and the RL loop. The Bradley-Terry loss of train_rm.py is kept, but the
reward is the policy's own log-probability ratio against the frozen SFT model:

    r_hat(x, y) = beta * log( pi_theta(y | x) / pi_ref(y | x) )                  (Rafailov et al. 2023 eq. 5)
    loss(theta) = - E_{(x, y_w, y_l) ~ D} [ log sigma( r_hat(x, y_w) - r_hat(x, y_l) ) ]     (eq. 7)

so one supervised pass over the rankings: no sampling, no critic, no proxy score to hack on the fly.

    python train_dpo.py                       # default: ~1 minute on 2 idle CPU cores (after SFT and RM)
    python train_dpo.py --beta=0.5            # a stronger pull towards the SFT model

Reads  : out/sft/ckpt.pt (policy init and reference), out/rm/comparisons.jsonl (training rankings),
         out/rm/eval_comparisons.jsonl + out/rm/eval.json (held-out rankings, the RM's accuracy on them),
         out/rm/ckpt.pt (the proxy column only), out/ppo/ckpt.pt (compared against, if it exists)
Writes : out/dpo/ckpt.pt, out/dpo/metrics.jsonl, out/dpo/eval.json
Lesson : lessons/08-dpo.md

Choices the paper leaves open, and what is done here:
  - Rankings of K = 4..9 responses give all C(K,2) pairs, all of a prompt's pairs in one batch, each
    response forwarded once; the pair losses are averaged with 1/C(K,2) per prompt, then over prompts,
    exactly as the reward model's loss is (nanorm/dpo.py::kwise_dpo_loss).
  - pi_ref is the SFT model, which also wrote the responses, so the data is on the reference's
    distribution (the paper's recommended setting). Its log-probs never change: they are computed once,
    up front, for the whole dataset, which halves the cost of a step.
  - log pi(y | x) sums over response tokens only (prompt and padding masked), EOS included when the
    sampler produced one; a response that hit the length limit has no EOS and is scored without it.
  - The comparisons store text, so responses are re-tokenised; a rare sample whose tokens differ from
    the canonical encoding of its text is scored by the canonical encoding.
  - Sampling temperature 1 for every evaluation, so KL and gold are measured as for PPO.
"""

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from nanorm import world
from nanorm.checkpoint import MetricsLog, save_checkpoint, tokenizer_info
from nanorm.config import autocast, setup
from nanorm.dpo import batch_logprobs, encode_comparison, kwise_dpo_loss, pack_kwise, reference_logprobs
from nanorm.evaluate import evaluate_policy, gold_win_rate, load_policy, load_reward_model, rm_scores
from nanorm.prefdata import load_comparisons
from nanorm.reward import pairwise_accuracy
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer


@dataclass
class DPOConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # initialises the policy, and is the frozen reference pi_ref
    rm_dir: str = "out/rm"               # train_rm.py's out_dir: comparisons.jsonl (training data),
                                         # eval_comparisons.jsonl + eval.json (held-out), ckpt.pt (proxy)
    ppo_ckpt: str = "out/ppo/ckpt.pt"    # the PPO policy to compare against (skipped if missing)
    out_dir: str = "out/dpo"
    tokenizer: str = DEFAULT_RANKS
    n_prompts: int = 0                   # ranked prompts to train on; 0 = all of comparisons.jsonl
    max_response_tokens: int = 48        # longer responses are cut; also the sampling limit at evaluation
    # DPO
    beta: float = 0.1                    # implicit KL strength: larger = implicit rewards grow slower, stay nearer SFT
    # optimisation
    prompts_per_batch: int = 8           # prompts per step; ALL of each prompt's responses and pairs go in
    epochs: int = 1                      # passes over the comparisons (more: higher KL, lower gold)
    lr: float = 1e-4                     # AdamW peak learning rate (linear warm-up, cosine decay to lr / 10)
    warmup_steps: int = 20               # linear warm-up steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0               # clip the global gradient norm
    # evaluation
    eval_interval: int = 100             # steps between held-out evaluations (KL, gold, implicit accuracy)
    n_eval_prompts: int = 200            # validation prompts sampled at each of those
    n_test_prompts: int = 500            # final: test prompts for the win rates against SFT and PPO
    temperature: float = 1.0             # sampling temperature of every evaluation sample
    truncation_penalty: float = -3.0     # proxy score of a response with no EOS (as in PPO)
    # system
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 1337
    threads: int = 0

    def check(self):
        assert self.beta > 0, "--beta must be > 0"
        assert self.prompts_per_batch > 0 and self.epochs >= 0 and self.eval_interval > 0
        assert self.temperature > 0, "--temperature must be > 0"


cfg, device = setup(DPOConfig, sys.argv[1:])   # parse --key=value flags, print them, pick the device, seed
t_start = time.time()

# ----------------------------------------------------------------------------------------------------
# 1. Models: the policy (from SFT), the frozen SFT reference, and the frozen RM (only to report proxy)

tok = load_tokenizer(cfg.tokenizer)
policy, sft_ckpt = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
ref, _ = load_policy(cfg.sft_ckpt, tok, device, kinds="sft")
rm, _ = load_reward_model(os.path.join(cfg.rm_dir, "ckpt.pt"), tok, device)   # the normalised RM
for p in list(ref.parameters()) + list(rm.parameters()):
    p.requires_grad_(False)
print(f"policy {policy.num_params() / 1e6:.2f}M params, from {cfg.sft_ckpt}; reference: a frozen copy")

# ----------------------------------------------------------------------------------------------------
# 2. Data: the rankings train_rm.py collected (same prompts, same labelers), and its held-out rankings

records, stats = load_comparisons(os.path.join(cfg.rm_dir, "comparisons.jsonl"))
if cfg.n_prompts:
    records = records[:cfg.n_prompts]
eval_records, _ = load_comparisons(os.path.join(cfg.rm_dir, "eval_comparisons.jsonl"))
encode = lambda c: encode_comparison(tok, c, cfg.max_response_tokens, policy.cfg.block_size)
examples = [encode(c) for c in records]               # (prompt ids, [response ids], ranking) per prompt
eval_examples = [encode(c) for c in eval_records]
n_pairs = sum(math.comb(len(rs), 2) for _, rs, _ in examples)
print(f"training data: {len(examples)} prompts, {sum(len(rs) for _, rs, _ in examples)} responses, {n_pairs} pairs; "
      f"held-out: {len(eval_examples)} prompts (dropped responses: {stats['dropped_responses']})")

# ----------------------------------------------------------------------------------------------------
# 3. Reference log-probs log pi_ref(y | x): the reference is frozen, so once for every response

t0 = time.time()
ref_logps = reference_logprobs(ref, examples, tok.pad_id, device)              # one (K_i,) per prompt
eval_ref_logps = reference_logprobs(ref, eval_examples, tok.pad_id, device)
print(f"reference log-probs of {sum(len(r) for r in ref_logps + eval_ref_logps)} responses in {time.time() - t0:.0f}s")


@torch.no_grad()
def implicit_rewards(model, exs, ref_lps, batch_prompts=32):
    """r_hat = beta * (log pi - log pi_ref) of every response (flat), and the (winner, loser) pair indices."""
    model.eval()
    r_hat, idx_w, idx_l, offset = [], [], [], 0
    for start in range(0, len(exs), batch_prompts):
        tokens, response_mask, w, l, _ = pack_kwise(exs[start:start + batch_prompts], tok.pad_id, device)
        with autocast(device, cfg.dtype):
            logp = batch_logprobs(model, tokens, response_mask).float().cpu()     # (M,)
        r_hat.append(cfg.beta * (logp - torch.cat(ref_lps[start:start + batch_prompts])))   # eq. 5
        idx_w.append(w.cpu() + offset)
        idx_l.append(l.cpu() + offset)
        offset += len(logp)
    return torch.cat(r_hat), torch.cat(idx_w), torch.cat(idx_l)


def heldout_accuracy():
    """Pairwise accuracy of the implicit reward on the held-out labeler's rankings (ties count half)."""
    r_hat, idx_w, idx_l = implicit_rewards(policy, eval_examples, eval_ref_logps)
    policy.train()
    return pairwise_accuracy(r_hat[idx_w], r_hat[idx_l]), r_hat, idx_w, idx_l


# ----------------------------------------------------------------------------------------------------
# 4. Training: the DPO loss over all C(K,2) pairs of each prompt (nanorm/dpo.py)

steps_per_epoch = math.ceil(len(examples) / cfg.prompts_per_batch)
max_steps = steps_per_epoch * cfg.epochs
optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step):
    """Linear warm-up, then cosine decay from lr to lr / 10."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps)
    return cfg.lr / 10 + 0.5 * (cfg.lr - cfg.lr / 10) * (1 + math.cos(math.pi * min(1.0, progress)))


eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)
os.makedirs(cfg.out_dir, exist_ok=True)
log = MetricsLog(os.path.join(cfg.out_dir, "metrics.jsonl"))


def run_eval(step):
    """Sample the validation prompts: gold, KL to SFT, length, sycophancy; and the held-out implicit accuracy."""
    summary, _ = evaluate_policy(policy, ref, rm, tok, eval_prompts, cfg.max_response_tokens, cfg.temperature,
                                 cfg.truncation_penalty, torch.Generator(device=device).manual_seed(cfg.seed + 7),
                                 device, cfg.dtype)
    out = {k: summary[k] for k in ("proxy", "gold", "kl", "length", "format", "eos_rate")}
    out["sycophancy"] = summary["per_family"].get("claim", {}).get("sycophancy_rate", float("nan"))
    out["heldout_acc"] = heldout_accuracy()[0]
    tqdm.write(f"eval step {step:4d} | gold {out['gold']:+.3f} | KL {out['kl']:.2f} | proxy {out['proxy']:+.3f} | "
               f"length {out['length']:.1f} words | sycophancy {out['sycophancy']:.2f} | "
               f"held-out implicit acc {out['heldout_acc']:.3f}")
    policy.train()
    return out


log.log(step=0, eval=run_eval(0))          # the starting point: the SFT model itself
step = 0
policy.train()
pbar = tqdm(total=max_steps, desc="dpo", dynamic_ncols=True)
for epoch in range(cfg.epochs):
    order = list(range(len(examples)))
    random.Random(cfg.seed + epoch).shuffle(order)
    for start in range(0, len(order), cfg.prompts_per_batch):
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr_at(step)
        batch = order[start:start + cfg.prompts_per_batch]
        tokens, response_mask, idx_w, idx_l, group = pack_kwise([examples[i] for i in batch], tok.pad_id, device)
        ref_logp = torch.cat([ref_logps[i] for i in batch]).to(device)     # (M,) log pi_ref(y | x), precomputed
        with autocast(device, cfg.dtype):
            pi_logp = batch_logprobs(policy, tokens, response_mask)        # (M,) log pi_theta(y | x)
        # -log sigma(r_hat_w - r_hat_l), 1/C(K,2) per prompt, then mean over prompts (as the RM loss)
        loss, stats = kwise_dpo_loss(pi_logp, ref_logp, idx_w, idx_l, group, cfg.beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        pbar.update(1)
        record = {"step": step, "epoch": epoch, "loss": loss.item(), "lr": lr_at(step - 1),
                  "grad_norm": grad_norm.item(), "margin": stats["reward_margin"], "acc": stats["reward_accuracy"],
                  "rewards_chosen": stats["rewards_chosen"], "rewards_rejected": stats["rewards_rejected"]}
        if step % cfg.eval_interval == 0 or step == max_steps:
            record["eval"] = run_eval(step)
        pbar.set_postfix(loss=f"{loss.item():.3f}", margin=f"{stats['reward_margin']:+.2f}",
                         acc=f"{stats['reward_accuracy']:.2f}")
        log.log(**record)
pbar.close()
train_time = time.time() - t_start

# ----------------------------------------------------------------------------------------------------
# 5. Save: a policy checkpoint like SFT's and PPO's (nanorm/evaluate.py::load_policy reads all three)

ckpt = {"kind": "dpo", "model_config": asdict(policy.cfg), "state_dict": policy.state_dict(), "config": asdict(cfg),
        "step": step, "tokenizer": tokenizer_info(tok), "sft_config": sft_ckpt["config"]}
save_checkpoint(os.path.join(cfg.out_dir, "ckpt.pt"), ckpt)
print(f"saved {cfg.out_dir}/ckpt.pt after {train_time:.0f}s")

# ----------------------------------------------------------------------------------------------------
# 6. Evaluation on held-out TEST prompts: DPO beside SFT and PPO, judged by gold; and DPO's implicit
#    reward judged as a reward model, on the RM's held-out comparisons

test_prompts = world.make_split("test", cfg.n_test_prompts, seed=cfg.seed)
g = lambda k: torch.Generator(device=device).manual_seed(cfg.seed + 1000 + k)   # SFT, PPO: train_ppo.py's seeds
evaluate = lambda model, k: evaluate_policy(model, ref, rm, tok, test_prompts, cfg.max_response_tokens,
                                            cfg.temperature, cfg.truncation_penalty, g(k), device, cfg.dtype)
texts_of = lambda rows: ([r["text"] for r in rows], [r["finished"] for r in rows])
sft_summary, sft_rows = evaluate(ref, 0)
dpo_summary, dpo_rows = evaluate(policy, 3)
dpo_summary["win_rate_vs_sft"] = gold_win_rate(test_prompts, *texts_of(dpo_rows), *texts_of(sft_rows))
report = {"n_test_prompts": len(test_prompts), "beta": cfg.beta, "sft": sft_summary, "dpo": dpo_summary, "ppo": None}
if os.path.exists(cfg.ppo_ckpt):
    ppo, _ = load_policy(cfg.ppo_ckpt, tok, device, kinds="ppo")
    ppo_summary, ppo_rows = evaluate(ppo, 1)
    ppo_summary["win_rate_vs_sft"] = gold_win_rate(test_prompts, *texts_of(ppo_rows), *texts_of(sft_rows))
    dpo_summary["win_rate_vs_ppo"] = gold_win_rate(test_prompts, *texts_of(dpo_rows), *texts_of(ppo_rows))
    report["ppo"] = ppo_summary
else:
    print(f"PPO checkpoint not found ({cfg.ppo_ckpt}): skipping the comparison with PPO")

# the implicit reward as a reward model, on the RM's held-out rankings (as loaded: duplicate responses dropped),
# beside the RM itself on the very same pairs, and the RM's own number from its eval.json (all pairs)
acc, r_hat, idx_w, idx_l = heldout_accuracy()
flat = [(c, t, f) for c in eval_records
        for t, f in zip(c.responses, c.meta.get("finished") or [True] * len(c.responses))]   # (M,), as r_hat
r_rm = rm_scores(rm, tok, [c.prompt for c, _, _ in flat], [r for _, responses, _ in eval_examples for r in responses],
                 [f for _, _, f in flat], cfg.truncation_penalty, device, cfg.dtype)          # (M,) the RM's scores
golds = None
if all("world_prompt" in c.meta for c in eval_records):   # world data: gold says which response is better
    golds = [world.gold(world.Prompt.from_dict(c.meta["world_prompt"]), t, f) for c, t, f in flat]


def gold_accuracy(r):
    """How often r orders a pair as gold does, over the pairs where gold is not a tie (None without gold)."""
    judged = [(w, l) for w, l in zip(idx_w.tolist(), idx_l.tolist()) if golds and golds[w] != golds[l]]
    return float(np.mean([(r[w] > r[l]).item() == (golds[w] > golds[l]) for w, l in judged])) if judged else None


with open(os.path.join(cfg.rm_dir, "eval.json")) as f:
    rm_eval = json.load(f)
report["implicit_reward"] = {"n_prompts": len(eval_examples), "n_pairs": len(idx_w), "accuracy": acc,
                             "gold_accuracy": gold_accuracy(r_hat)}
report["rm"] = {"accuracy_same_pairs": pairwise_accuracy(r_rm[idx_w], r_rm[idx_l]),
                "gold_accuracy_same_pairs": gold_accuracy(r_rm), "n_pairs": rm_eval.get("n_eval_pairs"),
                "accuracy": rm_eval["accuracy"], "gold_accuracy": rm_eval.get("gold_accuracy")}
report["samples"] = [{"prompt": p.text, "sft": s["text"], "dpo": d["text"], "gold_sft": round(s["gold"], 3),
                      "gold_dpo": round(d["gold"], 3)} for p, s, d in list(zip(test_prompts, sft_rows, dpo_rows))[:20]]
report["train_seconds"] = round(train_time, 1)
report["total_seconds"] = round(time.time() - t_start, 1)
with open(os.path.join(cfg.out_dir, "eval.json"), "w") as f:
    json.dump(report, f, indent=1)

print("\nsample responses (held-out test prompts):")
for s in report["samples"][:6]:
    print(f"  {s['prompt']}")
    print(f"    SFT gold {s['gold_sft']:+.2f} | {s['sft']!r}\n    DPO gold {s['gold_dpo']:+.2f} | {s['dpo']!r}")
print(f"\nheld-out test prompts: {len(test_prompts)} (one sample each; wins judged by gold, ties count half)")
print(f"  {'policy':6s} {'win vs SFT':>10s} {'win vs PPO':>10s} {'proxy':>7s} {'gold':>7s} {'KL':>6s} {'words':>6s} "
      f"{'agree':>6s} {'syco':>5s}")
rows, nan = [("SFT", sft_summary), ("PPO", report["ppo"]), ("DPO", dpo_summary)], float("nan")
for name, s in [(n, s) for n, s in rows if s is not None]:
    claim = s["per_family"].get("claim", {})
    win_sft = f"{s['win_rate_vs_sft']:.3f}" if "win_rate_vs_sft" in s else "-"
    win_ppo = f"{s['win_rate_vs_ppo']:.3f}" if "win_rate_vs_ppo" in s else "-"
    print(f"  {name:6s} {win_sft:>10s} {win_ppo:>10s} {s['proxy']:+7.3f} {s['gold']:+7.3f} {s['kl']:6.2f} "
          f"{s['length']:6.1f} {claim.get('agree_rate', nan):6.2f} {claim.get('sycophancy_rate', nan):5.2f}")
ir, rm_acc = report["implicit_reward"], report["rm"]
print(f"\nas a reward model, on the RM's held-out comparisons, ranked by a held-out labeler "
      f"({ir['n_prompts']} prompts, {ir['n_pairs']} pairs once duplicate responses are dropped):")
fmt = lambda x: f"{x:8.3f}" if x is not None else f"{'-':>8s}"
print(f"  {'':40s} {'vs labeler':>10s} {'vs gold':>8s}")
print(f"  {'DPO implicit reward beta*log(pi/pi_ref)':40s} {ir['accuracy']:10.3f} {fmt(ir['gold_accuracy'])}")
print(f"  {'reward model, the same pairs':40s} {rm_acc['accuracy_same_pairs']:10.3f} "
      f"{fmt(rm_acc['gold_accuracy_same_pairs'])}")
print(f"  {'reward model, its eval.json (all ' + str(rm_acc['n_pairs']) + ')':40s} {rm_acc['accuracy']:10.3f} "
      f"{fmt(rm_acc['gold_accuracy'])}")
print(f"total time {report['total_seconds']:.0f}s")
