"""Customer value: expected spend in the next H days, purchases and the next order date.

Two LightGBM formulations are available (``method``):

- ``tweedie`` (default): one booster with the Tweedie (compound Poisson-gamma, power 1.3)
  objective, whose point mass at zero fits "did not buy". It ranked (normalized Gini,
  Spearman) and added up (aggregate error) best on Complete Journey (docs/ml.md).
- ``two_part``: P(buy in H) x E[spend | buy], a binary booster times a gamma-objective
  booster fitted on buyers: the zero-inflated shape of ZILN (Wang et al. 2019) without a
  custom loss. Within noise of tweedie, at twice the training cost.

Brands with fewer than ``min_repeaters`` repeat customers get the BG/NBD + Gamma-Gamma
estimate itself (``method == "btyd"``): with little history a tree model memorizes noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml import _lgbm
from ml.metrics import normalized_gini, spearman

Progress = Callable[[str, float], None]
METHODS = ("two_part", "tweedie", "btyd")


@dataclass
class ValueModel:
    """A fitted value model; ``predict`` gives expected spend over ``horizon_days``."""

    method: str
    horizon_days: int
    feature_names: list[str]
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def _btyd(self, features: pd.DataFrame, what: str) -> np.ndarray:
        col = f"btyd_exp_{what}_{self.horizon_days}"
        if col not in features:
            raise KeyError(
                f"features lack {col}: build them with horizons including {self.horizon_days}"
            )
        return features[col].fillna(0.0).to_numpy(float)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Expected spend in the next ``horizon_days`` days, in row order."""
        if self.method == "btyd":
            return self._btyd(features, "spend")
        X = _lgbm.matrix(features, self.feature_names)
        if self.method == "tweedie":
            return np.asarray(self.boosters["value"].predict(X))
        return np.asarray(self.boosters["buy"].predict(X)) * np.asarray(
            self.boosters["spend"].predict(X)
        )

    def predict_frame(self, features: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        """predicted_value, expected_purchases (BG/NBD) and expected_next_order per customer."""
        return pd.DataFrame(
            {
                "predicted_value": self.predict(features),
                "expected_purchases": self._btyd(features, "purchases"),
                "expected_next_order": expected_next_order(features, as_of),
            },
            index=features.index,
        )

    def to_bytes(self) -> bytes:
        """Serialize for ``model_versions.artifact`` (gzip'd JSON, no pickle)."""
        return _lgbm.dump(
            {
                "kind": "value",
                "method": self.method,
                "horizon_days": self.horizon_days,
                "feature_names": self.feature_names,
                "boosters": {k: b.model_to_string() for k, b in self.boosters.items()},
                "metrics": self.metrics,
                "params": self.params,
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> ValueModel:
        """Inverse of ``to_bytes``."""
        body = _lgbm.load(blob, "value")
        return cls(
            method=body["method"],
            horizon_days=body["horizon_days"],
            feature_names=body["feature_names"],
            boosters={k: _lgbm.booster_from(v) for k, v in body["boosters"].items()},
            metrics=body["metrics"],
            params=body["params"],
        )


def expected_next_order(features: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Expected date of the next order.

    Customers with a rhythm (>= 2 purchase days) are due ``ipt_mean`` days after their last
    order; once overdue, or with a single order, the BG/NBD posterior mean waiting time of an
    active customer from ``as_of`` is used. Customers who never bought get NaT.
    """
    rec = features["recency_days"].to_numpy(float)
    ipt = (
        features["ipt_mean"].to_numpy(float)
        if "ipt_mean" in features
        else np.full(len(features), np.nan)
    )
    wait = (
        features["btyd_days_to_next"].to_numpy(float)
        if "btyd_days_to_next" in features
        else np.full(len(features), np.nan)
    )
    ahead = ipt - rec
    days = np.where(np.isfinite(ahead) & (ahead > 0), ahead, np.where(np.isfinite(wait), wait, ipt))
    days = np.where(np.isfinite(rec), days, np.nan)
    out = pd.Timestamp(as_of) + pd.to_timedelta(np.round(days * 86400), unit="s")
    return pd.Series(out, index=features.index, name="expected_next_order")


def _holdout(n: int, seed: int, frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(n * frac))
    return np.sort(idx[cut:]), np.sort(idx[:cut])


def _fit_with_rounds(
    X: np.ndarray, y: np.ndarray, names: list[str], prm: dict[str, Any], seed: int
) -> tuple[lgb.Booster, int]:
    """Early-stop on a 20% holdout, then refit on all rows with a few more rounds.

    Above 50k rows the holdout-stopped booster is kept: a refit would double the cost for
    a gain lost in the noise.
    """
    tr, va = _holdout(len(y), seed)
    b = _lgbm.fit(
        X[tr], y[tr], names, prm, valid=(X[va], y[va]), rounds=1000 if len(y) <= 50_000 else 400
    )
    if len(y) > 50_000:
        return b, b.best_iteration
    rounds = max(10, int(b.best_iteration * 1.2))
    return _lgbm.fit(X, y, names, prm, rounds=rounds), rounds


def train_value(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    seed: int = 0,
    *,
    horizon_days: int = 365,
    method: str = "tweedie",
    min_repeaters: int = 300,
    progress: Progress | None = None,
) -> ValueModel:
    """Fit expected spend in the next ``horizon_days`` on features at cutoff - H.

    ``labels`` is ``ml.features.label_window`` output aligned by index (``spend``,
    ``purchased``). Falls back to ``method="btyd"`` when the brand has fewer than
    ``min_repeaters`` customers with a repeat purchase or no buyer in the label window.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    step = progress or (lambda _s, _f: None)
    labels = labels.reindex(features.index)
    spend = labels["spend"].fillna(0.0).clip(lower=0).to_numpy(float)
    bought = spend > 0
    repeaters = int((features.get("frequency", pd.Series(0, index=features.index)) > 0).sum())
    names = [str(c) for c in features.columns]
    if method == "btyd" or repeaters < min_repeaters or bought.sum() < 20:
        model = ValueModel("btyd", horizon_days, names, params={"repeaters": repeaters})
    else:
        X = _lgbm.matrix(features, names)
        n = len(spend)
        boosters: dict[str, lgb.Booster] = {}
        info: dict[str, Any] = {"repeaters": repeaters}
        if method == "tweedie":
            step("value: tweedie", 0.1)
            prm = _lgbm.params("tweedie", seed, n, tweedie_variance_power=1.3)
            boosters["value"], info["rounds"] = _fit_with_rounds(X, spend, names, prm, seed)
        else:
            step("value: P(buy)", 0.1)
            prm_b = _lgbm.params("binary", seed, n)
            boosters["buy"], info["rounds_buy"] = _fit_with_rounds(
                X, bought.astype(float), names, prm_b, seed
            )
            step("value: spend | buy", 0.5)
            prm_s = _lgbm.params("gamma", seed, int(bought.sum()))
            boosters["spend"], info["rounds_spend"] = _fit_with_rounds(
                X[bought], spend[bought], names, prm_s, seed
            )
            info["lgbm"] = prm_s
        model = ValueModel(method, horizon_days, names, boosters, params=info)
    fitted = model.predict(features)
    model.metrics = {
        "train_gini": normalized_gini(spend, fitted) if spend.sum() > 0 else float("nan"),
        "train_spearman": spearman(spend, fitted),
        "train_total_ratio": float(fitted.sum() / max(spend.sum(), 1e-9)),
        "rows": float(len(spend)),
    }
    step("value: done", 1.0)
    return model
