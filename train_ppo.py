"""
Stage 3 of 3: PPO against the reward model, with a per-token KL penalty to the SFT model and a critic.

Each iteration runs six numbered steps:
  1. rollout   : the policy samples a response for a batch of training prompts (KV cache)
  2. score     : log-probs under the policy and the frozen SFT model, the critic's values, the RM score
  3. reward    : R = r - beta * KL, per token: -beta * (log pi - log pi_sft) on every response token,
                 plus the RM score r on the final real token (Ziegler et al. 2019; Stiennon et al. 2020)
  4. advantages: GAE from the critic's values (gamma, lambda), then whitened
  5. update    : a few epochs of minibatches of the clipped PPO loss (policy) and clipped value loss (critic)
  6. log       : proxy (RM) and gold score, KL, length, entropy, clip fraction, value loss, ...

    python train_ppo.py                       # default: about 5 minutes on a 2-core CPU (288 s)
    python train_ppo.py --beta=0              # no KL penalty: watch the policy hack the RM
    python train_ppo.py --kl_ctl=adaptive --kl_target=4
    python train_ppo.py --resume=out/ppo/ckpt.pt --n_iters=80    # continue a run, exactly
    from Python: import train_ppo; report = train_ppo.main(train_ppo.PPOConfig(beta=0.02))

Reads  : out/sft/ckpt.pt, out/rm/ckpt.pt (lesson: lessons/05-ppo.md)
Writes : out/ppo/ckpt.pt (policy, critic, optimizers, KL coefficient, random streams), metrics.jsonl, eval.json

Where this departs from InstructGPT (Ouyang et al. 2022) and from "The N implementation details of
RLHF with PPO" (Huang et al. 2023, the lm-human-preferences recipe), and why:
  - Tiny scale: a ~1M-parameter GPT trained from scratch on a simulated world, a few thousand rollouts
    instead of ~256k episodes: to see the mechanics and the failure modes in minutes on a laptop.
  - No pretraining-mix term (InstructGPT's "PPO-ptx"): there is no pretraining corpus here.
  - A response that hits the length limit without EOS gets a fixed penalty (--truncation_penalty), not
    the RM score, as in the recipe (InstructGPT does not say): else the policy learns to ramble.
  - The critic is a separate trunk initialised from the RM (InstructGPT, Stiennon et al.), its head
    holding the RM's normalisation; some recipe variants put a zero-initialised head on the policy.
  - The value after the last token is 0, also for truncated responses (no bootstrapping), gamma = 1.
  - The RM is normalised once on SFT samples (mean 0, std 1), as in the recipe; per-batch reward
    whitening is optional (--whiten_rewards). The sampling temperature divides the logits of EVERY
    log-prob (policy, reference, ratio): the KL is that of what was sampled (the recipe's bug fix).
  - Adam without the recipe's epsilon/learning-rate annealing; one minibatch size for both nets.
  - beta = 0.2 by default, ten times InstructGPT's 0.02: this RM cannot check most claims, and with
    at beta 0.02 and 0.002 gold peaks by iteration 10 and then falls below SFT's (lesson 06's experiment).
"""

import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import (OutDir, random_streams, resume_run, resumed_rows, save_checkpoint, tokenizer_info,
                              write_json)
from nanorm.config import (above, at_least, at_most_prompts, autocast, check_system, cli, one_of, require, start,
                           warn_if, within)
from nanorm.data import join_prompt_response, joined_response_mask, response_logprobs, response_mask_from
from nanorm.evaluate import check_block_size, compare_on_test, load_policy_ref_rm, validation_point
from nanorm.model import ScalarHeadModel
from nanorm.ppo import (entropy_from_logits, explained_variance, gae, kl_controller, kl_penalized_rewards, masked_mean,
                        ppo_policy_loss, ppo_value_loss, whiten)
from nanorm.report import print_footer, print_policy_table, print_samples, print_validation_point
from nanorm.reward import ENSEMBLE_OBJECTIVES
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer
from nanorm.training import progress, stop_if_not_finite


@dataclass
class PPOConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # initialises the policy, and is the frozen reference pi_sft
    rm_ckpt: str = "out/rm/ckpt.pt"      # the frozen reward model; also initialises the critic. Several,
                                         # comma-separated: an ensemble of RMs (the first initialises the critic)
    rm_objective: str = "mean"           # ensemble only: mean | worst | uwo (mean - uwo_lambda * variance),
    uwo_lambda: float = 1.0              # Coste et al. 2024; lesson 06, nanorm/experiments/rm_ensemble.py
    out_dir: str = "out/ppo"
    tokenizer: str = DEFAULT_RANKS
    resume: str = ""                     # a train_ppo checkpoint to continue from
    # rollouts
    n_iters: int = 60                    # PPO iterations (rollout + update)
    batch_size: int = 64                 # prompts (= responses) per rollout
    max_response_tokens: int = 48        # length limit of a response
    temperature: float = 1.0             # sampling temperature, used for every log-prob too
    truncation_penalty: float = -3.0     # reward for a response that hits the limit without EOS (normalised units)
    # reward
    beta: float = 0.2                    # KL coefficient (initial value if adaptive)
    kl_ctl: str = "fixed"                # fixed | adaptive (Ziegler et al. 2019)
    kl_target: float = 3.0               # adaptive: target KL per response (nats)
    kl_horizon: int = 10000              # adaptive: horizon in rollouts
    whiten_rewards: bool = False         # whiten the per-token rewards of each batch before GAE
    # advantages
    gamma: float = 1.0                   # discount (one response = one episode)
    lam: float = 0.95                    # GAE lambda
    # update
    ppo_epochs: int = 4                  # passes over each rollout batch
    minibatch_size: int = 16             # responses per gradient step
    lr: float = 3e-5                     # policy learning rate (Adam)
    critic_lr: float = 1e-4              # critic learning rate (Adam)
    clip_eps: float = 0.2                # policy ratio clip (Schulman et al. 2017)
    vf_clip: float = 0.2                 # value clip around the rollout's values
    target_kl: float = 0.0               # stop an iteration's epochs early when approx KL exceeds this (0 = off)
    grad_clip: float = 1.0
    # logging and evaluation
    eval_interval: int = 10              # iterations between held-out evaluations (proxy, gold, KL)
    n_eval_prompts: int = 200            # validation prompts for those
    sample_interval: int = 20            # iterations between sample tables
    n_test_prompts: int = 500            # final: test prompts for the win rate against SFT
    best_of: int = 16                    # final: best-of-n baseline against the RM (0 = skip)
    # system
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 1337
    threads: int = 0

    def check(self):
        check_system(self)
        at_least(self, 1, "batch_size", "max_response_tokens", "kl_horizon", "ppo_epochs", "minibatch_size",
                 "eval_interval", "n_eval_prompts", "sample_interval", "n_test_prompts")
        at_least(self, 0, "n_iters", "beta", "lr", "critic_lr", "target_kl", "best_of")
        above(self, 0, "temperature", "kl_target", "clip_eps", "vf_clip", "grad_clip")
        one_of(self, "kl_ctl", ("fixed", "adaptive"))
        one_of(self, "rm_objective", ENSEMBLE_OBJECTIVES)
        at_least(self, 0, "uwo_lambda")
        require(self, "rm_ckpt", all(self.rm_ckpt.split(",")), "expected checkpoint paths, comma-separated")
        within(self, 0, 1, "gamma", "lam")
        require(self, "minibatch_size", self.batch_size % self.minibatch_size == 0,
                f"must divide --batch_size={self.batch_size}")
        at_most_prompts(self, batch_size="train", n_eval_prompts="val", n_test_prompts="test")
        warn_if(self, "n_iters", self.n_iters == 0, "nothing is trained; the checkpoint is the SFT policy")
        warn_if(self, "lr", self.lr == 0 < self.n_iters, "the policy is not trained (only the critic)")


def main(cfg):
    device = start(cfg)   # print the config, pick the device, set threads and seeds
    t_start = time.time()

    # Models: the policy (from SFT), the frozen SFT reference, the frozen RM, and the critic (from the RM)
    tok = load_tokenizer(cfg.tokenizer)
    policy, ref, rm, sft_ckpt = load_policy_ref_rm(cfg.sft_ckpt, cfg.rm_ckpt, tok, device,   # rm: normalised
                                                   cfg.rm_objective, cfg.uwo_lambda)
    critic = ScalarHeadModel(rm.cfg).to(device)
    first = getattr(rm, "members", [rm])[0]                               # an ensemble: its first RM
    critic.trunk.load_state_dict(first.trunk.state_dict())                # V(s_t) starts as the RM's opinion
    critic.head.load_state_dict(first.head.state_dict())                  # (its scalar head: not a surprise reader)
    policy_opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=1e-5)
    kl_ctl = kl_controller(cfg.kl_ctl, cfg.beta, cfg.kl_target, cfg.kl_horizon)   # fixed, or adaptive beta
    train_prompts = world.make_split("train", seed=cfg.seed)
    eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)
    test_prompts = world.make_split("test", cfg.n_test_prompts, seed=cfg.seed)
    check_block_size(tok, train_prompts + eval_prompts + test_prompts, cfg.max_response_tokens, (cfg.sft_ckpt, policy.cfg))
    rng = random.Random(cfg.seed)                                   # which prompts each rollout draws
    gen = torch.Generator(device=device).manual_seed(cfg.seed)      # the rollouts' samples
    start_iter = 0
    if cfg.resume:   # continue exactly: weights, optimizers, beta and the rollouts' random streams
        state = resume_run(cfg.resume, "ppo", tok, cfg.n_iters, {"state_dict": policy, "critic_state_dict": critic,
                           "policy_opt": policy_opt, "critic_opt": critic_opt}, rng, gen, (cfg.sft_ckpt, sft_ckpt))
        kl_ctl.beta, start_iter = state["beta"], state["step"]
    out = OutDir(cfg.out_dir)   # every file is written beside its final name until out.commit()
    log = out.metrics(resumed_rows(cfg.resume, start_iter, "iter") if cfg.resume else ())   # --resume: its history

    # The PPO loop
    pbar = progress(cfg.n_iters - start_iter, "ppo")
    for it in range(start_iter, cfg.n_iters):
        t_iter = time.time()
        # 1. Rollout: sample one response per prompt from the current policy (KV-cached, stops at EOS)
        batch = rng.sample(train_prompts, cfg.batch_size)
        prompt_ids = [tok.encode_prompt(p.text) for p in batch]
        policy.eval()
        with torch.no_grad(), autocast(device, cfg.dtype):
            responses, finished = policy.generate(prompt_ids, cfg.max_response_tokens, tok.eos_id, tok.pad_id,
                                                  temperature=cfg.temperature, generator=gen)
        response_mask = response_mask_from(responses, tok.eos_id)                 # (B, Tr) True up to EOS
        tokens, mask, Tp = join_prompt_response(prompt_ids, responses, response_mask, tok.pad_id)

        # 2. Score: log-probs under policy and reference, values, and the RM's sequence-level score
        with torch.no_grad(), autocast(device, cfg.dtype):
            logprobs, _ = response_logprobs(policy, tokens, mask, Tp, cfg.temperature)        # (B, Tr)
            ref_logprobs, _ = response_logprobs(ref, tokens, mask, Tp, cfg.temperature)       # (B, Tr)
            values = critic(tokens, mask)[:, Tp - 1:-1].float()   # (B, Tr) V before each response token
            score = rm.score(tokens, mask, joined_response_mask(mask, Tp)).float()   # (B,) r at the final real token
        score = torch.where(finished, score, torch.full_like(score, cfg.truncation_penalty))   # no EOS: a penalty

        # 3. Reward: R = r - beta * KL, spread over tokens (the KL part) with r on the last real token
        rewards, kl = kl_penalized_rewards(score, logprobs, ref_logprobs, response_mask, kl_ctl.beta)   # (B, Tr)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, response_mask, shift_mean=False)   # scale only: the sign of r is kept

        # 4. Advantages: GAE from the critic's values; whitened over the batch's real tokens
        advantages, returns = gae(rewards, values, response_mask, cfg.gamma, cfg.lam)   # (B, Tr) each
        advantages = whiten(advantages, response_mask)

        # 5. Update: epochs of minibatches, clipped surrogate for the policy, clipped value loss for the critic
        policy.train()                                          # (the critic never leaves training mode)
        stats = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "approx_kl": [], "entropy": [], "vclipfrac": []}
        for epoch in range(cfg.ppo_epochs):
            order = torch.randperm(cfg.batch_size, generator=torch.Generator().manual_seed(cfg.seed + it * 100 + epoch))
            for first in range(0, cfg.batch_size, cfg.minibatch_size):
                mb = order[first:first + cfg.minibatch_size].to(device)
                with autocast(device, cfg.dtype):
                    new_logprobs, logits = response_logprobs(policy, tokens[mb], mask[mb], Tp, cfg.temperature)
                    new_values = critic(tokens[mb], mask[mb])[:, Tp - 1:-1].float()
                pg_loss, pg_stats = ppo_policy_loss(new_logprobs, logprobs[mb], advantages[mb], response_mask[mb],
                                                    cfg.clip_eps)
                vf_loss, vf_stats = ppo_value_loss(new_values, values[mb], returns[mb], response_mask[mb], cfg.vf_clip)
                policy_opt.zero_grad(set_to_none=True)
                critic_opt.zero_grad(set_to_none=True)
                (pg_loss + vf_loss).backward()     # separate networks: each loss reaches only its own
                policy_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                critic_norm = torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.grad_clip)
                policy_opt.step()
                critic_opt.step()
                stop_if_not_finite(f"ppo iteration {it + 1}", "lower --lr or --critic_lr", reward=score,
                                   pg_loss=pg_loss, vf_loss=vf_loss, policy_grad=policy_norm, critic_grad=critic_norm)
                entropy = masked_mean(entropy_from_logits(logits.detach()), response_mask[mb]).item()
                for k, v in {"pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(), "entropy": entropy,
                             **pg_stats, "vclipfrac": vf_stats["vclipfrac"]}.items():
                    stats[k].append(v)
                if cfg.target_kl and pg_stats["approx_kl"] > 1.5 * cfg.target_kl:
                    break                          # the policy moved too far from the rollout's: stop early
            if cfg.target_kl and stats["approx_kl"][-1] > 1.5 * cfg.target_kl:
                break

        # 6. Log
        mean_kl = (kl * response_mask).sum(1).mean().item()    # per-response KL of this batch
        kl_ctl.update(mean_kl, cfg.batch_size)
        golds = [world.gold(p, tok.decode_response(r[m].tolist()), f)
                 for p, r, m, f in zip(batch, responses.cpu(), response_mask.cpu(), finished.tolist())]
        record = {"iter": it + 1, "proxy": score.mean().item(), "gold": float(np.mean(golds)), "kl": mean_kl,
                  "beta": kl_ctl.beta, "length_tokens": response_mask.sum(1).float().mean().item(),
                  "eos_rate": finished.float().mean().item(),
                  "explained_variance": explained_variance(values, returns, response_mask),
                  "epochs_done": epoch + 1, "seconds": time.time() - t_iter,
                  **{k: float(np.mean(v)) for k, v in stats.items()}}
        if (it + 1) % cfg.eval_interval == 0 or it + 1 == cfg.n_iters:
            record["eval"], rows = validation_point(policy, ref, rm, tok, eval_prompts, cfg, device)
            print_validation_point("iter", it + 1, record["eval"])
            if (it + 1) % cfg.sample_interval == 0 or it + 1 == cfg.n_iters:
                print_samples(rows, eval_prompts)
            policy.train()
        log.log(**record)
        pbar.update(1)
        pbar.set_postfix(proxy=f"{record['proxy']:+.2f}", gold=f"{record['gold']:+.2f}", kl=f"{mean_kl:.2f}")
    pbar.close()

    train_time = time.time() - t_start
    ckpt = {"kind": "ppo", "model_config": asdict(policy.cfg), "state_dict": policy.state_dict(),
            "critic_state_dict": critic.state_dict(), "policy_opt": policy_opt.state_dict(),
            "critic_opt": critic_opt.state_dict(), "beta": kl_ctl.beta, "config": asdict(cfg), "step": cfg.n_iters,
            "tokenizer": tokenizer_info(tok), "sft_config": sft_ckpt["config"], **random_streams(rng, gen)}
    save_checkpoint(out.path("ckpt.pt"), ckpt)

    # Final evaluation on held-out TEST prompts: did the policy truly get better (gold), or only the proxy?
    summaries, _ = compare_on_test({"ppo": policy}, ref, rm, tok, test_prompts, cfg, device, best_of=cfg.best_of)
    report = {"n_test_prompts": len(test_prompts), **summaries, "train_seconds": round(train_time, 1),
              "total_seconds": round(time.time() - t_start, 1)}
    write_json(out.path("eval.json"), report)
    out.commit()   # ckpt.pt, metrics.jsonl and eval.json, all three into place
    print(f"saved {cfg.out_dir}/ckpt.pt after {train_time:.0f}s of training")
    print_policy_table(summaries, len(test_prompts))
    print_footer(device, report["total_seconds"])
    return report


if __name__ == "__main__":
    cli(main, PPOConfig)
