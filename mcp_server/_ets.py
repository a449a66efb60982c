"""Weekly forecasting: additive exponential smoothing (ETS) and naive benchmarks in numpy.

statsmodels is not a dependency, and the series are short (at most three years of weeks), so
the models are written out here in the innovations form of Hyndman et al., *Forecasting with
Exponential Smoothing* (2008):

    yhat_t = l_{t-1} + phi*b_{t-1} + s_{t-m}          e_t = y_t - yhat_t
    l_t = l_{t-1} + phi*b_{t-1} + alpha*e_t           b_t = phi*b_{t-1} + beta*e_t
    s_t = s_{t-m} + gamma*e_t

Parameters are chosen by a grid search on the one-step squared error. Prediction intervals use
the class-1 variance var_h = sigma^2 * (1 + sum_{j<h} c_j^2), c_j = alpha + beta*phi_j +
gamma*[j mod m == 0]. `select` picks the candidate with the lowest MASE on a hold-out of the
last weeks, then refits it on the whole series.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

SEASON = 52
Z = {80: 1.2816, 95: 1.96}
_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_BETAS = (0.0, 0.01, 0.03, 0.1)
_PHIS = (0.8, 0.9, 0.98)
_GAMMAS = (0.0, 0.05, 0.1, 0.2)


@dataclass
class Model:
    name: str
    params: dict[str, float] = field(default_factory=dict)
    sigma: float = 0.0
    state: tuple[float, float, np.ndarray] | None = None  # level, trend, last season
    last: np.ndarray | None = None  # for the naive models

    def forecast(self, h: int, level: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point forecasts and the (lower, upper) bounds at `level` percent."""
        steps = np.arange(1, h + 1)
        if self.state is None:
            assert self.last is not None
            m = len(self.last)
            point = np.array([self.last[(j - 1) % m] for j in steps], dtype=float)
            # Random walk: variance grows with h; seasonal naive: with completed seasons.
            var = self.sigma**2 * (steps if m == 1 else (steps - 1) // m + 1)
        else:
            lvl, trend, season = self.state
            a, b, g, phi = (self.params.get(k, 0.0) for k in ("alpha", "beta", "gamma", "phi"))
            phi_h = np.cumsum(phi**steps)  # phi is 0 without a trend: no trend term
            m = len(season)
            seas = np.array([season[(j - 1) % m] for j in steps]) if m else np.zeros(h)
            point = lvl + phi_h * trend + seas
            c = a + b * phi_h + (g * ((steps % m) == 0) if m else 0.0)
            var = self.sigma**2 * (1 + np.concatenate(([0.0], np.cumsum(c[:-1] ** 2))))
        half = Z[level] * np.sqrt(var)
        return point, point - half, point + half


def _run(
    y: np.ndarray,
    a: float,
    b: float,
    g: float,
    phi: float,
    m: int,
    l0: float,
    b0: float,
    s0: np.ndarray,
) -> tuple[float, float, float, np.ndarray]:
    """One pass: (sse, level, trend, season) after the last observation."""
    lvl, trend = l0, b0
    season = list(s0)
    sse = 0.0
    for t, yt in enumerate(y):
        s = season[t] if m else 0.0  # the list holds s_{t-m} at index t
        e = yt - (lvl + phi * trend + s)
        sse += e * e
        lvl = lvl + phi * trend + a * e
        trend = phi * trend + b * e
        if m:
            season.append(s + g * e)
    return sse, lvl, trend, np.array(season[-m:] if m else [])


def _init(y: np.ndarray, m: int, trend: bool) -> tuple[float, float, np.ndarray]:
    if m:
        first, second = y[:m].mean(), y[m : 2 * m].mean()
        s = ((y[:m] - first) + (y[m : 2 * m] - second)) / 2
        return first, (second - first) / m if trend else 0.0, s - s.mean()
    k = min(4, len(y) // 2)
    l0 = y[:k].mean()
    b0 = (y[k : 2 * k].mean() - l0) / k if trend and len(y) >= 2 * k else 0.0
    return l0, b0, np.array([])


def fit_ets(y: np.ndarray, *, trend: bool, seasonal: bool) -> Model:
    m = SEASON if seasonal else 0
    l0, b0, s0 = _init(y, m, trend)
    best: tuple[float, tuple[float, float, float, float], tuple] | None = None
    grid = itertools.product(
        _ALPHAS,
        _BETAS if trend else (0.0,),
        _GAMMAS if seasonal else (0.0,),
        _PHIS if trend else (1.0,),
    )
    for a, b, g, phi in grid:
        if b > a or g > 1 - a:  # the usual admissible region
            continue
        sse, lvl, tr, season = _run(y, a, b, g, phi, m, l0, b0, s0)
        if best is None or sse < best[0]:
            best = (sse, (a, b, g, phi), (lvl, tr, season))
    assert best is not None
    sse, (a, b, g, phi), state = best
    n_params = 1 + trend * 2 + seasonal
    sigma = float(np.sqrt(sse / max(len(y) - n_params, 1)))
    name = (
        "ETS(A,Ad,A) Holt-Winters, 52-week season"
        if seasonal
        else (
            "ETS(A,Ad,N) damped-trend exponential smoothing"
            if trend
            else "ETS(A,N,N) simple exponential smoothing"
        )
    )
    params = {"alpha": a, "beta": b, "phi": phi} if trend else {"alpha": a}
    if seasonal:
        params["gamma"] = g
    return Model(name, params, sigma, state)


def fit_naive(y: np.ndarray, seasonal: bool) -> Model:
    m = SEASON if seasonal else 1
    resid = y[m:] - y[:-m]
    sigma = float(np.sqrt(np.mean(resid**2))) if len(resid) else 0.0
    name = "seasonal naive (same week last year)" if seasonal else "naive (last week repeated)"
    return Model(name, {}, sigma, None, y[-m:].astype(float))


def candidates(n: int) -> list[tuple[str, dict[str, bool]]]:
    out = [
        ("naive", {"seasonal": False}),
        ("ets", {"trend": False, "seasonal": False}),
        ("ets", {"trend": True, "seasonal": False}),
    ]
    if n >= SEASON + 8:
        out.append(("naive", {"seasonal": True}))
    if n >= 2 * SEASON + 8:
        out.append(("ets", {"trend": True, "seasonal": True}))
    return out


def fit(kind: str, y: np.ndarray, opts: dict[str, bool]) -> Model:
    return fit_ets(y, **opts) if kind == "ets" else fit_naive(y, **opts)


@dataclass
class Backtest:
    holdout: int
    scores: list[tuple[str, float, float | None]]  # (method, MASE, MAPE %)


def mase_scale(train: np.ndarray) -> float:
    """In-sample MAE of the one-step naive forecast: the MASE denominator."""
    diffs = np.abs(np.diff(train))
    return float(diffs.mean()) if len(diffs) and diffs.mean() > 0 else 1.0


def select(y: np.ndarray, holdout: int) -> tuple[Model, Backtest, int]:
    """Fit every candidate on all but the last `holdout` weeks, score on them, and refit the
    best on the full series. Returns (model, backtest, index of the winner)."""
    train, test = y[:-holdout], y[-holdout:]
    scale = mase_scale(train)
    scores = []
    for kind, opts in candidates(len(train)):
        model = fit(kind, train, opts)
        point, _, _ = model.forecast(holdout)
        err = np.abs(test - point)
        nz = test != 0
        mape = float(np.mean(err[nz] / np.abs(test[nz])) * 100) if nz.any() else None
        scores.append((model.name, float(err.mean() / scale), mape))
    best = int(np.argmin([s[1] for s in scores]))
    kind, opts = candidates(len(train))[best]
    return fit(kind, y, opts), Backtest(holdout, scores), best
