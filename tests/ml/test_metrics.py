from __future__ import annotations

import numpy as np
import pytest

from ml import metrics as M


def test_auc_brier_lift_by_hand():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert M.auc(y, s) == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert M.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # ties count one half
    assert M.brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    y10 = [1] + [0] * 9
    assert M.lift_at(y10, list(range(10, 0, -1)), 0.1) == pytest.approx(10.0)


def test_normalized_gini_by_hand():
    y = [1.0, 2.0, 3.0, 4.0]
    assert M.normalized_gini(y, y) == pytest.approx(1.0)
    assert M.normalized_gini(y, [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Prediction order puts actuals [4, 3, 1, 2]: cumsum 4, 7, 8, 10 -> 29/10 - 2.5 = 0.4;
    # the perfect order [4, 3, 2, 1]: cumsum 4, 7, 9, 10 -> 30/10 - 2.5 = 0.5; ratio 0.8.
    assert M.normalized_gini(y, [0.3, 0.1, 0.8, 0.9]) == pytest.approx(0.8)


def test_spearman_aggregate_deciles():
    assert M.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert M.aggregate_error([10, 10], [12, 9]) == pytest.approx(0.05)
    t = M.decile_table(np.arange(20.0), np.arange(20.0), bins=10)
    assert list(t["n"]) == [2] * 10
    assert t["mean_actual"].iloc[0] == pytest.approx(18.5)  # decile 1 = highest predictions
    assert t["mean_pred"].is_monotonic_decreasing


def test_psi():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert M.psi(a, a) == pytest.approx(0.0, abs=1e-9)
    assert M.psi(a, rng.normal(size=5000)) < 0.02
    assert M.psi(a, rng.normal(1.0, 1.0, size=5000)) > 0.25


def test_ranking_metrics_by_hand():
    recs = ["a", "b", "c", "d"]
    rel = {"b", "d", "z"}
    assert M.precision_at_k(recs, rel, 4) == pytest.approx(0.5)
    assert M.recall_at_k(recs, rel, 4) == pytest.approx(2 / 3)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert M.ndcg_at_k(recs, rel, 4) == pytest.approx(dcg / idcg)
    rep = M.ranking_report({"u1": recs}, {"u1": rel, "u2": {"a"}}, k=4)
    assert rep["users"] == 2 and rep["precision@4"] == pytest.approx(0.25)
