"""Shopify webhooks: signature check and payload -> canonical event (or privacy request) mapping.

Pure functions: the caller reads the raw body, verifies it, parses the JSON and passes the
`X-Shopify-Topic` and `X-Shopify-Webhook-Id` headers in. Payloads are the REST Admin API
resources (Order, Refund, Customer, Checkout) and the mandatory compliance webhooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import _parse
from integrations.signing import get_header, verify_base64_hmac_sha256

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
PRIVACY_TOPICS: dict[str, Literal["delete", "export", "shop_redact"]] = {
    "customers/redact": "delete",
    "customers/data_request": "export",
    "shop/redact": "shop_redact",
}
# Refund transactions in these states moved no money.
_FAILED_TRANSACTION_STATES = frozenset({"failure", "error"})


class UnknownTopic(ValidationFailed):
    """A topic this adapter does not map (the subscription should not exist)."""

    code = "unknown_topic"


class PrivacyRequest(BaseModel):
    """A mandatory compliance webhook, handed to the privacy workflow instead of the event stream.

    `kind` is "delete" (customers/redact), "export" (customers/data_request) or "shop_redact"
    (shop/redact: erase everything the shop sent us). Personal fields are kept out of `repr`
    so that logging the request does not log the person.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["delete", "export", "shop_redact"]
    topic: str
    shop_domain: str
    shop_id: str | None = None
    customer_id: str | None = None
    email: str | None = Field(None, repr=False)
    phone: str | None = Field(None, repr=False)
    order_ids: list[str] = Field(default_factory=list)
    data_request_id: str | None = None
    webhook_id: str
    received_at: datetime


ShopifyResult: TypeAlias = list[CanonicalEvent] | PrivacyRequest


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: list[str]) -> bool:
    """True when X-Shopify-Hmac-Sha256 signs `raw_body` with any of `secrets` (rotation-safe)."""
    return verify_base64_hmac_sha256(raw_body, get_header(headers, HMAC_HEADER), secrets)


def map_webhook(
    topic: str, payload: dict, *, webhook_id: str, received_at: datetime
) -> ShopifyResult:
    """Map one Shopify delivery to canonical events, or to a `PrivacyRequest`.

    orders/create and orders/paid -> purchase, refunds/create -> refund, customers/create and
    customers/update -> identify, checkouts/create -> checkout_start; the compliance topics ->
    `PrivacyRequest`. Raises `UnknownTopic` for any other topic and `ValidationFailed` naming
    the field when the payload is unusable.
    """
    received = _utc(received_at)
    if not isinstance(payload, dict):
        raise ValidationFailed(
            f"shopify {_safe(topic)}: payload must be a JSON object", details={"field": "body"}
        )
    kind = PRIVACY_TOPICS.get(topic)
    if kind is not None:
        return _privacy(kind, topic, payload, webhook_id, received)
    mapper = _MAPPERS.get(topic)
    if mapper is None:
        raise UnknownTopic(
            f"unsupported Shopify topic {_safe(topic)!r}",
            details={"field": "topic", "topic": _safe(topic)},
        )
    return [mapper(topic, payload, webhook_id, received)]


# --- topics -------------------------------------------------------------------------------


def _order(topic: str, p: dict, webhook_id: str, received: datetime) -> CanonicalEvent:
    order_id = _required_id(p, "id", topic)
    customer = _obj(p.get("customer"))
    billing = _obj(p.get("billing_address"))
    extra = {
        "order_name": _text(p.get("name")),
        "financial_status": _text(p.get("financial_status")),
        "discount_total": _money(p.get("total_discounts"), "total_discounts", topic),
        # Test orders (bogus gateway) are flagged, not dropped, so a merchant's test shows up.
        "test": True if p.get("test") is True else None,
    }
    return _build(
        topic,
        # orders/create and orders/paid usually both arrive for one order. One event id for both
        # makes the second a duplicate, so revenue is counted once whichever comes first.
        event_id=f"order:{order_id}",
        type="purchase",
        occurred_at=_time(p.get("created_at"), "created_at", topic)
        or _time(p.get("processed_at"), "processed_at", topic)
        or received,
        identifiers=_order_identifiers(p, customer),
        traits=_traits(customer, billing or _obj(customer.get("default_address"))),
        properties={
            "order_id": order_id,
            "total": _money(p.get("total_price"), "total_price", topic),
            "currency": _text(p.get("currency")),
            "items": _items(p.get("line_items"), topic),
            **_compact(extra),
        },
    )


def _refund(topic: str, p: dict, webhook_id: str, received: datetime) -> CanonicalEvent:
    refund_id = _required_id(p, "id", topic)
    order_id = _required_id(p, "order_id", topic)
    lines = p.get("refund_line_items")
    if lines is not None and not isinstance(lines, list):
        raise _field_error(topic, "refund_line_items", "must be a list")
    total, currency = _refund_amount(p, topic)
    items = []
    for i, line in enumerate(lines or []):
        if not isinstance(line, dict):
            raise _field_error(topic, f"refund_line_items[{i}]", "must be an object")
        line_item = _obj(line.get("line_item"))
        if line_item:
            item = _item(line_item, f"refund_line_items[{i}].line_item", topic)
            item["quantity"] = _number(
                line.get("quantity"), f"refund_line_items[{i}].quantity", topic
            )
            items.append(item)
    return _build(
        topic,
        event_id=f"refund:{refund_id}",
        type="refund",
        occurred_at=_time(p.get("processed_at"), "processed_at", topic)
        or _time(p.get("created_at"), "created_at", topic)
        or received,
        # A Refund carries no customer: identity links it through properties.order_id.
        properties={
            "order_id": order_id,
            "refund_id": refund_id,
            # The refunded amount as a positive number; the type says it is money going back.
            "total": total,
            "currency": currency,
            "items": items,
        },
    )


def _customer(topic: str, p: dict, webhook_id: str, received: datetime) -> CanonicalEvent:
    customer_id = _required_id(p, "id", topic)
    address = _obj(p.get("default_address"))
    if not address and isinstance(p.get("addresses"), list) and p["addresses"]:
        address = _obj(p["addresses"][0])
    updated = _time(p.get("updated_at"), "updated_at", topic)
    created = _time(p.get("created_at"), "created_at", topic)
    # One event per version of the customer: retries and duplicate deliveries of the same
    # change share updated_at, a later change does not.
    if updated is not None:
        event_id = f"customer:{customer_id}:{updated.isoformat()}"
    else:
        event_id = f"webhook:{_webhook_id(webhook_id, topic)}"
    traits = _traits(p, address)
    email_consent = _consent(p.get("email_marketing_consent"), p.get("accepts_marketing"))
    sms_consent = _consent(p.get("sms_marketing_consent"), None)
    traits.update(_compact({"email_consent": email_consent, "sms_consent": sms_consent}))
    return _build(
        topic,
        event_id=event_id,
        type="identify",
        occurred_at=updated or created or received,
        identifiers={
            "email": _text(p.get("email")),
            "phone": _first(p.get("phone"), address.get("phone")),
            "external_ids": {"shopify": customer_id},
        },
        traits=traits,
    )


def _checkout(topic: str, p: dict, webhook_id: str, received: datetime) -> CanonicalEvent:
    checkout_id = _required_id(p, "id", topic)
    customer = _obj(p.get("customer"))
    billing = _obj(p.get("billing_address"))
    extra = {
        "checkout_token": _text(p.get("token")),
        # Abandoned-cart automations send this link back to the buyer.
        "recovery_url": _text(p.get("abandoned_checkout_url")),
    }
    return _build(
        topic,
        event_id=f"checkout:{checkout_id}",
        type="checkout_start",
        occurred_at=_time(p.get("created_at"), "created_at", topic) or received,
        identifiers=_order_identifiers(p, customer),
        traits=_traits(customer, billing or _obj(customer.get("default_address"))),
        properties={
            "total": _money(p.get("total_price"), "total_price", topic),
            "currency": _text(p.get("currency") or p.get("presentment_currency")),
            "items": _items(p.get("line_items"), topic),
            **_compact(extra),
        },
    )


def _privacy(
    kind: Literal["delete", "export", "shop_redact"],
    topic: str,
    p: dict,
    webhook_id: str,
    received: datetime,
) -> PrivacyRequest:
    shop_domain = _text(p.get("shop_domain"))
    if not shop_domain:
        raise _field_error(topic, "shop_domain", "is required")
    customer = _obj(p.get("customer"))
    customer_id = _text(customer.get("id"))
    email = _text(customer.get("email"))
    phone = _text(customer.get("phone"))
    if kind != "shop_redact" and not (customer_id or email or phone):
        raise _field_error(topic, "customer", "needs an id, email or phone")
    orders = p.get("orders_to_redact") if kind == "delete" else p.get("orders_requested")
    if not isinstance(orders, list):
        orders = []
    return PrivacyRequest(
        kind=kind,
        topic=topic,
        shop_domain=shop_domain,
        shop_id=_text(p.get("shop_id")),
        customer_id=customer_id,
        email=email,
        phone=phone,
        order_ids=[text for text in map(_text, orders) if text],
        data_request_id=_text(_obj(p.get("data_request")).get("id")),
        webhook_id=_webhook_id(webhook_id, topic),
        received_at=received,
    )


_MAPPERS: dict[str, Callable[[str, dict, str, datetime], CanonicalEvent]] = {
    "orders/create": _order,
    "orders/paid": _order,
    "refunds/create": _refund,
    "customers/create": _customer,
    "customers/update": _customer,
    "checkouts/create": _checkout,
}
SUPPORTED_TOPICS = frozenset(_MAPPERS) | frozenset(PRIVACY_TOPICS)


# --- pieces -------------------------------------------------------------------------------


def _order_identifiers(p: dict, customer: dict) -> dict[str, Any]:
    billing = _obj(p.get("billing_address"))
    shipping = _obj(p.get("shipping_address"))
    customer_id = _text(customer.get("id"))
    return {
        "email": _first(customer.get("email"), p.get("email"), p.get("contact_email")),
        "phone": _first(
            customer.get("phone"), p.get("phone"), billing.get("phone"), shipping.get("phone")
        ),
        "external_ids": {"shopify": customer_id} if customer_id else {},
    }


def _traits(person: dict, address: dict) -> dict[str, Any]:
    # The shipping address is left out on purpose: for a gift it is someone else's.
    return _compact(
        {
            "first_name": _first(person.get("first_name"), address.get("first_name")),
            "last_name": _first(person.get("last_name"), address.get("last_name")),
            "city": _text(address.get("city")),
            "postcode": _text(address.get("zip")),
            "country": _text(address.get("country_code")),
            "address": _text(address.get("address1")),
            "state": _text(address.get("province")),
        }
    )


def _consent(block: Any, legacy: Any) -> bool | None:
    # Shopify dropped these from webhook customer payloads in 2025-01; map them when present.
    if isinstance(block, dict):
        state = block.get("state")
        if state == "subscribed":
            return True
        if state in ("unsubscribed", "not_subscribed"):
            return False
        return None  # pending double opt-in, redacted, invalid: no decision either way
    if isinstance(legacy, bool):
        return legacy
    return None


def _items(lines: Any, topic: str) -> list[dict[str, Any]]:
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise _field_error(topic, "line_items", "must be a list")
    items = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise _field_error(topic, f"line_items[{i}]", "must be an object")
        items.append(_item(line, f"line_items[{i}]", topic))
    return items


def _item(line: dict, where: str, topic: str) -> dict[str, Any]:
    return _compact(
        {
            "product_id": _text(line.get("product_id")),
            "sku": _text(line.get("sku")),
            "name": _first(line.get("title"), line.get("name")),
            "category": _text(line.get("product_type")),
            "price": _money(line.get("price"), f"{where}.price", topic) or 0.0,
            "quantity": _number(line.get("quantity"), f"{where}.quantity", topic),
        }
    )


def _refund_amount(p: dict, topic: str) -> tuple[float, str | None]:
    """Money that went back: the refund transactions, else the refunded line items.

    Transactions are what moved (they include refunded shipping and adjustments). An empty
    list means nothing was paid back (a restock-only refund), so the total is 0; only when the
    payload has no transactions at all (trimmed with include_fields) are line items summed.
    """
    transactions = p.get("transactions")
    total = 0.0
    currency: str | None = None
    if isinstance(transactions, list):
        for i, tx in enumerate(transactions):
            if not isinstance(tx, dict) or tx.get("kind") != "refund":
                continue
            if tx.get("status") in _FAILED_TRANSACTION_STATES:
                continue
            amount, tx_currency = _shop_money(tx, "amount", f"transactions[{i}].amount", topic)
            total += abs(amount or 0.0)
            currency = currency or tx_currency
        return round(total, 2), currency
    for i, line in enumerate(p.get("refund_line_items") or []):
        if not isinstance(line, dict):
            continue
        where = f"refund_line_items[{i}]"
        subtotal, line_currency = _shop_money(line, "subtotal", f"{where}.subtotal", topic)
        tax, _ = _shop_money(line, "total_tax", f"{where}.total_tax", topic)
        total += abs(subtotal or 0.0) + abs(tax or 0.0)
        currency = currency or line_currency
    return round(total, 2), currency


def _shop_money(obj: dict, name: str, where: str, topic: str) -> tuple[float | None, str | None]:
    # Prefer the shop-currency figure of a `<name>_set`, so refunds add up in the same
    # currency as the order's total_price.
    shop = _obj(_obj(obj.get(f"{name}_set")).get("shop_money"))
    if shop.get("amount") is not None:
        return _money(shop.get("amount"), where, topic), _text(shop.get("currency_code"))
    return _money(obj.get(name), where, topic), _text(obj.get("currency"))


def _build(topic: str, **fields: Any) -> CanonicalEvent:
    return _parse.build_event("shopify", topic, **fields)


def _field_error(topic: str, field: str, problem: str) -> ValidationFailed:
    return _parse.field_error("shopify", topic, field, problem)


def _required_id(p: dict, field: str, topic: str) -> str:
    value = p.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise _field_error(topic, field, "is required")
    return str(value).strip()


def _webhook_id(webhook_id: str, topic: str) -> str:
    if not isinstance(webhook_id, str) or not webhook_id.strip():
        raise _field_error(topic, "X-Shopify-Webhook-Id", "is required")
    return webhook_id.strip()


_text = _parse.text
_first = _parse.first
_utc = _parse.utc
_obj = _parse.obj
_compact = _parse.compact


def _money(value: Any, field: str, topic: str) -> float | None:
    try:
        return _parse.amount(value)
    except ValueError:
        raise _field_error(topic, field, "must be a decimal amount") from None


def _number(value: Any, field: str, topic: str) -> float:
    amount = _money(value, field, topic)
    return 1.0 if amount is None else amount


def _time(value: Any, field: str, topic: str) -> datetime | None:
    # WooCommerce's *_gmt fields are UTC written without an offset: read as UTC.
    try:
        return _parse.timestamp(value)
    except ValueError:
        raise _field_error(topic, field, "must be an RFC 3339 timestamp") from None


def _safe(topic: Any) -> str:
    return str(topic)[:100]
