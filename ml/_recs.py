"""Candidate generation and ranking features for the recommender (private to ml).

A history is a set of (customer, basket, item) rows. For each customer we build candidates
(their own past items, co-purchase neighbours of their recent items, and what is popular
right now) with features that describe repeat buying: how often and how recently the item
was bought, its own rhythm and whether it is due, and how the item is re-bought overall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml._frames import index_of

FEATURES = [
    "n", "k_since", "days_since", "w_120", "w_30", "w_k", "w_k_share", "n_baskets", "share",
    "interval", "cust_gap", "due", "item_pop", "item_trend", "item_repeat", "item_buyers",
    "cooc", "basket_size", "owned",
]  # fmt: skip


@dataclass
class History:
    """Deduplicated basket-item rows with integer codes; times in days."""

    cust: np.ndarray  # per row: customer code
    basket: np.ndarray  # per row: basket code
    item: np.ndarray  # per row: item code
    b_cust: np.ndarray  # per basket: customer code
    b_time: np.ndarray  # per basket: days since the epoch
    n_cust: int
    n_items: int

    def basket_rank(self) -> np.ndarray:
        """Per basket, how many of the customer's baskets came after it (0 = the last)."""
        order = np.lexsort((-self.b_time, self.b_cust))
        start = np.r_[0, np.flatnonzero(np.diff(self.b_cust[order])) + 1]
        counts = np.diff(np.r_[start, len(order)])
        rank = np.arange(len(order)) - np.repeat(start, counts)
        out = np.empty(len(order), dtype=np.int64)
        out[order] = rank
        return out

    def subset(self, keep_baskets: np.ndarray) -> History:
        """The history restricted to a boolean mask over baskets (codes are kept)."""
        rows = keep_baskets[self.basket]
        new_b = np.cumsum(keep_baskets) - 1
        return History(
            self.cust[rows], new_b[self.basket[rows]], self.item[rows],
            self.b_cust[keep_baskets], self.b_time[keep_baskets], self.n_cust, self.n_items,
        )  # fmt: skip


def make_history(lines: pd.DataFrame, cust_index: pd.Index, item_index: pd.Index) -> History:
    """History arrays from line items (rows whose customer/item is not indexed are dropped)."""
    cust = index_of(lines["profile_id"], cust_index)
    item = index_of(lines["product_id"], item_index)
    order_all, _ = pd.factorize(lines["order_id"])
    # One row per basket-item: a product on two lines of one order is one purchase.
    _, first = np.unique(
        order_all.astype(np.int64) * len(item_index) + np.maximum(item, 0), return_index=True
    )
    dedup = np.zeros(len(lines), dtype=bool)
    dedup[first] = True
    ok = (cust >= 0) & (item >= 0) & dedup
    b_codes, _ = pd.factorize(order_all[ok])
    days = lines["occurred_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[ok] / 86_400e9
    n_b = int(b_codes.max()) + 1 if len(b_codes) else 0
    b_time = np.full(n_b, np.inf)
    np.minimum.at(b_time, b_codes, days)
    b_cust = np.zeros(n_b, dtype=np.int64)
    b_cust[b_codes] = cust[ok]
    return History(cust[ok], b_codes, item[ok], b_cust, b_time, len(cust_index), len(item_index))


def cooccurrence(h: History, top: int = 10, min_count: int = 2) -> sp.csr_matrix:
    """Item-item cosine over baskets, the ``top`` neighbours per item (pairs seen >= min_count)."""
    B = sp.csr_matrix((np.ones(len(h.item)), (h.basket, h.item)), shape=(len(h.b_time), h.n_items))
    B.data[:] = 1.0
    C = (B.T @ B).tocoo()
    cnt = np.asarray(B.sum(axis=0)).ravel()
    keep = (C.row != C.col) & (C.data >= min_count)
    r, c, v = C.row[keep], C.col[keep], C.data[keep]
    sim = v / np.sqrt(cnt[r] * cnt[c])
    order = np.lexsort((-sim, r))
    r, c, sim = r[order], c[order], sim[order]
    start = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    rank = np.arange(len(r)) - np.repeat(start, np.diff(np.r_[start, len(r)]))
    m = rank < top
    return sp.csr_matrix((sim[m], (r[m], c[m])), shape=(h.n_items, h.n_items))


def _reduce(keys: np.ndarray, *cols: tuple[np.ndarray, str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group rows by int64 key: (unique keys, [aggregated column per (values, op)])."""
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    start = np.r_[0, np.flatnonzero(np.diff(ks)) + 1] if len(ks) else np.zeros(0, dtype=np.int64)
    out = []
    for values, op in cols:
        v = values[order]
        fn = {"sum": np.add, "min": np.minimum, "max": np.maximum}[op]
        out.append(fn.reduceat(v, start) if len(v) else v)
    return ks[start] if len(ks) else ks, out


def item_stats(h: History) -> dict[str, np.ndarray]:
    """Item popularity (all time and last 28 days), buyers, and share of buyers who re-buy."""
    item_baskets = np.bincount(h.item, minlength=h.n_items).astype(float)
    t_max = h.b_time.max() if len(h.b_time) else 0.0
    recent = h.b_time[h.basket] > t_max - 28
    pairs = np.unique(h.cust.astype(np.int64) * h.n_items + h.item, return_counts=True)
    p_item = pairs[0] % h.n_items
    buyers = np.bincount(p_item, minlength=h.n_items).astype(float)
    # A pair seen in several rows means several baskets (rows are unique per basket-item).
    rebuy = np.bincount(p_item[pairs[1] > 1], minlength=h.n_items)
    return {
        "pop": item_baskets / max(len(h.b_time), 1),
        "recent": np.bincount(h.item[recent], minlength=h.n_items) / max(int(recent.sum()), 1),
        "buyers": buyers,
        "repeat": rebuy / np.maximum(buyers, 1),
    }


def candidates(
    h: History,
    customers: np.ndarray,
    S: sp.csr_matrix,
    *,
    n_own: int = 40,
    n_neigh: int = 10,
    n_pop: int = 10,
    now_gap: np.ndarray | None = None,
    stats: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Candidate (cust, item, via_item) rows with ranking features for ``customers``.

    ``via_item`` is the recent item that brought a neighbour candidate (for "often bought
    with X"), -1 otherwise. ``now_gap`` optionally gives per customer the days already
    elapsed since their last basket (scoring at a later as-of); training uses the typical gap.
    """
    NI = np.int64(h.n_items)
    rank = h.basket_rank()
    last_time = np.full(h.n_cust, -np.inf)
    np.maximum.at(last_time, h.b_cust, h.b_time)
    first_time = np.full(h.n_cust, np.inf)
    np.minimum.at(first_time, h.b_cust, h.b_time)
    n_b = np.bincount(h.b_cust, minlength=h.n_cust).astype(float)
    gap = np.where(n_b > 1, (last_time - first_time) / np.maximum(n_b - 1, 1), np.nan)
    elapsed = np.fmax(np.nan_to_num(gap, nan=7.0), now_gap if now_gap is not None else 0.0)
    age_b = last_time[h.b_cust] - h.b_time
    wk_b = 0.97 ** rank.astype(float)
    wk_tot = np.bincount(h.b_cust, weights=wk_b, minlength=h.n_cust)
    bsize = np.bincount(h.cust, minlength=h.n_cust) / np.maximum(n_b, 1)
    st_ = stats if stats is not None else item_stats(h)
    item_pop, item_recent, repeat, buyers = st_["pop"], st_["recent"], st_["repeat"], st_["buyers"]
    # Customer-item aggregates over all history rows.
    key = h.cust.astype(np.int64) * NI + h.item
    row_age, row_k = age_b[h.basket], rank[h.basket].astype(float)
    ukey, (n, kmin, agemin, agemax, w120, w30, wk) = _reduce(
        key, (np.ones(len(key)), "sum"), (row_k, "min"), (row_age, "min"), (row_age, "max"),
        (np.exp(-row_age / 120), "sum"), (np.exp(-row_age / 30), "sum"), (wk_b[h.basket], "sum"),
    )  # fmt: skip
    u_c, u_i = ukey // NI, ukey % NI
    want = np.zeros(h.n_cust, dtype=bool)
    want[customers] = True
    sel = want[u_c]
    u_c, u_i, n, kmin, agemin, agemax, w120, w30, wk = (
        a[sel] for a in (u_c, u_i, n, kmin, agemin, agemax, w120, w30, wk)
    )
    order = np.lexsort((-wk, u_c))
    top_own = order[_rank_in_group(u_c[order]) < n_own]
    own = pd.DataFrame({"cust": u_c[top_own], "item": u_i[top_own], "n": n[top_own], "k_since": kmin[top_own],
                        "days_since": agemin[top_own], "first": agemax[top_own], "w_120": w120[top_own],
                        "w_30": w30[top_own], "w_k": wk[top_own], "owned": 1.0, "via_item": -1})  # fmt: skip
    # Neighbours of items in the last two baskets, weighted by how recent the basket was.
    rec_rows = (rank[h.basket] < 2) & want[h.cust]
    R = sp.csr_matrix(
        (0.8 ** rank[h.basket][rec_rows], (h.cust[rec_rows], h.item[rec_rows])),
        shape=(h.n_cust, h.n_items),
    )
    R.sum_duplicates()
    Rc = R.tocoo()
    S = S.tocsr()
    deg = np.diff(S.indptr)
    d = deg[Rc.col]
    rep = np.repeat(np.arange(len(Rc.data)), d)
    offs = np.arange(int(d.sum())) - np.repeat(np.cumsum(d) - d, d)
    s_idx = np.repeat(S.indptr[Rc.col], d) + offs
    e_c, e_j, e_i = Rc.row[rep].astype(np.int64), Rc.col[rep], S.indices[s_idx]
    e_v = Rc.data[rep] * S.data[s_idx]
    ek = e_c * NI + e_i
    # Sum per (cust, item) and remember the strongest "via" item for the reason text.
    o = np.lexsort((-e_v, ek))
    ek_s = ek[o]
    st = _starts(ek_s)
    nb_key, nb_val, nb_via = ek_s[st], np.add.reduceat(e_v[o], st) if len(st) else e_v, e_j[o][st]
    norm = np.asarray(R.sum(axis=1)).ravel()
    nb_val = nb_val / np.maximum(norm[nb_key // NI], 1e-9)
    own_key = own["cust"].to_numpy(np.int64) * NI + own["item"].to_numpy(np.int64)
    cooc = pd.Series(nb_val, index=nb_key)
    own["cooc"] = cooc.reindex(own_key).to_numpy()
    fresh = ~np.isin(nb_key, own_key)
    nk, nv, nvia = nb_key[fresh], nb_val[fresh], nb_via[fresh]
    o = np.lexsort((-nv, nk // NI))
    pick = o[_rank_in_group(nk[o] // NI) < n_neigh]
    new = pd.DataFrame(
        {
            "cust": nk[pick] // NI,
            "item": nk[pick] % NI,
            "cooc": nv[pick],
            "via_item": nvia[pick],
            "owned": 0.0,
        }
    )
    # What sells now, for cold starts and thin histories (never an item already listed).
    top_items = np.argsort(-item_recent, kind="stable")[: n_pop + n_own]
    pk = np.repeat(customers.astype(np.int64), len(top_items)) * NI + np.tile(
        top_items, len(customers)
    )
    pk = pk[~np.isin(pk, np.concatenate([own_key, nk[pick]]))]
    pk = pk[_rank_in_group(pk // NI) < n_pop]
    pop = pd.DataFrame({"cust": pk // NI, "item": pk % NI, "owned": 0.0, "via_item": -1})
    c = pd.concat([own, new, pop], ignore_index=True)
    for col in ("n", "w_120", "w_30", "w_k", "cooc"):
        c[col] = c[col].fillna(0.0)
    cu, it = c["cust"].to_numpy(np.int64), c["item"].to_numpy(np.int64)
    c["n_baskets"], c["cust_gap"], c["basket_size"] = n_b[cu], gap[cu], bsize[cu]
    c["w_k_share"] = c["w_k"] / np.maximum(wk_tot[cu], 1e-9)
    c["share"] = c["n"] / np.maximum(n_b[cu], 1)
    c["interval"] = np.where(
        c["n"] > 1, (c["first"] - c["days_since"]) / np.maximum(c["n"] - 1, 1), np.nan
    )
    c["due"] = (c["days_since"] + elapsed[cu]) / c["interval"]
    c["item_pop"], c["item_repeat"], c["item_buyers"] = item_pop[it], repeat[it], buyers[it]
    c["item_trend"] = item_recent[it] / np.maximum(item_pop[it], 1e-9)
    c["via_item"] = c["via_item"].fillna(-1).astype(np.int64)
    return c


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    return np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal values of an array sorted by group."""
    st = _starts(groups)
    return np.arange(len(groups)) - np.repeat(st, np.diff(np.r_[st, len(groups)]))
