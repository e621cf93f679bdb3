"""PPO pieces, checked on hand-worked numbers (GAE against a scalar loop is a hidden test:
tests/hidden/test_reference_gae.py)."""

import math

import pytest
import torch

from nanorm.data import response_logprobs, token_logprobs
from nanorm.ppo import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    explained_variance,
    gae,
    kl_penalized_rewards,
    masked_mean,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)

NAN = float("nan")


def prefix_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


# -----------------------------------------------------------------------------
# log-probabilities of the sampled tokens

@pytest.mark.exercise("5.7")
def test_token_logprobs_hand_case():
    # logits (0, 0, ln 2) -> probabilities (1/4, 1/4, 1/2); (ln 3, 0, 0) -> (3/5, 1/5, 1/5)
    logits = torch.tensor([[[0.0, 0.0, math.log(2)], [math.log(3), 0.0, 0.0]]])   # (1, 2, 3)
    got = token_logprobs(logits, torch.tensor([[2, 1]]))
    assert torch.allclose(got, torch.tensor([[math.log(1 / 2), math.log(1 / 5)]]), atol=1e-6)
    got = token_logprobs(logits, torch.tensor([[0, 0]]))
    assert torch.allclose(got, torch.tensor([[math.log(1 / 4), math.log(3 / 5)]]), atol=1e-6)


@pytest.mark.exercise("5.7")
def test_response_logprobs_shifts_by_one_and_applies_the_temperature():
    # 2 prompt tokens, 2 response tokens; position t - 1 predicts token t, logits are divided by T = 2
    logits = torch.zeros(1, 4, 3)
    logits[0, 1] = torch.tensor([0.0, 0.0, 2 * math.log(2)])   # / 2 -> (1/4, 1/4, 1/2): predicts token 2
    logits[0, 2] = torch.tensor([2 * math.log(3), 0.0, 0.0])   # / 2 -> (3/5, 1/5, 1/5): predicts token 3
    logits[0, 3] = 100.0                                       # predicts nothing: past the last token
    tokens = torch.tensor([[1, 1, 2, 0]])
    logprobs, scaled = response_logprobs(lambda t, m: logits, tokens, torch.ones_like(tokens, dtype=torch.bool),
                                         n_prompt=2, temperature=2.0)
    assert torch.allclose(logprobs, torch.tensor([[math.log(1 / 2), math.log(3 / 5)]]), atol=1e-6)
    assert torch.allclose(scaled, logits[:, 1:3] / 2)


# -----------------------------------------------------------------------------
# KL-penalised rewards

@pytest.mark.exercise("5.1")
def test_kl_penalized_rewards_ragged_hand_case():
    # row 0 has 3 real tokens, row 1 has 1; the rest is padding (nan there must not leak)
    mask = prefix_mask([3, 1], 4)
    logprobs = torch.tensor([[-1.0, -2.0, -3.0, NAN],
                             [-0.5, NAN, NAN, NAN]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -3.0, -7.0],
                                 [-1.0, -7.0, -7.0, -7.0]])
    score = torch.tensor([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(score, logprobs, ref_logprobs, mask, beta=0.1)

    expected_kl = torch.tensor([[0.5, -1.0, 0.0, 0.0],
                                [0.5, 0.0, 0.0, 0.0]])
    expected_rewards = torch.tensor([[-0.05, 0.1, 0.0 + 2.0, 0.0],  # score on token 2, the last real one
                                     [-0.05 - 1.0, 0.0, 0.0, 0.0]])  # length 1: KL and score on token 0
    assert torch.allclose(kl, expected_kl)
    assert torch.allclose(rewards, expected_rewards)
    # total reward of a row = score - beta * sum KL
    assert torch.allclose(rewards.sum(1), score - 0.1 * expected_kl.sum(1))


@pytest.mark.exercise("5.1")
def test_kl_penalized_rewards_full_length_row():
    mask = prefix_mask([4], 4)  # cut at the length limit: the score still goes on the last position
    rewards, _ = kl_penalized_rewards(torch.tensor([3.0]), torch.zeros(1, 4), torch.zeros(1, 4), mask, beta=0.5)
    assert torch.equal(rewards, torch.tensor([[0.0, 0.0, 0.0, 3.0]]))


# -----------------------------------------------------------------------------
# GAE

@pytest.mark.exercise("5.2")
def test_gae_three_step_hand_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    # gamma = 1, lam = 0.5:
    #   t=2: delta = 1 + 0 - 0.5 = 0.5            A = 0.5
    #   t=1: delta = 0 + 0.5 - 0.5 = 0            A = 0 + 0.5 * 0.5  = 0.25
    #   t=0: delta = 0                            A = 0 + 0.5 * 0.25 = 0.125
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(advantages, torch.tensor([[0.125, 0.25, 0.5]]))
    assert torch.allclose(returns, torch.tensor([[0.625, 0.75, 1.0]]))
    # lam = 1 is Monte Carlo: returns are the reward-to-go (1 everywhere), A = 1 - V
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(returns, torch.ones(1, 3))
    assert torch.allclose(advantages, torch.full((1, 3), 0.5))
    # lam = 0 is one-step TD: A = delta
    advantages, _ = gae(rewards, values, mask, gamma=1.0, lam=0.0)
    assert torch.allclose(advantages, torch.tensor([[0.0, 0.0, 0.5]]))


# -----------------------------------------------------------------------------
# masked statistics

def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, NAN], [4.0, NAN, NAN]])
    mask = prefix_mask([2, 1], 3)
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    assert torch.allclose(masked_mean(x, mask, dim=1), torch.tensor([1.5, 4.0]))


@pytest.mark.exercise("5.5")
def test_whiten_masked_mean_zero_std_one():
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    mask = prefix_mask([7, 1, 4, 3, 6], T)
    x = 3.0 + 2.5 * torch.randn(B, T, generator=g, dtype=torch.float64)
    x = torch.where(mask, x, torch.full_like(x, 1e6))  # padding garbage
    w = whiten(x, mask)
    real = w[mask]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert real.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    assert (w[~mask] == 0).all()
    # shift_mean=False: same scale, mean left where it was
    w2 = whiten(x, mask, shift_mean=False)
    assert w2[mask].mean().item() == pytest.approx(x[mask].mean().item())
    assert w2[mask].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


def test_entropy_from_logits():
    V = 5
    uniform = torch.zeros(2, 3, V)
    assert torch.allclose(entropy_from_logits(uniform), torch.full((2, 3), math.log(V)))
    peaked = torch.tensor([[[100.0, 0.0, 0.0]]])
    assert entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(2, 4, 11, generator=torch.Generator().manual_seed(1))
    ref = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.allclose(entropy_from_logits(logits), ref, atol=1e-6)


def test_explained_variance_hand_cases():
    mask = prefix_mask([4], 5)
    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0, 99.0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)  # perfect critic
    assert explained_variance(torch.full((1, 5), 2.5), returns, mask) == pytest.approx(0.0)  # constant critic
    # residual (1, 0, 0, 0): var 0.1875; Var[R] = 1.25 -> 1 - 0.15 = 0.85
    values = torch.tensor([[0.0, 2.0, 3.0, 4.0, -50.0]])
    assert explained_variance(values, returns, mask) == pytest.approx(0.85)


# -----------------------------------------------------------------------------
# PPO losses

@pytest.mark.exercise("5.3")
def test_ppo_policy_loss_hand_numbers():
    eps = 0.2
    #            inside clip  above 1+eps, A>0  below 1-eps, A<0  below 1-eps, A>0  (padding)
    ratio = torch.tensor([[1.1, 1.5, 0.5, 0.5, 50.0]])
    A = torch.tensor([[1.0, 2.0, -1.0, 1.0, 100.0]])
    mask = prefix_mask([4], 5)
    old_logprobs = torch.full((1, 5), -1.0)
    logprobs = (old_logprobs + ratio.log()).requires_grad_(True)

    loss, stats = ppo_policy_loss(logprobs, old_logprobs, A, mask, clip_eps=eps)
    # per-token min(ratio * A, clip(ratio) * A):
    #   1.1 * 1 = 1.1 (no clip) | min(3.0, 1.2 * 2) = 2.4 (clipped) | min(-0.5, 0.8 * -1) = -0.8 (clipped)
    #   min(0.5, 0.8) = 0.5 (ratio outside the range, but the unclipped term is the smaller one: not clipped)
    assert loss.item() == pytest.approx(-(1.1 + 2.4 - 0.8 + 0.5) / 4)
    assert stats["clipfrac"] == pytest.approx(2 / 4)
    k3 = [(r - 1) - math.log(r) for r in (1.1, 1.5, 0.5, 0.5)]
    assert stats["approx_kl"] == pytest.approx(sum(k3) / 4, rel=1e-5)

    # gradient: d/dlogp of -ratio * A / N where unclipped, 0 where clipped or padding
    loss.backward()
    expected_grad = torch.tensor([[-1.1 * 1.0 / 4, 0.0, 0.0, -0.5 * 1.0 / 4, 0.0]])
    assert torch.allclose(logprobs.grad, expected_grad, atol=1e-6)


@pytest.mark.exercise("5.3")
def test_ppo_policy_loss_on_policy_is_minus_mean_advantage():
    # first minibatch of an epoch: pi == pi_old, ratio = 1, nothing clipped, approx_kl = 0
    A = torch.tensor([[0.3, -1.2, 2.0], [0.7, 0.0, 0.0]])
    mask = prefix_mask([3, 1], 3)
    lp = torch.randn(2, 3)
    loss, stats = ppo_policy_loss(lp, lp, A, mask)
    assert loss.item() == pytest.approx(-(0.3 - 1.2 + 2.0 + 0.7) / 4)
    assert stats["clipfrac"] == 0.0 and stats["approx_kl"] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.exercise("5.4")
def test_ppo_value_loss_hand_numbers():
    eps = 0.2
    mask = prefix_mask([3], 4)
    values = torch.tensor([[1.0, 2.0, 2.0, 9.0]], requires_grad=True)
    old_values = torch.tensor([[0.9, 1.0, 1.0, 0.0]])
    returns = torch.tensor([[1.5, 3.0, 1.0, 0.0]])
    loss, stats = ppo_value_loss(values, old_values, returns, mask, clip_eps=eps)
    # token 0: V_clip = 1.0 (within eps)         max(0.25, 0.25) = 0.25
    # token 1: V_clip = 1.2; max((2-3)^2 = 1, (1.2-3)^2 = 3.24) = 3.24   <- clipped term in force
    # token 2: V_clip = 1.2; max((2-1)^2 = 1, (1.2-1)^2 = 0.04) = 1
    assert loss.item() == pytest.approx(0.5 * (0.25 + 3.24 + 1.0) / 3)
    assert stats["vclipfrac"] == pytest.approx(1 / 3)
    loss.backward()
    # grad 0.5 * 2 (V - R) / N on unclipped-in-force tokens; 0 on the clipped one and on padding
    assert torch.allclose(values.grad, torch.tensor([[(1.0 - 1.5) / 3, 0.0, (2.0 - 1.0) / 3, 0.0]]))


# -----------------------------------------------------------------------------
# KL controllers

def test_fixed_kl_controller():
    ctl = FixedKLController(0.05)
    ctl.update(100.0, 512)
    assert ctl.beta == 0.05


@pytest.mark.exercise("5.6")
def test_adaptive_kl_controller():
    n, horizon = 256, 10_000
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=horizon)
    ctl.update(6.6, n)  # KL 10% above target: e = 0.1
    assert ctl.beta == pytest.approx(0.1 * (1 + 0.1 * n / horizon))

    ctl = AdaptiveKLController(0.1, target=6.0, horizon=horizon)
    ctl.update(60.0, n)  # far above: e clipped to +0.2
    assert ctl.beta == pytest.approx(0.1 * (1 + 0.2 * n / horizon))
    assert ctl.beta > 0.1

    ctl = AdaptiveKLController(0.1, target=6.0, horizon=horizon)
    ctl.update(0.0, n)  # far below: e = -1 clipped to -0.2
    assert ctl.beta == pytest.approx(0.1 * (1 - 0.2 * n / horizon))
    assert ctl.beta < 0.1

    ctl = AdaptiveKLController(0.1, target=6.0, horizon=horizon)
    ctl.update(torch.tensor(6.0), n)  # on target (a tensor is fine too): unchanged
    assert ctl.beta == pytest.approx(0.1)
