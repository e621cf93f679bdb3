"""DPO loss and sequence log-probabilities, checked by hand and against a loop."""

import math

import pytest
import torch

from nanorm.dpo import dpo_loss, sequence_logprobs


@pytest.mark.exercise("8.1")
def test_dpo_loss_hand_numbers():
    beta = 0.1
    # pair 0: policy moved +1 on y_w and -1 on y_l relative to ref -> rewards +0.1, -0.1, margin +0.2
    # pair 1: policy unchanged on y_w, +2 on y_l                   -> rewards  0.0, +0.2, margin -0.2
    pi_w = torch.tensor([-10.0, -5.0])
    pi_l = torch.tensor([-12.0, -4.0])
    ref_w = torch.tensor([-11.0, -5.0])
    ref_l = torch.tensor([-11.0, -6.0])
    loss, stats = dpo_loss(pi_w, pi_l, ref_w, ref_l, beta)
    expected = (math.log(1 + math.exp(-0.2)) + math.log(1 + math.exp(0.2))) / 2  # 0.5981 and 0.7981
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["rewards_chosen"] == pytest.approx((0.1 + 0.0) / 2)
    assert stats["rewards_rejected"] == pytest.approx((-0.1 + 0.2) / 2)
    assert stats["reward_margin"] == pytest.approx(0.0, abs=1e-7)
    assert stats["reward_accuracy"] == pytest.approx(0.5)


@pytest.mark.exercise("8.1")
def test_dpo_loss_single_pair_value():
    loss, _ = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0]), 0.1)
    assert loss.item() == pytest.approx(0.5981389, abs=1e-6)  # log(1 + e^-0.2)


@pytest.mark.exercise("8.1")
def test_dpo_at_initialisation_is_log2_with_zero_rewards():
    g = torch.Generator().manual_seed(0)
    logp_w = -20 * torch.rand(8, generator=g, dtype=torch.float64)
    logp_l = -20 * torch.rand(8, generator=g, dtype=torch.float64)
    pi_w, pi_l = logp_w.clone().requires_grad_(True), logp_l.clone().requires_grad_(True)
    loss, stats = dpo_loss(pi_w, pi_l, logp_w, logp_l, beta=0.5)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-15)  # margin is exactly 0: -log sigma(0)
    assert stats["rewards_chosen"] == 0.0 and stats["rewards_rejected"] == 0.0
    assert stats["reward_margin"] == 0.0 and stats["reward_accuracy"] == 0.0  # ties are not "correct"
    # first step pushes log pi(y_w) up and log pi(y_l) down, each by beta * sigma(0) / N
    loss.backward()
    assert torch.allclose(pi_w.grad, torch.full((8,), -0.5 * 0.5 / 8, dtype=torch.float64))
    assert torch.allclose(pi_l.grad, torch.full((8,), +0.5 * 0.5 / 8, dtype=torch.float64))


@pytest.mark.exercise("5.7", "8.2")
def test_sequence_logprobs_matches_loop_ragged():
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 6, 7
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, V, (B, T), generator=g)
    # prompt positions (False), response (True), padding (False); different per row
    mask = torch.tensor([[False, True, True, True, False, False],
                         [False, False, False, True, True, True],
                         [True, False, False, False, False, False]])
    tokens = tokens.masked_fill(~mask, -100)  # ids outside the mask may be anything

    out = sequence_logprobs(logits, tokens, mask)

    expected = torch.zeros(B, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                expected[b] += torch.log_softmax(logits[b, t], dim=-1)[tokens[b, t]]
    assert out.shape == (B,)
    assert torch.allclose(out.double(), expected, atol=1e-6)


@pytest.mark.exercise("5.7", "8.2")
def test_sequence_logprobs_uniform_hand_case():
    V = 4
    logits = torch.zeros(1, 3, V)  # uniform: each token costs log(1/4)
    tokens = torch.tensor([[1, 2, 3]])
    mask = torch.tensor([[True, True, False]])
    assert sequence_logprobs(logits, tokens, mask).item() == pytest.approx(2 * math.log(1 / V))
