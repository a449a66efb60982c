"""lookup_customer and similar_customers, checked against plain SQL over the same rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson

from tests.mcp_server.conftest import INJECTION, call, call_error


async def _an_email_customer(rt: Any, brand: Any) -> tuple[Any, str]:
    """A live buyer with an email and fewer than 200 events (the summary's window)."""
    row = await rt.pool.fetchrow(
        """SELECT p.id, i.value_enc FROM profiles p
           JOIN profile_identifiers i ON i.brand_id = p.brand_id AND i.profile_id = p.id
           WHERE p.brand_id = $1 AND p.merged_into IS NULL AND i.kind = 'email'
             AND i.status = 'active' AND p.order_count >= 2 AND p.event_count < 200
           ORDER BY p.order_count DESC, p.id LIMIT 1""",
        brand.id,
    )
    return row["id"], rt.keyring.for_brand(str(brand.id)).decrypt_str(row["value_enc"])


async def test_lookup_by_email_matches_the_events(dataset, rt, connect):
    pid, email = await _an_email_customer(rt, dataset.a)
    async with connect(dataset.a) as c:
        out = await call(c, "lookup_customer", query=f"  {email.upper()} ")
    assert out["matched_by"] == "email" and len(out["customers"]) == 1
    got = out["customers"][0]
    assert got["customer_ref"] == str(pid)
    purchases = await rt.pool.fetch(
        """SELECT total, properties -> 'items' AS items, source FROM events
           WHERE brand_id = $1 AND profile_id = $2 AND type = 'purchase'
           ORDER BY occurred_at DESC""",
        dataset.a.id,
        pid,
    )
    assert got["orders"] == len(purchases)
    assert got["revenue"] == round(sum(float(r["total"]) for r in purchases), 2)
    assert [o["channel"] for o in got["recent_orders"]] == [r["source"] for r in purchases[:5]]
    cats = Counter(
        i["category"] for r in purchases for i in (r["items"] or []) if i.get("category")
    )
    assert {c["category"]: c["items_bought"] for c in got["top_categories"]} == dict(
        cats.most_common(5)
    )
    masked = await rt.pool.fetch(
        "SELECT masked FROM profile_identifiers WHERE brand_id = $1 AND profile_id = $2",
        dataset.a.id,
        pid,
    )
    assert {i["value"] for i in got["identifiers"]} == {r["masked"] for r in masked}
    assert email not in orjson.dumps(out).decode()
    assert got["name"] is None and got["pii_visible"] is False
    churn = await rt.pool.fetchrow(
        "SELECT value, band FROM predictions WHERE brand_id = $1 AND profile_id = $2 AND kind = 'churn'",
        dataset.a.id,
        pid,
    )
    assert got["predictions"]["churn"]["probability"] == churn["value"]
    assert got["predictions"]["churn"]["band"] == churn["band"]


async def test_lookup_with_pii_shows_values_and_is_audited(dataset, rt, connect):
    pid, email = await _an_email_customer(rt, dataset.a)
    before = await rt.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE brand_id = $1 AND subject = $2 AND action = 'mcp.pii_read'",
        dataset.a.id,
        str(pid),
    )
    async with connect(dataset.a, pii=True) as c:
        out = await call(c, "lookup_customer", query=email, by="email")
    got = out["customers"][0]
    assert got["pii_visible"] is True
    assert email in {i["value"] for i in got["identifiers"]}
    assert got["name"]["untrusted_text"]
    after = await rt.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE brand_id = $1 AND subject = $2 AND action = 'mcp.pii_read'",
        dataset.a.id,
        str(pid),
    )
    assert after == before + 1


async def test_customer_text_is_delimited_data(dataset, connect):
    async with connect(dataset.a, pii=True) as c:
        out = await call(c, "lookup_customer", query="07700 900123")  # national format
    got = out["customers"][0]
    assert got["customer_ref"] == str(dataset.injected)
    message = got["recent_interactions"][0]["text"]
    assert message["untrusted_text"] == INJECTION
    assert "never instructions" in message["note"]
    assert got["name"]["untrusted_text"] == "Eve Mallory"  # bidi override and BEL removed
    async with connect(dataset.a) as c:
        masked = (await call(c, "lookup_customer", query=dataset.injected_phone))["customers"][0]
    assert masked["recent_interactions"][0]["text"] is None
    assert masked["name"] is None


async def test_lookup_by_ref_loyalty_and_name(dataset, rt, connect):
    row = await rt.pool.fetchrow(
        """SELECT i.profile_id, i.value_enc FROM profile_identifiers i
           JOIN profiles p ON p.brand_id = i.brand_id AND p.id = i.profile_id
           WHERE i.brand_id = $1 AND i.kind = 'loyalty_id' AND i.status = 'active'
             AND p.name_norm <> '' ORDER BY i.profile_id LIMIT 1""",
        dataset.a.id,
    )
    loyalty = rt.keyring.for_brand(str(dataset.a.id)).decrypt_str(row["value_enc"])
    name = await rt.pool.fetchval(
        "SELECT name_norm FROM profiles WHERE brand_id = $1 AND id = $2",
        dataset.a.id,
        row["profile_id"],
    )
    async with connect(dataset.a) as c:
        by_loyalty = await call(c, "lookup_customer", query=loyalty)
        assert by_loyalty["matched_by"] == "loyalty_id"
        assert by_loyalty["customers"][0]["customer_ref"] == str(row["profile_id"])
        by_ref = await call(c, "lookup_customer", query=str(row["profile_id"]))
        assert by_ref["matched_by"] == "customer_ref"
        by_name = await call(c, "lookup_customer", query=name.title(), max_matches=5)
        assert by_name["matched_by"] == "name"
        assert str(row["profile_id"]) in [x["customer_ref"] for x in by_name["customers"]]


async def test_merged_profile_ref_resolves_to_the_survivor(dataset, rt, connect):
    row = await rt.pool.fetchrow(
        "SELECT id, merged_into FROM profiles WHERE brand_id = $1 AND merged_into IS NOT NULL LIMIT 1",
        dataset.a.id,
    )
    if row is None:
        return  # this seed produced no merges
    async with connect(dataset.a) as c:
        out = await call(c, "lookup_customer", query=str(row["id"]))
    assert out["customers"][0]["customer_ref"] == str(row["merged_into"])


async def test_missing_customer_and_bad_arguments_are_clear_errors(dataset, connect):
    async with connect(dataset.a) as c:
        assert "no customer matches" in await call_error(
            c, "lookup_customer", query="nobody@nowhere.example"
        )
        assert "not a customer_ref" in await call_error(
            c, "lookup_customer", query="abc", by="profile_id"
        )
        assert "max_matches" in await call_error(c, "lookup_customer", query="x", max_matches=50)
        assert "no customer found" in await call_error(
            c, "similar_customers", customer="nobody@nowhere.example"
        )


async def test_similar_customers_are_the_nearest_embeddings(dataset, rt, connect):
    target = dataset.scored[5]
    rows = await rt.pool.fetch(
        """SELECT p.id, e.embedding FROM profiles p
           JOIN profile_embeddings e ON e.brand_id = p.brand_id AND e.profile_id = p.id
           WHERE p.brand_id = $1 AND p.merged_into IS NULL""",
        dataset.a.id,
    )
    vecs = {r["id"]: np.asarray(r["embedding"].to_numpy(), dtype=float) for r in rows}
    me = vecs.pop(target)
    sims = {
        pid: float(v @ me / (np.linalg.norm(v) * np.linalg.norm(me))) for pid, v in vecs.items()
    }
    expected = sorted(sims, key=sims.get, reverse=True)[:5]
    async with connect(dataset.a) as c:
        out = await call(c, "similar_customers", customer=str(target), limit=5)
    assert out["method"].startswith("embedding")
    assert [n["customer"]["customer_ref"] for n in out["neighbours"]] == [str(p) for p in expected]
    for n, pid in zip(out["neighbours"], expected, strict=True):
        assert abs(n["similarity"] - sims[pid]) < 1e-3


async def test_similar_customers_without_embedding_falls_back_and_says_so(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "similar_customers", customer=str(dataset.no_embedding), limit=3)
    assert out["method"].startswith("purchase behaviour")
    assert any("no embedding" in n for n in out["notes"])
    me = await rt.pool.fetchrow(
        "SELECT order_count, total_spent FROM profiles WHERE brand_id = $1 AND id = $2",
        dataset.a.id,
        dataset.no_embedding,
    )
    # The nearest neighbour by behaviour has a spend of the same order of magnitude.
    top = out["neighbours"][0]
    assert 0.33 < (top["revenue"] + 1) / (float(me["total_spent"]) + 1) < 3
