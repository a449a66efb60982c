"""Parameter estimation for `ScoringModel`: EM on unlabeled pairs, and review labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from identity._compare import PairFeatures
from identity.scoring import Comparison, ScoringModel

# Keep probabilities strictly inside (0, 1): a level never seen is rare, not impossible.
_EPS = 1e-9


def encode(model: ScoringModel, features: Sequence[PairFeatures] | np.ndarray) -> np.ndarray:
    """Level indices, shape (pairs, comparisons) in model order; -1 where data is missing."""
    if isinstance(features, np.ndarray):
        return features
    names = [c.name for c in model.comparisons]
    lookup = [{lv.name: i for i, lv in enumerate(c.levels)} for c in model.comparisons]
    codes = np.full((len(features), len(names)), -1, dtype=np.int16)
    for row, pair in enumerate(features):
        for name, level in pair.levels.items():
            if level is None:
                continue
            col = names.index(name) if name in names else -1
            if col < 0:
                model.comparison(name)  # raises with the list of known comparisons
            try:
                codes[row, col] = lookup[col][level]
            except KeyError:
                model.comparison(name).level(level)  # raises naming the level
    return codes


def _weights(model: ScoringModel) -> list[np.ndarray]:
    # One extra slot at the end: index -1 (missing) reads 0 bits.
    return [np.array([lv.weight for lv in c.levels] + [0.0]) for c in model.comparisons]


def match_probabilities(model: ScoringModel, codes: np.ndarray) -> np.ndarray:
    """Match probability of every encoded pair (no frequency adjustment)."""
    total = np.full(codes.shape[0], model.prior_weight)
    for col, table in enumerate(_weights(model)):
        total += table[codes[:, col]]
    return 1.0 / (1.0 + np.exp2(-np.clip(total, -200, 200)))


def _refit(
    comp: Comparison, column: np.ndarray, weights: np.ndarray, current: list[float], k: float
) -> list[float]:
    """Weighted share of each level within its context, smoothed towards `current`."""
    counts = np.bincount(column[column >= 0], weights=weights[column >= 0], minlength=len(current))
    out = list(current)
    contexts: dict[str, list[int]] = {}
    for i, level in enumerate(comp.levels):
        contexts.setdefault(level.context, []).append(i)
    for members in contexts.values():
        prior_mass = sum(current[i] for i in members)
        total = counts[members].sum() + k
        if total <= 0:
            continue
        for i in members:
            share = (counts[i] + k * current[i] / prior_mass) / total
            out[i] = float(min(1.0, max(_EPS, share)))
    return out


def _with(model: ScoringModel, ms: list[list[float]], us: list[list[float]]) -> ScoringModel:
    comps = tuple(
        replace(c, levels=tuple(replace(lv, m=m, u=u) for lv, m, u in zip(c.levels, mc, uc, strict=True)))
        for c, mc, uc in zip(model.comparisons, ms, us, strict=True)
    )  # fmt: skip
    return replace(model, comparisons=comps)


def em(
    features: Sequence[PairFeatures] | np.ndarray,
    model: ScoringModel,
    max_iter: int,
    tol: float,
    fit_u: bool,
    fit_prior: bool,
    pseudo_count: float,
) -> ScoringModel:
    """Expectation-maximisation of m, u and the prior; see `scoring.fit_em`."""
    codes = encode(model, features)
    if codes.shape[0] == 0:
        raise ValueError("fit_em needs at least one pair")
    for _ in range(max_iter):
        p = match_probabilities(model, codes)
        ms, us, delta = [], [], 0.0
        for col, comp in enumerate(model.comparisons):
            m_old = [lv.m for lv in comp.levels]
            u_old = [lv.u for lv in comp.levels]
            m_new = _refit(comp, codes[:, col], p, m_old, pseudo_count)
            u_new = _refit(comp, codes[:, col], 1.0 - p, u_old, pseudo_count) if fit_u else u_old
            delta = max(
                delta, *(abs(a - b) for a, b in zip(m_new + u_new, m_old + u_old, strict=True))
            )
            ms.append(m_new)
            us.append(u_new)
        model = _with(model, ms, us)
        if fit_prior:
            prior = float(np.clip(p.mean(), 1e-9, 1 - 1e-9))
            delta = max(delta, abs(prior - model.prior))
            model = replace(model, prior=prior)
        if delta < tol:
            break
    return replace(model, version=f"{model.version.split('+')[0]}+em")


def from_labels(
    features: Sequence[PairFeatures] | np.ndarray,
    labels: Sequence[bool],
    model: ScoringModel,
    prior_strength: float,
    fit_u: bool,
) -> ScoringModel:
    """m (and optionally u) from reviewed pairs, smoothed towards the current model."""
    codes = encode(model, features)
    y = np.asarray(labels, dtype=bool)
    if codes.shape[0] != y.shape[0]:
        raise ValueError(f"{codes.shape[0]} pairs but {y.shape[0]} labels")
    ms, us = [], []
    for col, comp in enumerate(model.comparisons):
        m_old = [lv.m for lv in comp.levels]
        u_old = [lv.u for lv in comp.levels]
        ms.append(_refit(comp, codes[:, col], y.astype(float), m_old, prior_strength))
        us.append(
            _refit(comp, codes[:, col], (~y).astype(float), u_old, prior_strength)
            if fit_u
            else u_old
        )
    return replace(_with(model, ms, us), version=f"{model.version.split('+')[0]}+labels")
