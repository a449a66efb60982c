from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import build_features, label_window, training_set

from ._data import AS_OF, small


def _future_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Big purchases, refunds, views and carts at and after as_of for existing customers."""
    who = events["profile_id"].astype(str).unique()[:200]
    rows = []
    for i, pid in enumerate(who):
        for kind in ("purchase", "refund", "product_view", "cart_add", "message_in"):
            rows.append(
                {
                    "profile_id": pid,
                    "occurred_at": AS_OF + pd.Timedelta(hours=i % 3),  # includes as_of itself
                    "type": kind,
                    "source": "pos",
                    "total": 9999.0,
                    "order_id": f"future-{i}-{kind}",
                    "items": [
                        {"product_id": "pX", "category": "FUTURE", "price": 9999.0, "quantity": 1}
                    ],
                }
            )
    return pd.DataFrame(rows)


def test_injecting_future_events_changes_no_feature():
    ev = small().events
    ev = ev.assign(profile_id=ev["profile_id"].astype(str))
    base = build_features(ev, AS_OF, horizons=(90, 365))
    leaked = pd.concat([ev, _future_rows(ev)], ignore_index=True)
    after = build_features(leaked, AS_OF, horizons=(90, 365))
    pd.testing.assert_frame_equal(base, after)
    # The same future rows DO change features once they are in the past: the test has teeth.
    later = build_features(leaked, AS_OF + pd.Timedelta(days=1), horizons=(90, 365))
    assert not later["monetary_total"].equals(base["monetary_total"].reindex(later.index))


def test_training_set_reads_nothing_at_or_after_as_of():
    ev = small().events
    ev = ev.assign(profile_id=ev["profile_id"].astype(str))
    X1, y1 = training_set(ev.loc[ev["occurred_at"] < AS_OF], AS_OF, 90)
    X2, y2 = training_set(pd.concat([ev, _future_rows(ev)], ignore_index=True), AS_OF, 90)
    pd.testing.assert_frame_equal(X1, X2.loc[X1.index])
    pd.testing.assert_frame_equal(y1, y2.loc[y1.index])


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="timezone"):
        build_features(small().events, pd.Timestamp("2024-10-01"))


def test_features_by_hand():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    day = pd.Timedelta(days=1)
    ev = pd.DataFrame(
        {
            "profile_id": ["a", "a", "a", "a", "a", "b"],
            "occurred_at": [t0, t0 + 10 * day, t0 + 30 * day, t0 + 35 * day, t0 + 36 * day, t0 + 20 * day],
            "type": ["purchase", "purchase", "purchase", "refund", "cart_add", "product_view"],
            "source": ["shopify", "pos", "shopify", "shopify", "web", "web"],
            "total": [10.0, 20.0, 30.0, 5.0, np.nan, np.nan],
            "order_id": ["1", "2", "3", None, None, None],
            "items": [
                [{"product_id": "p1", "category": "Tea", "price": 10.0, "quantity": 1}],
                [{"product_id": "p2", "category": "Cake", "price": 10.0, "quantity": 2}],
                [{"product_id": "p1", "category": "Tea", "price": 30.0, "quantity": 1}],
                None, None, None,
            ],
        }
    )  # fmt: skip
    profiles = pd.DataFrame(
        {"profile_id": ["a", "b"], "created_at": [t0, t0], "profile_strength": [80, 20]}
    )
    X = build_features(ev, t0 + 40 * day, profiles, with_btyd=False)
    a, b = X.loc["a"], X.loc["b"]
    assert a["n_orders"] == 3 and a["frequency"] == 2
    assert a["recency_days"] == pytest.approx(10) and a["tenure_days"] == pytest.approx(40)
    assert a["monetary_total"] == 60 and a["monetary_mean"] == 20
    assert a["ipt_mean"] == pytest.approx(15) and a["ipt_std"] == pytest.approx(
        np.std([10, 20], ddof=1)
    )
    assert a["refund_total"] == 5 and a["refund_rate"] == pytest.approx(5 / 60)
    assert a["spend_90d"] == 60 and a["spend_trend"] == 1.0
    assert a["cat_tea"] == pytest.approx(40 / 60) and a["cat_cake"] == pytest.approx(20 / 60)
    assert a["abandoned_carts_90d"] == 1 and a["n_cart_30d"] == 1
    assert a["share_store"] == pytest.approx(1 / 5) and a["profile_strength"] == 80
    assert (
        b["n_orders"] == 0
        and np.isnan(b["recency_days"])
        and b["days_since_last_view"] == pytest.approx(20)
    )
    y = label_window(ev, t0 + 5 * day, 30)
    assert (
        y.loc["a", "n_purchases"] == 2 and y.loc["a", "spend"] == 50 and not y.loc["b", "purchased"]
    )
