"""
The supervised fine-tuning loss: next-token cross-entropy on the RESPONSE tokens only.

    L_SFT = - (1 / N_resp) * sum over response positions t of log pi(y_t | x, y_<t)

The prompt is context, not something the policy should learn to write, so its positions are masked
out of the loss; padding is masked too. N_resp counts the response tokens in the batch (EOS included:
learning when to stop is part of the job).
"""

import torch
from torch.nn import functional as F


def sft_loss(logits, targets, loss_mask):
    """logits (B, T, V) predicting targets (B, T); loss_mask (B, T) bool, True on response tokens."""
    # BEGIN SOLUTION lesson 2, exercise 1: next-token loss on response tokens only
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")   # (B*T,)
    mask = loss_mask.flatten().float()
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)   # mean over response tokens only
    # END SOLUTION


def shift_for_next_token(tokens, response_mask):
    """Inputs see tokens[:, :-1]; position t predicts tokens[:, t+1]. Returns (inputs, targets, loss_mask)."""
    return tokens[:, :-1], tokens[:, 1:], response_mask[:, 1:]
