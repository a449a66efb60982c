"""The inbox: every accepted canonical event is written here first, sealed, deduplicated on
(brand, source, event_id), and only then announced on the stream. All its SQL lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.crypto import BrandCrypto
from core.events import CanonicalEvent

INSERT_RAW = """
INSERT INTO raw_events (brand_id, source, event_id, type, occurred_at, payload_enc)
SELECT $1, s, e, t, o, p
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[]) AS u(s, e, t, o, p)
ON CONFLICT (brand_id, source, event_id) DO NOTHING
RETURNING id, source, event_id"""

INSERT_DELIVERY = """
INSERT INTO webhook_deliveries (brand_id, source, delivery_id, topic, body_enc, status, error, event_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (brand_id, source, delivery_id) DO NOTHING
RETURNING id"""

PENDING_STALE = """
SELECT id FROM raw_events
WHERE brand_id = $1 AND status = 'pending' AND received_at < now() - make_interval(secs => $2)
ORDER BY received_at LIMIT $3"""

DEAD_LIST = """
SELECT id, source, event_id, type, received_at, attempts, error FROM raw_events
WHERE brand_id = $1 AND status = 'dead' ORDER BY id LIMIT $2"""

REVIVE_DEAD = """
UPDATE raw_events SET status = 'pending', attempts = 0, error = NULL
WHERE brand_id = $1 AND status = 'dead' AND ($2::bigint[] IS NULL OR id = ANY($2))
RETURNING id"""

COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM raw_events WHERE brand_id = $1 GROUP BY status"


@dataclass(frozen=True)
class Accepted:
    index: int
    event_id: str
    status: str  # accepted | duplicate
    raw_id: int | None


def seal(crypto: BrandCrypto, event: CanonicalEvent) -> bytes:
    return crypto.encrypt(orjson.dumps(event.wire()))


def unseal(crypto: BrandCrypto, blob: bytes) -> dict[str, Any]:
    return orjson.loads(crypto.decrypt(blob))


async def insert_events(
    conn: asyncpg.Connection | asyncpg.Pool,
    crypto: BrandCrypto,
    brand_id: UUID,
    events: Sequence[tuple[int, CanonicalEvent]],
) -> list[Accepted]:
    """Insert (index, event) pairs in one statement; repeats (in the batch or stored) are
    reported as duplicates, never stored twice."""
    if not events:
        return []
    rows = await conn.fetch(
        INSERT_RAW,
        brand_id,
        [e.source for _, e in events],
        [e.event_id for _, e in events],
        [e.type for _, e in events],
        [e.occurred_at for _, e in events],
        [seal(crypto, e) for _, e in events],
    )
    new = {(r["source"], r["event_id"]): r["id"] for r in rows}
    out = []
    for index, e in events:
        raw_id = new.pop((e.source, e.event_id), None)
        out.append(Accepted(index, e.event_id, "accepted" if raw_id else "duplicate", raw_id))
    return out


async def record_delivery(
    conn: asyncpg.Connection,
    crypto: BrandCrypto,
    brand_id: UUID,
    source: str,
    delivery_id: str,
    topic: str,
    body: bytes,
    *,
    status: str = "accepted",
    error: str | None = None,
    event_count: int = 0,
) -> bool:
    """Store a webhook delivery as received; False if this delivery id was seen before."""
    row = await conn.fetchval(
        INSERT_DELIVERY,
        brand_id,
        source,
        delivery_id,
        topic,
        crypto.encrypt(body),
        status,
        error,
        event_count,
    )
    return row is not None


async def stale_pending(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, older_than_s: float, limit: int
) -> list[int]:
    return [r["id"] for r in await conn.fetch(PENDING_STALE, brand_id, older_than_s, limit)]


async def dead_letters(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, limit: int = 100
) -> list[asyncpg.Record]:
    return await conn.fetch(DEAD_LIST, brand_id, limit)


async def dead_count(conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID) -> int:
    """How many of the brand's inbox rows are dead (the partial index of sql/0007)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND status = 'dead'", brand_id
        )
    )


async def revive(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, ids: list[int] | None
) -> list[int]:
    return [r["id"] for r in await conn.fetch(REVIVE_DEAD, brand_id, ids)]


async def status_counts(conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await conn.fetch(COUNT_BY_STATUS, brand_id)}
