import orjson
import pytest

from ingestion.worker import drain
from tests.helpers import event, table_text


async def _raw_count(rt, brand) -> int:
    return await rt.pool.fetchval("SELECT count(*) FROM raw_events WHERE brand_id = $1", brand.id)


async def test_event_is_accepted_once_and_duplicates_are_ignored(rt, client, brand):
    body = event("e-1")
    first = await client.post("/v1/events", json=body, headers=brand.auth("ingest"))
    again = await client.post("/v1/events", json=body, headers=brand.auth("ingest"))
    assert first.status_code == 202, first.text
    assert first.json()["data"] == {"event_id": "e-1", "status": "accepted"}
    assert again.json()["data"]["status"] == "duplicate"
    assert await _raw_count(rt, brand) == 1


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.update(tenant_id="x"), "tenant_id"),
        (lambda e: e.update(type="teleport"), "type"),
        (lambda e: e.update(occurred_at="yesterday"), "occurred_at"),
        (lambda e: e["identifiers"].update(ssn="1"), "identifiers.ssn"),
        (lambda e: e["properties"].update(total="lots"), "properties.total"),
        (lambda e: e["properties"].update(profile_id="p"), "properties"),
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e.update(brand="someone-else"), "brand"),
    ],
)
async def test_bad_event_gets_422_naming_the_field_and_stores_nothing(
    rt, client, brand, mutate, field
):
    body = event("bad")
    mutate(body)
    resp = await client.post("/v1/events", json=body, headers=brand.auth("ingest"))
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_error"
    assert field in err["message"]
    assert await _raw_count(rt, brand) == 0


async def test_invalid_json_empty_and_oversized_bodies(client, brand):
    h = {**brand.auth("ingest"), "content-type": "application/json"}
    bad = await client.post("/v1/events", content=b"{not json", headers=h)
    assert bad.status_code == 422 and "JSON" in bad.json()["error"]["message"]
    empty = await client.post("/v1/events", content=b"", headers=h)
    assert empty.status_code == 422
    big = event("big")
    big["properties"]["note"] = "x" * 40_000
    too_big = await client.post("/v1/events", json=big, headers=h)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


async def test_scopes_are_enforced(client, brand):
    assert (
        await client.post("/v1/events", json=event("s"), headers=brand.auth("read"))
    ).status_code == 403
    assert (await client.post("/v1/events", json=event("s"))).status_code == 401


async def test_batch_reports_each_item_in_order_and_keeps_good_ones(rt, client, brand):
    items = [event("b-1"), {"event_id": "b-2", "source": "api"}, event("b-1"), event("b-3"), "nope"]
    resp = await client.post(
        "/v1/events/batch", json={"events": items}, headers=brand.auth("ingest")
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2, 3, 4]
    assert [d["status"] for d in data] == [
        "accepted",
        "rejected",
        "duplicate",
        "accepted",
        "rejected",
    ]
    assert "type" in data[1]["error"]["message"]
    assert data[0]["error"] is None
    assert await _raw_count(rt, brand) == 2


async def test_batch_limits(client, brand):
    h = brand.auth("ingest")
    many = await client.post(
        "/v1/events/batch", json={"events": [event(f"m{i}") for i in range(501)]}, headers=h
    )
    assert many.status_code == 413
    shape = await client.post("/v1/events/batch", json=[event("x")], headers=h)
    assert shape.status_code == 422 and "events" in shape.json()["error"]["message"]
    huge = {"events": [dict(event(f"h{i}"), properties={"pad": "y" * 30_000}) for i in range(40)]}
    assert (
        await client.post("/v1/events/batch", content=orjson.dumps(huge), headers=h)
    ).status_code == 413


async def test_pos_transaction_is_a_pos_purchase(rt, client, brand):
    tx = {
        "store_id": "S1",
        "bill_number": "B-77",
        "occurred_at": "2025-04-02T12:00:00Z",
        "total": 31.0,
        "currency": "GBP",
        "items": [{"sku": "TEA-1", "name": "Tea", "price": 15.5, "quantity": 2}],
        "customer": {
            "phone": "07700 900461",
            "loyalty_id": "LC-9",
            "card_last4": "4242",
            "card_name": "M SMITH",
        },
    }
    resp = await client.post("/v1/pos/transactions", json=tx, headers=brand.auth("ingest"))
    assert resp.status_code == 202, resp.text
    assert resp.json()["data"]["event_id"] == "S1:B-77"
    bad = await client.post(
        "/v1/pos/transactions", json={"store_id": "S1"}, headers=brand.auth("ingest")
    )
    assert bad.status_code == 422 and "bill_number" in bad.json()["error"]["message"]
    await drain(rt, brand.id)
    row = await rt.pool.fetchrow(
        "SELECT source, type, total, store_id, order_id FROM events WHERE brand_id = $1", brand.id
    )
    assert dict(row) == {
        "source": "pos",
        "type": "purchase",
        "total": 31,
        "store_id": "S1",
        "order_id": "B-77",
    }


async def test_processed_events_build_profiles_without_plaintext_pii(rt, client, brand):
    batch = [
        event(
            "o-1",
            identifiers={"email": "grace.hopper@navy-mail.org", "phone": "+44 7700 900777"},
            traits={"first_name": "Grace", "last_name": "Hopper"},
        ),
        event(
            "o-2",
            source="pos",
            identifiers={"phone": "07700900777"},
            traits={"first_name": "Grace"},
        ),
        event(
            "o-3",
            source="whatsapp",
            type="message_in",
            traits={},
            identifiers={"whatsapp": "whatsapp:+447700900777"},
            properties={"text": "call me on 07700900777 or grace.hopper@navy-mail.org"},
        ),
    ]
    resp = await client.post(
        "/v1/events/batch", json={"events": batch}, headers=brand.auth("ingest")
    )
    assert [d["status"] for d in resp.json()["data"]] == ["accepted"] * 3
    assert await drain(rt, brand.id) == 3
    profiles = await rt.pool.fetch(
        "SELECT id, event_count, order_count, total_spent, channels FROM profiles "
        "WHERE brand_id = $1 AND merged_into IS NULL",
        brand.id,
    )
    assert len(profiles) == 1
    p = profiles[0]
    assert p["event_count"] == 3 and p["order_count"] == 2 and float(p["total_spent"]) == 25.0
    assert list(p["channels"]) == ["api", "pos", "whatsapp"]
    for table in ("raw_events", "events", "profiles", "profile_identifiers", "webhook_deliveries"):
        text = await table_text(rt, brand.id, table)
        for needle in ("grace.hopper", "7700900777", "7700 900777", "900777"):
            assert needle not in text, (table, needle)


async def test_concurrent_single_events_share_commits_and_stay_exactly_once(rt, client, brand):
    import asyncio

    bodies = [event(f"c-{i % 150}") for i in range(300)]  # every id sent twice, concurrently
    resps = await asyncio.gather(
        *(client.post("/v1/events", json=b, headers=brand.auth("ingest")) for b in bodies)
    )
    statuses = [r.json()["data"]["status"] for r in resps]
    assert statuses.count("accepted") == 150 and statuses.count("duplicate") == 150
    assert await _raw_count(rt, brand) == 150
