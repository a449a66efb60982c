"""Segment-compatible HTTP Tracking API: /v1/identify, track, page, screen, group, alias, batch.

Any Segment or RudderStack SDK can send here unchanged (only the host changes). Each message
is mapped to a canonical event and goes through the same inbox as every other source
(`service.accept`: sealed, deduplicated on the messageId, announced on the stream).

Segment's documented behaviour is mirrored: HTTP Basic auth with the write key as user name
(or `writeKey` in the body; a Bearer key also works), JSON or gzip bodies, 32 KB per message
and 500 KB per batch (400 past either), 200 `{"success": true}` otherwise; inside a batch a
message Segment would not accept (no userId/anonymousId, a track without a name) is dropped
while the rest are kept. Decisions that go beyond the spec are in docs/segment.md.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import Counter

from core.brands import Principal
from core.errors import CBrainError, Forbidden, RateLimited, Unauthorized
from core.events import CanonicalEvent
from core.logging import get_logger
from core.web import (
    JSONBody,
    authenticate,
    check_rate_limit,
    error_body,
    parse_json,
    read_body,
    request_id_of,
)
from ingestion import service

router = APIRouter(tags=["segment"])
_log = get_logger("cbrain.segment")

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
KINDS = ("identify", "track", "page", "screen", "group", "alias")

MESSAGES = Counter(
    "cbrain_segment_messages_total", "Segment API messages by outcome", ["kind", "outcome"]
)

# Segment e-commerce spec v2 (and two unambiguous names of ours). Names are matched after
# folding case, spaces and underscores: "product_viewed" is "Product Viewed".
TRACK_TYPES = {
    "product viewed": "product_view",
    "product added": "cart_add",
    "product removed": "cart_remove",
    "checkout started": "checkout_start",
    "order completed": "purchase",
    "order refunded": "refund",
    "products searched": "search",
    "store visited": "store_visit",
    "qr code scanned": "qr_scan",
    "qr scanned": "qr_scan",
}
# Any other track event: kept with its name, stored as page_view until a canonical `custom`
# type exists (docs/segment.md, "Unknown track events").
FALLBACK_TRACK_TYPE = "custom"
_SINGLE_PRODUCT = frozenset({"product_view", "cart_add", "cart_remove"})

# Segment's context spec; `traits` is handled apart, anything else is ignored as Segment does.
CONTEXT_KEYS = frozenset({
    "active", "app", "campaign", "device", "ip", "library", "locale", "location", "network",
    "os", "page", "referrer", "screen", "timezone", "groupId", "userAgent", "userAgentData",
})  # fmt: skip
# Traits that describe the person: mapped to identifiers/traits or dropped, never copied into
# the clear-text properties.
PERSONAL_TRAITS = frozenset({
    "email", "phone", "name", "firstName", "first_name", "lastName", "last_name", "address",
    "birthday", "username", "avatar", "gender", "age", "title", "description", "website", "id",
    "city", "country", "postalCode", "postal_code", "state", "street",
})  # fmt: skip
ITEM_FIELDS = ("product_id", "sku", "name", "category", "price", "quantity")
_ORDER_TYPES = frozenset({"purchase", "refund", "checkout_start"})
_PAGE_KEYS = ("url", "path", "referrer", "title", "search")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_FOLD = re.compile(r"[\s_]+")
_APP_LIBRARIES = ("ios", "android", "swift", "kotlin", "react-native", "flutter", "xamarin")
_WEB_LIBRARIES = ("analytics.js", "analytics-next", "rudder-analytics.js", "js")
# Canonical field names in validation messages, said the way a Segment user knows them.
_FIELD_NAMES = (
    ("identifiers.external_ids.user", "userId"),
    ("identifiers.cookie_id", "anonymousId / previousId"),
    ("event_id", "messageId"),
)


class Rejected(CBrainError):
    """A message Segment would not accept: 400 on a single call, dropped inside a batch."""

    status = 400


# --- mapping -------------------------------------------------------------------------------


def _id(value: Any) -> str | None:
    """userId/anonymousId/messageId: strings or integers, as the SDKs' stringify_id sends."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) < 1e10 else None


def _obj(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejected(f"{key} must be an object", code="invalid_field")
    return value


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string as an aware UTC datetime (naive is UTC); None if absent or bad."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def occurred_at(msg: dict[str, Any], received_at: datetime, batch_sent_at: Any = None) -> datetime:
    """Segment's clock-skew correction: receivedAt - (sentAt - originalTimestamp) when the
    client said when it sent; its own timestamp without sentAt; receivedAt without either."""
    original = parse_time(msg.get("timestamp")) or parse_time(msg.get("originalTimestamp"))
    if original is None:
        return received_at
    sent = parse_time(msg.get("sentAt")) or parse_time(batch_sent_at)
    if sent is None:
        return original
    return received_at - (sent - original)


def _channel(msg: dict[str, Any], context: dict[str, Any], kind: str) -> str:
    """web | app | api. Decided from the message alone, so a retry lands on the same
    (source, messageId) and is deduplicated."""
    channel = str(msg.get("channel") or "").lower()
    if channel in ("web", "mobile", "server"):
        return {"web": "web", "mobile": "app", "server": "api"}[channel]
    library = context.get("library")
    lib = str(library.get("name") or "").lower() if isinstance(library, dict) else ""
    if any(tag in lib for tag in _APP_LIBRARIES) or context.get("app") or kind == "screen":
        return "app"
    if lib in _WEB_LIBRARIES or "analytics.js" in lib or context.get("page"):
        return "web"
    return "api"


def person(traits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Segment traits -> (identifiers, canonical traits)."""
    ids: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for key in ("email", "phone"):
        if value := _text(traits.get(key)):
            ids[key] = value
    first = _text(traits.get("firstName") or traits.get("first_name"))
    last = _text(traits.get("lastName") or traits.get("last_name"))
    name = _text(traits.get("name"))
    if name and not (first or last):
        # Segment's `name` is the full name; identity compares first and last names.
        first, _, rest = name.partition(" ")
        last = rest.strip() or None
    raw_address = traits.get("address")
    address: dict[str, Any] = raw_address if isinstance(raw_address, dict) else {}
    fields = {
        "first_name": first,
        "last_name": last,
        "city": _text(address.get("city") or traits.get("city")),
        "postcode": _text(
            address.get("postalCode")
            or address.get("postal_code")
            or traits.get("postalCode")
            or traits.get("postal_code")
        ),
        "country": _text(address.get("country") or traits.get("country")),
        "state": _text(address.get("state") or traits.get("state")),
        "address": _text(address.get("street") or traits.get("street")),
    }
    birthday = _text(traits.get("birthday"))
    if birthday:
        fields["dob"] = birthday[:10] if _ISO_DATE.match(birthday) else birthday
    out.update({k: v for k, v in fields.items() if v})
    return ids, out


def _item(product: dict[str, Any]) -> dict[str, Any] | None:
    item: dict[str, Any] = {}
    for key in ("product_id", "sku", "name", "category"):
        # Spec v1 named the product id `id`.
        value = _text(product.get(key) or (product.get("id") if key == "product_id" else None))
        if value:
            item[key] = value
    if not (item.get("product_id") or item.get("sku") or item.get("name")):
        return None
    if (price := _number(product.get("price"))) is not None:
        item["price"] = price
    if (quantity := _number(product.get("quantity"))) is not None:
        item["quantity"] = quantity
    return item


def _commerce(props: dict[str, Any], ctype: str) -> dict[str, Any]:
    """E-commerce spec v2 properties -> canonical order_id/total/currency/store_id/items; the
    other properties stay as they are, unusable canonical values move to `invalid`."""
    out = {k: v for k, v in props.items() if k not in ("products", "items")}
    invalid: dict[str, Any] = {}
    for key in ("order_id", "store_id"):
        if key in out:
            value = _text(out.pop(key))
            if value:
                out[key] = value
    raw_total = out.pop("total", None)
    total = _number(raw_total)
    if raw_total is not None and total is None:
        invalid["total"] = raw_total
    if total is None and ctype in _ORDER_TYPES:
        # Segment's revenue (or a checkout's value) when no total is given; both stay as sent.
        total = _number(out.get("revenue"))
        if total is None and ctype == "checkout_start":
            total = _number(out.get("value"))
    if total is not None:
        out["total"] = total
    if "currency" in out:
        currency = out.pop("currency")
        if isinstance(currency, str) and re.fullmatch(r"[A-Za-z]{3}", currency.strip()):
            out["currency"] = currency.strip().upper()
        else:
            invalid["currency"] = currency
    products = props.get("products", props.get("items"))
    if ctype in _SINGLE_PRODUCT:
        item = _item(props)
        products = None
        if item:
            out["items"] = [item]
            for key in ITEM_FIELDS:
                out.pop(key, None)
            out.pop("id", None)
    if isinstance(products, list):
        items, extras = [], []
        for p in products[:1000]:
            if isinstance(p, dict) and (item := _item(p)):
                items.append(item)
                extra = {k: v for k, v in p.items() if k not in (*ITEM_FIELDS, "id")}
                extras.append(extra)
        out["items"] = items
        if any(extras):
            out["product_extras"] = extras
    if invalid:
        out["invalid"] = invalid
    return out


def to_canonical(
    msg: dict[str, Any],
    kind: str,
    received_at: datetime,
    *,
    batch_sent_at: Any = None,
    batch_context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Segment message -> a canonical event dict (validated later by `parse_event`).
    Raises `Rejected` with Segment's reason when Segment would not accept the message."""
    if kind not in KINDS:
        raise Rejected(f"type must be one of {', '.join(KINDS)}", code="invalid_type")
    context = {**(batch_context or {}), **_obj(msg, "context")}
    ctx_traits = context.pop("traits", None)
    user_id, anonymous_id = _id(msg.get("userId")), _id(msg.get("anonymousId"))
    ids: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    props: dict[str, Any] = {}
    if kind == "alias":
        previous_id = _id(msg.get("previousId"))
        if not (user_id and previous_id):
            raise Rejected("alias needs both userId and previousId", code="missing_alias_ids")
        # The previous id is what the SDK called anonymousId before sign-up: a weak id that
        # identity stitches into the userId's profile only if its profile is anonymous.
        anonymous_id = previous_id
    elif not (user_id or anonymous_id):
        raise Rejected("userId or anonymousId is required", code="no_user_anon_id")
    if isinstance(ctx_traits, dict):
        ids, traits = person(ctx_traits)
    if kind == "identify":
        segment_traits = _obj(msg, "traits")
        more_ids, more_traits = person(segment_traits)
        ids.update(more_ids)
        traits.update(more_traits)
        custom = {k: v for k, v in segment_traits.items() if k not in PERSONAL_TRAITS}
        if custom:
            props["traits"] = custom
        ctype = "identify"
    elif kind == "track":
        name = _text(msg.get("event"))
        if not name:
            raise Rejected("track needs an event name", code="missing_event_name")
        ctype = TRACK_TYPES.get(_FOLD.sub(" ", name.lower()), FALLBACK_TRACK_TYPE)
        props = _commerce(_obj(msg, "properties"), ctype)
        props["event"] = name
    elif kind in ("page", "screen"):
        ctype = "page_view"
        props = _commerce(_obj(msg, "properties"), ctype)
        raw_page = context.get("page")
        page: dict[str, Any] = raw_page if isinstance(raw_page, dict) else {}
        for key in _PAGE_KEYS:
            if key not in props and page.get(key) not in (None, ""):
                props[key] = page[key]
        for key in ("name", "category"):
            if value := _text(msg.get(key)):
                props[key] = value
        if kind == "screen":
            props["screen"] = True
    elif kind == "group":
        ctype = "identify"
        group_id = _id(msg.get("groupId"))
        if not group_id:
            raise Rejected("group needs a groupId", code="missing_group_id")
        props["group_id"] = group_id
        if group_traits := _obj(msg, "traits"):
            props["group_traits"] = group_traits
    else:
        ctype = "identify"
    if user_id:
        ids["external_ids"] = {"user": user_id}
    if anonymous_id:
        ids["cookie_id"] = anonymous_id
    if (tz := _text(context.get("timezone"))) and "timezone" not in traits:
        traits["timezone"] = tz
    kept = {k: v for k, v in context.items() if k in CONTEXT_KEYS}
    if isinstance(kept.get("device"), dict) and "token" in kept["device"]:
        # A push token is a credential to message the device: not ours to keep in clear.
        kept["device"] = {k: v for k, v in kept["device"].items() if k != "token"}
    if kept:
        props["context"] = kept
    props["segment_type"] = kind
    message_id = _id(msg.get("messageId"))
    return {
        # Without a messageId there is nothing to deduplicate on: a fresh id, stored once.
        "event_id": message_id or f"srv-{uuid.uuid4()}",
        "source": _channel(msg, context, kind),
        "type": ctype,
        "occurred_at": occurred_at(msg, received_at, batch_sent_at).isoformat(),
        "identifiers": ids,
        "traits": traits,
        "properties": props,
    }


def _segment_message(exc: CBrainError) -> str:
    message = exc.message
    for canonical, segment in _FIELD_NAMES:
        message = message.replace(canonical, segment)
    return message


def canonical_event(
    msg: Any,
    kind: str,
    brand_slug: str,
    received_at: datetime,
    *,
    batch_sent_at: Any = None,
    batch_context: dict[str, Any] | None = None,
) -> CanonicalEvent:
    """Map and validate one message; every refusal is a `Rejected` naming Segment's field."""
    if not isinstance(msg, dict):
        raise Rejected("a message must be a JSON object", code="invalid_message")
    raw = to_canonical(
        msg, kind, received_at, batch_sent_at=batch_sent_at, batch_context=batch_context
    )
    try:
        return service.parse_event(raw, brand_slug)
    except CBrainError as exc:
        raise Rejected(_segment_message(exc), code=exc.code, details=exc.details) from None


# --- HTTP ----------------------------------------------------------------------------------


def _header_key(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # "writeKey:" with an empty password; without the colon for old clients, as Segment.
        return decoded.partition(":")[0] or None
    return None


async def _principal(request: Request, key: str | None) -> Principal:
    if key is None:
        raise Unauthorized(
            "missing write key: send HTTP Basic auth with the write key as user name, "
            "'writeKey' in the body, or 'Authorization: Bearer <key>'"
        )
    principal = await authenticate(request, key)
    if not principal.has("ingest"):
        raise Forbidden("this write key lacks the 'ingest' scope")
    await check_rate_limit(request, principal)
    return principal


async def _body(request: Request, limit: int) -> Any:
    """The JSON body, gunzipped if sent so; past `limit` bytes (decompressed) -> 400."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise Rejected(f"unsupported Content-Encoding {encoding!r}", code="unsupported_encoding")
    raw = await read_body(request, limit)
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise Rejected("body is not valid gzip", code="invalid_gzip") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise Rejected(f"body exceeds {limit // 1024} KB", code="payload_too_large")
    try:
        body = parse_json(raw)
    except CBrainError as exc:
        raise Rejected(exc.message, code="invalid_json") from None
    if not isinstance(body, dict):
        raise Rejected("body must be a JSON object", code="invalid_body")
    return body


def _error(request: Request, exc: CBrainError) -> Response:
    # Segment answers 400 for size and JSON errors; its SDKs read `code`/`message` at the top.
    status = 400 if exc.status in (413, 422) else exc.status
    body: dict[str, Any] = {
        "success": False,
        "code": exc.code,
        "message": exc.message,
        **error_body(exc.code, exc.message, request_id_of(request), exc.details),
    }
    headers = {}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after), "X-RateLimit-Reset": str(exc.retry_after)}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Basic realm="write key"'}
    return JSONBody(body, status_code=status, headers=headers)


async def _authorized_body(request: Request, limit: int) -> tuple[Principal, dict[str, Any]]:
    header_key = _header_key(request)
    if header_key is not None:
        # Refuse a bad key before reading the body.
        principal = await _principal(request, header_key)
        return principal, await _body(request, limit)
    body = await _body(request, limit)
    write_key = body.get("writeKey")
    return await _principal(request, write_key if isinstance(write_key, str) else None), body


def _single(kind: str) -> Any:
    async def endpoint(request: Request) -> Response:
        received_at = datetime.now(UTC)
        try:
            principal, body = await _authorized_body(request, MAX_MESSAGE_BYTES)
            event = canonical_event(body, kind, principal.brand_slug, received_at)
            rt = request.app.state.rt
            [result] = await service.accept(rt, principal.brand_id, [(0, event)])
        except CBrainError as exc:
            if isinstance(exc, Rejected):
                MESSAGES.labels(kind, "rejected").inc()
            return _error(request, exc)
        MESSAGES.labels(kind, result.status).inc()
        return JSONBody({"success": True})

    endpoint.__name__ = f"segment_{kind}"
    endpoint.__doc__ = (
        f'Segment `{kind}` call (HTTP Tracking API). 200 `{{"success": true}}` when stored '
        "or already stored (same messageId); 400 with the reason otherwise."
    )
    return endpoint


for _kind in KINDS:
    router.add_api_route(f"/v1/{_kind}", _single(_kind), methods=["POST"], status_code=200)


@router.post("/v1/batch", status_code=200)
async def segment_batch(request: Request) -> Response:
    """Segment `batch` call: up to 500 KB and 2500 messages, each at most 32 KB (400 past
    either size). Messages Segment would drop are dropped and listed in `rejected`; the
    others are stored."""
    received_at = datetime.now(UTC)
    try:
        principal, body = await _authorized_body(request, MAX_BATCH_BYTES)
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise Rejected('body must be {"batch": [...]}', code="invalid_batch")
        for i, msg in enumerate(messages):
            if len(orjson.dumps(msg)) > MAX_MESSAGE_BYTES:
                raise Rejected(
                    f"batch[{i}] exceeds {MAX_MESSAGE_BYTES // 1024} KB", code="payload_too_large"
                )
        batch_context = body.get("context") if isinstance(body.get("context"), dict) else None
        good: list[tuple[int, CanonicalEvent]] = []
        rejected: list[dict[str, Any]] = []
        for i, msg in enumerate(messages):
            kind = str(msg.get("type") or "") if isinstance(msg, dict) else ""
            try:
                if i >= MAX_BATCH_MESSAGES:
                    raise Rejected(
                        f"a batch holds at most {MAX_BATCH_MESSAGES} messages", code="batch_full"
                    )
                event = canonical_event(
                    msg,
                    kind,
                    principal.brand_slug,
                    received_at,
                    batch_sent_at=body.get("sentAt"),
                    batch_context=batch_context,
                )
            except Rejected as exc:
                label = kind if kind in KINDS else "unknown"
                MESSAGES.labels(label, "rejected").inc()
                rejected.append({"index": i, "code": exc.code, "message": exc.message})
                continue
            good.append((i, event))
        results = await service.accept(request.app.state.rt, principal.brand_id, good)
    except CBrainError as exc:
        return _error(request, exc)
    for r in results:
        MESSAGES.labels(str(messages[r.index].get("type")), r.status).inc()
    if rejected:
        _log.info(
            "segment batch messages dropped",
            n=len(rejected),
            codes=sorted({r["code"] for r in rejected}),
        )
        return JSONBody({"success": True, "rejected": rejected})
    return JSONBody({"success": True})


def include(app: FastAPI) -> None:
    app.include_router(router)
