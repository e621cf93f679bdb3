"""
The pieces of PPO for RLHF, as pure tensor functions.

Convention: every per-token tensor is (B, T) over the RESPONSE positions only (the prompt is cut off).
`mask` (B, T) bool is True on real response tokens (the EOS token included) and False on the padding
after the end. Rows are ragged, and the mask of each row is a prefix: True ... True False ... False.

Signs: `logprobs` are log pi(token) (<= 0); `advantages` > 0 means "do this more"; the losses returned
here are to be MINIMISED.

Where the pieces come from:
  KL-penalised reward  R = r - beta * KL(pi || pi_sft)  Ziegler et al. 2019 sec. 2; Stiennon et al. 2020 sec. 3.4
  advantages           GAE(gamma, lambda)               Schulman et al. 2016 ("GAE") eq. 16
  policy loss          clipped surrogate                Schulman et al. 2017 eq. 7
  value loss           clipped value loss               OpenAI baselines ppo2 / lm-human-preferences
  adaptive beta        proportional controller          Ziegler et al. 2019 sec. 2.2
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# -----------------------------------------------------------------------------
# masked statistics


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over the positions where mask is True (padding is ignored, even if it holds inf/nan)."""
    x = torch.where(mask, x, torch.zeros_like(x))
    if dim is None:
        return x.sum() / mask.sum()
    return x.sum(dim) / mask.sum(dim)


def masked_var(x: Tensor, mask: Tensor) -> Tensor:
    """Population variance (divide by N, not N-1) of x over the positions where mask is True."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise x to masked mean 0 and masked (population) std 1; padding comes back as 0.

    Used on advantages before the policy update ("advantage normalisation"). With shift_mean=False
    the mean is added back: only the scale changes.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    # BEGIN SOLUTION lesson 5, exercise 5: whitening over real tokens
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)  # (B, T) (x - mu) / sigma
    # END SOLUTION
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, torch.zeros_like(whitened))


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution at every position: (B, T, V) -> (B, T).

    H = - sum_v p_v log p_v. Expects finite logits (a -inf logit would give 0 * -inf = nan).
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V) log p_v
    entropy = -(logp.exp() * logp).sum(-1)  # (B, T) H = -sum_v p_v log p_v
    return entropy


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 - Var[R - V] / Var[R] over real tokens: 1 is a perfect critic, 0 is no better than a
    constant, negative is worse than a constant. nan if the returns have zero variance."""
    var_returns = masked_var(returns, mask)
    ev = 1 - masked_var(returns - values, mask) / var_returns  # 1 - Var[R - V] / Var[R]
    return ev.item()


# -----------------------------------------------------------------------------
# 1. the reward PPO maximises: RM score minus a per-token KL penalty


def kl_penalized_rewards(score: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor,
                         beta: float) -> tuple[Tensor, Tensor]:
    """Per-token rewards R = r - beta * KL(pi || pi_sft), spread over the response.

    score:        (B,) reward-model score r(x, y) of each whole response.
    logprobs:     (B, T) log pi(y_t) of the sampled tokens under the policy that sampled them.
    ref_logprobs: (B, T) log pi_sft(y_t) of the same tokens under the frozen SFT (reference) model.
    Every real token gets -beta * (log pi - log pi_sft) (a one-sample estimate of the KL); the LAST REAL
    token of each row also gets the score r. Padding gets 0.
    Returns (rewards (B, T), kl (B, T)), kl = log pi - log pi_sft on real tokens, 0 on padding.
    Pass detached tensors: rewards are data for PPO, not something to differentiate.
    """
    B, T = mask.shape
    lengths = mask.sum(1)  # (B,) number of real tokens per row
    assert (lengths > 0).all(), "every response needs at least one real token"
    last = lengths - 1  # (B,) index of the last real token (mask is a prefix)
    # BEGIN SOLUTION lesson 5, exercise 1: KL-penalised per-token rewards
    kl = torch.where(mask, logprobs - ref_logprobs, torch.zeros_like(logprobs))  # (B, T) log pi/pi_sft
    rewards = -beta * kl  # (B, T) KL penalty on every real token, Ziegler et al. 2019 sec. 2
    rewards[torch.arange(B, device=mask.device), last] += score.to(rewards.dtype)  # + r(x, y) at the last real token
    # END SOLUTION
    return rewards, kl


# -----------------------------------------------------------------------------
# 2. advantages with GAE


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation over response tokens.

    rewards, values: (B, T); values[b, t] = V(s_t), the critic's estimate before emitting token t.
        delta_t = r_t + gamma * V_{t+1} - V_t                  (TD residual, GAE sec. 3)
        A_t     = sum_l (gamma*lam)^l delta_{t+l}              (GAE eq. 16)
                = delta_t + gamma * lam * A_{t+1}              (computed backwards)
        R_t     = A_t + V_t                                    (target for the critic)
    The episode ends after the last real token: V there is 0. This is right for responses that ended
    with EOS; responses cut at the length limit are treated the same way (no bootstrapping), which is
    the usual RLHF simplification. Padding gets advantage 0 and return 0.
    Returns (advantages (B, T), returns (B, T)).
    """
    B, T = rewards.shape
    m = mask.to(rewards.dtype)  # (B, T) 1.0 on real tokens
    rewards, values = rewards * m, values * m  # padding contributes nothing, V after the end = 0
    advantages = torch.zeros_like(rewards)  # (B, T)
    next_advantage = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)  # (B,) A_{t+1}
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(next_advantage)  # (B,) V_{t+1}
        # BEGIN SOLUTION lesson 5, exercise 2: generalized advantage estimation
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,) delta_t, GAE sec. 3
        next_advantage = (delta + gamma * lam * next_advantage) * m[:, t]  # (B,) A_t, GAE eq. 16
        # END SOLUTION
        advantages[:, t] = next_advantage
    returns = (advantages + values) * m  # (B, T) R_t = A_t + V_t
    return advantages, returns


# -----------------------------------------------------------------------------
# 3. the PPO losses


def ppo_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                    clip_eps: float = 0.2) -> tuple[Tensor, dict]:
    """Clipped surrogate policy loss (to minimise), masked mean over real tokens.

        ratio = pi(y_t) / pi_old(y_t)
        L     = -E[ min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) ]      Schulman et al. 2017 eq. 7

    logprobs (B, T) carry gradient; old_logprobs and advantages (B, T) are data from the rollout.
    stats (floats):
      clipfrac   fraction of real tokens where the clipped term is the one in force (no gradient flows)
      approx_kl  E[(ratio - 1) - log ratio], the k3 estimator of KL(pi_old || pi) (Schulman, "Approximating KL")
    """
    log_ratio = logprobs - old_logprobs  # (B, T) log pi - log pi_old
    # BEGIN SOLUTION lesson 5, exercise 3: the clipped surrogate policy loss
    ratio = torch.exp(log_ratio)  # (B, T) r_t(theta), Schulman et al. 2017 eq. 6
    loss_unclipped = -advantages * ratio  # (B, T) -r_t A_t
    loss_clipped = -advantages * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)  # (B, T) -clip(r_t) A_t
    loss = masked_mean(torch.max(loss_unclipped, loss_clipped), mask)  # -min(...) , Schulman et al. 2017 eq. 7
    # END SOLUTION
    with torch.no_grad():
        clipfrac = masked_mean((loss_clipped > loss_unclipped).float(), mask)
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)  # k3 estimator
    return loss, {"clipfrac": clipfrac.item(), "approx_kl": approx_kl.item()}


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                   clip_eps: float = 0.2) -> tuple[Tensor, dict]:
    """Clipped value loss (to minimise), masked mean over real tokens.

        V_clip = V_old + clip(V - V_old, -eps, +eps)
        L_V    = 0.5 * E[ max((V - R)^2, (V_clip - R)^2) ]

    Not in the PPO paper: it comes from OpenAI baselines' ppo2 and was used by lm-human-preferences
    (Ziegler et al. 2019). The max makes it pessimistic: the critic cannot jump far from V_old in one update.
    stats (floats): vclipfrac, fraction of real tokens where the clipped term is the larger one.
    """
    # BEGIN SOLUTION lesson 5, exercise 4: the clipped value loss
    values_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)  # (B, T) V_clip
    vf_unclipped = (values - returns) ** 2  # (B, T) (V - R)^2
    vf_clipped = (values_clipped - returns) ** 2  # (B, T) (V_clip - R)^2
    loss = 0.5 * masked_mean(torch.max(vf_unclipped, vf_clipped), mask)  # 0.5 E[max(...)]
    # END SOLUTION
    with torch.no_grad():
        vclipfrac = masked_mean((vf_clipped > vf_unclipped).float(), mask)
    return loss, {"vclipfrac": vclipfrac.item()}


# -----------------------------------------------------------------------------
# 4. the KL coefficient beta


class FixedKLController:
    """beta stays where it was set."""

    def __init__(self, beta: float):
        self.beta = beta

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Steer beta so that the measured KL stays near a target (Ziegler et al. 2019 sec. 2.2).

        e    = clip(KL / target - 1, -0.2, 0.2)          proportional error, bounded
        beta = beta * (1 + e * n_steps / horizon)

    KL above target -> beta grows (pull the policy back); below -> beta shrinks.
    n_steps is the number of samples (episodes) seen since the last update, horizon the number of
    samples over which the error should be corrected.
    """

    def __init__(self, init_beta: float, target: float, horizon: int):
        self.beta = init_beta
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        current_kl = float(current_kl)
        # BEGIN SOLUTION lesson 5, exercise 6: the adaptive KL controller
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)  # e = clip(KL/target - 1, -0.2, 0.2)
        self.beta *= 1 + error * n_steps / self.horizon  # Ziegler et al. 2019 sec. 2.2
        # END SOLUTION


def kl_controller(kind: str, beta: float, target: float, horizon: int):
    """"fixed": beta stays; "adaptive": beta steers the KL towards target (AdaptiveKLController)."""
    return AdaptiveKLController(beta, target, horizon) if kind == "adaptive" else FixedKLController(beta)
