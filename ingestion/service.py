"""Accepting canonical events: validate, bind the brand, write the inbox, announce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from core.errors import PayloadTooLarge, ValidationFailed
from core.events import MAX_EVENT_BYTES, CanonicalEvent, bind_brand
from core.runtime import Runtime
from core.streams import announce_raw
from ingestion import inbox


def validation_message(exc: ValidationError) -> tuple[str, list[dict[str, str]]]:
    """A one-line message naming the first bad field, and all of them as details."""
    details = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        details.append({"field": loc, "message": msg})
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{first['field']}: {first['message']}{more}", details


def parse_event(raw: Any, brand_slug: str, *, source: str | None = None) -> CanonicalEvent:
    """Validate one canonical event dict; errors name the field. `source` forces the source."""
    if not isinstance(raw, dict):
        raise ValidationFailed("an event must be a JSON object")
    if len(orjson.dumps(raw)) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"event exceeds {MAX_EVENT_BYTES // 1024} KB")
    if source is not None:
        raw = {**raw, "source": raw.get("source") or source}
    try:
        event = CanonicalEvent.model_validate(raw)
        return bind_brand(event, brand_slug)
    except ValidationError as exc:
        message, details = validation_message(exc)
        raise ValidationFailed(message, details=details) from None
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), details=[{"field": "brand", "message": str(exc)}]
        ) from None


async def accept(
    rt: Runtime, brand_id: UUID, events: Sequence[tuple[int, CanonicalEvent]], *, conn: Any = None
) -> list[inbox.Accepted]:
    """Write to the inbox (one statement) then announce; a Redis outage is not an error here."""
    crypto = rt.keyring.for_brand(str(brand_id))
    results = await inbox.insert_events(conn or rt.pool, crypto, brand_id, events)
    if conn is None:
        await announce_raw(rt.redis, brand_id, [r.raw_id for r in results if r.raw_id])
    return results
