"""Accepting canonical events: validate, bind the brand, write the inbox, announce."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from core.errors import CBrainError, PayloadTooLarge, ValidationFailed
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


class InboxBatcher:
    """Group commit for single-event requests: concurrent requests share one INSERT (and one
    WAL flush) instead of paying a commit each. While one flush runs, new events queue for the
    next; a request waits at most one flush longer than it would alone. Under load batches
    grow by themselves, which is what keeps the p99 flat."""

    def __init__(self, rt: Runtime, *, max_batch: int = 500, flushers: int = 2) -> None:
        self.rt = rt
        self.max_batch = max_batch
        self._queue: list[tuple[UUID, CanonicalEvent, Any]] = []
        self._slots = asyncio.Semaphore(flushers)
        self._running = 0
        self._flushers = flushers

    async def submit(self, brand_id: UUID, event: CanonicalEvent) -> inbox.Accepted:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((brand_id, event, fut))
        if self._running < self._flushers:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                async with self._slots:
                    await self._flush(batch)
        finally:
            self._running -= 1

    async def _flush(self, batch: list[tuple[UUID, CanonicalEvent, Any]]) -> None:
        by_brand: dict[UUID, list[int]] = {}
        for i, (brand_id, _, _) in enumerate(batch):
            by_brand.setdefault(brand_id, []).append(i)
        for brand_id, idx in by_brand.items():
            try:
                results = await inbox.insert_events(
                    self.rt.pool,
                    self.rt.keyring.for_brand(str(brand_id)),
                    brand_id,
                    [(i, batch[i][1]) for i in idx],
                )
            except Exception as exc:  # every waiter gets the failure, none is lost silently
                for i in idx:
                    if not batch[i][2].done():
                        batch[i][2].set_exception(_as_unavailable(exc))
                continue
            for r in results:
                batch[r.index][2].set_result(r)
            await announce_raw(self.rt.redis, brand_id, [r.raw_id for r in results if r.raw_id])


def _as_unavailable(exc: Exception) -> Exception:
    from core.errors import Unavailable

    if isinstance(exc, CBrainError):
        return exc
    return Unavailable(f"the event store is unavailable ({type(exc).__name__}); retry")
