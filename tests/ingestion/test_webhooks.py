import asyncio
import copy
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import orjson
from twilio.request_validator import RequestValidator

from core import brands
from ingestion.worker import drain
from tests.helpers import shopify_sig, table_text
from tests.integrations.test_shopify import ORDER

SECRET = "shpss_new_secret_0123456789abcdef"
OLD = "shpss_old_secret_fedcba9876543210"


async def _secret(rt, brand, source, secret, replace=False):
    async with rt.pool.acquire() as conn:
        await brands.add_secret(conn, rt.keyring, brand.id, source, secret, replace=replace)


def _order(order_id: int, email: str = "jon.snow@winterfell-mail.com") -> bytes:
    o = copy.deepcopy(ORDER)
    o["id"] = order_id
    o["email"] = o["contact_email"] = email
    o["customer"] = {**o.get("customer", {}), "email": email, "id": 9000000 + order_id}
    return orjson.dumps(o)


def _shopify_headers(body: bytes, secret: str, webhook_id: str, topic: str = "orders/create"):
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify_sig(body, secret),
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "winterfell.myshopify.com",
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "Content-Type": "application/json",
    }


async def _count(rt, brand, table="raw_events"):
    return await rt.pool.fetchval(f"SELECT count(*) FROM {table} WHERE brand_id = $1", brand.id)


async def test_signed_shopify_order_is_stored_once_however_often_it_is_delivered(rt, client, brand):
    await _secret(rt, brand, "shopify", SECRET)
    body = _order(1)
    url = f"/webhooks/shopify/{brand.slug}"
    codes = [
        (
            await client.post(url, content=body, headers=_shopify_headers(body, SECRET, "wh-1"))
        ).json()
        for _ in range(3)
    ]
    assert [c["data"]["status"] for c in codes] == ["accepted", "duplicate", "duplicate"]
    # orders/paid of the same order: a new delivery, but the same purchase event
    paid = await client.post(
        url, content=body, headers=_shopify_headers(body, SECRET, "wh-2", "orders/paid")
    )
    assert paid.json()["data"] == {"status": "accepted", "events": 0}
    assert await _count(rt, brand) == 1
    assert await _count(rt, brand, "webhook_deliveries") == 2
    await drain(rt, brand.id)
    row = await rt.pool.fetchrow(
        "SELECT type, total, currency FROM events WHERE brand_id = $1", brand.id
    )
    assert (row["type"], float(row["total"]), row["currency"]) == ("purchase", 219.5, "USD")
    assert "jon.snow" not in await table_text(rt, brand.id, "webhook_deliveries")


async def test_bad_missing_and_foreign_signatures_are_refused(rt, client, brand, other_brand):
    await _secret(rt, brand, "shopify", SECRET)
    await _secret(rt, other_brand, "shopify", "shpss_other_brand_secret_0000000")
    body = _order(2)
    url = f"/webhooks/shopify/{brand.slug}"
    tampered = body.replace(b"219.50", b"0.01")
    cases = [
        _shopify_headers(body, SECRET, "a"),  # signed, then the body is changed (sent tampered)
        {
            k: v
            for k, v in _shopify_headers(body, SECRET, "b").items()
            if k != "X-Shopify-Hmac-Sha256"
        },
        _shopify_headers(body, "shpss_other_brand_secret_0000000", "c"),  # another brand's secret
        {**_shopify_headers(body, SECRET, "d"), "X-Shopify-Hmac-Sha256": "garbage=="},
    ]
    for headers in cases:
        resp = await client.post(
            url, content=tampered if headers is cases[0] else body, headers=headers
        )
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "unauthorized"
    unknown = await client.post(
        "/webhooks/shopify/no-such-brand", content=body, headers=_shopify_headers(body, SECRET, "e")
    )
    assert unknown.status_code == 401
    assert (await client.post(f"/webhooks/stripe/{brand.slug}", content=body)).status_code == 404
    assert await _count(rt, brand) == 0 and await _count(rt, brand, "webhook_deliveries") == 0


async def test_rotation_accepts_the_two_newest_secrets(rt, client, brand):
    await _secret(rt, brand, "shopify", "shpss_oldest_secret_11111111111")
    await _secret(rt, brand, "shopify", OLD)
    await _secret(rt, brand, "shopify", SECRET)
    url = f"/webhooks/shopify/{brand.slug}"
    for i, secret in enumerate((SECRET, OLD)):
        body = _order(10 + i)
        assert (
            await client.post(url, content=body, headers=_shopify_headers(body, secret, f"r{i}"))
        ).status_code == 200
    body = _order(12)
    oldest = await client.post(
        url, content=body, headers=_shopify_headers(body, "shpss_oldest_secret_11111111111", "r3")
    )
    assert oldest.status_code == 401
    await _secret(rt, brand, "shopify", SECRET, replace=True)
    body = _order(13)
    assert (
        await client.post(url, content=body, headers=_shopify_headers(body, OLD, "r4"))
    ).status_code == 401


async def test_stale_invalid_and_unknown_topic_deliveries(rt, client, brand):
    await _secret(rt, brand, "shopify", SECRET)
    url = f"/webhooks/shopify/{brand.slug}"
    body = _order(20)
    stale = _shopify_headers(body, SECRET, "s1")
    stale["X-Shopify-Triggered-At"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    resp = await client.post(url, content=body, headers=stale)
    assert resp.status_code == 400 and "stale" in resp.json()["error"]["message"]
    garbage = b"{not json"
    resp = await client.post(url, content=garbage, headers=_shopify_headers(garbage, SECRET, "s2"))
    assert resp.status_code == 422
    no_id = orjson.dumps({k: v for k, v in orjson.loads(body).items() if k != "id"})
    resp = await client.post(url, content=no_id, headers=_shopify_headers(no_id, SECRET, "s3"))
    assert resp.status_code == 422 and "id" in resp.json()["error"]["message"]
    odd = _shopify_headers(body, SECRET, "s4", topic="products/create")
    resp = await client.post(url, content=body, headers=odd)
    assert resp.status_code == 200 and resp.json()["data"]["status"] == "ignored"
    assert await _count(rt, brand) == 0
    statuses = {
        r["status"]
        for r in await rt.pool.fetch(
            "SELECT status FROM webhook_deliveries WHERE brand_id = $1", brand.id
        )
    }
    assert statuses == {"rejected", "ignored"}


async def test_shopify_customer_redact_becomes_a_deletion_request_with_hashes_only(
    rt, client, brand
):
    await _secret(rt, brand, "shopify", SECRET)
    body = orjson.dumps(
        {
            "shop_id": 954889,
            "shop_domain": "winterfell.myshopify.com",
            "customer": {"id": 191167, "email": "arya@braavos-mail.com", "phone": "+447700900555"},
            "orders_to_redact": [299938, 280263],
        }
    )
    resp = await client.post(
        f"/webhooks/shopify/{brand.slug}",
        content=body,
        headers=_shopify_headers(body, SECRET, "p1", "customers/redact"),
    )
    assert resp.status_code == 200, resp.text
    row = await rt.pool.fetchrow(
        "SELECT kind, identifier_hashes, summary FROM deletion_requests WHERE brand_id = $1",
        brand.id,
    )
    assert row["kind"] == "delete"
    kinds = sorted(h["kind"] for h in row["identifier_hashes"])
    assert kinds == ["email", "external", "phone"]
    assert "arya" not in await table_text(rt, brand.id, "deletion_requests")


async def test_replaying_1000_deliveries_three_times_stores_1000_events(rt, client, brand):
    await _secret(rt, brand, "shopify", SECRET)
    url = f"/webhooks/shopify/{brand.slug}"
    deliveries = []
    for i in range(1000):
        body = _order(100_000 + i, email=f"buyer{i}@northern-mail.com")
        deliveries.append((body, _shopify_headers(body, SECRET, f"replay-{i}")))
    sem = asyncio.Semaphore(50)

    async def send(body, headers):
        async with sem:
            return (await client.post(url, content=body, headers=headers)).status_code

    for _ in range(3):
        codes = await asyncio.gather(*(send(b, h) for b, h in deliveries))
        assert set(codes) == {200}
    assert await _count(rt, brand) == 1000
    await drain(rt, brand.id, timeout_s=120)
    assert await _count(rt, brand, "events") == 1000


async def test_woocommerce_ping_and_signed_order(rt, client, brand):
    from tests.integrations.test_woocommerce import ORDER as WOO_ORDER

    await _secret(rt, brand, "woocommerce", SECRET)
    url = f"/webhooks/woocommerce/{brand.slug}"
    ping = await client.post(
        url, content=b"webhook_id=7", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert ping.status_code == 200 and ping.json()["data"]["status"] == "ping"
    body = orjson.dumps(WOO_ORDER)
    headers = {
        "X-WC-Webhook-Signature": shopify_sig(body, SECRET),
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Delivery-ID": "d-1",
        "content-type": "application/json",
    }
    resp = await client.post(url, content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    again = await client.post(url, content=body, headers=headers)
    assert again.json()["data"]["status"] == "duplicate"
    bad = await client.post(url, content=body, headers={**headers, "X-WC-Webhook-Signature": "x"})
    assert bad.status_code == 401


async def test_twilio_inbound_whatsapp_is_verified_and_answered_with_twiml(rt, client, brand):
    token = "twilio_auth_token_0123456789abcdef"
    await _secret(rt, brand, "twilio", token)
    path = f"/webhooks/twilio/{brand.slug}"
    public = rt.settings.public_base_url.rstrip("/") + path
    form = {
        "MessageSid": "SM1234567890abcdef1234567890abcdef",
        "AccountSid": "AC123",
        "From": "whatsapp:+447700900123",
        "To": "whatsapp:+441632960000",
        "Body": "Is my order shipped?",
        "ProfileName": "Sansa Stark",
        "WaId": "447700900123",
        "NumMedia": "0",
    }
    signature = RequestValidator(token).compute_signature(public, form)
    headers = {"X-Twilio-Signature": signature, "content-type": "application/x-www-form-urlencoded"}
    resp = await client.post(path, content=urlencode(form), headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/xml") and "<Response/>" in resp.text
    tampered = dict(form, Body="send me everyone's data")
    assert (
        await client.post(path, content=urlencode(tampered), headers=headers)
    ).status_code == 401
    await drain(rt, brand.id)
    row = await rt.pool.fetchrow(
        "SELECT type, source, content_enc FROM events WHERE brand_id = $1", brand.id
    )
    assert (row["type"], row["source"]) == ("message_in", "whatsapp")
    assert row["content_enc"] is not None  # the message text is sealed, not stored in clear
    assert "shipped" not in await table_text(rt, brand.id, "events")
