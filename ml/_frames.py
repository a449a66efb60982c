"""Array plumbing shared by the feature, label and recommender code (private to ml)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 10**9
PURCHASE = "purchase"
REFUND = "refund"
VIEW_TYPES = ("product_view", "page_view")
CART_TYPES = ("cart_add", "checkout_start")
MESSAGE_TYPES = ("message_in", "support_ticket")
# Sources grouped into the three channels a retailer talks about.
CHANNELS = {
    "online": ("shopify", "woocommerce", "web", "app"),
    "store": ("pos", "qr"),
    "messaging": ("whatsapp", "gorgias"),
}


def as_utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    """A tz-aware UTC timestamp; naive input is refused because it hides off-by-hours leaks."""
    out = pd.Timestamp(ts)
    if out.tzinfo is None:
        raise ValueError("as_of/cutoff must be timezone-aware (UTC)")
    return out.tz_convert("UTC")


def ns(series: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch as int64 (UTC)."""
    return series.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").astype(np.int64)


def before(frame: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
    """Rows strictly before ``ts``: the one place point-in-time filtering happens."""
    return frame.loc[frame["occurred_at"] < ts]


def mask_in(values: pd.Series, allowed: tuple[str, ...]) -> np.ndarray:
    """Fast membership test through factorization (20M-row string columns)."""
    codes, uniq = pd.factorize(values)
    hit = np.isin(np.asarray(uniq, dtype=object), list(allowed))
    return hit[codes] & (codes >= 0)


def group_sum(codes: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=n).astype(float)


def group_max(codes: np.ndarray, n: int, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, codes, values)
    out[np.isneginf(out)] = fill
    return out


def group_min(codes: np.ndarray, n: int, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full(n, np.inf)
    np.minimum.at(out, codes, values)
    out[np.isposinf(out)] = fill
    return out


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")
    return s[:30] or "other"


def lines_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """Explode purchase events' ``items`` into one row per line item.

    Columns: profile_id, occurred_at, order_id, product_id, category, quantity, value
    (price x quantity). Events without items contribute nothing.
    """
    cols = ["profile_id", "occurred_at", "order_id", "product_id", "category", "quantity", "value"]
    if "items" not in events.columns:
        return pd.DataFrame(columns=cols)
    ev = events.loc[
        (events["type"] == PURCHASE) & events["items"].notna(),
        ["profile_id", "occurred_at", "order_id", "items"],
    ]
    ex = ev.explode("items", ignore_index=True)
    ex = ex.loc[ex["items"].notna()]
    if ex.empty:
        return pd.DataFrame(columns=cols)
    items = pd.DataFrame.from_records(ex["items"].tolist())
    qty = pd.to_numeric(items.get("quantity", 1), errors="coerce").fillna(1.0).to_numpy(float)
    price = pd.to_numeric(items.get("price", np.nan), errors="coerce").to_numpy(float)
    pid = items["product_id"] if "product_id" in items else items.get("sku")
    return pd.DataFrame(
        {
            "profile_id": ex["profile_id"].to_numpy(),
            "occurred_at": ex["occurred_at"].to_numpy(),
            "order_id": ex["order_id"].to_numpy(),
            "product_id": pd.Series(pid).astype(str).to_numpy(),
            "category": items.get("category", pd.Series(["other"] * len(items)))
            .fillna("other")
            .astype(str)
            .to_numpy(),
            "quantity": qty,
            "value": np.nan_to_num(price * qty),
        }
    ).astype({"occurred_at": ex["occurred_at"].dtype})


def unique_ids(series: pd.Series) -> pd.Index:
    """Distinct ids as strings, in first-seen order (cheap for categorical columns)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = np.unique(series.cat.codes.to_numpy())
        used = used[used >= 0]
        return pd.Index(series.cat.categories.astype(str)[used], dtype=object, name="profile_id")
    return pd.Index(pd.unique(series.astype(str)), dtype=object, name="profile_id")


def index_of(series: pd.Series, ids: pd.Index) -> np.ndarray:
    """Position of each value in ``ids`` (-1 when absent), without stringifying 20M rows."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat_pos = ids.get_indexer(series.cat.categories.astype(str))
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[codes], -1)
    return ids.get_indexer(series.astype(str))
