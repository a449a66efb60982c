"""Churn risk: P(no purchase in the next H days), LightGBM + probability calibration.

Training rows are customers' features at ``cutoff - H`` with labels from
``[cutoff - H, cutoff)`` (see ``ml.features.training_set``). The booster starts from the
BG/NBD churn probability (``btyd_p_no_purchase_H`` as the initial margin) and learns the
corrections to it: with a small brand it stays close to the model analysts trust, with more
data it moves away where the data say so. It is cross-fitted: out-of-fold scores calibrate
it (isotonic with enough rows, Platt otherwise), then one booster is refitted on all rows
with the cross-validated number of rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ml import _lgbm
from ml.metrics import auc, brier

Progress = Callable[[str, float], None]
LOW, HIGH = 0.33, 0.66
_ISOTONIC_MIN_ROWS = 5_000
_CV_MAX_ROWS = 50_000


def band(p: float | np.ndarray) -> str | np.ndarray:
    """Klaviyo's bands: Low < 0.33 <= Medium <= 0.66 < High."""
    arr = np.asarray(p, dtype=float)
    out = np.where(arr < LOW, "Low", np.where(arr > HIGH, "High", "Medium"))
    return str(out) if out.ndim == 0 else out


@dataclass
class Calibrator:
    """Maps raw margins to probabilities: isotonic (piecewise linear) or Platt (sigmoid)."""

    method: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, margin: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
            return cls("isotonic", x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist())
        lr = LogisticRegression(C=1e4).fit(margin.reshape(-1, 1), y)
        return cls("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(margin, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.a * margin + self.b)))


@dataclass
class ChurnModel:
    """A fitted churn model; ``predict`` gives calibrated P(no purchase in H days)."""

    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    horizon_days: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    prior_column: str | None = None
    prior_base: float = 0.0

    def prior(self, features: pd.DataFrame) -> np.ndarray:
        """The starting margin per row: logit of the BG/NBD churn probability (base if absent)."""
        return _prior(features, self.prior_column, self.prior_base)

    def raw_margin(self, features: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn (what ``contributions`` add up to)."""
        X = _lgbm.matrix(features, self.feature_names)
        return self.booster.predict(X, raw_score=True) + self.prior(features)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities, in the row order of ``features``."""
        return np.clip(self.calibrator(self.raw_margin(features)), 0.0, 1.0)

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the raw margin, plus ``bias``; rows sum to the margin.

        TreeSHAP for the trees; the prior's deviation from its base value is credited to the
        BG/NBD feature it came from, and the base value joins ``bias``.
        """
        X = _lgbm.matrix(features, self.feature_names)
        c = _lgbm.contributions(self.booster, X, self.feature_names)
        c.index = features.index
        prior = self.prior(features)
        if self.prior_column is not None and self.prior_column in c:
            c[self.prior_column] += prior - self.prior_base
            c["bias"] += self.prior_base
        else:
            c["bias"] += prior
        return c

    def drivers(self, features: pd.DataFrame, top: int = 3) -> pd.Series:
        """Top ``top`` drivers per customer: [{feature, contribution, value}], by |contribution|.

        Positive contributions push towards churn (log-odds).
        """
        X = _lgbm.matrix(features, self.feature_names)
        contrib = self.contributions(features).reset_index(drop=True)
        return _lgbm.top_drivers(contrib, X, self.feature_names, features.index, top)

    def to_bytes(self) -> bytes:
        """Serialize for ``model_versions.artifact`` (gzip'd JSON, no pickle)."""
        return _lgbm.dump(
            {
                "kind": "churn",
                "booster": self.booster.model_to_string(),
                "calibrator": self.calibrator.__dict__,
                "feature_names": self.feature_names,
                "horizon_days": self.horizon_days,
                "metrics": self.metrics,
                "params": self.params,
                "prior_column": self.prior_column,
                "prior_base": self.prior_base,
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> ChurnModel:
        """Inverse of ``to_bytes``."""
        body = _lgbm.load(blob, "churn")
        return cls(
            booster=_lgbm.booster_from(body["booster"]),
            calibrator=Calibrator(**body["calibrator"]),
            feature_names=body["feature_names"],
            horizon_days=body["horizon_days"],
            metrics=body["metrics"],
            params=body["params"],
            prior_column=body["prior_column"],
            prior_base=body["prior_base"],
        )


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _prior(features: pd.DataFrame, column: str | None, base: float) -> np.ndarray:
    if column is None or column not in features:
        return np.full(len(features), base)
    p = features[column].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(p), _logit(p), base)


def train_churn(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    seed: int = 0,
    *,
    horizon_days: int = 90,
    folds: int = 5,
    use_prior: bool = True,
    progress: Progress | None = None,
) -> ChurnModel:
    """Fit churn = not ``labels.purchased`` on ``features`` (rows aligned by index).

    Metrics (out-of-fold AUC, Brier, base rate) are attached for the registry. Up to 50k
    rows: 5-fold cross-fit, calibration on the out-of-fold margins, refit on all rows. Above:
    one 80/20 split whose holdout stops the boosting and fits the (isotonic) calibrator.
    """
    step = progress or (lambda _s, _f: None)
    labels = labels.reindex(features.index)
    y = (~labels["purchased"].astype(bool)).to_numpy(dtype=float)
    names = [str(c) for c in features.columns]
    X = _lgbm.matrix(features, names)
    if len(np.unique(y)) < 2:
        raise ValueError("churn labels have a single class: not enough history to train")
    prm = _lgbm.params("binary", seed, len(y))
    prior_col = f"btyd_p_no_purchase_{horizon_days}" if use_prior else None
    if prior_col is not None and (
        prior_col not in features or features[prior_col].notna().sum() == 0
    ):
        prior_col = None
    base = float(_logit(np.array([y.mean()]))[0])
    init = _prior(features, prior_col, base)
    if len(y) > _CV_MAX_ROWS:
        # Big brands: one stratified 80/20 split. The holdout stops the boosting and fits the
        # calibrator; with this many rows a refit on all of them would only cost time.
        step("churn: fit", 0.1)
        tr, va = next(StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(X, y))
        booster = _lgbm.fit(
            X[tr],
            y[tr],
            names,
            prm,
            valid=(X[va], y[va]),
            init=init[tr],
            valid_init=init[va],
            rounds=400,
        )
        n_rounds = booster.best_iteration
        yc = y[va]
        oof = booster.predict(X[va], num_iteration=n_rounds, raw_score=True) + init[va]
        calibrator = Calibrator.fit(oof, yc, "isotonic")
        method = "isotonic"
    else:
        oof, yc, n_rounds = _cross_fit(X, y, init, names, prm, folds, seed, step)
        method = "isotonic" if len(yc) >= _ISOTONIC_MIN_ROWS else "platt"
        calibrator = Calibrator.fit(oof, yc, method)
        step("churn: final fit", folds / (folds + 1))
        booster = _lgbm.fit(X, y, names, prm, rounds=n_rounds, init=init)
    p_oof = calibrator(oof)
    metrics = {
        "cv_auc": auc(yc, p_oof),
        "cv_brier": brier(yc, p_oof),
        "base_rate": float(y.mean()),
        "rows": float(len(y)),
        "rounds": float(n_rounds),
    }
    step("churn: done", 1.0)
    return ChurnModel(
        booster, calibrator, names, horizon_days, metrics,
        {"lgbm": prm, "calibration": method, "prior": prior_col}, prior_col, base,
    )  # fmt: skip


def _cross_fit(
    X: np.ndarray,
    y: np.ndarray,
    init: np.ndarray,
    names: list[str],
    prm: dict[str, Any],
    folds: int,
    seed: int,
    step: Progress,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Out-of-fold raw margins and the number of rounds for the refit on all rows."""
    oof = np.zeros(len(y))
    rounds: list[int] = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (tr, va) in enumerate(skf.split(X, y)):
        step("churn: cross-fit", i / (folds + 1))
        b = _lgbm.fit(
            X[tr], y[tr], names, prm, valid=(X[va], y[va]), init=init[tr], valid_init=init[va]
        )
        rounds.append(max(b.best_iteration, 10))
        oof[va] = b.predict(X[va], num_iteration=b.best_iteration, raw_score=True) + init[va]
    return oof, y, int(np.mean(rounds) * (1 + 1 / folds))  # all rows: a few more rounds
