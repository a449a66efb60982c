"""Point-in-time customer features from events, and the label windows models learn from.

Every function takes a timestamp and uses ONLY events with ``occurred_at`` strictly before
it: later rows are dropped on entry (``_frames.before``), so a frame that contains the
future gives exactly the same features as one that does not (tests/ml/test_features.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ml import btyd
from ml._frames import (
    CART_TYPES,
    CHANNELS,
    MESSAGE_TYPES,
    NS_PER_DAY,
    PURCHASE,
    REFUND,
    VIEW_TYPES,
    as_utc,
    before,
    group_max,
    group_min,
    group_sum,
    index_of,
    lines_from_events,
    mask_in,
    ns,
    slug,
    unique_ids,
)

Progress = Callable[[str, float], None]
__all__ = [
    "btyd_features",
    "build_features",
    "label_window",
    "lines_from_events",
    "top_categories",
    "training_set",
]


def top_categories(lines: pd.DataFrame, as_of: pd.Timestamp, k: int = 5) -> list[str]:
    """The ``k`` categories with the most spend before ``as_of`` (fixes affinity columns)."""
    ln = before(lines, as_of_utc := as_utc(as_of))
    del as_of_utc
    if ln.empty:
        return []
    spend = (
        ln.groupby("category", observed=True)["value"]
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    return [str(c) for c in spend.index[:k]]


def _repeat_and_rhythm(
    codes: np.ndarray, age: np.ndarray, total: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    """Per-customer purchase-day statistics: BTYD inputs and inter-purchase times."""
    day = np.floor(age).astype(np.int64)  # whole days before as_of: 0 = the last day
    key = codes.astype(np.int64) * 1_000_000 + day
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    uniq_mask = np.r_[True, k_sorted[1:] != k_sorted[:-1]]
    day_key = k_sorted[uniq_mask]
    d_code = (day_key // 1_000_000).astype(np.int64)
    d_day = (day_key % 1_000_000).astype(float)
    day_id = np.cumsum(uniq_mask) - 1
    day_spend = np.bincount(day_id, weights=total[order])
    n_days = group_sum(d_code, n)
    first_day = group_max(d_code, n, d_day)  # the oldest purchase day has the largest age
    last_day = group_min(d_code, n, d_day)
    # Spend on the first purchase day: Gamma-Gamma models only the repeat transactions.
    is_first = d_day == first_day[d_code]
    first_spend = group_sum(d_code[is_first], n, day_spend[is_first])
    # Inter-purchase gaps between consecutive purchase days of the same customer. Days are
    # sorted by (code, age ascending), so consecutive rows are newer -> older.
    same = d_code[1:] == d_code[:-1]
    gaps = (d_day[1:] - d_day[:-1])[same]
    g_code = d_code[1:][same]
    g_n = group_sum(g_code, n)
    g_sum = group_sum(g_code, n, gaps)
    g_sq = group_sum(g_code, n, gaps**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ipt_mean = np.where(g_n > 0, g_sum / g_n, np.nan)
        var = np.where(
            g_n > 1, (g_sq - g_sum**2 / np.maximum(g_n, 1)) / np.maximum(g_n - 1, 1), np.nan
        )
    return {
        "n_days": n_days,
        "first_day": first_day,
        "last_day": last_day,
        "first_spend": first_spend,
        "ipt_mean": ipt_mean,
        "ipt_std": np.sqrt(np.maximum(var, 0.0)),
    }


def _abandoned(
    cart_code: np.ndarray, cart_ns: np.ndarray, buy_code: np.ndarray, buy_ns: np.ndarray
) -> np.ndarray:
    """True for cart events not followed by a purchase of the same customer within 24 h."""
    base = min(cart_ns.min(initial=0), buy_ns.min(initial=0))
    span = 10**10  # seconds per customer slot: > 300 years, so keys never collide
    ck = cart_code.astype(np.int64) * span + (cart_ns - base) // 10**9
    bk = np.sort(buy_code.astype(np.int64) * span + (buy_ns - base) // 10**9)
    idx = np.searchsorted(bk, ck, side="left")
    nxt = np.where(idx < len(bk), bk[np.minimum(idx, len(bk) - 1)], np.iinfo(np.int64).max)
    return (nxt - ck) > 86_400


def build_features(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.DataFrame | None = None,
    *,
    lines: pd.DataFrame | None = None,
    categories: Sequence[str] | None = None,
    horizons: Sequence[int] = (90,),
    with_btyd: bool = True,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Customer features as of ``as_of``, indexed by profile_id (one row per customer seen).

    Only rows with ``occurred_at < as_of`` are read, from ``events`` and from ``lines``
    (the exploded line items; derived from ``events.items`` when not given). ``categories``
    fixes the affinity columns (pass the training run's list when scoring; by default the
    top 5 by spend). ``horizons`` are the windows (days) of the BG/NBD + Gamma-Gamma
    columns. ``profiles`` (profile_id, created_at, profile_strength) adds strength and
    profiles without events. All amounts are in the brand's currency; times in days.
    """
    as_of = as_utc(as_of)
    step = progress or (lambda _s, _f: None)
    step("features: filter", 0.0)
    ev = before(events, as_of)
    prof = None
    if profiles is not None:
        prof = (
            profiles.loc[pd.to_datetime(profiles["created_at"], utc=True) < as_of]
            if "created_at" in profiles
            else profiles
        )
    ids = unique_ids(ev["profile_id"])
    if prof is not None:
        ids = ids.append(pd.Index(prof["profile_id"].astype(str), dtype=object)).unique()
    ids = pd.Index(ids, dtype=object, name="profile_id")
    n = len(ids)
    codes = index_of(ev["profile_id"], ids)
    t_ns = ns(ev["occurred_at"])
    age = (as_of.value - t_ns) / NS_PER_DAY
    total = ev["total"].to_numpy(dtype=float, na_value=np.nan)
    # Factorize the 20M-row string columns once; every type/channel mask reuses the codes.
    t_codes, t_uniq = pd.factorize(ev["type"])
    s_codes, s_uniq = pd.factorize(ev["source"])

    def is_type(*names: str) -> np.ndarray:
        return np.isin(np.asarray(t_uniq, dtype=object), list(names))[t_codes] & (t_codes >= 0)

    def is_source(names: tuple[str, ...]) -> np.ndarray:
        return np.isin(np.asarray(s_uniq, dtype=object), list(names))[s_codes] & (s_codes >= 0)

    is_buy = is_type(PURCHASE)
    out: dict[str, np.ndarray] = {}

    step("features: orders", 0.15)
    b_code, b_age, b_total = codes[is_buy], age[is_buy], np.nan_to_num(total[is_buy])
    n_orders = group_sum(b_code, n)
    out["n_orders"] = n_orders
    rr = _repeat_and_rhythm(b_code, b_age, b_total, n)
    out["frequency"] = np.maximum(rr["n_days"] - 1, 0)
    out["recency_days"] = group_min(b_code, n, b_age)
    out["days_since_first_order"] = group_max(b_code, n, b_age)
    out["monetary_total"] = group_sum(b_code, n, b_total)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["monetary_mean"] = np.where(n_orders > 0, out["monetary_total"] / n_orders, np.nan)
    out["tenure_days"] = group_max(codes, n, age, fill=0.0)
    if prof is not None and "created_at" in prof:
        created = pd.to_datetime(prof["created_at"], utc=True)
        c_age = (as_of.value - ns(created)) / NS_PER_DAY
        c_code = ids.get_indexer(prof["profile_id"].astype(str))
        out["tenure_days"] = np.fmax(out["tenure_days"], group_max(c_code, n, c_age, fill=0.0))
    out["ipt_mean"], out["ipt_std"] = rr["ipt_mean"], rr["ipt_std"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["overdue_ratio"] = out["recency_days"] / rr["ipt_mean"]
    for days in (30, 90, 365):
        w = b_age < days
        out[f"n_orders_{days}d"] = group_sum(b_code[w], n)
    s90 = group_sum(b_code[b_age < 90], n, b_total[b_age < 90])
    prev = (b_age >= 90) & (b_age < 180)
    s_prev = group_sum(b_code[prev], n, b_total[prev])
    out["spend_90d"], out["spend_prev_90d"] = s90, s_prev
    with np.errstate(invalid="ignore", divide="ignore"):
        out["spend_trend"] = np.where(s90 + s_prev > 0, (s90 - s_prev) / (s90 + s_prev), 0.0)
    is_ref = is_type(REFUND)
    out["refund_total"] = group_sum(codes[is_ref], n, np.abs(np.nan_to_num(total[is_ref])))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(out["monetary_total"] > 0, out["refund_total"] / out["monetary_total"], 0.0)
    out["refund_rate"] = np.clip(rate, 0.0, 1.0)

    step("features: activity", 0.35)
    n_events = group_sum(codes, n)
    for name, sources in CHANNELS.items():
        m = is_source(sources)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"share_{name}"] = np.where(n_events > 0, group_sum(codes[m], n) / n_events, 0.0)
    out["n_channels"] = np.sum([out[f"share_{c}"] > 0 for c in CHANNELS], axis=0).astype(float)
    is_view = is_type(*VIEW_TYPES)
    is_cart = is_type(*CART_TYPES)
    is_msg = is_type(*MESSAGE_TYPES)
    recent = age < 30
    out["n_views_30d"] = group_sum(codes[is_view & recent], n)
    out["n_cart_30d"] = group_sum(codes[is_cart & recent], n)
    out["n_messages_30d"] = group_sum(codes[is_msg & recent], n)
    out["n_events_30d"] = group_sum(codes[recent], n)
    out["days_since_last_view"] = group_min(codes[is_view], n, age[is_view])
    out["days_since_last_event"] = group_min(codes, n, age, fill=np.nan)
    cart90 = is_cart & (age < 90)
    if cart90.any():
        ab = _abandoned(codes[cart90], t_ns[cart90], b_code, t_ns[is_buy])
        # One abandoned cart per customer-day: a session adds several items.
        key = np.unique(
            codes[cart90][ab].astype(np.int64) * 100_000
            + np.floor(age[cart90][ab]).astype(np.int64)
        )
        out["abandoned_carts_90d"] = group_sum((key // 100_000).astype(np.int64), n)
    else:
        out["abandoned_carts_90d"] = np.zeros(n)
    strength = np.full(n, np.nan)
    if prof is not None and "profile_strength" in prof:
        strength[ids.get_indexer(prof["profile_id"].astype(str))] = prof[
            "profile_strength"
        ].to_numpy(float)
    out["profile_strength"] = strength

    step("features: categories", 0.5)
    ln = lines_from_events(ev) if lines is None else before(lines, as_of)
    out.update(
        _category_features(
            ln, ids, categories if categories is not None else top_categories(ln, as_of)
        )
    )
    feats = pd.DataFrame(out, index=ids)
    if with_btyd:
        step("features: BG/NBD + Gamma-Gamma", 0.7)
        btyd_in = {
            "x": out["frequency"],
            "T": rr["first_day"],
            "tx": rr["first_day"] - rr["last_day"],
            "m": np.where(
                out["frequency"] > 0,
                (out["monetary_total"] - rr["first_spend"]) / np.maximum(out["frequency"], 1),
                np.nan,
            ),
        }
        extra, fit = btyd_features(btyd_in, horizons)
        feats = pd.concat([feats, pd.DataFrame(extra, index=ids)], axis=1)
        feats.attrs["btyd"] = fit
    step("features: done", 1.0)
    return feats


def _category_features(
    ln: pd.DataFrame, ids: pd.Index, cats: Sequence[str]
) -> dict[str, np.ndarray]:
    n = len(ids)
    out: dict[str, np.ndarray] = {}
    if ln.empty:
        codes = np.zeros(0, dtype=np.int64)
        cat_codes = np.zeros(0, dtype=np.int64)
        value = np.zeros(0)
        uniq: list[str] = []
    else:
        codes = index_of(ln["profile_id"], ids)
        keep = codes >= 0
        codes = codes[keep]
        cat_all, uniq = pd.factorize(ln["category"])
        cat_codes, uniq = cat_all[keep], [str(u) for u in uniq]
        value = np.maximum(ln["value"].to_numpy(float)[keep], 0.0)
    total = group_sum(codes, n, value)
    pair = np.unique(codes.astype(np.int64) * (len(uniq) + 1) + cat_codes)
    out["n_categories"] = group_sum((pair // (len(uniq) + 1)).astype(np.int64), n)
    pair_val = np.bincount(
        np.searchsorted(pair, codes.astype(np.int64) * (len(uniq) + 1) + cat_codes),
        value,
        minlength=len(pair),
    )
    best = group_max((pair // (len(uniq) + 1)).astype(np.int64), n, pair_val, fill=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["top_category_share"] = np.where(total > 0, best / total, 0.0)
        lookup = {c: i for i, c in enumerate(uniq)}
        seen: set[str] = set()
        for c in cats:
            name = "cat_" + slug(c)
            while name in seen:
                name += "_"
            seen.add(name)
            m = cat_codes == lookup.get(c, -1)
            out[name] = np.where(total > 0, group_sum(codes[m], n, value[m]) / total, 0.0)
    return out


def btyd_features(
    inputs: dict[str, np.ndarray], horizons: Sequence[int]
) -> tuple[dict[str, np.ndarray], dict | None]:
    """BG/NBD + Gamma-Gamma columns from per-customer (x, t_x, T, m), fitted on these customers.

    Returns the columns and the fitted parameters (None when there are too few buyers to fit:
    the columns are then NaN and the models fall back on the other features).
    """
    x, tx, T, m = inputs["x"], inputs["tx"], inputs["T"], inputs["m"]
    buyers = np.isfinite(T)
    names = ["btyd_p_alive", "btyd_days_to_next"]
    for h in horizons:
        names += [f"btyd_exp_purchases_{h}", f"btyd_exp_spend_{h}", f"btyd_p_no_purchase_{h}"]
    cols = {c: np.full(len(x), np.nan) for c in names}
    if buyers.sum() < 20 or (x[buyers] > 0).sum() < 5:
        return cols, None
    xb, txb, Tb = x[buyers], tx[buyers], T[buyers]
    bg = btyd.fit_bgnbd(xb, txb, Tb)
    try:
        gg = btyd.fit_gamma_gamma(xb, m[buyers])
    except ValueError:
        gg = None
    value = btyd.expected_avg_value(gg, xb, m[buyers]) if gg else np.full(len(xb), np.nan)
    cols["btyd_p_alive"][buyers] = btyd.p_alive(bg, xb, txb, Tb)
    cols["btyd_days_to_next"][buyers] = btyd.expected_days_to_next(bg, xb, txb, Tb)
    for h in horizons:
        e = btyd.expected_purchases(bg, h, xb, txb, Tb)
        cols[f"btyd_exp_purchases_{h}"][buyers] = e
        cols[f"btyd_exp_spend_{h}"][buyers] = e * value
        cols[f"btyd_p_no_purchase_{h}"][buyers] = btyd.prob_no_purchase(bg, h, xb, txb, Tb)
    fit = {
        "bgnbd": bg.to_dict(),
        "gamma_gamma": gg.to_dict() if gg else None,
        "n_buyers": int(buyers.sum()),
    }
    return cols, fit


def label_window(events: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Outcomes in [cutoff, cutoff + H): purchased (bool), spend (gross), n_purchases.

    Indexed by profile_id over every profile with an event before cutoff + H (zero-filled),
    so it can be reindexed onto a feature frame.
    """
    cutoff = as_utc(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    ev = before(events, end)
    ids = unique_ids(ev["profile_id"])
    win = ev.loc[(ev["occurred_at"] >= cutoff) & mask_in(ev["type"], (PURCHASE,))]
    codes = index_of(win["profile_id"], ids)
    n_p = group_sum(codes, len(ids))
    spend = group_sum(
        codes, len(ids), np.nan_to_num(win["total"].to_numpy(dtype=float, na_value=np.nan))
    )
    return pd.DataFrame({"purchased": n_p > 0, "spend": spend, "n_purchases": n_p}, index=ids)


def training_set(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    *,
    profiles: pd.DataFrame | None = None,
    lines: pd.DataFrame | None = None,
    categories: Sequence[str] | None = None,
    horizons: Sequence[int] = (90,),
    buyers_only: bool = False,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features at ``as_of - H`` and their labels in [as_of - H, as_of).

    Nothing at or after ``as_of`` is read: the label window ends where the scoring history
    ends. ``buyers_only`` keeps customers with an order before the feature date.
    """
    as_of = as_utc(as_of)
    history = before(events, as_of)
    feature_date = as_of - pd.Timedelta(days=horizon_days)
    X = build_features(
        history,
        feature_date,
        profiles,
        lines=None if lines is None else before(lines, as_of),
        categories=categories,
        horizons=horizons,
        progress=progress,
    )
    if buyers_only:
        X = X.loc[X["n_orders"] > 0]
    y = label_window(history, feature_date, horizon_days).reindex(X.index)
    y = y.fillna({"purchased": False, "spend": 0.0, "n_purchases": 0.0}).astype({"purchased": bool})
    return X, y
