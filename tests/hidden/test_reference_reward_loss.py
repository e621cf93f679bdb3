"""Hidden test (the instructor's, never in a student copy): the K-wise Bradley-Terry loss against an
explicit loop over prompts and pairs, which is itself a solution of exercises 3.3 to 3.5. The grader
(nanorm/course/grade.py) runs it; the student copy ships the hand-worked tests of tests/test_reward_loss.py."""

import math

import pytest
import torch

from nanorm.reward import bradley_terry_loss, kwise_pairs


def naive_loss(r, rankings):
    """InstructGPT eq. 1 written as an explicit loop over prompts and pairs."""
    per_prompt = []
    offset = 0
    for ranking in rankings:
        K = len(ranking)
        total = 0.0
        for i in range(K):
            for j in range(i + 1, K):
                w, l = offset + ranking[i], offset + ranking[j]
                total = total - torch.log(torch.sigmoid(r[w] - r[l]))
        per_prompt.append(total / math.comb(K, 2))
        offset += K
    return sum(per_prompt) / len(per_prompt)


@pytest.mark.exercise("3.3", "3.4", "3.5")
@pytest.mark.parametrize("Ks", [[2], [3, 4], [9, 2, 5, 4], [4, 9, 9]])
def test_kwise_loss_and_grad_match_pair_loop(Ks):
    g = torch.Generator().manual_seed(sum(Ks))
    rankings = [torch.randperm(K, generator=g).tolist() for K in Ks]
    r0 = torch.randn(sum(Ks), generator=g, dtype=torch.float64)

    r = r0.clone().requires_grad_(True)
    loss = bradley_terry_loss(r, *kwise_pairs(rankings))
    loss.backward()

    r_ref = r0.clone().requires_grad_(True)
    loss_ref = naive_loss(r_ref, rankings)
    loss_ref.backward()

    assert torch.allclose(loss, loss_ref)
    assert torch.allclose(r.grad, r_ref.grad)
