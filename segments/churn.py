"""Buy-till-you-die churn models, fitted by maximum likelihood with numpy/scipy.

Per member the models need x (repeat purchase days: distinct order days after
the first), t_x (first to last purchase) and T (first purchase to the as-of
date), in days or weeks.

- BG/NBD (Fader, Hardie and Lee 2005). It cannot let a member drop out before
  the first repeat purchase, so every one-time buyer gets P(alive) = 1 however
  long ago he bought: kept for comparison only.
- Modified BG/NBD (Batislam, Denizel and Filiztekin 2007): a member may also
  drop out right after the first purchase, so a one-time buyer who has been
  quiet for long is rated as likely gone. The default for early warning.

A heuristic (days since the last order against the member's usual gap) serves
shops with too little history to fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# SciPy is imported where it is used: at module level it came with the admin's autodiscovery into
# every process (web workers, imports: 53 MB of RSS for scipy.optimize alone), most of which never
# rate a member.

BGNBD = "bgnbd"
MBGNBD = "mbgnbd"
MODELS = (BGNBD, MBGNBD)


@dataclass(frozen=True)
class Fit:
    model: str
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_members: int


class FitError(ValueError):
    pass


def log_likelihood(model: str, params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803 - the literature's names
    """Per-member log-likelihood."""
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T)
    if model == MBGNBD:
        beta_term = betaln(a, b + x + 1) - betaln(a, b)
        dropout = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return common + beta_term + np.logaddexp(0.0, dropout)
    if model == BGNBD:
        beta_term = betaln(a, b + x) - betaln(a, b)
        repeat = x > 0
        dropout = np.where(
            repeat,
            np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
            -np.inf,
        )
        return common + beta_term + np.logaddexp(0.0, dropout)
    raise FitError(f"unknown model {model!r}")


def fit(model: str, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> Fit:  # noqa: N803
    """Maximum-likelihood parameters (r, alpha, a, b). Identical (x, t_x, T)
    rows are folded into weights."""
    from scipy.optimize import minimize

    if model not in MODELS:
        raise FitError(f"unknown model {model!r}")
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)  # noqa: N806
    if x.size == 0:
        raise FitError("no members with orders to fit on")
    if np.any(T <= 0) or np.any(t_x > T) or np.any(t_x < 0) or np.any(x < 0):
        raise FitError("every member needs 0 <= t_x <= T and T > 0")
    rows, weights = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    ux, ut_x, uT = rows[:, 0], rows[:, 1], rows[:, 2]  # noqa: N806
    scale = max(float(np.mean(T)), 1e-9)

    def negative(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        params[1] *= scale
        value = -float(np.dot(weights, log_likelihood(model, params, ux, ut_x, uT)))
        return value if np.isfinite(value) else 1e300

    # A coarse simplex search finds the basin, BFGS polishes.
    rough = minimize(negative, np.zeros(4), method="Nelder-Mead", options={"maxiter": 800, "xatol": 1e-4, "fatol": 1e-6})
    best = minimize(negative, rough.x, method="BFGS")
    if not np.isfinite(best.fun) or best.fun > rough.fun:
        best = rough
    params = np.exp(best.x)
    params[1] *= scale
    r, alpha, a, b = (float(value) for value in params)
    return Fit(model=model, r=r, alpha=alpha, a=a, b=b, log_likelihood=-float(best.fun), n_members=int(x.size))


def p_alive(model: str, params: tuple[float, float, float, float], x, t_x, T) -> np.ndarray:  # noqa: N803
    r, alpha, a, b = params
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)  # noqa: N806
    ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    if model == MBGNBD:
        return 1.0 / (1.0 + a / (b + x) * ratio)
    if model == BGNBD:
        return np.where(x > 0, 1.0 / (1.0 + a / np.maximum(b + x - 1, 1e-12) * ratio), 1.0)
    raise FitError(f"unknown model {model!r}")


def p_alive_below_after(model: str, params: tuple[float, float, float, float], x, t_x, cut) -> np.ndarray:
    """The T beyond which P(alive) is below cut, x and t_x staying as they are
    (P(alive) only falls as T grows); inf when it never is (a BG/NBD one-time
    buyer, a cut of 0). p_alive solved for T."""
    r, alpha, a, b = params
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    cut = np.asarray(cut, dtype=float)
    if model == MBGNBD:
        k = a / (b + x)
    elif model == BGNBD:
        k = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12), 0.0)
    else:
        raise FitError(f"unknown model {model!r}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # P(alive) < cut  <=>  ((alpha + T) / (alpha + t_x)) ** (r + x) > (1 / cut - 1) / k
        T = (alpha + t_x) * np.exp(np.log((1.0 / cut - 1.0) / k) / (r + x)) - alpha  # noqa: N806
    return np.where((cut > 0) & (k > 0) & np.isfinite(T), T, np.inf)


def expected_purchases(model: str, params: tuple[float, float, float, float], t: float, x, t_x, T) -> np.ndarray:  # noqa: N803
    """Expected number of purchases in the next t time units, given the history."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)  # noqa: N806
    shrink = ((alpha + T) / (alpha + T + t)) ** (r + x)
    z = t / (alpha + T + t)
    if model == MBGNBD:
        hyp = hyp2f1(r + x, b + x + 1, a + b + x, z)
        numerator = (a + b + x) / (a - 1) * (1 - hyp * shrink)
    elif model == BGNBD:
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        numerator = (a + b + x - 1) / (a - 1) * (1 - hyp * shrink)
    else:
        raise FitError(f"unknown model {model!r}")
    return np.maximum(numerator * p_alive(model, params, x, t_x, T), 0.0)


def heuristic(days_since_last: np.ndarray, usual_gap_days: np.ndarray, horizon_days: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), expected orders in horizon) from days since the last order
    against the member's usual gap: fully alive within one usual gap, then
    fading by e per further gap."""
    days = np.asarray(days_since_last, dtype=float)
    gap = np.maximum(np.asarray(usual_gap_days, dtype=float), 1.0)
    alive = np.exp(-np.maximum(days / gap - 1.0, 0.0))
    return alive, alive * horizon_days / gap


def risk_band(p: np.ndarray, *, high_below: float, medium_below: float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.where(p < high_below, "high", np.where(p < medium_below, "medium", "low"))
