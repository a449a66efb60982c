"""target_campaign: audiences recomputed in Python from the profile and prediction rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.mcp_server.conftest import call, call_error


async def _rows(rt: Any, brand_id: Any) -> list[dict[str, Any]]:
    profiles = await rt.pool.fetch(
        """SELECT id, order_count, total_spent::float8 AS spent, first_order_at, last_order_at
           FROM profiles WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0""",
        brand_id,
    )
    preds: dict[Any, dict[str, Any]] = {}
    for r in await rt.pool.fetch(
        "SELECT profile_id, kind, value, band, details FROM predictions WHERE brand_id = $1",
        brand_id,
    ):
        preds.setdefault(r["profile_id"], {})[r["kind"]] = r
    prices = {
        r["product_id"]: float(r["price"])
        for r in await rt.pool.fetch(
            "SELECT product_id, price FROM products WHERE brand_id = $1", brand_id
        )
    }
    now = datetime.now(UTC)
    out = []
    for p in profiles:
        pr = preds.get(p["id"], {})
        years = (now - p["first_order_at"]).total_seconds() / 31557600
        items = pr["recommendations"]["details"]["items"] if "recommendations" in pr else []
        out.append(
            {
                "id": p["id"],
                "annual": p["spent"] / max(years, 1),
                "aov": p["spent"] / p["order_count"],
                "orders": p["order_count"],
                "days": (now - p["last_order_at"]).days,
                "churn": pr["churn"]["value"] if "churn" in pr else None,
                "ltv": pr["ltv"]["value"] if "ltv" in pr else None,
                "decile": pr["ltv"]["band"] if "ltv" in pr else None,
                "rec_price": prices.get(items[0]["product_id"]) if items else None,
            }
        )
    return out


def _top(rows: list[dict[str, Any]], ev: Any, n: int) -> list[tuple[str, float]]:
    scored = [(str(r["id"]), ev(r)) for r in rows]
    return sorted(scored, key=lambda x: (-x[1], x[0]))[:n]


async def test_win_back_audience_and_budget(dataset, rt, connect):
    rows = [r for r in await _rows(rt, dataset.a.id) if r["churn"] >= 0.5]
    expected = _top(rows, lambda r: 0.08 * r["annual"], 10)
    async with connect(dataset.a) as c:
        out = await call(c, "target_campaign", goal="win_back", size=10, show=10)
        budget = await call(c, "target_campaign", goal="win_back", budget=40, cost_per_contact=2)
    assert out["method"] == "model" and out["eligible_customers"] == len(rows)
    assert [m["customer"]["customer_ref"] for m in out["members"]] == [p for p, _ in expected]
    assert [m["expected_value"] for m in out["members"]] == [round(v, 2) for _, v in expected]
    assert out["expected_value_total"] == round(sum(v for _, v in expected), 2)
    assert "no order for" in out["members"][0]["reason"]
    affordable = [v for _, v in _top(rows, lambda r: 0.08 * r["annual"], 20) if v > 2]
    assert budget["audience_size"] == len(affordable)
    assert budget["cost_total"] == 2 * len(affordable)
    assert budget["expected_net"] == round(sum(affordable) - 2 * len(affordable), 2)


async def test_vips_cross_sell_and_upsell(dataset, rt, connect):
    rows = await _rows(rt, dataset.a.id)
    vips = [r for r in rows if r["decile"] in ("D9", "D10") and r["churn"] >= 0.33]
    cross = [r for r in rows if r["churn"] < 0.66 and r["rec_price"] is not None]
    up = [r for r in rows if r["churn"] < 0.33 and r["orders"] >= 2]
    async with connect(dataset.a) as c:
        v = await call(c, "target_campaign", goal="retain_vips", size=5, response_rate=0.3)
        x = await call(c, "target_campaign", goal="cross_sell", size=5)
        u = await call(c, "target_campaign", goal="upsell", size=5)
    assert v["eligible_customers"] == len(vips) and v["response_rate"] == 0.3
    assert [m["customer"]["customer_ref"] for m in v["members"]] == [
        p for p, _ in _top(vips, lambda r: 0.3 * r["churn"] * r["ltv"], 5)
    ]
    assert [m["customer"]["customer_ref"] for m in x["members"]] == [
        p for p, _ in _top(cross, lambda r: 0.1 * r["rec_price"], 5)
    ]
    assert x["members"][0]["reason"].startswith("recommended:")
    assert [m["customer"]["customer_ref"] for m in u["members"]] == [
        p for p, _ in _top(up, lambda r: 0.1 * r["aov"], 5)
    ]


async def test_rules_when_predictions_are_missing(dataset, rt, connect):
    rows = [r for r in await _rows(rt, dataset.b.id) if r["orders"] >= 2 and r["days"] < 90]
    async with connect(dataset.b) as c:
        out = await call(c, "target_campaign", goal="upsell")
        assert "budget does not cover" in await call_error(
            c, "target_campaign", goal="upsell", budget=1, cost_per_contact=5
        )
    assert out["method"] == "rules" and "not run" in out["notes"][0]
    assert out["eligible_customers"] == len(rows) == 4
    assert sorted(m["expected_value"] for m in out["members"]) == sorted(
        round(0.1 * r["aov"], 2) for r in rows
    )
