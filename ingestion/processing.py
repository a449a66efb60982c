"""Turning inbox rows into resolved events: one transaction per batch.

Rows are claimed with `FOR UPDATE SKIP LOCKED WHERE status = 'pending'`, so any number of
workers (and an import running inline) can process the same ids safely: each row is resolved
exactly once, and a crash before commit leaves it pending for the next attempt.

Identity locks are tried first: rows whose identifiers another worker is resolving at that
moment are put back and resolved in a second transaction that waits for those locks, so
concurrent workers overlap on everything else instead of queueing behind each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.brands import Brand
from core.db import is_transient
from core.errors import CBrainError
from core.logging import get_logger
from core.runtime import Runtime
from core.streams import RESOLVED, publish

_log = get_logger("cbrain.processing")

# Claim and mark in one pass: the rows are 'processed' inside the batch's transaction, so a
# rollback leaves them 'pending'; rows another worker holds are skipped, not waited for.
CLAIM = """
UPDATE raw_events r SET status = 'processed', processed_at = now(), attempts = r.attempts + 1,
       error = NULL
FROM (SELECT id FROM raw_events
      WHERE brand_id = $1 AND id = ANY($2::bigint[]) AND status = 'pending'
      ORDER BY id
      FOR UPDATE SKIP LOCKED) c
WHERE r.brand_id = $1 AND r.id = c.id
RETURNING r.id, r.source, r.event_id, r.type, r.occurred_at, r.payload_enc"""

SUPPRESS = """
UPDATE raw_events SET status = 'suppressed' WHERE brand_id = $1 AND id = ANY($2::bigint[])"""

MARK = """
UPDATE raw_events r SET status = u.status, error = u.error, processed_at = now(),
       attempts = r.attempts + 1
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(id, status, error)
WHERE r.brand_id = $1 AND r.id = u.id"""

# Rows left undecided (another worker held one of their identifiers): pending again, as if
# never claimed, for the second pass right after this transaction.
UNCLAIM = """
UPDATE raw_events SET status = 'pending', processed_at = NULL, attempts = attempts - 1
WHERE brand_id = $1 AND id = ANY($2::bigint[])"""

BUMP_ATTEMPTS = """
UPDATE raw_events SET attempts = attempts + 1, error = $3
WHERE brand_id = $1 AND id = ANY($2::bigint[]) AND status = 'pending'"""

EVENT_COLUMNS = (
    "brand_id",
    "raw_event_id",
    "source",
    "event_id",
    "type",
    "occurred_at",
    "profile_id",
    "order_id",
    "total",
    "currency",
    "store_id",
    "properties",
    "content_enc",
)
# Free-text properties that may carry personal data: sealed into content_enc.
_CONTENT_KEYS = ("text", "body", "message", "subject")


@dataclass
class BatchResult:
    claimed: int = 0
    processed: int = 0
    suppressed: int = 0
    dead: int = 0
    merges: int = 0
    reviews: int = 0
    profiles: set[UUID] = field(default_factory=set)
    seconds: float = 0.0
    deferred: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.claimed += other.claimed
        self.processed += other.processed
        self.suppressed += other.suppressed
        self.dead += other.dead
        self.merges += other.merges
        self.reviews += other.reviews
        self.profiles |= other.profiles


def _event_row(
    brand_id: UUID, crypto: Any, raw_id: int, ev: dict[str, Any], profile_id: UUID
) -> tuple:
    props = dict(ev.get("properties") or {})
    content = {k: props.pop(k) for k in _CONTENT_KEYS if k in props}
    total = props.get("total")
    return (
        brand_id,
        raw_id,
        ev["source"],
        ev["event_id"],
        ev["type"],
        ev["_occurred_at"],
        profile_id,
        props.get("order_id"),
        None if total is None else round(float(total), 2),
        props.get("currency"),
        props.get("store_id"),
        props,
        crypto.encrypt(orjson.dumps(content)) if content else None,
    )


async def process_batch(rt: Runtime, brand: Brand, raw_ids: list[int]) -> BatchResult:
    """Resolve and store the pending rows among `raw_ids`. Retryable failures raise (the
    stream redelivers); a poison row is isolated and dead-lettered with its reason."""
    started = time.perf_counter()
    try:
        result = await _process_retrying(rt, brand, raw_ids)
    except Exception as exc:
        if is_retryable(exc):
            raise
        if len(raw_ids) > 1:
            _log.warning("batch failed, isolating rows", error=type(exc).__name__, n=len(raw_ids))
            result = await _isolate(rt, brand, raw_ids)
        else:
            await mark_dead(rt, brand.id, raw_ids, f"{type(exc).__name__}: {str(exc)[:300]}")
            result = BatchResult(dead=1)
    result.seconds = time.perf_counter() - started
    if result.profiles:
        await publish(
            rt.redis,
            brand.id,
            RESOLVED,
            {"profiles": ",".join(str(p) for p in list(result.profiles)[:1000])},
        )
    return result


_CONFLICTS = (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)


async def _process_retrying(rt: Runtime, brand: Brand, raw_ids: list[int]) -> BatchResult:
    """First the rows whose identifiers no other transaction holds, without waiting; then,
    in a second transaction that waits for those locks, the rows that were deferred."""
    result = await _retrying(rt, brand, raw_ids, defer_busy=True)
    if result.deferred:
        result.add(await _retrying(rt, brand, result.deferred, defer_busy=False))
        result.deferred = []
    return result


async def _retrying(
    rt: Runtime, brand: Brand, raw_ids: list[int], *, defer_busy: bool
) -> BatchResult:
    """A conflict with a concurrent merge is retried at once (a few times), not after the
    stream's redelivery delay."""
    for attempt in range(3):
        try:
            return await _process(rt, brand, raw_ids, defer_busy=defer_busy)
        except CBrainError as exc:
            if exc.code != "retry" or attempt == 2:
                raise
        except _CONFLICTS:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def is_retryable(exc: BaseException) -> bool:
    """Failures of the moment are retried; anything else about a row will fail again and is
    dead-lettered."""
    return is_transient(exc)


async def _isolate(rt: Runtime, brand: Brand, raw_ids: list[int]) -> BatchResult:
    """Process rows one at a time; those that fail for a non-retryable reason go dead."""
    total = BatchResult()
    for raw_id in raw_ids:
        try:
            r = await _process(rt, brand, [raw_id])
        except Exception as exc:
            if is_retryable(exc):
                raise
            await mark_dead(rt, brand.id, [raw_id], f"{type(exc).__name__}: {str(exc)[:300]}")
            total.dead += 1
            continue
        total.add(r)
    return total


async def mark_dead(rt: Runtime, brand_id: UUID, raw_ids: list[int], reason: str) -> None:
    async with rt.pool.acquire() as conn:
        await conn.execute(
            MARK, brand_id, raw_ids, ["dead"] * len(raw_ids), [reason] * len(raw_ids)
        )
    await publish(
        rt.redis, brand_id, "events.dead", {"ids": ",".join(map(str, raw_ids)), "reason": reason}
    )


async def bump_attempts(rt: Runtime, brand_id: UUID, raw_ids: list[int], reason: str) -> None:
    async with rt.pool.acquire() as conn:
        await conn.execute(BUMP_ATTEMPTS, brand_id, raw_ids, reason[:500])


async def _process(
    rt: Runtime, brand: Brand, raw_ids: list[int], *, defer_busy: bool = False
) -> BatchResult:
    from identity.service import resolve_batch

    crypto = rt.keyring.for_brand(str(brand.id))
    result = BatchResult()
    async with rt.pool.acquire() as conn, conn.transaction():
        # Safe without waiting for the WAL flush: if the server crashes before it, the rows are
        # still 'pending' in the (durably committed) inbox and the sweeper resolves them again.
        await conn.execute("SET LOCAL synchronous_commit = off")
        rows = sorted(await conn.fetch(CLAIM, brand.id, raw_ids), key=lambda r: r["id"])
        result.claimed = len(rows)
        if not rows:
            return result
        events = []
        for r in rows:
            ev = orjson.loads(crypto.decrypt(r["payload_enc"]))
            ev["_raw_id"] = r["id"]
            ev["_occurred_at"] = r["occurred_at"]
            events.append(ev)
        resolution = await resolve_batch(conn, crypto, brand, events, defer_busy=defer_busy)
        if resolution.deferred:
            result.deferred = sorted(events[i]["_raw_id"] for i in resolution.deferred)
            result.claimed -= len(result.deferred)
            await conn.execute(UNCLAIM, brand.id, result.deferred)
        records = []
        suppressed = []
        for i, (ev, profile_id) in enumerate(zip(events, resolution.profile_ids, strict=True)):
            if i in resolution.deferred:
                continue
            if profile_id is None:
                suppressed.append(ev["_raw_id"])
                continue
            records.append(_event_row(brand.id, crypto, ev["_raw_id"], ev, profile_id))
            result.profiles.add(profile_id)
        result.suppressed = len(suppressed)
        if records:
            await conn.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)
        await resolution.apply_aggregates(conn, events)
        if suppressed:
            await conn.execute(SUPPRESS, brand.id, suppressed)
        result.processed = len(records)
        result.merges = resolution.merges
        result.reviews = resolution.reviews
    await resolution.after_commit(rt)
    return result
