"""
The maths of Gao, Schulman & Hilton (2022), "Scaling Laws for Reward Model Overoptimization": the KL of
best-of-n, and the two functional forms of gold reward against distance, fitted by least squares.

With d = sqrt(KL(pi || pi_init)) and R(d) = gold(d) - gold(0):

    best-of-n : R_bon(d) = d (alpha - beta d)          (their eq. 1)
    RL (PPO)  : R_RL(d)  = d (alpha - beta log d)      (their eq. 2)

Both forms are linear in (alpha, beta), so a fit is one least-squares solve with no intercept (R(0) = 0),
and the usual standard errors of a linear fit come with it: sqrt of the diagonal of s^2 (X^T X)^-1, where
s^2 = (sum of squared residuals) / (points - 2) is the scatter of the points about the fitted curve.
Pure numpy, no model: nanorm/experiments/overoptimization.py measures the curves these fit.
"""

import math

import numpy as np


def kl_bon(n):
    """KL(best-of-n || pi) = log n - (n - 1) / n nats (Stiennon et al. 2020, app. G.3): 0 for n = 1."""
    return math.log(n) - (n - 1) / n


def _least_squares(X, y):
    """Coefficients w minimising |X w - y|^2 (no intercept: R(0) = 0 by construction), R^2, and the standard
    errors of w (None with fewer than 3 points: two points fit exactly and say nothing of the scatter)."""
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    ss_res = float(np.sum((y - X @ w) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None      # None: the points are all equal
    n, k = X.shape
    se = None
    if n > k:
        cov = ss_res / (n - k) * np.linalg.pinv(X.T @ X)    # s^2 (X^T X)^-1
        se = [float(math.sqrt(max(c, 0.0))) for c in np.diag(cov)]
    return w, r2, se


def fit_bon(d, R):
    """R_bon(d) = d (alpha - beta d) = alpha d - beta d^2: least squares on the columns [d, -d^2].
    The peak is where dR/dd = alpha - 2 beta d = 0: d* = alpha / (2 beta), R(d*) = alpha^2 / (4 beta)."""
    d, R = np.asarray(d, float), np.asarray(R, float)
    if len(d) < 2 or not np.any(d > 0):
        return None
    (alpha, beta), r2, se = _least_squares(np.stack([d, -d ** 2], 1), R)
    d_peak = alpha / (2 * beta) if beta > 0 and alpha > 0 else None   # beta <= 0: no peak, R keeps rising
    return {"form": "d * (alpha - beta * d)", "alpha": float(alpha), "beta": float(beta), "r2": r2,
            "alpha_se": se and se[0], "beta_se": se and se[1],
            "d_peak": d_peak, "R_peak": alpha ** 2 / (4 * beta) if d_peak is not None else None,
            "n_points": int(len(d))}


def fit_rl(d, R):
    """R_RL(d) = d (alpha - beta log d) = alpha d - beta d log d: least squares on [d, -d log d], d > 0 only.
    The peak is where dR/dd = alpha - beta (log d + 1) = 0: d* = exp(alpha / beta - 1), R(d*) = beta d*."""
    d, R = np.asarray(d, float), np.asarray(R, float)
    keep = d > 0
    d, R = d[keep], R[keep]
    if len(d) < 2:
        return None
    (alpha, beta), r2, se = _least_squares(np.stack([d, -d * np.log(d)], 1), R)
    d_peak = None
    if beta > 0 and alpha / beta - 1 < 50:       # beta <= 0 (or a peak absurdly far away): no peak in sight
        d_peak = float(math.exp(alpha / beta - 1))
    return {"form": "d * (alpha - beta * log(d))", "alpha": float(alpha), "beta": float(beta), "r2": r2,
            "alpha_se": se and se[0], "beta_se": se and se[1],
            "d_peak": d_peak, "R_peak": beta * d_peak if d_peak is not None else None, "n_points": int(len(d))}


def predict(fit, d):
    """R(d) of a fit made by fit_bon or fit_rl, at the distances d."""
    d = np.asarray(d, float)
    if fit["form"].startswith("d * (alpha - beta * d)"):
        return d * (fit["alpha"] - fit["beta"] * d)
    return d * (fit["alpha"] - fit["beta"] * np.log(np.maximum(d, 1e-12)))
