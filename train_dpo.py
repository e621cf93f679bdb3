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

From Python: `import train_dpo; report = train_dpo.main(train_dpo.DPOConfig(beta=0.5))`.

Reads  : out/sft/ckpt.pt (policy init and reference), out/rm/comparisons.jsonl (training rankings),
         out/rm/eval_comparisons.jsonl (held-out rankings: DPO's implicit reward and the RM judged on them),
         out/rm/ckpt.pt (the proxy column only), out/ppo/ckpt.pt (compared against, if it exists)
Writes : out/dpo/ckpt.pt, out/dpo/metrics.jsonl, out/dpo/eval.json
Lesson : lessons/08-dpo.md

Choices the paper leaves open, and what is done here:
  - Rankings of K = 4..9 responses give all C(K,2) pairs, all of a prompt's pairs in one batch, each
    response forwarded once; the pair losses are averaged with 1/C(K,2) per prompt, then over prompts,
    exactly as the reward model's loss is: nanorm/dpo.py::kwise_dpo_loss IS bradley_terry_loss on r_hat.
  - pi_ref is the SFT model, which also wrote the responses, so the data is on the reference's
    distribution (the paper's recommended setting). Its log-probs never change: they are computed once,
    up front, for the whole dataset, which halves the cost of a step.
  - log pi(y | x) sums over response tokens only (prompt and padding masked), EOS included when the
    sampler produced one; a response that hit the length limit has no EOS and is scored without it.
  - The comparisons store text, so responses are re-tokenised; a rare sample whose tokens differ from
    the canonical encoding of its text is scored by the canonical encoding.
  - Sampling temperature 1 for every evaluation, so KL and gold are measured as for PPO.
"""

import math
import os
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import OutDir, save_checkpoint, tokenizer_info, write_json
from nanorm.config import above, at_least, at_most_prompts, autocast, check_system, cli, start, warn_if
from nanorm.dpo import batch_logprobs, encode_comparison, kwise_dpo_loss, pack_kwise, reference_logprobs
from nanorm.evaluate import (check_block_size, compare_on_test, load_policy, load_policy_ref_rm, rm_scores,
                             validation_point, win_rate)
from nanorm.prefdata import load_comparisons
from nanorm.report import print_dpo_as_reward_model, print_footer, print_policy_table, print_validation_point
from nanorm.reward import pairwise_accuracy
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer
from nanorm.training import lr_at, progress, set_lr, stop_if_not_finite


@dataclass
class DPOConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # initialises the policy, and is the frozen reference pi_ref
    rm_dir: str = "out/rm"               # train_rm.py's out_dir: comparisons.jsonl (training data),
                                         # eval_comparisons.jsonl (held-out), ckpt.pt (proxy)
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
        check_system(self)
        at_least(self, 1, "max_response_tokens", "prompts_per_batch", "eval_interval", "n_eval_prompts",
                 "n_test_prompts")
        at_least(self, 0, "n_prompts", "epochs", "lr", "warmup_steps", "weight_decay")
        above(self, 0, "beta", "grad_clip", "temperature")
        at_most_prompts(self, n_eval_prompts="val", n_test_prompts="test")
        warn_if(self, "epochs", self.epochs == 0, "nothing is trained; the checkpoint is the SFT policy")
        warn_if(self, "lr", self.lr == 0 < self.epochs, "nothing is trained; the checkpoint is the SFT policy")


@torch.no_grad()
def implicit_rewards(model, exs, ref_lps, cfg, pad_id, device, batch_prompts=32):
    """r_hat = beta * (log pi - log pi_ref) of every response (flat), and the (winner, loser) pair indices."""
    model.eval()
    r_hat, idx_w, idx_l, offset = [], [], [], 0
    for start_at in range(0, len(exs), batch_prompts):
        tokens, response_mask, w, l, _ = pack_kwise(exs[start_at:start_at + batch_prompts], pad_id, device)
        with autocast(device, cfg.dtype):
            logp = batch_logprobs(model, tokens, response_mask).float().cpu()     # (M,)
        r_hat.append(cfg.beta * (logp - torch.cat(ref_lps[start_at:start_at + batch_prompts])))   # eq. 5
        idx_w.append(w.cpu() + offset)
        idx_l.append(l.cpu() + offset)
        offset += len(logp)
    model.train()
    return torch.cat(r_hat), torch.cat(idx_w), torch.cat(idx_l)


def gold_accuracy(r, idx_w, idx_l, golds):
    """How often r orders a pair as gold does, over the pairs where gold is not a tie (None without gold)."""
    judged = [(w, l) for w, l in zip(idx_w.tolist(), idx_l.tolist()) if golds and golds[w] != golds[l]]
    return float(np.mean([(r[w] > r[l]).item() == (golds[w] > golds[l]) for w, l in judged])) if judged else None


def main(cfg):
    device = start(cfg)   # print the config, pick the device, set threads and seeds
    t_start = time.time()

    # 1. Models: the policy (from SFT), the frozen SFT reference, and the frozen RM (only to report proxy)
    tok = load_tokenizer(cfg.tokenizer)
    policy, ref, rm, sft_ckpt = load_policy_ref_rm(cfg.sft_ckpt, os.path.join(cfg.rm_dir, "ckpt.pt"), tok, device)
    print(f"policy {policy.num_params() / 1e6:.2f}M params, from {cfg.sft_ckpt}; reference: a frozen copy")

    # 2. Data: the rankings train_rm.py collected (same prompts, same labelers), and its held-out rankings
    records, stats = load_comparisons(os.path.join(cfg.rm_dir, "comparisons.jsonl"))
    records = records[:cfg.n_prompts or None]
    eval_records, _ = load_comparisons(os.path.join(cfg.rm_dir, "eval_comparisons.jsonl"))
    encode = lambda c: encode_comparison(tok, c, cfg.max_response_tokens, policy.cfg.block_size)
    examples = [encode(c) for c in records]               # ([(prompt ids, response ids), ...], ranking) per prompt
    eval_examples = [encode(c) for c in eval_records]
    n_pairs = sum(math.comb(len(pairs), 2) for pairs, _ in examples)
    print(f"training data: {len(examples)} prompts, {sum(len(pairs) for pairs, _ in examples)} responses, "
          f"{n_pairs} pairs; held-out: {len(eval_examples)} prompts (dropped responses: {stats['dropped_responses']})")

    # 3. Reference log-probs log pi_ref(y | x): the reference is frozen, so once for every response
    t0 = time.time()
    ref_logps = reference_logprobs(ref, examples, tok.pad_id, device)              # one (K_i,) per prompt
    eval_ref_logps = reference_logprobs(ref, eval_examples, tok.pad_id, device)
    print(f"reference log-probs of {sum(len(r) for r in ref_logps + eval_ref_logps)} responses in "
          f"{time.time() - t0:.0f}s")
    heldout = lambda: implicit_rewards(policy, eval_examples, eval_ref_logps, cfg, tok.pad_id, device)

    # 4. Training: the DPO loss over all C(K,2) pairs of each prompt (nanorm/dpo.py)
    max_steps = math.ceil(len(examples) / cfg.prompts_per_batch) * cfg.epochs
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)
    test_prompts = world.make_split("test", cfg.n_test_prompts, seed=cfg.seed)
    check_block_size(tok, eval_prompts + test_prompts, cfg.max_response_tokens, (cfg.sft_ckpt, policy.cfg))   # RM: same
    out = OutDir(cfg.out_dir)   # every file is written beside its final name until out.commit()
    log = out.metrics()

    def run_eval(step):
        """Validation prompts: gold, KL to SFT, length, sycophancy; and the held-out implicit accuracy."""
        point, _ = validation_point(policy, ref, rm, tok, eval_prompts, cfg, device)
        r_hat, idx_w, idx_l = heldout()
        point["heldout_acc"] = pairwise_accuracy(r_hat[idx_w], r_hat[idx_l])
        print_validation_point("step", step, point, f" | held-out implicit acc {point['heldout_acc']:.3f}")
        policy.train()
        return point

    log.log(step=0, eval=run_eval(0))          # the starting point: the SFT model itself
    step = 0
    policy.train()
    pbar = progress(max_steps, "dpo")
    for epoch in range(cfg.epochs):
        order = list(range(len(examples)))
        random.Random(cfg.seed + epoch).shuffle(order)
        for start_at in range(0, len(order), cfg.prompts_per_batch):
            lr = lr_at(step, cfg.lr, cfg.lr / 10, cfg.warmup_steps, max_steps)      # warm-up, then cosine
            set_lr(optimizer, lr)
            batch = order[start_at:start_at + cfg.prompts_per_batch]
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
            record = {"step": step, "epoch": epoch, "loss": loss.item(), "lr": lr, "grad_norm": grad_norm.item(),
                      "margin": stats["reward_margin"], "acc": stats["reward_accuracy"],
                      "rewards_chosen": stats["rewards_chosen"], "rewards_rejected": stats["rewards_rejected"]}
            stop_if_not_finite(f"dpo step {step}", f"lower --lr (now {cfg.lr:g})", loss=loss, grad_norm=grad_norm,
                               rewards_chosen=stats["rewards_chosen"], rewards_rejected=stats["rewards_rejected"])
            if step % cfg.eval_interval == 0 or step == max_steps:
                record["eval"] = run_eval(step)
            pbar.set_postfix(loss=f"{loss.item():.3f}", margin=f"{stats['reward_margin']:+.2f}",
                             acc=f"{stats['reward_accuracy']:.2f}")
            log.log(**record)
    pbar.close()
    train_time = time.time() - t_start

    # 5. Save: a policy checkpoint like SFT's and PPO's (nanorm/evaluate.py::load_policy reads all three)
    ckpt = {"kind": "dpo", "model_config": asdict(policy.cfg), "state_dict": policy.state_dict(),
            "config": asdict(cfg), "step": step, "tokenizer": tokenizer_info(tok), "sft_config": sft_ckpt["config"]}
    save_checkpoint(out.path("ckpt.pt"), ckpt)

    # 6. Evaluation on held-out TEST prompts: DPO beside SFT and PPO, judged by gold; and DPO's implicit
    #    reward judged as a reward model, beside the RM, on the RM's held-out comparisons
    policies = {"dpo": policy}
    if os.path.exists(cfg.ppo_ckpt):
        policies["ppo"] = load_policy(cfg.ppo_ckpt, tok, device, kinds="ppo")[0]
    else:
        print(f"PPO checkpoint not found ({cfg.ppo_ckpt}): skipping the comparison with PPO")
    summaries, rows = compare_on_test(policies, ref, rm, tok, test_prompts, cfg, device)
    if "ppo" in summaries:
        summaries["dpo"]["win_rate_vs_ppo"] = win_rate(test_prompts, rows["dpo"], rows["ppo"])
    r_hat, idx_w, idx_l = heldout()                      # held-out rankings as loaded: duplicate responses dropped
    flat = [(c, t, f) for c in eval_records for t, f in zip(c.responses, c.finished)]   # (M,), as r_hat
    r_rm = rm_scores(rm, tok, [c.prompt for c, _, _ in flat], [r for pairs, _ in eval_examples for _, r in pairs],
                     [f for _, _, f in flat], cfg.truncation_penalty, device, cfg.dtype)   # (M,) the RM's scores
    golds = None
    if all("world_prompt" in c.meta for c in eval_records):   # world data: gold says which response is better
        golds = [world.gold(world.Prompt.from_dict(c.meta["world_prompt"]), t, f) for c, t, f in flat]
    report = {"n_test_prompts": len(test_prompts), "beta": cfg.beta, "sft": summaries["sft"],
              "dpo": summaries["dpo"], "ppo": summaries.get("ppo"),
              "implicit_reward": {"n_prompts": len(eval_examples), "n_pairs": len(idx_w),
                                  "accuracy": pairwise_accuracy(r_hat[idx_w], r_hat[idx_l]),
                                  "gold_accuracy": gold_accuracy(r_hat, idx_w, idx_l, golds)},
              "rm": {"accuracy": pairwise_accuracy(r_rm[idx_w], r_rm[idx_l]),
                     "gold_accuracy": gold_accuracy(r_rm, idx_w, idx_l, golds)},
              "samples": [{"prompt": p.text, "sft": s["text"], "dpo": d["text"], "gold_sft": round(s["gold"], 3),
                           "gold_dpo": round(d["gold"], 3)}
                          for p, s, d in list(zip(test_prompts, rows["sft"], rows["dpo"]))[:20]],
              "train_seconds": round(train_time, 1), "total_seconds": round(time.time() - t_start, 1)}
    write_json(out.path("eval.json"), report)
    out.commit()   # ckpt.pt, metrics.jsonl and eval.json, all three into place
    print(f"saved {cfg.out_dir}/ckpt.pt after {train_time:.0f}s of training")
    print_policy_table({k: summaries[k] for k in ("sft", "ppo", "dpo") if k in summaries}, len(test_prompts))
    print_dpo_as_reward_model(report)
    print_footer(device, report["total_seconds"])
    return report


if __name__ == "__main__":
    cli(main, DPOConfig)
