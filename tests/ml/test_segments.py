from __future__ import annotations

import pandas as pd

from ml.features import build_features
from ml.names import RFM_SEGMENTS
from ml.segments import fit_clusters, quintile_score, rfm, rfm_segment

from ._data import AS_OF, small


def test_rfm_rules_on_hand_made_cases():
    assert rfm_segment(5, 5, 5) == "Champions"
    assert rfm_segment(5, 1, 1) == "New"
    assert rfm_segment(4, 1, 1) == "Promising"
    assert rfm_segment(4, 4, 4) == "Loyal"
    assert rfm_segment(5, 2, 3) == "Potential Loyalists"
    assert rfm_segment(3, 3, 3) == "Need Attention"
    assert rfm_segment(3, 1, 2) == "About to Sleep"
    assert rfm_segment(2, 4, 3) == "At Risk"
    assert rfm_segment(1, 5, 5) == "Can't Lose Them"
    assert rfm_segment(2, 1, 1) == "Hibernating"
    assert rfm_segment(1, 1, 2) == "Lost"
    cells = {rfm_segment(r, f, f) for r in range(1, 6) for f in range(1, 6)}
    assert cells == set(RFM_SEGMENTS)


def test_rfm_scores_from_features():
    f = pd.DataFrame(
        {
            "n_orders": [0, 1, 1, 1, 5, 9],
            "recency_days": [None, 300, 200, 100, 10, 1],
            "monetary_total": [0, 10, 10, 20, 200, 900],
        },
        index=["none", "a", "b", "c", "d", "e"],
    )
    out = rfm(f)
    assert out.loc["none", "segment"] == "Prospects"
    assert out.loc["e", "segment"] == "Champions" and out.loc["a", "segment"] == "Lost"
    # Ties share the lowest quintile they reach: three one-order customers all get F = 1.
    assert list(quintile_score(pd.Series([1, 1, 1, 5, 9]))) == [1, 1, 1, 4, 5]


def test_kmeans_names_are_deterministic_and_plain():
    X = build_features(small().events, AS_OF, lines=small().lines, with_btyd=False)
    c1 = fit_clusters(X, seed=0, sample=1000)
    c2 = fit_clusters(X, seed=0, sample=1000)
    assert c1.names == c2.names and 3 <= len(c1.names) <= 8
    assert len(set(c1.names)) == len(c1.names)
    assert all(
        n[0].isupper()
        and n.replace(",", "")
        .replace("'", "")
        .replace("-", "")
        .replace(" ", "")
        .replace("(", "")
        .replace(")", "")
        .isalnum()
        for n in c1.names
    )
    a = c1.assign(X)
    assert set(a.unique()) <= set(c1.names)
    assert type(c1).from_dict(c1.to_dict()).assign(X).equals(a)
