"""Hidden test (the instructor's, never in a student copy): vectorised GAE against a scalar loop, one
sequence and one step at a time, which is itself a solution of exercise 5.2. The grader
(nanorm/course/grade.py) runs it; the student copy ships the hand-worked tests of tests/test_ppo_math.py."""

import pytest
import torch

from nanorm.ppo import gae


def prefix_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


def gae_reference(rewards, values, lengths, gamma, lam):
    """Scalar loop, one sequence and one step at a time."""
    B, T = rewards.shape
    advantages = torch.zeros(B, T, dtype=rewards.dtype)
    returns = torch.zeros(B, T, dtype=rewards.dtype)
    for b in range(B):
        L = lengths[b]
        A_next = 0.0
        for t in reversed(range(L)):
            V_next = values[b, t + 1].item() if t + 1 < L else 0.0  # episode over after token L-1
            delta = rewards[b, t].item() + gamma * V_next - values[b, t].item()
            A_next = delta + gamma * lam * A_next
            advantages[b, t] = A_next
            returns[b, t] = A_next + values[b, t].item()
    return advantages, returns


@pytest.mark.exercise("5.2")
@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.5, 0.0), (0.9, 0.5)])
def test_gae_matches_scalar_loop(gamma, lam):
    g = torch.Generator().manual_seed(int(100 * gamma + 10 * lam))
    B, T = 6, 9
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    lengths[0], lengths[1] = 1, T  # always include the extremes
    mask = prefix_mask(lengths, T)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    # garbage on padding must not matter
    rewards = torch.where(mask, rewards, torch.full_like(rewards, 123.0))
    values = torch.where(mask, values, torch.full_like(values, -77.0))

    advantages, returns = gae(rewards, values, mask, gamma=gamma, lam=lam)
    adv_ref, ret_ref = gae_reference(rewards, values, lengths, gamma, lam)
    assert torch.allclose(advantages, adv_ref)
    assert torch.allclose(returns, ret_ref)
    assert (advantages[~mask] == 0).all() and (returns[~mask] == 0).all()
