from __future__ import annotations

import numpy as np

from ml.features import build_features, label_window, training_set
from ml.ltv import ValueModel, expected_next_order, train_value
from ml.metrics import normalized_gini

from ._data import AS_OF, small


def test_value_model_ranks_spend_and_roundtrips():
    X, y = training_set(small().events, AS_OF, 90, lines=small().lines)
    m = train_value(X, y, seed=0, horizon_days=90, min_repeaters=100)
    assert m.method == "tweedie"
    Xs = build_features(small().events, AS_OF, lines=small().lines)
    spend = label_window(small().events, AS_OF, 90).reindex(Xs.index)["spend"].to_numpy()
    pred = m.predict(Xs)
    assert normalized_gini(spend, pred) > 0.5
    assert abs(pred.sum() / spend.sum() - 1) < 0.4
    np.testing.assert_allclose(ValueModel.from_bytes(m.to_bytes()).predict(Xs), pred)
    frame = m.predict_frame(Xs, AS_OF)
    assert list(frame.columns) == ["predicted_value", "expected_purchases", "expected_next_order"]


def test_small_brands_fall_back_to_btyd():
    X, y = training_set(small().events, AS_OF, 90, lines=small().lines)
    m = train_value(X, y, seed=0, horizon_days=90, min_repeaters=10**6)
    assert m.method == "btyd"
    np.testing.assert_allclose(m.predict(X), X["btyd_exp_spend_90"].fillna(0).to_numpy())


def test_expected_next_order_uses_rhythm_then_btyd():
    X = build_features(small().events, AS_OF, lines=small().lines)
    nxt = expected_next_order(X, AS_OF)
    assert (nxt.dropna() >= AS_OF).all()
    assert nxt[X["n_orders"] == 0].isna().all()
