"""LightGBM plumbing shared by the churn and value models (private to ml)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

ARTIFACT_FORMAT = 1
# Threads for big trainings (>= 500k rows); set with set_threads. Smaller ones use one: it
# is faster there, and OpenMP spin-waits pathologically when another process holds a core.
THREADS = {"big": 2}


def set_threads(n: int) -> None:
    """Threads LightGBM uses on frames above 500k rows (default 2, the target machine)."""
    THREADS["big"] = max(1, int(n))


def matrix(features: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Features in the model's column order; columns the frame lacks become NaN.

    Scoring frames can miss a column the training frame had (a category that did not occur);
    LightGBM routes NaN down the learned missing-value branch instead of failing.
    """
    return features.reindex(columns=list(names)).to_numpy(dtype=np.float64, na_value=np.nan)


def params(objective: str, seed: int, n_rows: int, **extra: Any) -> dict[str, Any]:
    """Defaults that hold from a 2k-customer brand to a 1M one.

    Small data needs strong regularisation (few leaves, big leaves, L2, slow learning); big data
    needs speed (histogram bins, row subsampling); deterministic=True plus a fixed seed and
    single-threaded histogram construction make two runs produce identical trees.
    """
    small = n_rows < 20_000
    p: dict[str, Any] = {
        "objective": objective,
        "learning_rate": 0.05 if small else 0.1,
        "num_leaves": 7 if small else 31,
        "min_data_in_leaf": 40 if small else int(min(200, n_rows // 200)),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 5.0 if small else 1.0,
        "max_bin": 127,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1 if n_rows < 500_000 else THREADS["big"],
        "verbose": -1,
    }
    p.update(extra)
    return p


def fit(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    prm: dict[str, Any],
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int = 600,
    weight: np.ndarray | None = None,
    init: np.ndarray | None = None,
    valid_init: np.ndarray | None = None,
) -> lgb.Booster:
    """Train a booster; with ``valid`` it stops early (50 rounds without improvement).

    ``init``/``valid_init`` are per-row starting margins (boosting from a prior model).
    """
    dtrain = lgb.Dataset(
        X, y, weight=weight, init_score=init, feature_name=list(names), free_raw_data=True
    )
    if valid is None:
        return lgb.train(prm, dtrain, num_boost_round=rounds)
    dvalid = lgb.Dataset(valid[0], valid[1], init_score=valid_init, reference=dtrain)
    return lgb.train(
        prm,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )


def contributions(booster: lgb.Booster, X: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """TreeSHAP contributions per feature plus the ``bias`` column; rows sum to the raw margin."""
    c = booster.predict(X, pred_contrib=True)
    return pd.DataFrame(c, columns=[*names, "bias"])


def top_drivers(
    contrib: pd.DataFrame, X: np.ndarray, names: Sequence[str], index: pd.Index, top: int
) -> pd.Series:
    """Per row, the ``top`` features by |contribution|: name, signed contribution, value."""
    vals = contrib[list(names)].to_numpy()
    k = min(top, vals.shape[1])
    order = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :k]
    rows = np.arange(len(vals))[:, None]
    picked, feat_vals = vals[rows, order], X[rows, order]
    name_arr = np.asarray(list(names), dtype=object)[order]
    out = [
        [
            {
                "feature": str(name_arr[i, j]),
                "contribution": round(float(picked[i, j]), 6),
                "value": None if np.isnan(feat_vals[i, j]) else float(feat_vals[i, j]),
            }
            for j in range(k)
        ]
        for i in range(len(vals))
    ]
    return pd.Series(out, index=index, name="drivers")


def dump(payload: dict[str, Any]) -> bytes:
    """Artifact bytes: gzip'd JSON (boosters as LightGBM's own text), never pickle.

    JSON keeps the artifact loadable by any node and any Python version, and loading it can
    never execute code from the database.
    """
    body = {"format": ARTIFACT_FORMAT, **payload}
    return gzip.compress(json.dumps(body).encode(), compresslevel=6)


def load(blob: bytes, kind: str) -> dict[str, Any]:
    body = json.loads(gzip.decompress(blob))
    if body.get("format") != ARTIFACT_FORMAT or body.get("kind") != kind:
        raise ValueError(
            f"not a {kind} artifact (format {body.get('format')}, kind {body.get('kind')})"
        )
    return body


def booster_from(text: str) -> lgb.Booster:
    return lgb.Booster(model_str=text)
