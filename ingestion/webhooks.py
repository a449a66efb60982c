"""Webhook deliveries: verify the signature on the raw body, store the delivery (deduplicated
on the provider's delivery id) and its canonical events in one transaction, answer fast."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from fastapi.responses import Response

from core.brands import Brand
from core.errors import CBrainError, Unauthorized, ValidationFailed
from core.events import CanonicalEvent
from core.runtime import Runtime
from core.web import JSONBody, parse_json
from ingestion import inbox, privacy_requests, service

SOURCES = ("shopify", "woocommerce", "twilio")
# Shopify retries a failed delivery for up to 48 hours (older docs) / 4 hours (current docs);
# anything triggered longer ago than this is a replay, not a retry.
MAX_DELIVERY_AGE = timedelta(hours=48)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass
class Handled:
    response: Response
    raw_ids: list[int] = field(default_factory=list)


def _ok(status: str, events: int = 0) -> Response:
    return JSONBody({"data": {"status": status, "events": events}}, status_code=200)


async def handle(
    rt: Runtime,
    brand: Brand,
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    *,
    url: str,
    received_at: datetime,
) -> Handled:
    if not secrets:
        raise Unauthorized(f"no {source} webhook secret is configured for this brand")
    if source == "shopify":
        return await _shopify(rt, brand, body, headers, secrets, received_at)
    if source == "woocommerce":
        return await _woocommerce(rt, brand, body, headers, secrets, received_at)
    return await _twilio(rt, brand, body, headers, secrets, url, received_at)


async def _store(
    rt: Runtime,
    brand: Brand,
    source: str,
    delivery_id: str,
    topic: str,
    body: bytes,
    events: list[CanonicalEvent],
    privacy: object | None = None,
) -> tuple[bool, list[int]]:
    """One transaction: the delivery row (dedupe) and its events in the inbox."""
    crypto = rt.keyring.for_brand(str(brand.id))
    async with rt.pool.acquire() as conn, conn.transaction():
        fresh = await inbox.record_delivery(
            conn, crypto, brand.id, source, delivery_id, topic, body, event_count=len(events)
        )
        if not fresh:
            return False, []
        bound = [(i, service.parse_event(e.wire(), brand.slug)) for i, e in enumerate(events)]
        results = await service.accept(rt, brand.id, bound, conn=conn)
        if privacy is not None:
            await privacy_requests.record_shopify(conn, rt, brand, privacy)
    return True, [r.raw_id for r in results if r.raw_id]


async def _reject(
    rt: Runtime,
    brand: Brand,
    source: str,
    delivery_id: str,
    topic: str,
    body: bytes,
    exc: CBrainError,
    *,
    status: str = "rejected",
) -> None:
    """Keep an unmappable delivery (rejected, or ignored for unknown topics) so it can be
    inspected and replayed."""
    crypto = rt.keyring.for_brand(str(brand.id))
    async with rt.pool.acquire() as conn:
        await inbox.record_delivery(
            conn,
            crypto,
            brand.id,
            source,
            delivery_id,
            topic,
            body,
            status=status,
            error=exc.message[:500],
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name) or headers.get(name.lower())
    return value.strip() if value else None


async def _shopify(
    rt: Runtime,
    brand: Brand,
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    received_at: datetime,
) -> Handled:
    from integrations import shopify

    if not shopify.verify(body, headers, secrets):
        raise Unauthorized("webhook signature could not be verified")
    topic = _header(headers, "X-Shopify-Topic")
    webhook_id = _header(headers, "X-Shopify-Webhook-Id")
    if not topic or not webhook_id:
        missing = "X-Shopify-Topic" if not topic else "X-Shopify-Webhook-Id"
        raise ValidationFailed(
            f"missing header {missing}",
            status=400,
            details=[{"field": missing, "message": "required"}],
        )
    _check_age(_header(headers, "X-Shopify-Triggered-At"), received_at)
    payload = parse_json(body)
    try:
        mapped = shopify.map_webhook(topic, payload, webhook_id=webhook_id, received_at=received_at)
    except shopify.UnknownTopic as exc:
        # Shopify drops a subscription after repeated failures: acknowledge, keep, ignore.
        await _reject(rt, brand, "shopify", webhook_id, topic, body, exc, status="ignored")
        return Handled(_ok("ignored"))
    except CBrainError as exc:
        await _reject(rt, brand, "shopify", webhook_id, topic, body, exc)
        raise
    if isinstance(mapped, shopify.PrivacyRequest):
        fresh, _ = await _store(rt, brand, "shopify", webhook_id, topic, body, [], mapped)
        return Handled(_ok("accepted" if fresh else "duplicate"))
    fresh, raw_ids = await _store(rt, brand, "shopify", webhook_id, topic, body, mapped)
    return Handled(_ok("accepted" if fresh else "duplicate", len(raw_ids)), raw_ids)


async def _woocommerce(
    rt: Runtime,
    brand: Brand,
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    received_at: datetime,
) -> Handled:
    from integrations import woocommerce

    if woocommerce.is_ping(body, headers.get("content-type")):
        return Handled(_ok("ping"))
    if not woocommerce.verify(body, headers, secrets):
        raise Unauthorized("webhook signature could not be verified")
    topic = _header(headers, "X-WC-Webhook-Topic")
    if not topic:
        raise ValidationFailed(
            "missing header X-WC-Webhook-Topic",
            status=400,
            details=[{"field": "X-WC-Webhook-Topic", "message": "required"}],
        )
    delivery = woocommerce.delivery_id(headers) or "sha256:" + hashlib.sha256(body).hexdigest()
    payload = parse_json(body)
    try:
        mapped = woocommerce.map_webhook(topic, payload, received_at=received_at, delivery=delivery)
    except woocommerce.UnknownTopic as exc:
        await _reject(rt, brand, "woocommerce", delivery, topic, body, exc, status="ignored")
        return Handled(_ok("ignored"))
    except CBrainError as exc:
        await _reject(rt, brand, "woocommerce", delivery, topic, body, exc)
        raise
    fresh, raw_ids = await _store(rt, brand, "woocommerce", delivery, topic, body, mapped)
    return Handled(_ok("accepted" if fresh else "duplicate", len(raw_ids)), raw_ids)


async def _twilio(
    rt: Runtime,
    brand: Brand,
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    url: str,
    received_at: datetime,
) -> Handled:
    from integrations import twilio

    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise ValidationFailed("Twilio body must be form-encoded UTF-8", status=400) from None
    if not twilio.verify(url, form, headers, secrets):
        raise Unauthorized("webhook signature could not be verified")
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise ValidationFailed(
            "missing form field MessageSid",
            status=400,
            details=[{"field": "MessageSid", "message": "required"}],
        )
    status = form.get("MessageStatus") or ""
    is_callback = bool(status) and status.lower() != "received" and not form.get("Body")
    delivery = f"{sid}:{status}" if is_callback else sid
    try:
        event = (twilio.map_status if is_callback else twilio.map_inbound)(form, received_at)
    except CBrainError as exc:
        await _reject(rt, brand, "twilio", delivery, status or "inbound", body, exc)
        raise
    _, raw_ids = await _store(rt, brand, "twilio", delivery, status or "inbound", body, [event])
    return Handled(Response(TWIML_EMPTY, media_type="text/xml"), raw_ids)


def _check_age(triggered_at: str | None, received_at: datetime) -> None:
    if not triggered_at:
        return
    try:
        when = datetime.fromisoformat(triggered_at.replace("Z", "+00:00"))
    except ValueError:
        return
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if received_at - when > MAX_DELIVERY_AGE:
        raise ValidationFailed(
            "stale delivery: triggered more than 48 hours ago",
            status=400,
            details=[{"field": "X-Shopify-Triggered-At", "message": "too old"}],
        )
