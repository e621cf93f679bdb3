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


def sequence_logprobs(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    """log pi(y | x) = sum over response tokens of log pi(y_t | x, y_<t).

    logits: (B, T, V) where logits[:, t] PREDICTS tokens[:, t] (the caller has already shifted by one).
    tokens: (B, T) token ids; mask: (B, T) bool, True on response tokens (prompt and padding False).
    Returns (B,). Token ids under mask=False are never read, so they may be anything (e.g. -100).
    """
    tokens = tokens.masked_fill(~mask, 0)  # (B, T) make ignored ids safe to gather
    # BEGIN SOLUTION
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V) log pi(. | context)
    token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T) log pi(y_t | x, y_<t)
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
    # BEGIN SOLUTION
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
