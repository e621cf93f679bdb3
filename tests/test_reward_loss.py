"""Bradley-Terry reward-model loss and its evaluation helpers, checked on hand-worked values (the check
against a naive pair loop is a hidden test: tests/hidden/test_reference_reward_loss.py)."""

import math

import pytest
import torch

from nanorm.reward import (
    bayes_ceiling,
    RewardEnsemble,
    SurpriseRM,
    bradley_terry_loss,
    ensemble_reward,
    expected_calibration_error,
    kwise_pairs,
    pairwise_accuracy,
    ranking_to_pairs,
    surprise_features,
)
from nanorm.model import ScalarHeadModel


# -----------------------------------------------------------------------------
# rankings -> pairs

@pytest.mark.exercise("3.4")
def test_ranking_to_pairs_hand_example():
    # response 2 > response 0 > response 1
    assert ranking_to_pairs([2, 0, 1]) == [(2, 0), (2, 1), (0, 1)]


@pytest.mark.exercise("3.4")
def test_ranking_to_pairs_counts_and_order():
    assert len(ranking_to_pairs([0, 1, 2])) == 3  # C(3,2)
    ranking = [4, 7, 0, 8, 1, 3, 6, 2, 5]
    pairs = ranking_to_pairs(ranking)
    assert len(pairs) == 36  # C(9,2), the InstructGPT maximum
    assert len(set(pairs)) == 36
    rank_of = {resp: pos for pos, resp in enumerate(ranking)}
    assert all(rank_of[w] < rank_of[l] for w, l in pairs)  # the winner is always ranked higher
    assert ranking_to_pairs([3]) == []


def test_ranking_to_pairs_rejects_repeats():
    with pytest.raises(ValueError):
        ranking_to_pairs([0, 1, 1])


@pytest.mark.exercise("3.4", "3.5")
def test_kwise_pairs_offsets_two_prompts():
    # prompt 0 has K=3 responses (flat 0..2), prompt 1 has K=4 (flat 3..6)
    idx_w, idx_l, group = kwise_pairs([[1, 0, 2], [3, 0, 2, 1]])
    pairs = list(zip(idx_w.tolist(), idx_l.tolist()))
    assert pairs == [
        (1, 0), (1, 2), (0, 2),  # prompt 0, no offset
        (6, 3), (6, 5), (6, 4), (3, 5), (3, 4), (5, 4),  # prompt 1, local index + 3
    ]
    assert group.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert idx_w.dtype == idx_l.dtype == group.dtype == torch.long


# -----------------------------------------------------------------------------
# the loss

@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_loss_weights_prompts_not_pairs():
    # prompt 0: K=2, one pair, wrong way round by 1 -> log(1 + e^1)
    # prompt 1: K=3, three pairs, all right by 1 or 2 -> each prompt counts once, not per pair
    r = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0])
    loss = bradley_terry_loss(r, *kwise_pairs([[0, 1], [0, 1, 2]]))
    p0 = math.log(1 + math.e)
    p1 = (2 * math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 3
    assert loss.item() == pytest.approx((p0 + p1) / 2, abs=1e-6)
    per_pair_mean = (p0 + 3 * p1) / 4
    assert abs(loss.item() - per_pair_mean) > 0.1


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_hand_worked_value_K2():
    # r_w = 1, r_l = 0: -log sigma(1) = log(1 + e^-1) = 0.3133
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0]), *kwise_pairs([[0, 1]]))
    assert loss.item() == pytest.approx(0.3132617, abs=1e-6)
    # equal scores: log 2; loser ahead by 1: log(1 + e)
    assert bradley_terry_loss(torch.tensor([0.0, 0.0]), *kwise_pairs([[0, 1]])).item() == pytest.approx(math.log(2))
    assert bradley_terry_loss(torch.tensor([1.0, 0.0]), *kwise_pairs([[1, 0]])).item() == pytest.approx(1.3132617)


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_loss_is_stable_for_large_margins():
    r = torch.tensor([0.0, 200.0], requires_grad=True)  # winner (index 0) behind by 200
    loss = bradley_terry_loss(r, *kwise_pairs([[0, 1]]))
    loss.backward()
    assert loss.item() == pytest.approx(200.0)  # -log sigma(-200) ~ 200, no inf
    assert torch.allclose(r.grad, torch.tensor([-1.0, 1.0]))


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_prompt_with_single_response_is_skipped():
    r = torch.tensor([1.0, 0.0, 5.0])  # prompt 1 has only one response: no pairs
    loss = bradley_terry_loss(r, *kwise_pairs([[0, 1], [0]]))
    assert loss.item() == pytest.approx(0.3132617, abs=1e-6)


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_soft_targets_hand_worked():
    # r_w = 1, r_l = 0 and 3 of 4 votes for w: 0.75 * log(1 + e^-1) + 0.25 * log(1 + e) = 0.5632617
    r = torch.tensor([1.0, 0.0])
    soft = lambda p: bradley_terry_loss(r, *kwise_pairs([[0, 1]]), p=torch.tensor([p])).item()
    assert soft(0.75) == pytest.approx(0.75 * 0.3132617 + 0.25 * 1.3132617, abs=1e-6)
    assert soft(0.5) == pytest.approx((0.3132617 + 1.3132617) / 2, abs=1e-6)   # a tie: both orders, half each
    assert soft(0.0) == pytest.approx(1.3132617, abs=1e-6)                      # all votes for l: the pair reversed
    # the loss is smallest where the model's sigma(r_w - r_l) equals the label's p: at r_w - r_l = log 3 for 0.75
    r = torch.tensor([math.log(3.0), 0.0], requires_grad=True)
    bradley_terry_loss(r, *kwise_pairs([[0, 1]]), p=torch.tensor([0.75])).backward()
    assert torch.allclose(r.grad, torch.zeros(2), atol=1e-6)


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_soft_targets_of_one_are_the_hard_loss():
    g = torch.Generator().manual_seed(0)
    rankings = [[2, 0, 1, 3], [1, 0], [0, 2, 1]]
    r = torch.randn(9, generator=g)
    idx = kwise_pairs(rankings)
    hard = bradley_terry_loss(r, *idx)
    assert torch.equal(bradley_terry_loss(r, *idx, p=torch.ones(len(idx[0]))), hard)   # bit for bit


# -----------------------------------------------------------------------------
# evaluation helpers

@pytest.mark.exercise("4.1")
def test_pairwise_accuracy_hand_case():
    r_w = torch.tensor([1.0, 2.0, 0.0, 3.0])
    r_l = torch.tensor([0.0, 3.0, 0.0, 1.0])
    assert pairwise_accuracy(r_w, r_l) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


@pytest.mark.exercise("4.2")
def test_ece_hand_case():
    # bin [0.1, 0.2): p = 0.15 twice, outcomes 0 and 1 -> |0.5 - 0.15| = 0.35, weight 1/2
    # bin [0.8, 0.9): p = 0.85 twice, outcomes 1 and 1 -> |1.0 - 0.85| = 0.15, weight 1/2
    p = torch.tensor([0.15, 0.15, 0.85, 0.85])
    y = torch.tensor([0.0, 1.0, 1.0, 1.0])
    assert expected_calibration_error(p, y) == pytest.approx(0.5 * 0.35 + 0.5 * 0.15)


@pytest.mark.exercise("4.2")
def test_ece_calibrated_and_edge_cases():
    # one bin, says 25% and the first response wins 1 time in 4: perfectly calibrated
    assert expected_calibration_error(torch.full((4,), 0.25), torch.tensor([1.0, 0, 0, 0])) == pytest.approx(0.0)
    # p = 1 falls in the last bin, p = 0 in the first
    assert expected_calibration_error(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])) == pytest.approx(0.5)
    assert expected_calibration_error(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])) == pytest.approx(0.5)
    # two bins: [0, 0.5) and [0.5, 1]
    p = torch.tensor([0.2, 0.2, 0.7, 0.7, 0.7])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0])
    expected = (2 / 5) * 0.2 + (3 / 5) * abs(2 / 3 - 0.7)
    assert expected_calibration_error(p, y, n_bins=2) == pytest.approx(expected)


@pytest.mark.exercise("4.3")
def test_bayes_ceiling_hand_case():
    p_true = torch.tensor([0.5, 0.9, 0.2, 1.0])
    assert bayes_ceiling(p_true) == pytest.approx((0.5 + 0.9 + 0.8 + 1.0) / 4)


@pytest.mark.exercise("4.3")
def test_bayes_ceiling_bounds_a_perfect_model():
    # the model that knows p_true exactly and predicts the likelier outcome reaches the ceiling, on average
    g = torch.Generator().manual_seed(0)
    p_true = torch.rand(200_000, generator=g, dtype=torch.float64)
    y = torch.bernoulli(p_true, generator=g)
    acc = ((p_true > 0.5).double() == y).double().mean().item()
    assert acc == pytest.approx(bayes_ceiling(p_true), abs=5e-3)
    assert bayes_ceiling(p_true) == pytest.approx(0.75, abs=5e-3)  # E[max(U, 1-U)] = 3/4


# -----------------------------------------------------------------------------
# an ensemble of reward models

def test_ensemble_objectives_hand_worked():
    # three RMs' rewards of two responses: response 0 they agree on, response 1 they do not
    scores = torch.tensor([[1.0, 2.0],
                           [1.0, -1.0],
                           [1.0, 2.0]])
    assert ensemble_reward(scores, "mean").tolist() == pytest.approx([1.0, 1.0])
    assert ensemble_reward(scores, "worst").tolist() == pytest.approx([1.0, -1.0])
    # variance of (2, -1, 2) about its mean 1: (1 + 4 + 1) / 3 = 2, so uwo = 1 - 0.5 * 2 = 0
    assert ensemble_reward(scores, "uwo", uwo_lambda=0.5).tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="unknown ensemble objective"):
        ensemble_reward(scores, "median")


@pytest.mark.exercise("1.1", "3.1", "3.2")
def test_reward_ensemble_scores_each_member_then_combines():
    from nanorm.model import GPTConfig, ScalarHeadModel
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)
    members = [ScalarHeadModel(cfg).eval() for _ in range(3)]
    tokens = torch.randint(0, 50, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[1, 5:] = False                                   # a shorter row: each member reads its last real token
    each = torch.stack([m.score(tokens, mask) for m in members])
    for objective in ("mean", "worst", "uwo"):
        ensemble = RewardEnsemble(members, objective, uwo_lambda=2.0)
        assert torch.allclose(ensemble.score(tokens, mask), ensemble_reward(each, objective, 2.0))
    assert (RewardEnsemble(members, "worst").score(tokens, mask) <= each.mean(0)).all()


# -----------------------------------------------------------------------------
# the surprise reader

@pytest.mark.exercise("5.7")
def test_surprise_features_hand_worked():
    # one row of 4 tokens over a 2-token vocabulary; the response is tokens 2 and 3
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]]))   # (1, 4, 2)
    idx = torch.tensor([[0, 1, 0, 1]])
    response = torch.tensor([[False, False, True, True]])
    f = surprise_features(logits, idx, response)
    # token 2 (= 0) follows position 1's prediction: p = 0.9; token 3 (= 1) follows position 2's: p = 0.8
    assert f[0, :2].tolist() == [[0.0, 0.0], [0.0, 0.0]]                     # before the response
    assert f[0, 2].tolist() == pytest.approx([math.log(0.9), math.log(0.9)])
    assert f[0, 3].tolist() == pytest.approx([(math.log(0.9) + math.log(0.8)) / 2, math.log(0.8)])


@pytest.mark.exercise("1.1", "3.1", "3.2", "5.7")
def test_surprise_rm_is_the_head_plus_a_reader_of_the_sft_log_probs():
    """Against a naive reference: the SFT model's own log-probs of each response, row by row, unpadded."""
    from nanorm.model import GPT, GPTConfig
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)
    gpt = GPT(cfg).eval()
    rm = SurpriseRM.from_gpt(gpt).eval()
    with torch.no_grad():
        rm.surprise.weight.copy_(torch.tensor([[0.7, -0.3]]))
        rm.surprise.bias.fill_(0.2)
    rows = [(torch.randint(0, 50, (n_prompt,)), torch.randint(0, 50, (n_response,))) for n_prompt, n_response in
            ((3, 4), (5, 2), (2, 6))]
    T = max(len(p) + len(r) for p, r in rows)
    tokens = torch.full((3, T), 49)
    mask = torch.zeros(3, T, dtype=torch.bool)
    response = torch.zeros(3, T, dtype=torch.bool)
    for i, (p, r) in enumerate(rows):                                            # right-padded, as train_rm.py packs
        tokens[i, :len(p) + len(r)] = torch.cat([p, r])
        mask[i, :len(p) + len(r)] = True
        response[i, len(p):len(p) + len(r)] = True
    with torch.no_grad():
        got = rm.score(tokens, mask, response)
        for i, (p, r) in enumerate(rows):
            seq = torch.cat([p, r])[None]
            logp = torch.log_softmax(gpt(seq)[0, :-1], -1)[torch.arange(len(seq[0]) - 1), seq[0, 1:]][len(p) - 1:]
            head = ScalarHeadModel.from_gpt(gpt)
            head.head.load_state_dict(rm.head.state_dict())
            want = head(seq)[0, -1] + 0.7 * logp.mean() - 0.3 * logp.min() + 0.2
            assert got[i].item() == pytest.approx(want.item(), abs=1e-5)
    assert not rm.unembed.weight.requires_grad and torch.equal(rm.unembed.weight, gpt.lm_head.weight)
