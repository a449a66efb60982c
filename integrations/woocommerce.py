"""WooCommerce webhooks: signature check, ping detection and payload -> canonical event mapping.

Pure functions over the REST API v3 resources (Order, Customer). The caller passes the
`X-WC-Webhook-Topic` header in; the delivery id (`X-WC-Webhook-Delivery-ID`) is the inbox's
dedupe key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import _parse
from integrations.signing import get_header, verify_base64_hmac_sha256

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"
ORDER_TOPICS = frozenset({"order.created", "order.updated"})
CUSTOMER_TOPICS = frozenset({"customer.created", "customer.updated"})
SUPPORTED_TOPICS = ORDER_TOPICS | CUSTOMER_TOPICS
# Paid orders. pending, on-hold, failed, cancelled, draft and custom statuses are not revenue.
PURCHASE_STATUSES = frozenset({"processing", "completed"})
REFUNDED_STATUS = "refunded"

_PING = re.compile(rb"webhook_id=\d+")


class UnknownTopic(ValidationFailed):
    """A topic this adapter does not map (the webhook should not be configured)."""

    code = "unknown_topic"


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: list[str]) -> bool:
    """True when X-WC-Webhook-Signature signs `raw_body` with any of `secrets`.

    WooCommerce makes the secret optional per webhook; an unsigned delivery never verifies.
    """
    return verify_base64_hmac_sha256(raw_body, get_header(headers, SIGNATURE_HEADER), secrets)


def is_ping(raw_body: bytes, content_type: str | None) -> bool:
    """True for the test ping WooCommerce sends when a webhook is saved: the body `webhook_id=N`.

    The ping is unsigned and carries no data, so the endpoint answers 200 to it before
    verifying and stores nothing. Detection goes by the body: WordPress may send it with no
    or a generic content type, but never with a JSON one.
    """
    if not isinstance(raw_body, bytes | bytearray) or len(raw_body) > 64:
        return False
    if isinstance(content_type, str) and "json" in content_type.lower():
        return False
    return _PING.fullmatch(bytes(raw_body).strip()) is not None


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The per-delivery id (X-WC-Webhook-Delivery-ID), the inbox's dedupe key; None if absent."""
    value = get_header(headers, DELIVERY_HEADER)
    value = value.strip() if value else None
    return value or None


def map_webhook(
    topic: str, payload: dict, *, received_at: datetime, delivery: str | None = None
) -> list[CanonicalEvent]:
    """Map one WooCommerce delivery to canonical events.

    order.created / order.updated: a processing or completed order -> purchase (event id
    `order:{id}`, so every later update of it is a duplicate) plus one refund per entry in its
    `refunds` list (partial refunds leave the status alone); a refunded order -> its refunds;
    any other status -> []. customer.created / customer.updated -> identify. `delivery` is the
    X-WC-Webhook-Delivery-ID, used only when a customer carries no timestamp. Raises
    `UnknownTopic` for other topics and `ValidationFailed` naming the field for bad payloads.
    """
    received = _utc(received_at)
    if topic not in SUPPORTED_TOPICS:
        raise UnknownTopic(
            f"unsupported WooCommerce topic {str(topic)[:100]!r}",
            details={"field": "topic", "topic": str(topic)[:100]},
        )
    if not isinstance(payload, dict):
        raise _field_error(topic, "body", "must be a JSON object")
    if topic in ORDER_TOPICS:
        return _order(topic, payload, received)
    return [_customer(topic, payload, received, delivery)]


def _order(topic: str, p: dict, received: datetime) -> list[CanonicalEvent]:
    order_id = _required_id(p, "id", topic)
    status = _text(p.get("status"))
    if status not in PURCHASE_STATUSES and status != REFUNDED_STATUS:
        return []
    billing = _obj(p.get("billing"))
    customer_id = _text(p.get("customer_id"))
    identifiers = {
        "email": _text(billing.get("email")),
        "phone": _text(billing.get("phone")),
        # customer_id 0 is a guest checkout.
        "external_ids": {"woocommerce": customer_id} if customer_id not in (None, "0") else {},
    }
    traits = _traits(billing, billing)
    currency = _text(p.get("currency"))
    total = _money(p.get("total"), "total", topic)
    events = []
    if status in PURCHASE_STATUSES:
        extra = {
            "order_number": _text(p.get("number")),
            "status": status,
            "discount_total": _money(p.get("discount_total"), "discount_total", topic),
        }
        events.append(
            _build(
                topic,
                event_id=f"order:{order_id}",
                type="purchase",
                occurred_at=_time(p.get("date_created_gmt"), "date_created_gmt", topic)
                or _time(p.get("date_paid_gmt"), "date_paid_gmt", topic)
                or received,
                identifiers=identifiers,
                traits=traits,
                properties={
                    "order_id": order_id,
                    "total": total,
                    "currency": currency,
                    "items": _items(p.get("line_items"), topic),
                    **_compact(extra),
                },
            )
        )
    # The order's refunds carry no date; the order's last modification is the closest one.
    refunded_at = _time(p.get("date_modified_gmt"), "date_modified_gmt", topic) or received
    refunds = p.get("refunds")
    if refunds is not None and not isinstance(refunds, list):
        raise _field_error(topic, "refunds", "must be a list")
    for i, refund in enumerate(refunds or []):
        if not isinstance(refund, dict):
            raise _field_error(topic, f"refunds[{i}]", "must be an object")
        refund_id = _required_id(refund, "id", topic, where=f"refunds[{i}].id")
        amount = _money(refund.get("total"), f"refunds[{i}].total", topic)
        events.append(
            _refund_event(
                topic,
                f"refund:{refund_id}",
                refunded_at,
                identifiers,
                traits,
                {
                    "order_id": order_id,
                    "refund_id": refund_id,
                    "total": abs(amount or 0.0),
                    "currency": currency,
                },
            )
        )
    if status == REFUNDED_STATUS and not refunds:
        # A refunded order whose payload lists no refunds: the whole order went back.
        events.append(
            _refund_event(
                topic,
                f"order:{order_id}:refund",
                refunded_at,
                identifiers,
                traits,
                {"order_id": order_id, "total": abs(total or 0.0), "currency": currency},
            )
        )
    return events


def _refund_event(
    topic: str,
    event_id: str,
    occurred_at: datetime,
    identifiers: dict[str, Any],
    traits: dict[str, Any],
    properties: dict[str, Any],
) -> CanonicalEvent:
    # Refund totals are positive amounts, as for Shopify and POS: the type says money went back.
    return _build(
        topic,
        event_id=event_id,
        type="refund",
        occurred_at=occurred_at,
        identifiers=identifiers,
        traits=traits,
        properties=_compact(properties),
    )


def _customer(topic: str, p: dict, received: datetime, delivery: str | None) -> CanonicalEvent:
    customer_id = _required_id(p, "id", topic)
    billing = _obj(p.get("billing"))
    modified = _time(p.get("date_modified_gmt"), "date_modified_gmt", topic)
    created = _time(p.get("date_created_gmt"), "date_created_gmt", topic)
    stamp = modified or created
    # One event per version of the customer; a repeated delivery of the same version dedupes.
    if stamp is not None:
        event_id = f"customer:{customer_id}:{stamp.isoformat()}"
    elif delivery and delivery.strip():
        event_id = f"delivery:{delivery.strip()}"
    else:
        raise _field_error(topic, "date_modified_gmt", "is required")
    return _build(
        topic,
        event_id=event_id,
        type="identify",
        occurred_at=stamp or received,
        identifiers={
            "email": _first(p.get("email"), billing.get("email")),
            "phone": _text(billing.get("phone")),
            "external_ids": {"woocommerce": customer_id},
        },
        traits=_traits(p, billing),
    )


def _traits(person: dict, address: dict) -> dict[str, Any]:
    return _compact(
        {
            "first_name": _first(person.get("first_name"), address.get("first_name")),
            "last_name": _first(person.get("last_name"), address.get("last_name")),
            "city": _text(address.get("city")),
            "postcode": _text(address.get("postcode")),
            "country": _text(address.get("country")),
            "address": _text(address.get("address_1")),
            "state": _text(address.get("state")),
        }
    )


def _items(lines: Any, topic: str) -> list[dict[str, Any]]:
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise _field_error(topic, "line_items", "must be a list")
    items = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise _field_error(topic, f"line_items[{i}]", "must be an object")
        quantity = _money(line.get("quantity"), f"line_items[{i}].quantity", topic)
        quantity = 1.0 if quantity is None else quantity
        price = _money(line.get("price"), f"line_items[{i}].price", topic)
        if price is None:
            # Older payloads have no unit price: derive it from the line total.
            line_total = _money(line.get("total"), f"line_items[{i}].total", topic) or 0.0
            price = round(line_total / quantity, 2) if quantity else line_total
        product_id = _text(line.get("product_id"))
        items.append(
            _compact(
                {
                    # 0 means the product was deleted since.
                    "product_id": product_id if product_id != "0" else None,
                    "sku": _text(line.get("sku")),
                    "name": _text(line.get("name")),
                    "price": price,
                    "quantity": quantity,
                }
            )
        )
    return items


def _build(topic: str, **fields: Any) -> CanonicalEvent:
    return _parse.build_event("woocommerce", topic, **fields)


def _field_error(topic: str, field: str, problem: str) -> ValidationFailed:
    return _parse.field_error("woocommerce", topic, field, problem)


def _required_id(p: dict, field: str, topic: str, *, where: str | None = None) -> str:
    value = p.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise _field_error(topic, where or field, "is required")
    return str(value).strip()


_text = _parse.text
_first = _parse.first
_utc = _parse.utc
_obj = _parse.obj
_compact = _parse.compact


def _money(value: Any, field: str, topic: str) -> float | None:
    try:
        return _parse.amount(value)
    except ValueError:
        raise _field_error(topic, field, "must be a number") from None


def _time(value: Any, field: str, topic: str) -> datetime | None:
    # WooCommerce's *_gmt fields are UTC written without an offset: read as UTC.
    try:
        return _parse.timestamp(value)
    except ValueError:
        raise _field_error(topic, field, "must be a timestamp") from None
