"""The DuckDB replica answers every analytics question exactly as Postgres does.

Each call runs twice on the generated brand, with the cache emptied before each run: once
with ANALYTICS_REPLICA=off (Postgres) and once on a freshly built replica; the structured
results must be equal apart from `computed_at`. Numbers (also inside text) may differ by one
unit in their last shown decimal and no more: averages of doubles summed in another order can
round to either side of a boundary, which a parallel Postgres plan can do on its own too."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from mcp_server import replica
from tests.mcp_server.conftest import call

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("analyze_customers", {}),
    *[
        ("analyze_customers", {"group_by": g})
        for g in ("channel", "country", "city", "cohort", "segment")
    ],
    ("analyze_customers", {"group_by": "channel", "period_days": 90}),
    ("analyze_customers", {"group_by": "segment", "period_days": 365, "country": "gb"}),
    ("analyze_customers", {"group_by": "cohort", "channel": "pos", "cohort_from": "2025-01"}),
    ("analyze_customers", {"group_by": "city", "period_days": 180, "segment": "Champions"}),
    ("segments", {}),
    ("churn_risk", {"rank_by": "value_at_risk", "top_n": 25}),
    ("churn_risk", {"rank_by": "value_at_risk", "segment": "At Risk"}),
    ("analyze_segments", {}),
    ("analyze_segments", {"movement_days": 30}),
    *[
        ("analyze_products", {"view": v, "period_days": 365})
        for v in ("top_products", "top_categories", "bought_together", "category_affinity")
    ],
    ("analyze_products", {"view": "top_products", "sort_by": "units", "period_days": 90}),
    ("analyze_products", {"view": "top_categories", "sort_by": "buyers"}),
    ("analyze_products", {"view": "bought_together", "min_together": 3, "period_days": 365}),
    *[
        ("analyze_behavior", {"view": v})
        for v in ("channel_mix", "purchase_cadence", "cohort_retention", "journey_funnel")
    ],
    ("analyze_behavior", {"view": "cohort_retention", "months": 6}),
    ("forecast_metrics", {"metric": "revenue"}),
    ("forecast_metrics", {"metric": "active_customers", "horizon_weeks": 4}),
]


def _close_in_time(a: str, b: str) -> bool:
    return abs(datetime.fromisoformat(a) - datetime.fromisoformat(b)) < timedelta(seconds=30)


def _same(a: Any, b: Any, path: str = "") -> list[str]:
    if path.endswith((".window_start", ".window_end")) and isinstance(a, str):
        # "now" when the tool ran, not data
        return [] if isinstance(b, str) and _close_in_time(a, b) else [f"{path}: {a} vs {b}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a if k != "computed_at" for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _same(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float | int):
        return [] if _numbers_agree(str(a), str(b)) else [f"{path}: {a} vs {b}"]
    if isinstance(a, str) and isinstance(b, str) and a != b:
        # text with numbers in it ("expected value 24.37 (lower than ...)")
        words_a, words_b = _NUMBER.split(a), _NUMBER.split(b)
        nums_a, nums_b = _NUMBER.findall(a), _NUMBER.findall(b)
        same = (
            words_a == words_b
            and len(nums_a) == len(nums_b)
            and all(_numbers_agree(x, y) for x, y in zip(nums_a, nums_b, strict=True))
        )
        return [] if same else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _numbers_agree(a: str, b: str) -> bool:
    """Equal up to one unit in the last decimal shown: a sum of doubles added in another
    order (DuckDB's, or a parallel Postgres plan's) can land on the other side of a rounding
    boundary (24.365 -> 24.37 or 24.36); anything larger is a real difference."""
    x, y = float(a), float(b)
    decimals = max(len(a.partition(".")[2]), len(b.partition(".")[2]))
    unit = 10.0**-decimals if decimals else 0.0
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) or abs(x - y) <= unit * 1.000001


async def _clear(rt: Any, brand_id: Any) -> None:
    keys = [k async for k in rt.redis.scan_iter(match=f"cb:{{{brand_id}}}:mcp:*")]
    if keys:
        await rt.redis.delete(*keys)


@pytest.mark.parametrize("mode", ["auto"])
async def test_replica_answers_every_analytics_question_as_postgres_does(
    dataset, rt, connect, monkeypatch
):
    brand = dataset.a
    monkeypatch.setenv("ANALYTICS_REPLICA", "off")
    expected = []
    async with connect(brand) as c:
        for tool, args in CALLS:
            await _clear(rt, brand.id)
            expected.append(await call(c, tool, **args))
    monkeypatch.setenv("ANALYTICS_REPLICA", "on")
    rep = await replica.store.refresh(rt.pool, brand.id)
    try:
        assert rep is not None and rep.rows["events"] > 1000 and rep.rows["lines"] > 500
        assert replica.store.peek(brand.id) is rep
        problems = []
        async with connect(brand) as c:
            for (tool, args), want in zip(CALLS, expected, strict=True):
                await _clear(rt, brand.id)
                got = await call(c, tool, **args)
                problems += [f"{tool} {args}: {d}" for d in _same(want, got)]
        assert not problems, "\n".join(problems[:20])
        # the questions really ran on the replica (a statement on a closed one fails)
        rep.close()
        async with connect(brand) as c:
            await _clear(rt, brand.id)
            res = await c.call_tool("analyze_customers", {"group_by": "country"})
        assert res.is_error
    finally:
        replica.store.drop(brand.id)
        await _clear(rt, brand.id)


async def test_replica_holds_no_personal_data_and_one_brand(dataset, rt, monkeypatch):
    monkeypatch.setenv("ANALYTICS_REPLICA", "on")
    rep = await replica.store.refresh(rt.pool, dataset.a.id)
    try:
        assert rep is not None
        columns = {
            (t, c)
            for t, c in await rep.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
            )
        }
        names = {c for _, c in columns}
        assert not names & {
            "email",
            "phone",
            "traits_enc",
            "name_norm",
            "content_enc",
            "properties",
        }
        # profile ids are replaced by dense integers inside the replica
        assert (await rep.fetch("SELECT typeof(id) FROM profiles LIMIT 1"))[0][0] == "INTEGER"
        for table in ("profiles", "events"):
            mine = (await rep.fetch(f"SELECT count(*) FROM {table}"))[0][0]
            assert mine == await rt.pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE brand_id = $1", dataset.a.id
            )
        assert await rt.pool.fetchval(
            "SELECT count(*) FROM events WHERE brand_id = $1", dataset.b.id
        )
    finally:
        replica.store.drop(dataset.a.id)


async def test_movement_twin_matches_postgres_at_any_pair_of_dates(dataset, rt, monkeypatch):
    """The movement twin (histogram cut points, scores counted per cell) against the Postgres
    statement at dates in the middle of the history too, where purchases fall after the later
    date and some customers have none before the earlier one, not only at today's."""
    from mcp_server import replica_sql
    from mcp_server.tools._segments import MOVEMENT_SQL

    monkeypatch.setenv("ANALYTICS_REPLICA", "on")
    rep = await replica.store.refresh(rt.pool, dataset.a.id)
    try:
        assert rep is not None
        twin = replica_sql.TWIN[MOVEMENT_SQL]
        today = dataset.now.replace(hour=0, minute=0, second=0, microsecond=0)
        for back, span in ((0, 90), (0, 7), (60, 30), (200, 120), (330, 20), (0, 600)):
            later = today - timedelta(days=back)
            earlier = later - timedelta(days=span)
            want = await rt.pool.fetch(MOVEMENT_SQL, dataset.a.id, earlier, later)
            got = await rep.fetch(twin, dataset.a.id, earlier, later)
            assert want, (back, span)
            assert [tuple(r) for r in got] == [tuple(r) for r in want], (back, span)
    finally:
        replica.store.drop(dataset.a.id)
