"""Helpers for streaming-resolution tests: ingest canonical events straight into the inbox and
read back the partition of events into people."""

from __future__ import annotations

from typing import Any

from core.events import CanonicalEvent
from ingestion import service
from ingestion.processing import process_batch


async def ingest(
    rt: Any, brand: Any, events: list[dict[str, Any]], *, batch: int = 500
) -> list[int]:
    """Inbox + process, in chunks of `batch` (1 = one event per transaction)."""
    ids: list[int] = []
    for i in range(0, len(events), batch):
        chunk = [
            (j, CanonicalEvent.model_validate({**e, "brand": brand.slug}))
            for j, e in enumerate(events[i : i + batch])
        ]
        res = await service.accept(rt, brand.id, chunk, conn=rt.pool)
        new = [r.raw_id for r in res if r.raw_id]
        if new:
            await process_batch(rt, brand.brand, new)
        ids += new
    return ids


async def partition(rt: Any, brand_id: Any) -> set[frozenset[str]]:
    """Events grouped by the live profile they belong to."""
    rows = await rt.pool.fetch(
        "SELECT e.event_id, coalesce(p.merged_into, p.id) AS pid FROM events e "
        "JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id WHERE e.brand_id = $1",
        brand_id,
    )
    groups: dict[Any, set[str]] = {}
    for r in rows:
        groups.setdefault(r["pid"], set()).add(r["event_id"])
    return {frozenset(g) for g in groups.values()}


async def live_profiles(rt: Any, brand_id: Any) -> int:
    return await rt.pool.fetchval(
        "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand_id
    )


def ev(
    event_id: str,
    *,
    first: str | None = None,
    last: str | None = None,
    t: int = 0,
    source: str = "api",
    type: str = "purchase",
    **ids: Any,
) -> dict[str, Any]:
    traits = {k: v for k, v in (("first_name", first), ("last_name", last)) if v}
    return {
        "event_id": event_id,
        "source": source,
        "type": type,
        "occurred_at": f"2025-01-{1 + t // 24:02d}T{t % 24:02d}:00:00Z",
        "identifiers": ids,
        "traits": traits,
        "properties": {"order_id": event_id, "total": 10.0} if type == "purchase" else {},
    }
