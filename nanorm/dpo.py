"""
Direct Preference Optimization (Rafailov et al. 2023): the Bradley-Terry loss of reward.py, with the
reward model replaced by the policy's own log-probability ratio against a frozen reference model,

    r_hat(x, y) = beta * log( pi_theta(y | x) / pi_ref(y | x) )            (Rafailov et al. 2023 eq. 5, Z(x) cancels)
    loss        = -E[ log sigma( r_hat(x, y_w) - r_hat(x, y_l) ) ]          (Rafailov et al. 2023 eq. 7)

No reward model, no sampling, no critic: one supervised pass over (prompt, chosen, rejected) triples.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from nanorm.data import encode_example, pack_sequences, token_logprobs
from nanorm.reward import bradley_terry_loss, kwise_pairs


def sequence_logprobs(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    """log pi(y | x) = sum over response tokens of log pi(y_t | x, y_<t).

    logits: (B, T, V) where logits[:, t] PREDICTS tokens[:, t] (the caller has already shifted by one).
    tokens: (B, T) token ids; mask: (B, T) bool, True on response tokens (prompt and padding False).
    Returns (B,). Token ids under mask=False are never read, so they may be anything (e.g. -100).
    """
    # BEGIN SOLUTION lesson 8, exercise 2: sequence log-probabilities
    # the per-token log-probs are nanorm/data.py::token_logprobs (lesson 5, exercise 7); only mask=True counts
    tokens = tokens.masked_fill(~mask, 0)  # (B, T) make ignored ids safe to gather
    token_logp = token_logprobs(logits, tokens)  # (B, T) log pi(y_t | x, y_<t)
    seq_logp = torch.where(mask, token_logp, torch.zeros_like(token_logp)).sum(-1)  # (B,) sum over response
    # END SOLUTION
    return seq_logp


def dpo_loss(pi_logp_w: Tensor, pi_logp_l: Tensor, ref_logp_w: Tensor, ref_logp_l: Tensor,
             beta: float) -> tuple[Tensor, dict]:
    """DPO loss, mean over pairs.

    pi_logp_w, pi_logp_l:   (N,) log pi_theta(y_w | x), log pi_theta(y_l | x)  (sequence_logprobs, with grad)
    ref_logp_w, ref_logp_l: (N,) the same under the frozen reference model (no grad)
    beta: strength of the implicit KL constraint (larger = stay closer to the reference).

    stats (floats), with the implicit rewards r_hat = beta * (log pi - log pi_ref):
      rewards_chosen, rewards_rejected   mean r_hat(x, y_w), mean r_hat(x, y_l)
      reward_margin                      mean of r_hat(x, y_w) - r_hat(x, y_l)
      reward_accuracy                    fraction of pairs with r_hat(x, y_w) > r_hat(x, y_l) (strict; 0 at init)
    """
    # BEGIN SOLUTION lesson 8, exercise 1: the DPO loss
    r_chosen = beta * (pi_logp_w - ref_logp_w)  # (N,) implicit reward of y_w, Rafailov et al. 2023 eq. 5
    r_rejected = beta * (pi_logp_l - ref_logp_l)  # (N,) implicit reward of y_l
    loss = -F.logsigmoid(r_chosen - r_rejected).mean()  # Rafailov et al. 2023 eq. 7
    # END SOLUTION
    with torch.no_grad():
        stats = {
            "rewards_chosen": r_chosen.mean().item(),
            "rewards_rejected": r_rejected.mean().item(),
            "reward_margin": (r_chosen - r_rejected).mean().item(),
            "reward_accuracy": (r_chosen > r_rejected).float().mean().item(),
        }
    return loss, stats


# -----------------------------------------------------------------------------
# K-wise batches for DPO (train_dpo.py): the reward model's layout, with log-probs instead of scores
#
# A batch of prompts, prompt i with K_i ranked responses, is laid out flat, as in nanorm/reward.py:
# M = sum_i K_i sequences [prompt][response][pad], prompt 0's responses first. Each sequence is forwarded
# ONCE through the policy (and once, up front, through the reference); the C(K_i,2) pairs of prompt i
# then index into the (M,) vector of sequence log-probs with reward.py::kwise_pairs.


def encode_comparison(tok, comparison, max_response_tokens, block_size):
    """One ranked comparison -> ([(prompt ids, response ids), ...], ranking), by the one encoding rule of
    every stage (nanorm/data.py::encode_example): EOS only on a response that finished by itself, a
    response cut to max_response_tokens, the prompt cut on the LEFT to fit block_size."""
    pairs = [encode_example(tok, comparison.prompt, text, block_size, max_response_tokens, done)
             for text, done in zip(comparison.responses, comparison.finished)]
    return pairs, list(comparison.ranking)


def pack_kwise(examples, pad_id, device="cpu"):
    """examples: [([(prompt ids, response ids), ...], ranking), ...] -> the flat K-wise batch.

    Returns tokens (M, T), response_mask (M, T) (True on response tokens, EOS included; prompt and
    padding False), and idx_w, idx_l, group (P,) from reward.py::kwise_pairs.
    """
    seqs = [pair for pairs, _ in examples for pair in pairs]             # (M,) prompt i's K_i pairs in a row
    tokens, _, response_mask = pack_sequences([p for p, _ in seqs], [r for _, r in seqs], pad_id, device)
    idx_w, idx_l, group = kwise_pairs([ranking for _, ranking in examples])
    return tokens, response_mask, idx_w.to(device), idx_l.to(device), group.to(device)


def batch_logprobs(model, tokens, response_mask):
    """(M,) log pi(y | x) of each sequence of a right-padded batch, summed over its response tokens.

    Position t predicts token t+1, so the logits of positions 0..T-2 score tokens 1..T-1. Right padding
    comes after every real token, so plain causal attention gives the unpadded numbers (as in SFT).
    """
    logits = model(tokens[:, :-1])                                          # (M, T-1, V)
    return sequence_logprobs(logits, tokens[:, 1:], response_mask[:, 1:])  # (M,)


@torch.no_grad()
def reference_logprobs(ref, examples, pad_id, device="cpu", batch_prompts=32):
    """log pi_ref(y | x) of every response, once for the whole dataset (the reference is frozen).

    Returns a list with one (K_i,) tensor per example, on the CPU.
    """
    ref.eval()
    out = []
    for start in range(0, len(examples), batch_prompts):
        chunk = examples[start:start + batch_prompts]
        tokens, response_mask, *_ = pack_kwise(chunk, pad_id, device)
        logp = batch_logprobs(ref, tokens, response_mask).float().cpu()    # (M,)
        out.extend(logp.split([len(pairs) for pairs, _ in chunk]))
    return out


def kwise_dpo_loss(pi_logp, ref_logp, idx_w, idx_l, group, beta):
    """The DPO loss over a K-wise batch IS the reward model's loss (reward.py::bradley_terry_loss) with the
    implicit reward r_hat = beta * (log pi - log pi_ref) in place of the RM's score:

        loss = mean over prompts of  1/C(K,2) * sum over that prompt's pairs of  -log sigma(r_hat_w - r_hat_l)

    so a prompt with K=9 (36 pairs) counts as much as one with K=4 (6 pairs) and no single ranking
    dominates a batch (InstructGPT sec. 3.5). The stats are weighted the same way (1/C(K,2) per prompt).

    pi_logp: (M,) policy log-probs (with grad); ref_logp: (M,) reference log-probs; idx_w, idx_l, group: (P,).
    """
    r_hat = beta * (pi_logp - ref_logp)                             # (M,) Rafailov et al. 2023 eq. 5
    loss = bradley_terry_loss(r_hat, idx_w, idx_l, group)           # eq. 7, weighted as InstructGPT eq. 1
    with torch.no_grad():
        n_pairs = torch.bincount(group).double()                     # (G,) C(K_i, 2)
        has_pairs = n_pairs > 0

        def per_prompt_mean(x):                                       # (P,) -> mean over prompts of 1/C(K,2) sum
            sums = torch.zeros_like(n_pairs).index_add(0, group, x.double())
            return (sums[has_pairs] / n_pairs[has_pairs]).mean().item()

        r_w, r_l = r_hat[idx_w], r_hat[idx_l]
        stats = {"rewards_chosen": per_prompt_mean(r_w), "rewards_rejected": per_prompt_mean(r_l),
                 "reward_margin": per_prompt_mean(r_w - r_l), "reward_accuracy": per_prompt_mean((r_w > r_l).float())}
    return loss, stats
