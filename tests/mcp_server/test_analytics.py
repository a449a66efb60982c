"""analyze_customers, analyze_segments and analyze_products against Python over raw rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from itertools import combinations
from typing import Any

import pytest

from mcp_server.tools._segments import RFM_GRID
from tests.mcp_server.conftest import call, call_error


async def _profiles(rt: Any, brand_id: Any) -> list[Any]:
    return await rt.pool.fetch(
        """SELECT id, order_count, total_spent::float8 AS spent, refund_total::float8 AS refunds,
                  channels, country, first_order_at FROM profiles
           WHERE brand_id = $1 AND merged_into IS NULL""",
        brand_id,
    )


async def _purchases(rt: Any, brand_id: Any, start: Any = None, end: Any = None) -> list[Any]:
    return await rt.pool.fetch(
        """SELECT profile_id, source, total::float8 AS total, occurred_at, id,
                  properties -> 'items' AS items FROM events
           WHERE brand_id = $1 AND type = 'purchase'
             AND ($2::timestamptz IS NULL OR occurred_at >= $2)
             AND ($3::timestamptz IS NULL OR occurred_at < $3)""",
        brand_id,
        start,
        end,
    )


async def test_lifetime_totals_and_channel_groups(dataset, rt, connect):
    profs = await _profiles(rt, dataset.a.id)
    buyers = [p for p in profs if p["order_count"] > 0]
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_customers", group_by="channel", limit=50)
    t = out["totals"]
    assert t["customers"] == len(profs) and t["buyers"] == len(buyers)
    assert t["orders"] == sum(p["order_count"] for p in profs)
    assert abs(t["revenue"] - sum(p["spent"] for p in profs)) < 0.01
    assert abs(t["refunds"] - sum(p["refunds"] for p in profs)) < 0.01
    assert t["repeat_rate"] == round(sum(p["order_count"] >= 2 for p in profs) / len(buyers), 4)
    per: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for p in profs:
        for ch in p["channels"] or ["(none)"]:
            per[ch] += p["spent"]
            count[ch] += 1
    assert {g["key"]: g["customers"] for g in out["groups"]} == dict(count)
    for g in out["groups"]:
        assert abs(g["revenue"] - per[g["key"]]) < 0.01


async def test_period_filters_and_cohorts(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_customers", period_days=60, group_by="channel")
        month = await call(c, "analyze_customers", group_by="cohort", limit=50)
        shop = await call(c, "analyze_customers", period_days=365, channel="shopify")
        assert "YYYY-MM" in await call_error(c, "analyze_customers", cohort_from="March")
    start, end = (
        datetime.fromisoformat(out["window_start"]),
        datetime.fromisoformat(out["window_end"]),
    )
    rows = await _purchases(rt, dataset.a.id, start, end)
    per_customer = Counter(r["profile_id"] for r in rows)
    assert out["mode"] == "period"
    assert out["totals"]["buyers"] == len(per_customer)
    assert out["totals"]["orders"] == len(rows)
    assert abs(out["totals"]["revenue"] - sum(r["total"] for r in rows)) < 0.01
    assert out["totals"]["repeat_rate"] == round(
        sum(n >= 2 for n in per_customer.values()) / len(per_customer), 4
    )
    by_source = Counter(r["source"] for r in rows)
    assert {g["key"]: g["orders"] for g in out["groups"]} == dict(by_source)
    cohorts = Counter(
        p["first_order_at"].strftime("%Y-%m") if p["first_order_at"] else "(no orders)"
        for p in await _profiles(rt, dataset.a.id)
    )
    assert {g["key"]: g["customers"] for g in month["groups"]} == dict(cohorts)
    year = await _purchases(
        rt,
        dataset.a.id,
        datetime.fromisoformat(shop["window_start"]),
        datetime.fromisoformat(shop["window_end"]),
    )
    assert shop["totals"]["orders"] == sum(r["source"] == "shopify" for r in year)
    assert shop["filters"] == {"channel": "shopify"}


def _rfm(stats: dict[Any, tuple[int, float, int]]) -> dict[Any, str]:
    """Quintile scores with ties at their lowest rank (pandas rank method='min'), then the
    grid; written independently of the SQL."""
    ids = list(stats)
    n = len(ids)

    def scores(values: dict[Any, float]) -> dict[Any, int]:
        out = {}
        for pid in ids:
            rank = 1 + sum(values[o] < values[pid] for o in ids)
            out[pid] = min(5, 1 + (5 * (rank - 1)) // n)
        return out

    r = scores({p: -stats[p][2] for p in ids})
    f = scores({p: stats[p][0] for p in ids})
    m = scores({p: stats[p][1] for p in ids})
    return {p: RFM_GRID[r[p]][(f[p] + m[p] + 1) // 2 - 1] for p in ids}


async def test_segment_movement_recomputed(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_segments", segments=["Loyal", "lost"], movement_days=60)
        assert "none of those" in await call_error(c, "analyze_segments", segments=["Gold"])
    assert [s["name"] for s in out["compared"]] in (["Loyal", "Lost"], ["Lost", "Loyal"])
    then, now = (
        datetime.fromisoformat(out["movement_from"]),
        datetime.fromisoformat(out["movement_to"]),
    )
    rows = await _purchases(rt, dataset.a.id, None, now)

    def stats(cut: datetime) -> dict[Any, tuple[int, float, int]]:
        acc: dict[Any, list[Any]] = {}
        for r in rows:
            if r["occurred_at"] < cut:
                a = acc.setdefault(r["profile_id"], [0, 0.0, None])
                a[0] += 1
                a[1] += r["total"]
                a[2] = max(a[2] or r["occurred_at"], r["occurred_at"])
        return {p: (f, m, (cut.date() - last.date()).days) for p, (f, m, last) in acc.items()}

    before, after = _rfm(stats(then)), _rfm(stats(now))
    flows = Counter((before.get(p, "(no orders yet)"), seg) for p, seg in after.items())
    got = {(f["from_segment"], f["to_segment"]): f["customers"] for f in out["flows"]}
    assert got == dict(flows)
    stayed = sum(n for (a, b), n in flows.items() if a == b)
    assert out["stayed_share"] == round(stayed / len(before), 4)


def test_rfm_grid_is_the_segment_models():
    segments = pytest.importorskip("ml.segments")
    for r, row in RFM_GRID.items():
        for fm, name in enumerate(row, start=1):
            assert segments.rfm_segment(r, fm, fm) == name


async def test_top_products_and_categories(dataset, rt, connect):
    async with connect(dataset.a) as c:
        prods = await call(c, "analyze_products", period_days=365, limit=5)
        cats = await call(c, "analyze_products", view="top_categories", sort_by="buyers", limit=50)
    rows = await _purchases(
        rt,
        dataset.a.id,
        datetime.fromisoformat(prods["window_start"]),
        datetime.fromisoformat(prods["window_end"]),
    )
    revenue: dict[str, float] = defaultdict(float)
    for r in rows:
        for i in r["items"]:
            revenue[i["product_id"]] += i["price"] * i.get("quantity", 1)
    expected = sorted(revenue, key=lambda k: (-round(revenue[k], 6), k))[:5]
    assert [p["key"] for p in prods["rows"]] == expected
    assert prods["rows"][0]["revenue_share"] == round(
        revenue[expected[0]] / sum(revenue.values()), 4
    )
    crow = await _purchases(
        rt,
        dataset.a.id,
        datetime.fromisoformat(cats["window_start"]),
        datetime.fromisoformat(cats["window_end"]),
    )
    buyers: dict[str, set[Any]] = defaultdict(set)
    for r in crow:
        for i in r["items"]:
            buyers[i["category"]].add(r["profile_id"])
    assert {p["key"]: p["buyers"] for p in cats["rows"]} == {k: len(v) for k, v in buyers.items()}


async def test_bought_together_and_category_affinity(dataset, rt, connect):
    async with connect(dataset.a) as c:
        pairs = await call(
            c, "analyze_products", view="bought_together", period_days=365, min_together=3, limit=50
        )
        aff = await call(
            c,
            "analyze_products",
            view="category_affinity",
            period_days=365,
            min_together=1,
            limit=50,
        )
    rows = await _purchases(
        rt,
        dataset.a.id,
        datetime.fromisoformat(pairs["window_start"]),
        datetime.fromisoformat(pairs["window_end"]),
    )
    baskets = [{i["product_id"] for i in r["items"]} for r in rows]
    together = Counter(pair for b in baskets for pair in combinations(sorted(b), 2))
    item = Counter(p for b in baskets for p in b)
    expected = {k: n for k, n in together.items() if n >= 3}
    assert 0 < len(expected) <= 50  # so the whole answer fits in the limit
    assert {(p["a"], p["b"]): p["together"] for p in pairs["pairs"]} == expected
    for p in pairs["pairs"]:
        n = together[(p["a"], p["b"])]
        assert abs(p["lift"] - n * len(baskets) / (item[p["a"]] * item[p["b"]])) < 1e-3
        assert abs(p["confidence_a_to_b"] - n / item[p["a"]]) < 1e-4
    cats: dict[Any, set[str]] = defaultdict(set)
    for r in rows:
        for i in r["items"]:
            cats[r["profile_id"]].add(i["category"])
    both = Counter(pair for s in cats.values() for pair in combinations(sorted(s), 2))
    one = Counter(c for s in cats.values() for c in s)
    top = aff["pairs"][0]
    n = both[(top["a"], top["b"])]
    assert top["together"] == n
    assert abs(top["lift"] - n * len(cats) / (one[top["a"]] * one[top["b"]])) < 1e-3
    best = max(both, key=lambda k: both[k] * len(cats) / (one[k[0]] * one[k[1]]))
    assert abs(top["lift"] - both[best] * len(cats) / (one[best[0]] * one[best[1]])) < 1e-3
