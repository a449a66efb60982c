"""The Segment-compatible tracking API, with the official Segment and RudderStack Python SDKs
as real clients against a real uvicorn server, resolved by the real worker path (`drain`)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from ingestion import segment
from ingestion.worker import drain

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


# --- a real server ------------------------------------------------------------------------


@pytest.fixture
async def server(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert not task.done(), task
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def stored(rt: Any, brand_id: UUID) -> list[Any]:
    return await rt.pool.fetch(
        "SELECT source, event_id, type, occurred_at, status FROM raw_events WHERE brand_id = $1"
        " ORDER BY id",
        brand_id,
    )


async def owner(rt: Any, brand_id: UUID, kind: str, value: str) -> UUID | None:
    """The live profile holding an identifier (by its keyed hash, as identity stores it)."""
    digest = rt.keyring.for_brand(str(brand_id)).blind_index(kind, value)
    return await rt.pool.fetchval(
        "SELECT profile_id FROM profile_identifiers WHERE brand_id = $1 AND kind = $2"
        " AND hash = $3",
        brand_id,
        kind,
        digest,
    )


# --- the SDKs end to end -----------------------------------------------------------------

PRODUCT = {"product_id": "p-1", "sku": "SKU-1", "name": "Linen shirt", "category": "Shirts"}


def shop(client: Any, uid: str, anon: str, email: str, *, identify_first: bool) -> None:
    """Browse anonymously, then sign up, then buy: what a storefront sends."""
    client.page(
        anonymous_id=anon,
        name="Home",
        properties={"url": "https://shop.example/", "path": "/", "title": "Shop"},
    )
    client.track(anonymous_id=anon, event="Product Viewed", properties={**PRODUCT, "price": 40.0})
    client.track(
        anonymous_id=anon,
        event="Product Added",
        properties={**PRODUCT, "price": 40.0, "quantity": 2, "cart_id": "c-1"},
    )
    traits = {
        "email": email,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "plan": "gold",
        "address": {"city": "London", "postalCode": "N1 9GU", "country": "GB"},
    }
    alias = {"previous_id": anon, "user_id": uid}
    if identify_first:
        # Known before the alias: two profiles that the alias then joins.
        client.identify(user_id=uid, traits=traits)
        client.alias(**alias)
    else:
        client.alias(**alias)
        client.identify(user_id=uid, anonymous_id=anon, traits=traits)
    client.track(
        user_id=uid,
        event="Checkout Started",
        properties={"order_id": f"o-{uid}", "value": 80, "currency": "gbp"},
    )
    client.track(
        user_id=uid,
        event="Order Completed",
        properties={
            "order_id": f"o-{uid}",
            "total": 86.5,
            "revenue": 80,
            "shipping": 6.5,
            "currency": "GBP",
            "coupon": "SPRING",
            "products": [{**PRODUCT, "price": 40.0, "quantity": 2, "brand": "Acme"}],
        },
    )


async def test_segment_and_rudderstack_sdks_end_to_end(rt, brand, server):
    errors: list[Any] = []
    seg = SegmentClient(
        brand.ingest_key, host=server, max_retries=2, on_error=lambda e, b: errors.append(e)
    )
    rud = RudderClient(
        brand.ingest_key, host=server, max_retries=2, on_error=lambda e, b: errors.append(e)
    )  # gzip by default
    users = [
        (seg, "u-seg-1", True),
        (seg, "u-seg-2", False),
        (rud, "u-rud-1", True),
        (rud, "u-rud-2", False),
    ]
    for client, uid, identify_first in users:
        shop(client, uid, f"anon-{uid}", f"{uid}@brightmail.co.uk", identify_first=identify_first)
    await asyncio.gather(asyncio.to_thread(seg.shutdown), asyncio.to_thread(rud.shutdown))
    assert errors == []

    rows = await stored(rt, brand.id)
    assert len(rows) == 4 * 7
    assert {r["source"] for r in rows} == {"api"}  # server-side SDKs
    assert await drain(rt, brand.id) == 28
    assert {r["status"] for r in await stored(rt, brand.id)} == {"processed"}

    live = await rt.pool.fetch(
        "SELECT id, name_norm, city, order_count, total_spent FROM profiles"
        " WHERE brand_id = $1 AND merged_into IS NULL",
        brand.id,
    )
    assert len(live) == 4
    by_id = {p["id"]: p for p in live}
    for _, uid, _ in users:
        pid = await owner(rt, brand.id, "external", f"user:{uid}")
        assert pid in by_id
        assert await owner(rt, brand.id, "cookie_id", f"anon-{uid}") == pid
        assert await owner(rt, brand.id, "email", f"{uid}@brightmail.co.uk") == pid
        profile = by_id[pid]
        assert (profile["name_norm"], profile["city"]) == ("ada lovelace", "London")
        assert (profile["order_count"], float(profile["total_spent"])) == (1, 86.5)
        types = await rt.pool.fetch(
            "SELECT type, count(*) AS n FROM events WHERE brand_id = $1 AND profile_id = $2"
            " GROUP BY type",
            brand.id,
            pid,
        )
        assert {r["type"]: r["n"] for r in types} == {
            "page_view": 1,
            "product_view": 1,
            "cart_add": 1,
            "identify": 2,  # identify + alias
            "checkout_start": 1,
            "purchase": 1,
        }

    merges = await rt.pool.fetch(
        "SELECT reason FROM identity_merge_log WHERE brand_id = $1", brand.id
    )
    # Only where the alias found two profiles: the anonymous one stitched into the user's.
    assert [m["reason"] for m in merges] == ["anonymous profile stitched on identification"] * 2

    purchase = await rt.pool.fetchrow(
        "SELECT order_id, total, currency, properties FROM events WHERE brand_id = $1"
        " AND type = 'purchase' AND order_id = 'o-u-seg-1'",
        brand.id,
    )
    assert (purchase["order_id"], float(purchase["total"]), purchase["currency"]) == (
        "o-u-seg-1",
        86.5,
        "GBP",
    )
    props = purchase["properties"]
    assert props["items"] == [{**PRODUCT, "price": 40.0, "quantity": 2.0}]
    assert props["product_extras"] == [{"brand": "Acme"}]
    assert (props["event"], props["coupon"], props["revenue"]) == ("Order Completed", "SPRING", 80)
    assert props["context"]["library"]["name"] == "analytics-python"
    checkout = await rt.pool.fetchrow(
        "SELECT total, currency FROM events WHERE brand_id = $1 AND type = 'checkout_start'"
        " AND order_id = 'o-u-rud-2'",
        brand.id,
    )
    assert (float(checkout["total"]), checkout["currency"]) == (80.0, "GBP")
    # Emails and names live only in sealed columns and keyed hashes, never in clear text.
    leaked = await rt.pool.fetchval(
        "SELECT count(*) FROM events WHERE brand_id = $1 AND properties::text ~* '(brightmail|lovelace)'",
        brand.id,
    )
    assert leaked == 0


async def test_sdk_and_http_retries_store_one_event(rt, brand, server):
    """Same messageId from the SDK twice, then raw /track and /batch: one event."""
    seg = SegmentClient(brand.ingest_key, host=server, max_retries=0)
    for _ in range(2):
        seg.track(user_id="u-1", event="Product Viewed", properties=PRODUCT, message_id="m-1")
    await asyncio.to_thread(seg.shutdown)
    msg = {"userId": "u-1", "event": "Product Viewed", "messageId": "m-1", "properties": PRODUCT}
    async with httpx.AsyncClient(base_url=server, headers=basic(brand.ingest_key)) as http:
        for _ in range(2):
            assert (await http.post("/v1/track", json=msg)).json() == {"success": True}
        resp = await http.post("/v1/batch", json={"batch": [{**msg, "type": "track"}] * 3})
        assert resp.json() == {"success": True}
    rows = await stored(rt, brand.id)
    assert [(r["event_id"], r["type"]) for r in rows] == [("m-1", "product_view")]
    await drain(rt, brand.id)
    assert await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand.id) == 1


async def test_message_without_message_id_gets_a_server_id(rt, brand, client):
    body = {"userId": "u-1", "event": "Signed Up"}
    for _ in range(2):
        assert (await client.post("/v1/track", json=body, headers=basic(brand.ingest_key))).json()
    ids = [r["event_id"] for r in await stored(rt, brand.id)]
    # Nothing to deduplicate on: each delivery is its own event (docs/segment.md).
    assert len(ids) == 2 and all(i.startswith("srv-") for i in ids)


# --- auth, sizes, reasons ----------------------------------------------------------------

TRACK = {"userId": "u-1", "event": "Product Viewed", "properties": PRODUCT}


@pytest.mark.parametrize(
    "headers",
    [{}, basic("cb_nope"), {"Authorization": "Bearer cb_nope"}, {"Authorization": "Basic %%%"}],
)
async def test_bad_write_key_is_401(rt, brand, server, headers):
    async with httpx.AsyncClient(base_url=server) as http:
        resp = await http.post("/v1/track", json=TRACK, headers=headers)
        batch = await http.post("/v1/batch", json={"batch": [TRACK]}, headers=headers)
    for r in (resp, batch):
        assert r.status_code == 401, r.text
        body = r.json()
        assert body["success"] is False and body["code"] == "unauthorized"
        assert body["error"]["request_id"] == r.headers["x-request-id"]
    assert await stored(rt, brand.id) == []


async def test_write_key_in_body_bearer_and_scope(rt, brand, client):
    ok = await client.post("/v1/track", json={**TRACK, "writeKey": brand.ingest_key})
    assert ok.status_code == 200 and ok.json() == {"success": True}
    bearer = await client.post("/v1/identify", json={"userId": "u-2"}, headers=brand.auth("ingest"))
    assert bearer.status_code == 200
    no_scope = await client.post("/v1/track", json={**TRACK, "writeKey": brand.read_key})
    assert no_scope.status_code == 403 and no_scope.json()["code"] == "forbidden"
    rows = await stored(rt, brand.id)
    assert [r["type"] for r in rows] == ["product_view", "identify"]
    # The write key in the body is never stored with the event.
    assert await drain(rt, brand.id) == 2
    text = await rt.pool.fetchval(
        "SELECT string_agg(properties::text, ' ') FROM events WHERE brand_id = $1", brand.id
    )
    assert brand.ingest_key not in text


async def test_oversize_messages_and_batches_are_400(rt, brand, server):
    big = {**TRACK, "properties": {"blob": "x" * (33 * 1024)}}
    small = {**TRACK, "type": "track"}
    async with httpx.AsyncClient(base_url=server, headers=basic(brand.ingest_key)) as http:
        single = await http.post("/v1/track", json=big)
        one_big = await http.post("/v1/batch", json={"batch": [small, {**big, "type": "track"}]})
        fat = [{**small, "properties": {"blob": "y" * 20_000}}] * 30  # ~600 KB
        too_big = await http.post("/v1/batch", json={"batch": fat})
        zipped = await http.post(
            "/v1/batch",
            content=gzip.compress(httpx.Request("POST", "/", json={"batch": fat}).read()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    for r in (single, one_big, too_big, zipped):
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "payload_too_large"
    assert "32 KB" in single.json()["message"] or "32768" in single.json()["message"]
    assert "batch[1]" in one_big.json()["message"]
    assert await stored(rt, brand.id) == []


@pytest.mark.parametrize(
    ("path", "body", "code", "reason"),
    [
        ("/v1/track", {"event": "Product Viewed"}, "no_user_anon_id", "userId or anonymousId"),
        ("/v1/identify", {"traits": {"email": "a@brightmail.co.uk"}}, "no_user_anon_id", "userId"),
        ("/v1/track", {"userId": "u-1"}, "missing_event_name", "event name"),
        ("/v1/alias", {"userId": "u-1"}, "missing_alias_ids", "previousId"),
        ("/v1/group", {"userId": "u-1"}, "missing_group_id", "groupId"),
        ("/v1/page", {"userId": "u-1", "properties": "x"}, "invalid_field", "properties"),
        (
            "/v1/track",
            {**TRACK, "properties": {"profile_id": "x"}},
            "validation_error",
            "profile_id",
        ),
        ("/v1/identify", {"anonymousId": "a" * 300}, "validation_error", "anonymousId"),
    ],
)
async def test_refused_message_is_400_with_the_reason(rt, brand, client, path, body, code, reason):
    resp = await client.post(path, json=body, headers=basic(brand.ingest_key))
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
    assert reason in resp.json()["message"]
    assert await stored(rt, brand.id) == []


async def test_bad_json_and_gzip_are_400(brand, client):
    for content, headers, code in [
        (b"{not json", {}, "invalid_json"),
        (b"", {}, "invalid_json"),
        (b"[1, 2]", {}, "invalid_body"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "invalid_gzip"),
        (gzip.compress(b'{"userId": "u"}'), {"Content-Encoding": "br"}, "unsupported_encoding"),
    ]:
        resp = await client.post(
            "/v1/identify", content=content, headers={**basic(brand.ingest_key), **headers}
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == code


async def test_gzip_body_is_accepted(rt, brand, server):
    body = gzip.compress(b'{"userId": "u-9", "traits": {"email": "z@brightmail.co.uk"}}')
    async with httpx.AsyncClient(base_url=server) as http:
        resp = await http.post(
            "/v1/identify",
            content=body,
            headers={**basic(brand.ingest_key), "Content-Encoding": "gzip"},
        )
    assert resp.status_code == 200 and resp.json() == {"success": True}
    await drain(rt, brand.id)
    assert await owner(rt, brand.id, "email", "z@brightmail.co.uk") == await owner(
        rt, brand.id, "external", "user:u-9"
    )


async def test_batch_keeps_good_messages_and_drops_what_segment_drops(rt, brand, client):
    good = {"type": "identify", "userId": "u-1", "messageId": "g-1"}
    batch = [
        good,
        {"type": "track", "event": "Product Viewed", "messageId": "b-1"},  # no ids
        {"type": "purchase", "userId": "u-1", "messageId": "b-2"},  # not a Segment type
        {"type": "track", "userId": "u-1", "messageId": "b-3"},  # no event name
        "not an object",
        {"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "g-2"},
    ]
    resp = await client.post("/v1/batch", json={"batch": batch}, headers=basic(brand.ingest_key))
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "no_user_anon_id"),
        (2, "invalid_type"),
        (3, "missing_event_name"),
        (4, "invalid_message"),
    ]
    assert [r["event_id"] for r in await stored(rt, brand.id)] == ["g-1", "g-2"]


async def test_batch_context_and_sent_at_apply_to_every_message(rt, brand, client):
    sent = datetime.now(UTC) + timedelta(hours=1)  # the device clock is an hour fast
    batch = {
        "sentAt": sent.isoformat(),
        "context": {"library": {"name": "analytics.js"}, "ip": "203.0.113.9"},
        "batch": [
            {
                "type": "track",
                "anonymousId": "a-1",
                "event": "Product Viewed",
                "properties": PRODUCT,
                "timestamp": (sent - timedelta(seconds=30)).isoformat(),
                "messageId": "m-ctx",
            }
        ],
    }
    resp = await client.post("/v1/batch", json=batch, headers=basic(brand.ingest_key))
    assert resp.json() == {"success": True}
    [row] = await stored(rt, brand.id)
    assert row["source"] == "web"
    skew = datetime.now(UTC) - timedelta(seconds=30) - row["occurred_at"]
    assert abs(skew.total_seconds()) < 5
    await drain(rt, brand.id)
    props = await rt.pool.fetchval(
        "SELECT properties FROM events WHERE brand_id = $1 AND event_id = 'm-ctx'", brand.id
    )
    assert props["context"] == {"library": {"name": "analytics.js"}, "ip": "203.0.113.9"}


# --- identity through alias --------------------------------------------------------------


async def test_alias_never_merges_two_known_people(rt, brand, client):
    """The previous id already belongs to someone identified: a weak id does not merge two
    known profiles (it counts as a claim against the shared id instead)."""
    auth = basic(brand.ingest_key)
    batch = [
        {
            "type": "identify",
            "userId": "u-x",
            "anonymousId": "tablet",
            "traits": {"email": "x@brightmail.co.uk", "firstName": "Xena"},
        },
        {
            "type": "identify",
            "userId": "u-y",
            "traits": {"email": "y@brightmail.co.uk", "firstName": "Yuri"},
        },
        {"type": "alias", "previousId": "tablet", "userId": "u-y"},
    ]
    assert (await client.post("/v1/batch", json={"batch": batch}, headers=auth)).json() == {
        "success": True
    }
    await drain(rt, brand.id)
    x = await owner(rt, brand.id, "external", "user:u-x")
    y = await owner(rt, brand.id, "external", "user:u-y")
    assert x and y and x != y
    assert await owner(rt, brand.id, "cookie_id", "tablet") == x
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM identity_merge_log WHERE brand_id = $1", brand.id
        )
        == 0
    )
    claims = await rt.pool.fetchval(
        "SELECT claims FROM profile_identifiers WHERE brand_id = $1 AND kind = 'cookie_id'",
        brand.id,
    )
    assert claims == 2


# --- mapping (pure) ------------------------------------------------------------------------


def canon(msg: dict[str, Any], kind: str, **kw: Any) -> dict[str, Any]:
    return segment.to_canonical(msg, kind, NOW, **kw)


def test_timestamp_correction_follows_segment():
    ts = "2025-05-01T13:00:00Z"  # the device is an hour fast...
    sent = "2025-05-01T13:00:10Z"  # ...and sent it ten seconds later
    assert segment.occurred_at({"timestamp": ts, "sentAt": sent}, NOW) == NOW - timedelta(
        seconds=10
    )
    assert segment.occurred_at({"timestamp": ts}, NOW, batch_sent_at=sent) == NOW - timedelta(
        seconds=10
    )
    # No sentAt: the timestamp as given (historical import); none at all: receivedAt.
    assert segment.occurred_at({"timestamp": "2020-01-01T00:00:00"}, NOW) == datetime(
        2020, 1, 1, tzinfo=UTC
    )
    assert segment.occurred_at({}, NOW) == NOW
    assert segment.occurred_at({"originalTimestamp": ts, "sentAt": ts}, NOW) == NOW
    assert segment.occurred_at({"timestamp": "yesterday"}, NOW) == NOW


def test_identify_maps_identifiers_and_traits_and_keeps_pii_out_of_properties():
    ev = canon(
        {
            "userId": 42,
            "anonymousId": "anon-1",
            "messageId": "m",
            "traits": {
                "email": "Ada@Example.com",
                "phone": "+44 7700 900123",
                "name": "Ada King Lovelace",
                "birthday": "1815-12-10T00:00:00.000Z",
                "address": {
                    "street": "1 Main St",
                    "city": "London",
                    "postalCode": "N1 9GU",
                    "country": "GB",
                    "state": "LDN",
                },
                "plan": "gold",
                "logins": 5,
            },
            "context": {
                "traits": {"phone": "+44 7700 900999"},
                "ip": "203.0.113.9",
                "userAgent": "UA",
                "device": {"id": "d-1", "token": "push-secret"},
                "campaign": {"source": "newsletter"},
                "timezone": "Europe/London",
                "notInTheSpec": 1,
            },
            "writeKey": "secret",
            "integrations": {"All": True},
        },
        "identify",
    )
    assert ev["type"] == "identify" and ev["event_id"] == "m"
    assert ev["identifiers"] == {
        "email": "Ada@Example.com",
        "phone": "+44 7700 900123",
        "external_ids": {"user": "42"},
        "cookie_id": "anon-1",
    }
    assert ev["traits"] == {
        "first_name": "Ada",
        "last_name": "King Lovelace",
        "city": "London",
        "postcode": "N1 9GU",
        "country": "GB",
        "state": "LDN",
        "address": "1 Main St",
        "dob": "1815-12-10",
        "timezone": "Europe/London",
    }
    props = ev["properties"]
    assert props["traits"] == {"plan": "gold", "logins": 5}
    assert props["context"] == {
        "ip": "203.0.113.9",
        "userAgent": "UA",
        "device": {"id": "d-1"},
        "campaign": {"source": "newsletter"},
        "timezone": "Europe/London",
    }
    assert "secret" not in str(ev)


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("Product Viewed", "product_view"),
        ("product_added", "cart_add"),
        ("Product Removed", "cart_remove"),
        ("Checkout Started", "checkout_start"),
        ("Order Completed", "purchase"),
        ("Order Refunded", "refund"),
        ("Products Searched", "search"),
        ("Store Visited", "store_visit"),
        ("QR Code Scanned", "qr_scan"),
        ("Signed Up", "custom"),
        ("Coupon Applied", "custom"),
    ],
)
def test_track_names_map_to_canonical_types(name, ctype):
    ev = canon({"userId": "u", "event": name, "properties": {"query": "shirts"}}, "track")
    assert ev["type"] == ctype
    assert ev["properties"]["event"] == name
    assert ev["properties"]["segment_type"] == "track"


def test_order_completed_becomes_a_purchase_with_items():
    props = canon(
        {
            "userId": "u",
            "event": "Order Completed",
            "properties": {
                "order_id": 50314,
                "revenue": "25.00",
                "currency": "usd",
                "products": [
                    {
                        "product_id": "507f",
                        "sku": "45790-32",
                        "name": "Monopoly",
                        "price": 19,
                        "quantity": 1,
                        "category": "Games",
                        "url": "https://x/p",
                    },
                    {"id": "505b", "name": "Uno", "price": "3.5", "quantity": "2"},
                    {"brand": "no key"},
                ],
            },
        },
        "track",
    )["properties"]
    assert (props["order_id"], props["total"], props["currency"]) == ("50314", 25.0, "USD")
    assert props["items"] == [
        {
            "product_id": "507f",
            "sku": "45790-32",
            "name": "Monopoly",
            "category": "Games",
            "price": 19.0,
            "quantity": 1.0,
        },
        {"product_id": "505b", "name": "Uno", "price": 3.5, "quantity": 2.0},
    ]
    assert props["product_extras"] == [{"url": "https://x/p"}, {}]
    refund = canon(
        {
            "userId": "u",
            "event": "Order Refunded",
            "properties": {"order_id": "o", "total": 5, "currency": "US Dollars"},
        },
        "track",
    )["properties"]
    assert (refund["total"], refund["invalid"]) == (5.0, {"currency": "US Dollars"})


def test_page_screen_group_alias():
    page = canon(
        {
            "anonymousId": "a",
            "name": "Pricing",
            "category": "Docs",
            "properties": {"title": "Pricing"},
            "context": {
                "page": {
                    "url": "https://x/pricing",
                    "path": "/pricing",
                    "referrer": "https://google",
                }
            },
        },
        "page",
    )
    assert page["type"] == "page_view" and page["source"] == "web"
    assert {
        k: page["properties"][k] for k in ("name", "category", "title", "url", "path", "referrer")
    } == {
        "name": "Pricing",
        "category": "Docs",
        "title": "Pricing",
        "url": "https://x/pricing",
        "path": "/pricing",
        "referrer": "https://google",
    }
    screen = canon({"userId": "u", "name": "Basket"}, "screen")
    assert (screen["type"], screen["source"]) == ("page_view", "app")
    assert screen["properties"]["screen"] is True
    group = canon(
        {"userId": "u", "groupId": "acme", "traits": {"name": "Acme", "email": "ops@acme.test"}},
        "group",
    )
    assert group["type"] == "identify"
    assert group["identifiers"] == {"external_ids": {"user": "u"}}  # nothing from group traits
    assert group["properties"]["group_id"] == "acme"
    assert group["properties"]["group_traits"] == {"name": "Acme", "email": "ops@acme.test"}
    alias = canon({"previousId": "anon-7", "userId": "u-7"}, "alias")
    assert alias["type"] == "identify"
    assert alias["identifiers"] == {"external_ids": {"user": "u-7"}, "cookie_id": "anon-7"}


def test_channel_is_decided_from_the_message():
    def src(msg: dict[str, Any]) -> str:
        return canon({"userId": "u", "event": "X", **msg}, "track")["source"]

    assert src({"context": {"library": {"name": "analytics.js"}}}) == "web"
    assert src({"context": {"library": {"name": "analytics-ios"}}}) == "app"
    assert src({"context": {"app": {"name": "Shop"}}}) == "app"
    assert src({"channel": "mobile"}) == "app"
    assert src({"context": {"library": {"name": "analytics-python"}}}) == "api"
    assert src({}) == "api"


def test_server_assigned_ids_are_unique():
    a = canon({"userId": "u", "event": "X"}, "track")["event_id"]
    b = canon({"userId": "u", "event": "X"}, "track")["event_id"]
    assert a != b and uuid.UUID(a.removeprefix("srv-"))
