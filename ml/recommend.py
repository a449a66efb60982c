"""Recommendations that respect repeat buying, with a reason per item.

Hybrid in one ranked list: the customer's own items (scored by how often, how recently and
whether they are due by their own rhythm: "bought every 3 weeks"), co-purchase neighbours of
their recent baskets ("often bought with X"), and what sells now for cold starts. A small
LightGBM ranker, trained on each customer's next basket at a few past points in time,
weighs these signals; with too little data a fixed blend is used instead.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml import _lgbm, _recs
from ml._frames import as_utc, before, unique_ids

Progress = Callable[[str, float], None]


@dataclass
class Recommender:
    """Item vocabulary, co-purchase neighbours and the ranker; histories come at call time."""

    item_ids: list[str]
    item_names: dict[str, str]
    neighbours: sp.csr_matrix
    ranker: lgb.Booster | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def _score(self, c: pd.DataFrame) -> np.ndarray:
        if self.ranker is not None:
            return np.asarray(self.ranker.predict(c[_recs.FEATURES].to_numpy(float)))
        # Fallback blend for tiny brands: own decayed share, then neighbours, then popularity.
        return (
            c["w_k_share"].to_numpy() + 0.3 * c["cooc"].to_numpy() + 0.01 * c["item_pop"].to_numpy()
        )

    def recommend(
        self,
        lines: pd.DataFrame,
        profile_ids: Iterable[str] | None = None,
        k: int = 10,
        as_of: pd.Timestamp | None = None,
        *,
        batch: int = 200_000,
        progress: Progress | None = None,
    ) -> pd.DataFrame:
        """Top ``k`` per customer: profile_id, rank (1..k), product_id, score, reason.

        ``lines`` are the brand's line items (only rows before ``as_of`` are used when it is
        given). Customers in ``profile_ids`` without history get popular items.
        """
        step = progress or (lambda _s, _f: None)
        ln = before(lines, as_utc(as_of)) if as_of is not None else lines
        known = pd.Index(self.item_ids)
        extra = unique_ids(ln["product_id"]).difference(known)
        items = known.append(extra)
        S = self.neighbours.copy()
        S.resize((len(items), len(items)))
        custs = unique_ids(ln["profile_id"])
        wanted = (
            custs if profile_ids is None else pd.Index([str(p) for p in profile_ids], dtype=object)
        )
        custs = custs.append(wanted.difference(custs))
        h = _recs.make_history(ln, custs, items)
        stats = _recs.item_stats(h)
        now_gap = None
        if as_of is not None:
            last = np.full(h.n_cust, -np.inf)
            np.maximum.at(last, h.b_cust, h.b_time)
            now_gap = np.where(np.isfinite(last), as_utc(as_of).value / 86_400e9 - last, 0.0)
        codes = custs.get_indexer(wanted)
        out = []
        row_cust = np.zeros(h.n_cust, dtype=bool)
        for i in range(0, len(codes), batch):
            step("recommend", i / max(len(codes), 1))
            part = codes[i : i + batch]
            row_cust[:] = False
            row_cust[part] = True
            keep_b = row_cust[h.b_cust]
            c = _recs.candidates(h.subset(keep_b), part, S, now_gap=now_gap, stats=stats)
            c["score"] = self._score(c)
            c = c.sort_values(["cust", "score"], ascending=[True, False], kind="stable")
            out.append(c.groupby("cust", sort=False).head(k))
        step("recommend", 1.0)
        top = (
            pd.concat(out, ignore_index=True)
            if out
            else pd.DataFrame(columns=["cust", "item", "score"])
        )
        names = np.asarray([self.item_names.get(x, x) for x in items], dtype=object)
        res = pd.DataFrame(
            {
                "profile_id": custs.to_numpy()[top["cust"].to_numpy(np.int64)],
                "rank": top.groupby("cust", sort=False).cumcount().to_numpy() + 1,
                "product_id": items.to_numpy()[top["item"].to_numpy(np.int64)],
                "score": top["score"].to_numpy(float),
                "reason": _reasons(top, names),
            }
        )
        return res

    def to_bytes(self) -> bytes:
        """Serialize for ``model_versions.artifact`` (gzip'd JSON, no pickle)."""
        buf = io.BytesIO()
        sp.save_npz(buf, self.neighbours.tocsr(), compressed=True)
        return _lgbm.dump(
            {
                "kind": "recommender",
                "item_ids": self.item_ids,
                "item_names": self.item_names,
                "neighbours": base64.b64encode(buf.getvalue()).decode(),
                "ranker": self.ranker.model_to_string() if self.ranker is not None else None,
                "params": self.params,
                "metrics": self.metrics,
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> Recommender:
        """Inverse of ``to_bytes``."""
        body = _lgbm.load(blob, "recommender")
        S = sp.load_npz(io.BytesIO(base64.b64decode(body["neighbours"])))
        ranker = _lgbm.booster_from(body["ranker"]) if body["ranker"] else None
        return cls(
            body["item_ids"], body["item_names"], S.tocsr(), ranker, body["params"], body["metrics"]
        )


def _reasons(top: pd.DataFrame, names: np.ndarray) -> np.ndarray:
    interval = top.get("interval", pd.Series(np.nan, index=top.index)).to_numpy(float)
    owned = top.get("owned", pd.Series(0.0, index=top.index)).to_numpy(float) > 0
    via = top.get("via_item", pd.Series(-1, index=top.index)).fillna(-1).to_numpy(np.int64)
    out = np.full(len(top), "popular right now", dtype=object)
    for i in range(len(top)):
        if owned[i]:
            iv = interval[i]
            if not np.isfinite(iv):
                out[i] = "bought before"
            elif iv < 13.5:
                out[i] = f"bought every {max(1, round(iv))} days"
            elif iv < 60:
                out[i] = f"bought every {round(iv / 7)} weeks"
            else:
                out[i] = f"bought every {round(iv / 30.4)} months"
        elif via[i] >= 0:
            out[i] = f"often bought with {names[via[i]]}"
    return out


def fit_recommender(
    lines: pd.DataFrame,
    *,
    products: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    seed: int = 0,
    n_targets: int = 4,
    max_customers: int = 20_000,
    progress: Progress | None = None,
) -> Recommender:
    """Fit neighbours and the ranker on line items before ``as_of`` (all lines when None).

    Ranker rows: for each of the last ``n_targets`` baskets of up to ``max_customers``
    sampled customers, the candidates built from the baskets before it, labelled by whether
    the item was in it. Neighbours for those rows come from history before the earliest
    target basket, so the ranker never sees co-purchase counts that include its labels.
    """
    step = progress or (lambda _s, _f: None)
    ln = before(lines, as_utc(as_of)) if as_of is not None else lines
    items = unique_ids(ln["product_id"])
    custs = unique_ids(ln["profile_id"])
    names: dict[str, str] = {}
    if products is not None and "name" in products:
        nm = products.assign(product_id=products["product_id"].astype(str)).set_index("product_id")[
            "name"
        ]
        names = {k: str(v) for k, v in nm.reindex(items).dropna().items()}
    step("recommender: history", 0.0)
    h = _recs.make_history(ln, custs, items)
    rank = h.basket_rank()
    n_b = np.bincount(h.b_cust, minlength=h.n_cust)
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(n_b >= 2)
    sample = (
        np.sort(rng.choice(eligible, min(max_customers, len(eligible)), replace=False))
        if len(eligible)
        else eligible
    )
    S_train = (
        _recs.cooccurrence(h.subset(rank >= n_targets))
        if len(h.b_time)
        else sp.csr_matrix((h.n_items, h.n_items))
    )
    in_sample = np.zeros(h.n_cust, dtype=bool)
    in_sample[sample] = True
    frames = []
    for s in range(1, n_targets + 1):
        step("recommender: training rows", s / (n_targets + 2))
        custs_s = sample[n_b[sample] > s]
        if not len(custs_s):
            break
        hist = h.subset(rank >= s)
        # Item statistics need everyone's history; the candidates only the sampled customers'.
        stats = _recs.item_stats(hist)
        c = _recs.candidates(hist.subset(in_sample[hist.b_cust]), custs_s, S_train, stats=stats)
        tgt = (rank == s - 1)[h.basket]
        pos = np.unique(h.cust[tgt].astype(np.int64) * h.n_items + h.item[tgt])
        c["y"] = np.isin(
            c["cust"].to_numpy(np.int64) * h.n_items + c["item"].to_numpy(np.int64), pos
        )
        frames.append(c)
    ranker = None
    metrics: dict[str, float] = {}
    train = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(train) and train["y"].sum() >= 50:
        step("recommender: ranker", (n_targets + 1) / (n_targets + 2))
        # Ranking within a customer only needs the order of scores: keeping every positive
        # and a sample of negatives changes the intercept, not the order, at a third the cost.
        neg = np.flatnonzero(~train["y"].to_numpy())
        n_keep = min(len(neg), max(100_000, 8 * int(train["y"].sum())))
        keep = np.sort(
            np.r_[np.flatnonzero(train["y"].to_numpy()), rng.choice(neg, n_keep, replace=False)]
        )
        train = train.iloc[keep]
        prm = _lgbm.params(
            "binary",
            seed,
            len(train),
            num_leaves=15,
            min_data_in_leaf=50,
            learning_rate=0.1,
            lambda_l2=1.0,
        )
        ranker = _lgbm.fit(
            train[_recs.FEATURES].to_numpy(float),
            train["y"].to_numpy(float),
            _recs.FEATURES,
            prm,
            rounds=200,
        )
        metrics = {"train_rows": float(len(train)), "train_positive_rate": float(train["y"].mean())}
    step("recommender: neighbours", 1.0)
    S = _recs.cooccurrence(h) if len(h.b_time) else sp.csr_matrix((h.n_items, h.n_items))
    return Recommender(
        list(items), names, S, ranker, {"n_targets": n_targets, "seed": seed}, metrics
    )


def holdout_last_basket(
    lines: pd.DataFrame, min_baskets: int = 2
) -> tuple[pd.DataFrame, dict[str, set[str]]]:
    """Split off each customer's last basket (customers with >= ``min_baskets`` baskets).

    Returns the training lines and {profile_id: set of product_ids in the held-out basket}.
    """
    b = lines.drop_duplicates("order_id")[["profile_id", "order_id", "occurred_at"]]
    b = b.assign(profile_id=b["profile_id"].astype(str)).sort_values(
        ["profile_id", "occurred_at", "order_id"], kind="stable"
    )
    n = b.groupby("profile_id").size()
    last = b.groupby("profile_id").tail(1)
    last = last.loc[last["profile_id"].map(n) >= min_baskets]
    held = lines["order_id"].isin(set(last["order_id"]))
    test = lines.loc[held]
    truth = (
        test.assign(product_id=test["product_id"].astype(str))
        .groupby(test["profile_id"].astype(str))["product_id"]
        .agg(set)
        .to_dict()
    )
    return lines.loc[~held], truth


def popular_items(lines: pd.DataFrame, k: int = 10) -> list[str]:
    """Global popularity baseline: the ``k`` products in the most baskets."""
    cnt = lines.groupby(lines["product_id"].astype(str))["order_id"].nunique()
    return list(cnt.sort_values(ascending=False, kind="stable").index[:k])


def own_top_items(lines: pd.DataFrame, k: int = 10, by: str = "baskets") -> dict[str, list[str]]:
    """Each customer's most-bought products ("baskets": in most baskets; "lines": most rows).

    Ties break by global popularity. The baseline the recommender has to beat.
    """
    ln = lines.assign(
        profile_id=lines["profile_id"].astype(str), product_id=lines["product_id"].astype(str)
    )
    if by == "baskets":
        cnt = (
            ln.groupby(["profile_id", "product_id"])["order_id"].nunique().rename("n").reset_index()
        )
    else:
        cnt = ln.groupby(["profile_id", "product_id"]).size().rename("n").reset_index()
    gp = ln.groupby("product_id")["order_id"].nunique()
    cnt["gp"] = cnt["product_id"].map(gp)
    cnt = cnt.sort_values(["profile_id", "n", "gp"], ascending=[True, False, False], kind="stable")
    return cnt.groupby("profile_id").head(k).groupby("profile_id")["product_id"].agg(list).to_dict()


def as_lists(recs: pd.DataFrame) -> dict[str, list[str]]:
    """{profile_id: [product_id, ...]} in rank order, from ``Recommender.recommend`` output."""
    r = recs.sort_values(["profile_id", "rank"], kind="stable")
    return r.groupby("profile_id")["product_id"].agg(list).to_dict()
