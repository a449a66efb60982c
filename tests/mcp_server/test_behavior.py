"""analyze_behavior against Python over the raw events and profiles."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import numpy as np

from tests.mcp_server.conftest import call


async def _events(rt: Any, brand_id: Any, start: Any, end: Any) -> list[Any]:
    return await rt.pool.fetch(
        """SELECT profile_id, source, type, total::float8 AS total, occurred_at FROM events
           WHERE brand_id = $1 AND occurred_at >= $2 AND occurred_at < $3""",
        brand_id,
        start,
        end,
    )


def _window(out: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(out["window_start"]), datetime.fromisoformat(out["window_end"])


async def test_channel_mix(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_behavior", view="channel_mix", period_days=120)
    rows = await _events(rt, dataset.a.id, *_window(out))
    got = {ch["channel"]: ch for ch in out["channels"]}
    assert set(got) == {r["source"] for r in rows}
    for source, ch in got.items():
        mine = [r for r in rows if r["source"] == source]
        buys = [r for r in mine if r["type"] == "purchase"]
        assert ch["events"] == len(mine)
        assert ch["customers"] == len({r["profile_id"] for r in mine})
        assert ch["orders"] == len(buys) and ch["buyers"] == len({r["profile_id"] for r in buys})
        assert abs(ch["revenue"] - sum(r["total"] for r in buys)) < 0.01
    combos = Counter(
        " + ".join(r["channels"])
        for r in await rt.pool.fetch(
            "SELECT channels FROM profiles WHERE brand_id = $1 AND merged_into IS NULL "
            "AND order_count > 0",
            dataset.a.id,
        )
    )
    assert out["buyers"] == sum(combos.values())
    multi = sum(n for k, n in combos.items() if " + " in k)
    assert out["multichannel_share"] == round(multi / sum(combos.values()), 4)


async def test_purchase_cadence(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_behavior", view="purchase_cadence")
    profs = await rt.pool.fetch(
        "SELECT order_count, first_order_at, last_order_at FROM profiles "
        "WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0",
        dataset.a.id,
    )
    gaps = [
        (p["last_order_at"] - p["first_order_at"]).total_seconds() / 86400 / (p["order_count"] - 1)
        for p in profs
        if p["order_count"] >= 2
    ]
    assert out["buyers"] == len(profs)
    assert out["repeat_rate"] == round(len(gaps) / len(profs), 4)
    assert abs(out["days_between_orders"]["median"] - np.percentile(gaps, 50)) < 0.06
    assert abs(out["days_between_orders"]["p90"] - np.percentile(gaps, 90)) < 0.06
    once = next(b for b in out["orders_per_buyer"] if b["label"] == "1")
    assert once["customers"] == sum(p["order_count"] == 1 for p in profs)


async def test_cohort_retention(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_behavior", view="cohort_retention", months=4)
    start, _ = _window(out)
    first = {
        r["id"]: r["first_order_at"].strftime("%Y-%m")
        for r in await rt.pool.fetch(
            "SELECT id, first_order_at FROM profiles WHERE brand_id = $1 AND merged_into IS NULL "
            "AND first_order_at >= $2",
            dataset.a.id,
            start,
        )
    }
    months: dict[Any, set[str]] = defaultdict(set)
    for r in await rt.pool.fetch(
        "SELECT profile_id, occurred_at FROM events WHERE brand_id = $1 AND type = 'purchase' "
        "AND occurred_at >= $2",
        dataset.a.id,
        start,
    ):
        months[r["profile_id"]].add(r["occurred_at"].strftime("%Y-%m"))

    def index(m: str) -> int:
        y, mo = map(int, m.split("-"))
        return y * 12 + mo

    assert len(out["cohorts"]) == len(set(first.values())) <= 4
    for cohort in out["cohorts"]:
        members = [p for p, m in first.items() if m == cohort["cohort"]]
        assert cohort["customers"] == len(members)
        for k, share in enumerate(cohort["retention"]):
            active = sum(
                any(index(m) - index(cohort["cohort"]) == k for m in months[p]) for p in members
            )
            assert share == round(active / len(members), 4)
        assert cohort["retention"][0] == 1.0


async def test_journey_funnel(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "analyze_behavior", view="journey_funnel", period_days=30)
    rows = await _events(rt, dataset.a.id, *_window(out))
    did: dict[str, set[Any]] = defaultdict(set)
    buys: Counter[Any] = Counter()
    for r in rows:
        did[r["type"]].add(r["profile_id"])
        buys[r["profile_id"]] += r["type"] == "purchase"
    expected = [
        len(did["product_view"]),
        len(did["cart_add"]),
        len(did["checkout_start"]),
        len(did["purchase"]),
        sum(n >= 2 for n in buys.values()),
    ]
    assert [s["customers"] for s in out["funnel"]] == expected
    stages = {s["label"]: s["customers"] for s in out["journey_stages"]}
    assert stages == {"repeat": 26, "first_purchase": 14}
