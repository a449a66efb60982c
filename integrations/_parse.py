"""Parsing helpers shared by the webhook adapters: payloads are validated like user input."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from core.errors import ValidationFailed
from core.events import CanonicalEvent, Source


def field_error(source: str, topic: Any, field: str, problem: str) -> ValidationFailed:
    """The error for one bad field of a `source` payload. The message names the field, never
    its value (values may be personal data)."""
    return ValidationFailed(
        f"{source} {str(topic)[:100]}: field '{field}' {problem}", details={"field": field}
    )


def build_event(source: Source, topic: Any, **fields: Any) -> CanonicalEvent:
    """The canonical event from an adapter's fields; a field the model refuses is named."""
    try:
        return CanonicalEvent(source=source, **fields)
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "event"
        raise field_error(source, topic, field, error["msg"]) from None


def text(value: Any) -> str | None:
    """A scalar as trimmed text; None for booleans, containers and blanks."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value).strip() or None
    return None


def first(*values: Any) -> str | None:
    """The first value that is usable text."""
    for value in values:
        found = text(value)
        if found:
            return found
    return None


def amount(value: Any) -> float | None:
    """A finite number from a number or a decimal string; ValueError otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(result):
        raise ValueError("not a number")
    return result


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 string as UTC (no offset means UTC); ValueError otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    return utc(datetime.fromisoformat(raw))


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
