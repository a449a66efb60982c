from __future__ import annotations

import numpy as np
import pandas as pd

from ml.churn import ChurnModel, band, train_churn
from ml.features import build_features, label_window, training_set
from ml.metrics import auc

from ._data import AS_OF, small


def _train(seed: int = 0):
    X, y = training_set(small().events, AS_OF, 90, lines=small().lines)
    return X, train_churn(X, y, seed=seed)


def test_churn_is_reproducible_and_better_than_chance():
    X, m1 = _train(seed=0)
    _, m2 = _train(seed=0)
    assert m1.metrics == m2.metrics
    np.testing.assert_array_equal(m1.predict(X), m2.predict(X))
    Xs = build_features(small().events, AS_OF, lines=small().lines)
    churned = ~label_window(small().events, AS_OF, 90).reindex(Xs.index)["purchased"].astype(bool)
    assert auc(churned.to_numpy(float), m1.predict(Xs)) > 0.75


def test_calibration_is_monotonic_in_the_raw_margin():
    X, m = _train()
    margin, p = m.raw_margin(X), m.predict(X)
    order = np.argsort(margin)
    assert np.all(np.diff(p[order]) >= -1e-12)
    assert p.min() >= 0 and p.max() <= 1


def test_drivers_sum_to_raw_margin_and_are_signed():
    X, m = _train()
    c = m.contributions(X.head(200))
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), m.raw_margin(X.head(200)), atol=1e-8)
    d = m.drivers(X.head(5), top=3)
    assert len(d) == 5 and all(len(v) == 3 for v in d)
    first = d.iloc[0]
    assert {"feature", "contribution", "value"} <= set(first[0])
    assert abs(first[0]["contribution"]) >= abs(first[2]["contribution"])
    feat = first[0]["feature"]
    assert np.isclose(first[0]["contribution"], c.iloc[0][feat], atol=1e-6)


def test_bands_and_serialization_roundtrip():
    assert list(band(np.array([0.1, 0.33, 0.5, 0.66, 0.9]))) == [
        "Low",
        "Medium",
        "Medium",
        "Medium",
        "High",
    ]
    assert band(0.7) == "High"
    X, m = _train()
    m2 = ChurnModel.from_bytes(m.to_bytes())
    np.testing.assert_allclose(m2.predict(X), m.predict(X))
    # Scoring frames may lack a column (a category that did not occur): still scores.
    assert len(m2.predict(X.drop(columns=[c for c in X if c.startswith("cat_")][:1]))) == len(X)
    assert isinstance(m.to_bytes(), bytes) and pd.notna(m.metrics["cv_auc"])
