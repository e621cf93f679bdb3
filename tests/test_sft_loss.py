"""The SFT loss: cross-entropy on response tokens only, checked by hand and against a loop; and the demonstration counts."""

import math

import pytest
import torch

from nanorm.data import demonstration_counts
from nanorm.sft import sft_loss, shift_for_next_token


@pytest.mark.exercise("2.1")
def test_hand_worked_value_ignores_prompt_and_padding():
    V = 4
    logits = torch.zeros(1, 4, V)          # uniform everywhere: each counted token costs log 4 ...
    logits[0, 0, 2] = 50.0                 # ... except position 0 (prompt: must not count, however wrong)
    logits[0, 3, 1] = 50.0                 # and position 3 (padding: must not count either)
    targets = torch.tensor([[1, 2, 3, 0]])
    loss_mask = torch.tensor([[False, True, True, False]])
    assert sft_loss(logits, targets, loss_mask).item() == pytest.approx(math.log(V))


@pytest.mark.exercise("2.1")
def test_matches_a_loop_over_response_tokens_and_only_they_get_gradient():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 9, (3, 7), generator=g)
    response_mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0],     # prompt 2 tokens, response 3, padding 2
                                  [0, 0, 0, 0, 1, 1, 1],
                                  [0, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    inputs, targets, loss_mask = shift_for_next_token(tokens, response_mask)
    logits = torch.randn(3, 6, 9, generator=g, dtype=torch.float64, requires_grad=True)
    loss = sft_loss(logits, targets, loss_mask)

    terms = [-torch.log_softmax(logits[b, t], -1)[targets[b, t]]
             for b in range(3) for t in range(6) if loss_mask[b, t]]
    assert len(terms) == 3 + 3 + 1                           # the mean is over the 7 response tokens
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item())
    loss.backward()
    assert (logits.grad[~loss_mask] == 0).all() and (logits.grad[loss_mask].abs().sum(-1) > 0).all()


def test_demonstration_counts_share_the_total_equally_between_families():
    fams = ["a", "a", "b", "c", "c", "c", "c", "c"]
    # 8 prompts x 3 = 24 demonstrations, 8 per family: a 8/2 = 4 each, b 8, c 8/5 = 1.6 -> 2
    assert demonstration_counts(fams, 3) == [4, 4, 8, 2, 2, 2, 2, 2]
    assert demonstration_counts(fams, 3, balance=False) == [3] * 8
    # a huge family still gets one demonstration per prompt: 102 / 3 = 34 per family, 34 / 100 rounds to 0
    assert demonstration_counts(["a", "b"] + ["c"] * 100, 1) == [34, 34] + [1] * 100
