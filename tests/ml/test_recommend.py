from __future__ import annotations

from ml.metrics import ranking_report
from ml.recommend import (
    Recommender,
    as_lists,
    fit_recommender,
    holdout_last_basket,
    own_top_items,
    popular_items,
)

from ._data import small


def test_recommender_beats_popularity_and_explains_itself():
    lines = small().lines
    train, truth = holdout_last_basket(lines)
    rec = fit_recommender(train, products=small().products, seed=0)
    out = rec.recommend(train, list(truth), k=10)
    ours = ranking_report(as_lists(out), truth)
    pop = ranking_report({u: popular_items(train) for u in truth}, truth)
    own = ranking_report(own_top_items(train), truth)
    assert ours["precision@10"] > 1.5 * pop["precision@10"]
    assert ours["ndcg@10"] >= 0.95 * own["ndcg@10"]
    assert out.groupby("profile_id").size().max() == 10
    assert out["reason"].str.contains(r"bought every \d+ (?:days|weeks|months)").any()
    assert out["reason"].notna().all()
    # Deterministic and serializable.
    again = Recommender.from_bytes(rec.to_bytes()).recommend(train, list(truth), k=10)
    assert as_lists(again) == as_lists(out)


def test_cold_start_customers_get_popular_items():
    lines = small().lines
    rec = fit_recommender(lines, seed=0)
    out = rec.recommend(lines, ["never-seen"], k=5)
    assert list(out["product_id"]) == popular_items(lines, 5) or len(out) == 5
    assert set(out["reason"]) == {"popular right now"}
