"""BG/NBD and Gamma-Gamma ("buy till you die") models, fitted by maximum likelihood.

References: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative
to the Pareto/NBD Model" (BG/NBD), and Fader, Hardie & Lee (2005), "RFM and CLV: Using
Iso-Value Curves for Customer Base Analysis" (Gamma-Gamma spend model).

Inputs follow the papers: ``frequency`` x = number of repeat purchases (purchase days after
the first), ``recency`` t_x = time of the last purchase measured from the first, ``T`` = time
from the first purchase to the end of the observation window; all in the same unit (we use
days). ``monetary`` = mean value of the repeat purchases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

ArrayLike = np.ndarray | list[float] | float

# Log-parameters are kept in a box: beyond it the likelihood is flat (b -> inf means nobody
# drops out) and the optimizer only wanders.
_LOG_BOUNDS = (-9.0, 9.0)


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD population parameters: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma spend parameters (p, q, gamma) of Fader-Hardie-Lee (2005)."""

    p: float
    q: float
    gamma: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _arr(v: ArrayLike) -> np.ndarray:
    return np.asarray(v, dtype=float)


def _compress(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows and their counts: many customers share (x, t_x, T) in whole days."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return uniq, counts.astype(float)


def bgnbd_log_likelihood(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Per-customer log-likelihood of BG/NBD (FHL 2005, eq. 6), computed in log space."""
    x, tx, t = _arr(frequency), _arr(recency), _arr(T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + tx),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    penalizer: float = 0.0,
    max_customers: int | None = 50_000,
    seed: int = 0,
) -> BGNBDParams:
    """Fit BG/NBD by maximum likelihood (L-BFGS-B on log-parameters).

    ``max_customers`` caps the fitting sample: the four population parameters are pinned down
    by 50k customers (relative standard errors of a few percent), and the sample keeps a
    1M-customer brand fast.
    ``penalizer`` adds ``penalizer * sum(params**2)`` (as in `lifetimes`) for tiny brands.
    """
    x, tx, t = _arr(frequency), _arr(recency), _arr(T)
    if len(x) == 0:
        raise ValueError("fit_bgnbd needs at least one customer")
    if max_customers is not None and len(x) > max_customers:
        idx = np.random.default_rng(seed).choice(len(x), max_customers, replace=False)
        x, tx, t = x[idx], tx[idx], t[idx]
    uniq, w = _compress(x, tx, t)
    ux, utx, ut = uniq[:, 0], uniq[:, 1], uniq[:, 2]
    n = w.sum()

    def nll(theta: np.ndarray) -> float:
        p = BGNBDParams(*np.exp(theta))
        ll = float(np.dot(w, bgnbd_log_likelihood(p, ux, utx, ut)))
        return -ll / n + penalizer * float(np.sum(np.exp(theta) ** 2))

    scale = max(float(np.mean(t)), 1.0)
    best = None
    # Two starts: the likelihood has a long ridge in (a, b); the better optimum wins.
    for start in (np.log([1.0, scale, 1.0, 1.0]), np.log([0.5, scale / 4, 0.8, 2.5])):
        res = minimize(nll, start, method="L-BFGS-B", bounds=[_LOG_BOUNDS] * 4)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return BGNBDParams(*(float(v) for v in np.exp(best.x)))


def p_alive(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(customer still active at T | x, t_x, T) (FHL 2005, eq. 11)."""
    x, tx, t = _arr(frequency), _arr(recency), _arr(T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = (
            np.log(a)
            - np.log(np.maximum(b + x - 1, 1e-12))
            + (r + x) * (np.log(alpha + t) - np.log(alpha + tx))
        )
        out = 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0)))
    return np.where(x > 0, out, 1.0)


def expected_purchases(
    params: BGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """E[number of purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10).

    The paper's form multiplies a huge 2F1(r+x, b+x; a+b+x-1; z) by a tiny power for
    frequent buyers and loses all precision; Euler's transformation
    2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) folds the power into a well-behaved
    2F1(a+b-1-r, a-1; a+b+x-1; z), exact and stable for any x.
    """
    h, x, tx, tt = _arr(t), _arr(frequency), _arr(recency), _arr(T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-6:  # removable singularity of the closed form
        a = 1.0 + 1e-6
    z = h / (alpha + tt + h)
    one_minus_z = (alpha + tt) / (alpha + tt + h)
    with np.errstate(invalid="ignore", over="ignore"):
        f = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        numer = (a + b + x - 1.0) / (a - 1.0) * (1.0 - one_minus_z ** (a - 1.0) * f)
    bad = ~np.isfinite(numer)
    if np.any(bad):
        # Huge a and b (dropout barely varies across customers) overflow 2F1; the Beta
        # posterior is then a spike at p = a / (a + b + x), where E[Y | alive, p] is exact.
        p = a / (a + b + x)
        spike = (1.0 - ((alpha + tt) / (alpha + tt + p * h)) ** (r + x)) / p
        numer = np.where(bad, spike, numer)
    return numer * p_alive(BGNBDParams(r, alpha, a, b), x, tx, tt)


def prob_no_purchase(
    params: BGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T): the BG/NBD churn probability.

    A dead customer never buys; an alive one has posterior rate Gamma(r + x, alpha + T) and
    can only drop out right after a purchase, so P(0 | alive) = ((alpha+T)/(alpha+T+t))^(r+x).
    """
    h, x, tx, tt = _arr(t), _arr(frequency), _arr(recency), _arr(T)
    pa = p_alive(params, x, tx, tt)
    p0_alive = np.exp((params.r + x) * (np.log(params.alpha + tt) - np.log(params.alpha + tt + h)))
    return 1.0 - pa * (1.0 - p0_alive)


def expected_days_to_next(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Posterior mean waiting time to the next purchase of an alive customer, in days.

    E[1/lambda] under Gamma(r + x, alpha + T) is (alpha + T) / (r + x - 1); the +1 guard keeps
    it finite for customers with almost no history.
    """
    x, tt = _arr(frequency), _arr(T)
    shape = params.r + x
    return (params.alpha + tt) / np.maximum(shape - 1.0, 0.0 + np.minimum(shape, 1.0))


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike
) -> np.ndarray:
    """Per-customer log-likelihood of the Gamma-Gamma spend model (customers with x > 0)."""
    x, m = _arr(frequency), _arr(monetary)
    p, q, g = params.p, params.q, params.gamma
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + m * x)
    )


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary: ArrayLike,
    *,
    penalizer: float = 0.0,
    max_customers: int | None = 50_000,
    seed: int = 0,
) -> GammaGammaParams:
    """Fit Gamma-Gamma by maximum likelihood on repeat customers with positive spend.

    Customers with x == 0 or non-positive monetary value carry no information and are dropped.
    """
    x, m = _arr(frequency), _arr(monetary)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise ValueError("fit_gamma_gamma needs at least two repeat customers with spend")
    if max_customers is not None and len(x) > max_customers:
        idx = np.random.default_rng(seed).choice(len(x), max_customers, replace=False)
        x, m = x[idx], m[idx]
    uniq, w = _compress(x, np.round(m, 4))
    ux, um = uniq[:, 0], uniq[:, 1]
    n = w.sum()

    def nll(theta: np.ndarray) -> float:
        p = GammaGammaParams(*np.exp(theta))
        ll = float(np.dot(w, gamma_gamma_log_likelihood(p, ux, um)))
        return -ll / n + penalizer * float(np.sum(np.exp(theta) ** 2))

    start = np.log([1.0, 2.0, max(float(np.mean(m)), 1.0)])
    res = minimize(nll, start, method="L-BFGS-B", bounds=[(-9.0, 12.0)] * 3)
    return GammaGammaParams(*(float(v) for v in np.exp(res.x)))


def expected_avg_value(
    params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike
) -> np.ndarray:
    """E[spend per transaction | x, m_x]: a shrinkage of m_x toward the population mean.

    For x == 0 (or unknown monetary) this is the population mean p * gamma / (q - 1).
    """
    x, m = _arr(frequency), _arr(monetary)
    m = np.where(np.isfinite(m) & (x > 0), m, 0.0)
    q = max(params.q, 1.0 + 1e-6)  # the mean exists only for q > 1
    return (params.gamma + m * x) * params.p / (params.p * x + q - 1.0)


def clv(
    bgnbd: BGNBDParams,
    gg: GammaGammaParams,
    horizon_days: float,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
) -> np.ndarray:
    """Expected spend over the next ``horizon_days`` (undiscounted): E[purchases] x E[value]."""
    n = expected_purchases(bgnbd, horizon_days, frequency, recency, T)
    return n * expected_avg_value(gg, frequency, monetary)


def simulate_bgnbd(
    params: BGNBDParams, T: ArrayLike, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T) from the BG/NBD process; for tests and docs.

    Each customer gets lambda ~ Gamma(r, 1/alpha) and p ~ Beta(a, b), buys at Poisson rate
    lambda from time 0 and drops out right after each repeat purchase with probability p.
    """
    rng = np.random.default_rng(seed)
    tt = _arr(T)
    n = len(tt)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x = np.zeros(n)
    tx = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1.0 / np.maximum(lam[idx], 1e-12))
        done = now[idx] > tt[idx]
        active[idx[done]] = False
        buy = idx[~done]
        x[buy] += 1
        tx[buy] = now[buy]
        dies = rng.random(len(buy)) < p[buy]
        active[buy[dies]] = False
    return x, tx, tt
