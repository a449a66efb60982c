"""churn_risk, segments and recommendations against the prediction rows the fixture wrote, and
on a brand whose predictions are empty."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.mcp_server.conftest import B_PRODUCT, call, call_error


async def _preds(rt: Any, brand_id: Any) -> dict[str, dict[Any, Any]]:
    out: dict[str, dict[Any, Any]] = defaultdict(dict)
    for r in await rt.pool.fetch(
        "SELECT profile_id, kind, value, band, details FROM predictions WHERE brand_id = $1",
        brand_id,
    ):
        out[r["kind"]][r["profile_id"]] = r
    return out


async def test_churn_for_one_customer(dataset, rt, connect):
    preds = await _preds(rt, dataset.a.id)
    high = next(p for p, r in preds["churn"].items() if r["band"] == "High")
    low = next(p for p, r in preds["churn"].items() if r["band"] == "Low")
    async with connect(dataset.a) as c:
        got = await call(c, "churn_risk", customer=str(high))
        calm = await call(c, "churn_risk", customer=str(low))
    assert got["mode"] == "customer" and got["predictions_available"]
    assert got["churn"]["probability"] == preds["churn"][high]["value"]
    assert got["churn"]["drivers"][0]["feature"] == "recency_days"
    assert got["churn"]["suggested_action"] == "Send the win-back offer"
    assert got["churn"]["action_source"] == "model"
    assert calm["churn"]["action_source"] == "rule"
    ltv = preds["ltv"][high]["value"]
    assert got["value_at_risk"] == round(preds["churn"][high]["value"] * ltv, 2)
    assert got["model"]["version"] == 1 and got["model"]["metrics"]["auc"] == 0.81
    assert got["segment"]["name"] == preds["segment"][high]["band"]


async def test_churn_top_n_by_probability_and_value_at_risk(dataset, rt, connect):
    preds = await _preds(rt, dataset.a.id)
    churn = {p: r["value"] for p, r in preds["churn"].items()}
    ltv = {p: r["value"] for p, r in preds["ltv"].items()}
    by_p = sorted(churn, key=lambda p: -churn[p])[:8]
    by_var = sorted(churn, key=lambda p: (-churn[p] * ltv[p], -churn[p], str(p)))[:8]
    async with connect(dataset.a) as c:
        top = await call(c, "churn_risk", top_n=8)
        var = await call(c, "churn_risk", top_n=8, rank_by="value_at_risk")
    assert [x["probability"] for x in top["at_risk"]] == [churn[p] for p in by_p]
    assert [x["customer"]["customer_ref"] for x in var["at_risk"]] == [str(p) for p in by_var]
    assert top["summary"]["scored_customers"] == len(churn)
    assert top["summary"]["high_risk"] == sum(v > 0.66 for v in churn.values())
    assert abs(top["summary"]["total_value_at_risk"] - sum(churn[p] * ltv[p] for p in churn)) < 0.05
    assert all(
        x["customer"]["contact"] is None or "***" in x["customer"]["contact"]
        for x in top["at_risk"]
    )


async def test_churn_top_n_of_a_segment(dataset, rt, connect):
    preds = await _preds(rt, dataset.a.id)
    members = [p for p, r in preds["segment"].items() if r["band"] == "At Risk"]
    expected = sorted(members, key=lambda p: -preds["churn"][p]["value"])[:5]
    async with connect(dataset.a) as c:
        out = await call(c, "churn_risk", segment="at risk", top_n=5)
        err = await call_error(c, "churn_risk", segment="Platinum")
    assert out["list_segment"] == "At Risk"
    assert [x["customer"]["customer_ref"] for x in out["at_risk"]] == [str(p) for p in expected]
    assert {x["segment"] for x in out["at_risk"]} == {"At Risk"}
    assert out["summary"]["scored_customers"] == len(members)
    assert "unknown segment" in err and "Champions" in err


async def test_segments_match_the_prediction_rows(dataset, rt, connect):
    preds = await _preds(rt, dataset.a.id)
    prof = {
        r["id"]: r
        for r in await rt.pool.fetch(
            "SELECT id, order_count, total_spent FROM profiles WHERE brand_id = $1", dataset.a.id
        )
    }
    groups: dict[str, list[Any]] = defaultdict(list)
    for pid, r in preds["segment"].items():
        groups[r["band"]].append(pid)
    async with connect(dataset.a) as c:
        out = await call(c, "segments")
    got = {s["name"]: s for s in out["segments"]}
    assert set(got) == set(groups)
    assert out["segmented_customers"] == len(preds["segment"])
    for name, pids in groups.items():
        s = got[name]
        assert s["customers"] == len(pids)
        assert abs(s["share"] - len(pids) / len(preds["segment"])) < 1e-4
        avg_churn = sum(preds["churn"][p]["value"] for p in pids) / len(pids)
        assert abs(s["average_churn"] - avg_churn) < 1e-4
        avg_spend = sum(float(prof[p]["total_spent"]) for p in pids) / len(pids)
        assert abs(s["average_spend"] - avg_spend) < 0.01
        assert s["cluster_name"] == f"{name} cluster"
        assert 1 <= len(s["defining_traits"]) <= 3


async def test_recommendations_for_a_customer_and_for_a_product(dataset, rt, connect):
    preds = await _preds(rt, dataset.a.id)
    pid = dataset.scored[7]
    items = preds["recommendations"][pid]["details"]["items"]
    product = items[0]["product_id"]
    wanting = sorted(
        (
            (p, i["score"])
            for p, r in preds["recommendations"].items()
            for i in r["details"]["items"]
            if i["product_id"] == product
        ),
        key=lambda x: (-x[1], str(x[0])),
    )[:10]
    async with connect(dataset.a) as c:
        mine = await call(c, "recommendations", customer=str(pid), limit=5)
        theirs = await call(c, "recommendations", product_id=product)
        assert "exactly one" in await call_error(c, "recommendations")
        assert "unknown product_id" in await call_error(c, "recommendations", product_id="nope")
    assert mine["method"] == "model"
    assert [p["product_id"] for p in mine["products"]] == [i["product_id"] for i in items]
    assert all(p["price"] is not None for p in mine["products"])
    assert [m["customer"]["customer_ref"] for m in theirs["customers"]] == [
        str(p) for p, _ in wanting
    ]


async def test_without_predictions_the_tools_say_so(dataset, rt, connect):
    b = dataset.b
    email = "bee1@other-brand.co.uk"
    async with connect(b) as c:
        one = await call(c, "churn_risk", customer=email)
        top = await call(c, "churn_risk")
        segs = await call(c, "segments")
        recs = await call(c, "recommendations", customer=email)
        audience = await call(c, "recommendations", product_id=B_PRODUCT)
    assert one["churn"] is None and not one["predictions_available"]
    assert one["orders"] == 6 and "not run" in one["notes"][0]
    assert top["at_risk"] == [] and "not run" in top["notes"][0]
    assert segs["segments"] == [] and not segs["predictions_available"]
    assert recs["method"].startswith("popular") and "not run" in recs["notes"][0]
    assert recs["products"] == []  # the only popular product is already bought
    assert audience["method"].startswith("co-purchase")
