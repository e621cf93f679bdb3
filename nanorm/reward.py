"""
The reward-model loss (Bradley-Terry pairwise ranking) and the numbers used to judge a reward model.

A labeller ranks K responses to one prompt. Every ordered pair (winner w, loser l) taken from that
ranking is one comparison, so one ranking of K responses gives C(K,2) = K(K-1)/2 comparisons.
The Bradley-Terry model says

    P(y_w beats y_l | x) = sigma( r(x, y_w) - r(x, y_l) )

and the reward model is fitted by maximum likelihood on the comparisons:

    loss(phi) = - 1/C(K,2) * E_{(x, y_w, y_l) ~ D} [ log sigma( r_phi(x, y_w) - r_phi(x, y_l) ) ]   # InstructGPT eq. 1

"K-wise batching" (InstructGPT sec. 3.5): all C(K,2) pairs of one prompt go into the same batch element,
and each of the K responses is forwarded through the reward model ONCE. The pairs then just index into
the flat vector of K scores. With K=9 that is 9 forward passes instead of 2 * 36 = 72.

Layout used throughout this file: a batch of prompts, prompt i having K_i responses, is laid out as one
flat score vector r of length M = sum_i K_i, prompt 0's responses first, then prompt 1's, and so on.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from nanorm.data import token_logprobs
from nanorm.model import ScalarHeadModel

# -----------------------------------------------------------------------------
# rankings -> pairs


def ranking_to_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """All C(K,2) (winner, loser) pairs implied by one ranking.

    ranking: response indices, best first, e.g. [2, 0, 1] means response 2 > response 0 > response 1.
    Returns [(2, 0), (2, 1), (0, 1)]: every response beats every response ranked below it.
    """
    if len(set(ranking)) != len(ranking):
        raise ValueError(f"ranking has repeated indices: {ranking}")
    K = len(ranking)
    # BEGIN SOLUTION lesson 3, exercise 4: one ranking of K responses -> its C(K,2) pairs
    pairs = [(ranking[i], ranking[j]) for i in range(K) for j in range(i + 1, K)]  # C(K,2) pairs, i ranked above j
    # END SOLUTION
    return pairs


def kwise_pairs(rankings: list[list[int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Pair indices into the flat score vector for a batch of ranked prompts.

    rankings[i] ranks prompt i's K_i responses with LOCAL indices 0..K_i-1 (best first).
    Prompt i's responses sit at flat positions offset_i .. offset_i + K_i - 1, offset_i = K_0 + ... + K_{i-1}.

    Returns (idx_w, idx_l, group), each a (P,) long tensor, P = sum_i C(K_i, 2):
      idx_w[p], idx_l[p]  flat index of the winner / loser of pair p
      group[p]            which prompt pair p belongs to
    """
    idx_w, idx_l, group = [], [], []
    offset = 0
    for i, ranking in enumerate(rankings):
        if sorted(ranking) != list(range(len(ranking))):
            raise ValueError(f"ranking {i} must be a permutation of 0..{len(ranking) - 1}, got {ranking}")
        # BEGIN SOLUTION lesson 3, exercise 5: pair indices into the flat K-wise batch
        for w, l in ranking_to_pairs(ranking):
            idx_w.append(offset + w)  # local index -> flat index
            idx_l.append(offset + l)
            group.append(i)
        offset += len(ranking)  # offset_{i+1} = offset_i + K_i
        # END SOLUTION
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)
    return as_long(idx_w), as_long(idx_l), as_long(group)


# -----------------------------------------------------------------------------
# the loss


def bradley_terry_loss(r: Tensor, idx_w: Tensor, idx_l: Tensor, group: Tensor, p: Tensor | None = None) -> Tensor:
    """K-wise Bradley-Terry loss.

    r: (M,) one scalar reward per response (each response forwarded once).
    idx_w, idx_l, group: (P,) from kwise_pairs.
    p: (P,) optional soft targets: the probability that w is preferred to l (a vote share; 0.5 for a tie).
       A pair then costs -(p log sigma(r_w - r_l) + (1 - p) log sigma(r_l - r_w)): the cross-entropy between
       the labels' split and the model's. None: every p is 1, the plain loss -log sigma(r_w - r_l).
    Returns the scalar  mean over prompts of  1/C(K,2) * sum_{pairs of that prompt} (pair loss).
    Prompts with a single response have no pairs and are left out of the mean.
    """
    n_prompts = int(group.max()) + 1
    n_pairs = torch.bincount(group, minlength=n_prompts).to(r.dtype)  # (G,) C(K_i, 2) per prompt
    has_pairs = n_pairs > 0
    if p is None:
        p = torch.ones(len(idx_w), dtype=r.dtype, device=r.device)
    # BEGIN SOLUTION lesson 3, exercise 3: the Bradley-Terry K-wise loss
    margin = r[idx_w] - r[idx_l]  # (P,) winner's score minus loser's
    pair_loss = -(p * F.logsigmoid(margin) + (1 - p) * F.logsigmoid(-margin))  # (P,) InstructGPT eq. 1 at p = 1
    prompt_loss = torch.zeros_like(n_pairs).index_add(0, group, pair_loss) / n_pairs.clamp(min=1)  # (G,) 1/C(K,2) sum
    loss = prompt_loss[has_pairs].mean()  # expectation over prompts, InstructGPT eq. 1
    # END SOLUTION
    return loss


# -----------------------------------------------------------------------------
# evaluation helpers


def pairwise_accuracy(r_w: Tensor, r_l: Tensor) -> float:
    """Fraction of pairs where the reward model ranks the labelled winner higher (a tie counts half)."""
    # BEGIN SOLUTION lesson 4, exercise 1: pairwise accuracy, ties count half
    correct = (r_w > r_l).float() + 0.5 * (r_w == r_l).float()  # (P,) 1, 1/2 or 0
    # END SOLUTION
    return correct.mean().item()


def expected_calibration_error(p: Tensor, y: Tensor, n_bins: int = 10) -> float:
    """Expected calibration error of predicted preference probabilities.

    p: (N,) predicted P(first response wins) = sigma(r_a - r_b), in [0, 1].
    y: (N,) observed outcome, 1 if the first response won, 0 otherwise.
    The interval [0, 1] is cut into n_bins equal-width bins [0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]
    (p = 1 goes to the last bin). For each bin b holding n_b predictions:

        ECE = sum_b (n_b / N) * | mean(y in b) - mean(p in b) |

    i.e. the weighted gap of the reliability diagram. A calibrated model has ECE ~ 0: among pairs
    where it says 70%, the first response wins 70% of the time.
    """
    p, y = p.detach().flatten().double(), y.detach().flatten().double()
    N = p.numel()
    bin_idx = (p * n_bins).long().clamp(0, n_bins - 1)  # (N,) which bin each prediction falls in
    count = torch.bincount(bin_idx, minlength=n_bins).double()  # (n_bins,)
    sum_p = torch.zeros(n_bins, dtype=torch.float64).index_add(0, bin_idx, p)
    sum_y = torch.zeros(n_bins, dtype=torch.float64).index_add(0, bin_idx, y)
    # BEGIN SOLUTION lesson 4, exercise 2: expected calibration error
    gap = (sum_y - sum_p).abs()  # (n_bins,) n_b * |mean(y) - mean(p)| in each bin
    ece = gap.sum() / N  # sum_b (n_b / N) |acc_b - conf_b|
    # END SOLUTION
    return ece.item()


def bayes_ceiling(p_true: Tensor) -> float:
    """Best accuracy any model can reach when labels are drawn as y ~ Bernoulli(p_true).

    The best guess for each pair is the more likely outcome, which is right with probability
    max(p, 1 - p). Noisy labels (p near 1/2) cap accuracy well below 100%. The ceiling lies above the
    agreement of two labellers (each of them is one noisy draw; the ceiling knows p itself), so a
    reward model can beat human agreement, but not this (lesson 04).
    """
    # BEGIN SOLUTION lesson 4, exercise 3: the Bayes ceiling on accuracy
    ceiling = torch.maximum(p_true, 1 - p_true).mean()  # E[max(p, 1 - p)]
    # END SOLUTION
    return ceiling.item()


# -----------------------------------------------------------------------------
# an ensemble of reward models: one way to make the proxy harder to overoptimise (Coste et al. 2024)

ENSEMBLE_OBJECTIVES = ("mean", "worst", "uwo")


def ensemble_reward(scores: Tensor, objective: str = "mean", uwo_lambda: float = 1.0) -> Tensor:
    """scores: (E, B), E reward models' normalised rewards of the same B responses -> (B,) one reward each.

    mean : the average of the E opinions;
    worst: the lowest of them (worst-case optimisation: a response scores only what every RM grants it);
    uwo  : uncertainty-weighted, mean - uwo_lambda * variance over the E (population variance): where the
           RMs disagree, which is where the policy has left their training data, the reward is lowered.
    """
    if objective == "mean":
        return scores.mean(0)
    if objective == "worst":
        return scores.min(0).values
    if objective == "uwo":
        return scores.mean(0) - uwo_lambda * scores.var(0, unbiased=False)
    raise ValueError(f"unknown ensemble objective {objective!r}; expected one of {ENSEMBLE_OBJECTIVES}")


class RewardEnsemble(torch.nn.Module):
    """E frozen reward models read as one: .score(tokens, mask) -> (B,) combined by ensemble_reward.
    It has the members' .cfg (they share one trunk shape), so PPO and the evaluations use it as one RM."""

    def __init__(self, members, objective="mean", uwo_lambda=1.0):
        super().__init__()
        assert all(m.cfg == members[0].cfg for m in members), "the members must share one model shape"
        self.members = torch.nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.objective, self.uwo_lambda = objective, uwo_lambda

    def member_scores(self, idx, mask, response_mask=None):
        """(B, T) -> (E, B): every member's reward of each sequence."""
        return torch.stack([m.score(idx, mask, response_mask) for m in self.members])

    def score(self, idx, mask, response_mask=None):
        return ensemble_reward(self.member_scores(idx, mask, response_mask), self.objective, self.uwo_lambda)


# -----------------------------------------------------------------------------
# a reward model that also reads its trunk's surprise (lesson 04, "What the trunk knows")

def surprise_features(logits: Tensor, idx: Tensor, response_mask: Tensor) -> Tensor:
    """How unexpected the response is to the language model, so far, at every position.

    logits (B, T, V): the unembedding at every position (logits[:, t] predicts idx[:, t + 1]); idx (B, T);
    response_mask (B, T), True on the response's tokens. Returns (B, T, 2): over the response tokens up to
    and including position t, the mean and the minimum of log p(token | everything before it); 0 and 0
    before the response starts. A wrong sum or name is one token the model did not expect: the minimum
    finds it, the mean weighs it against the answer's length.
    """
    logp = torch.zeros(idx.shape, dtype=torch.float32, device=idx.device)
    logp[:, 1:] = token_logprobs(logits[:, :-1], idx[:, 1:])                  # (B, T); position 0 has no context
    m = response_mask.float()
    count = m.cumsum(1)
    mean = (logp * m).cumsum(1) / count.clamp(min=1)
    lowest = torch.where(response_mask, logp, torch.full_like(logp, float("inf"))).cummin(1).values
    lowest = torch.where(count > 0, lowest, torch.zeros_like(lowest))
    return torch.stack([mean, lowest], dim=-1)


class SurpriseRM(ScalarHeadModel):
    """The reward model with a second reader: the SFT model's unembedding, kept frozen, turns the trunk's
    hidden states into next-token log-probabilities, and Linear(2 -> 1) reads surprise_features from them:

        reward = head(h_last) + w_mean * mean_t log p(y_t) + w_min * min_t log p(y_t) + b

    The trunk already predicts the right sum and the right name (lesson 04: its likelihood picks the
    correct answer of a fact pair far more often than the plain RM does); this lets the rankings teach the
    RM how much to trust that prediction, instead of rediscovering the fact from a few thousand pairs.
    The linear reader starts at zero, so training starts from the plain RM (train_rm.py --surprise)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.unembed = torch.nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.unembed.weight.requires_grad_(False)     # the SFT model's next-token predictions, not trained
        self.surprise = torch.nn.Linear(2, 1)
        torch.nn.init.zeros_(self.surprise.weight)
        torch.nn.init.zeros_(self.surprise.bias)

    @classmethod
    def from_gpt(cls, gpt):
        model = super().from_gpt(gpt)
        model.unembed.weight.data.copy_(gpt.lm_head.weight.data)
        return model

    def forward(self, idx, mask=None, response_mask=None):
        """(B, T) -> (B, T): the reward if the response ended at each position."""
        assert response_mask is not None, "a SurpriseRM needs the response mask: which tokens are the response"
        hidden = self.trunk(idx, mask)
        features = surprise_features(self.unembed(hidden), idx, response_mask)     # (B, T, 2)
        return (self.head(hidden) + self.surprise(features)).squeeze(-1)
