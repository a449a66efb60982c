"""All SQL of identity resolution. Every statement takes the brand first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

# The locks must be taken in ascending hash order; ORDER BY inside the subquery is what the
# executor follows for the function calls.
LOCK_KEYS_ORDERED = """
SELECT count(*) FROM (
    SELECT pg_advisory_xact_lock(h) FROM (
        SELECT DISTINCT hashtextextended($1::text || ':' || k, 0) AS h FROM unnest($2::text[]) AS k
        ORDER BY h
    ) s
) t"""

# Non-blocking: takes every free key and returns those another transaction holds.
TRY_LOCK_KEYS = """
SELECT k FROM (
    SELECT DISTINCT ON (h) k, h FROM (
        SELECT k, hashtextextended($1::text || ':' || k, 0) AS h FROM unnest($2::text[]) AS k
    ) u ORDER BY h
) s
WHERE NOT pg_try_advisory_xact_lock(h)"""

LOOKUP_KEYS = """
SELECT i.kind, i.hash, i.profile_id, i.status, i.claims
FROM profile_identifiers i
JOIN unnest($2::text[], $3::bytea[]) AS u(kind, hash) ON i.kind = u.kind AND i.hash = u.hash
WHERE i.brand_id = $1"""

LOOKUP_LINKS = """
SELECT l.kind, l.hash, l.profile_id FROM identifier_links l
JOIN unnest($2::text[], $3::bytea[]) AS u(kind, hash) ON l.kind = u.kind AND l.hash = u.hash
WHERE l.brand_id = $1"""

INSERT_LINKS = """
INSERT INTO identifier_links (brand_id, kind, hash, profile_id)
SELECT $1, u.kind, u.hash, u.profile_id
FROM unnest($2::text[], $3::bytea[], $4::uuid[]) AS u(kind, hash, profile_id)
ON CONFLICT DO NOTHING"""

MOVE_LINKS = """
WITH moved AS (
    DELETE FROM identifier_links WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])
    RETURNING kind, hash
)
INSERT INTO identifier_links (brand_id, kind, hash, profile_id)
SELECT DISTINCT $1, m.kind, m.hash, $3::uuid FROM moved m
WHERE NOT EXISTS (SELECT 1 FROM profile_identifiers i WHERE i.brand_id = $1 AND i.kind = m.kind
                  AND i.hash = m.hash AND i.profile_id = $3)
ON CONFLICT DO NOTHING"""

DROP_OWNED_LINKS = """
DELETE FROM identifier_links l USING profile_identifiers i
WHERE l.brand_id = $1 AND l.profile_id = $2 AND i.brand_id = $1 AND i.kind = l.kind
  AND i.hash = l.hash AND i.profile_id = $2"""

LINK_ROWS = """
SELECT kind, hash, profile_id, created_at FROM identifier_links
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) ORDER BY kind, hash, profile_id"""

SUPPRESSED = """
SELECT s.kind, s.hash FROM suppressions s
JOIN unnest($2::text[], $3::bytea[]) AS u(kind, hash) ON s.kind = u.kind AND s.hash = u.hash
WHERE s.brand_id = $1"""

# Read after `lock_profiles`: advisory locks, not row locks, so that locking a thousand profiles
# writes nothing (a FOR UPDATE marks every tuple and costs WAL).
LOAD_PROFILES = """
SELECT id, created_at, merged_into, traits_enc, profile_strength, household_id, event_count
FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) ORDER BY id"""

PROFILE_IDENTIFIERS = """
SELECT profile_id, kind, hash, namespace, status FROM profile_identifiers
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"""

ORDER_OWNERS = """
SELECT DISTINCT ON (order_id) order_id, profile_id FROM events
WHERE brand_id = $1 AND order_id = ANY($2::text[]) AND type IN ('purchase', 'checkout_start')
ORDER BY order_id, occurred_at"""

# id -> the live end of its merged_into chain (the id itself when it is live).
FOLLOW_MERGED = """
WITH RECURSIVE chain(id, cur, depth) AS (
    SELECT id, id, 0 FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])
    UNION ALL
    SELECT c.id, p.merged_into, c.depth + 1 FROM chain c
    JOIN profiles p ON p.brand_id = $1 AND p.id = c.cur
    WHERE p.merged_into IS NOT NULL AND c.depth < 50
)
SELECT DISTINCT ON (id) id, cur AS target FROM chain ORDER BY id, depth DESC"""

INSERT_PROFILES = """
INSERT INTO profiles (brand_id, id, created_at, first_seen, last_seen, name_norm, traits_enc,
                      city, country, profile_strength, consent)
SELECT $1, u.id, u.created_at, u.created_at, u.created_at, u.name_norm, u.traits_enc, u.city,
       u.country, u.strength, u.consent
FROM unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::bytea[], $6::text[], $7::text[],
            $8::smallint[], $9::jsonb[])
     AS u(id, created_at, name_norm, traits_enc, city, country, strength, consent)"""

INSERT_IDENTIFIERS = """
INSERT INTO profile_identifiers (brand_id, kind, hash, profile_id, value_enc, masked, source,
                                 namespace, first_seen, last_seen)
SELECT $1, u.kind, u.hash, u.profile_id, u.value_enc, u.masked, u.source, u.namespace, u.seen, u.seen
FROM unnest($2::text[], $3::bytea[], $4::uuid[], $5::bytea[], $6::text[], $7::text[], $8::text[],
            $9::timestamptz[])
     AS u(kind, hash, profile_id, value_enc, masked, source, namespace, seen)
ON CONFLICT (brand_id, kind, hash) DO NOTHING"""

UPDATE_CLAIMS = """
UPDATE profile_identifiers i
SET claims = LEAST(i.claims + u.n, 32000),
    status = CASE WHEN i.status = 'active' AND i.claims + u.n > $4 THEN 'shared' ELSE i.status END
FROM unnest($2::text[], $3::bytea[], $5::int[]) AS u(kind, hash, n)
WHERE i.brand_id = $1 AND i.kind = u.kind AND i.hash = u.hash"""

UPDATE_TRAITS = """
UPDATE profiles p SET traits_enc = u.traits_enc, name_norm = u.name_norm, city = u.city,
       country = u.country, consent = p.consent || u.consent, updated_at = now()
FROM unnest($2::uuid[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
     AS u(id, traits_enc, name_norm, city, country, consent)
WHERE p.brand_id = $1 AND p.id = u.id"""

UPDATE_STRENGTH = """
UPDATE profiles p SET profile_strength = LEAST(u.strength, 32000)
FROM unnest($2::uuid[], $3::int[]) AS u(id, strength)
WHERE p.brand_id = $1 AND p.id = u.id"""

APPLY_DELTAS = """
UPDATE profiles p SET
    event_count = p.event_count + u.n,
    order_count = p.order_count + u.orders,
    total_spent = p.total_spent + u.spent,
    refund_total = p.refund_total + u.refunds,
    first_seen = LEAST(p.first_seen, u.first_seen),
    last_seen = GREATEST(p.last_seen, u.last_seen),
    first_order_at = LEAST(p.first_order_at, u.first_order),
    last_order_at = GREATEST(p.last_order_at, u.last_order),
    channels = ARRAY(SELECT DISTINCT c FROM unnest(p.channels || u.channels) AS c ORDER BY c),
    updated_at = now(),
    version = p.version + 1
FROM (SELECT * FROM unnest($2::uuid[], $3::int[], $4::int[], $5::numeric[], $6::numeric[],
                           $7::timestamptz[], $8::timestamptz[], $9::timestamptz[],
                           $10::timestamptz[], $11::text[])
      AS x(id, n, orders, spent, refunds, first_seen, last_seen, first_order, last_order, chans)
      CROSS JOIN LATERAL (SELECT string_to_array(x.chans, ',') AS channels) c) u
WHERE p.brand_id = $1 AND p.id = u.id"""

RECOMPUTE = """
UPDATE profiles p SET
    event_count = coalesce(a.n, 0),
    order_count = coalesce(a.orders, 0),
    total_spent = coalesce(a.spent, 0),
    refund_total = coalesce(a.refunds, 0),
    first_seen = coalesce(a.first_seen, p.created_at),
    last_seen = coalesce(a.last_seen, p.created_at),
    first_order_at = a.first_order,
    last_order_at = a.last_order,
    channels = coalesce(a.channels, '{}'),
    updated_at = now(),
    version = p.version + 1
FROM (SELECT id FROM unnest($2::uuid[]) AS id) ids
LEFT JOIN LATERAL (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE type = 'purchase') AS orders,
           sum(total) FILTER (WHERE type = 'purchase') AS spent,
           sum(abs(total)) FILTER (WHERE type = 'refund') AS refunds,
           min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
           min(occurred_at) FILTER (WHERE type = 'purchase') AS first_order,
           max(occurred_at) FILTER (WHERE type = 'purchase') AS last_order,
           array_agg(DISTINCT source ORDER BY source) AS channels
    FROM events e WHERE e.brand_id = $1 AND e.profile_id = ids.id
) a ON true
WHERE p.brand_id = $1 AND p.id = ids.id"""

PROFILE_ROWS = """
SELECT id, merged_into, created_at, updated_at, first_seen, last_seen, name_norm, traits_enc,
       city, country, event_count, order_count, total_spent, refund_total, first_order_at,
       last_order_at, channels, profile_strength, household_id, consent, tags, version
FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) ORDER BY id"""

IDENTIFIER_ROWS = """
SELECT kind, hash, profile_id, value_enc, masked, status, source, namespace, claims,
       first_seen, last_seen
FROM profile_identifiers WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])
ORDER BY kind, hash"""

EVENT_IDS_OF = """
SELECT profile_id, array_agg(id ORDER BY id) AS ids FROM events
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) GROUP BY profile_id"""

MOVE_IDENTIFIERS = """
UPDATE profile_identifiers SET profile_id = $3
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"""

MOVE_EVENTS = (
    "UPDATE events SET profile_id = $3 WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"
)

MARK_MERGED = """
UPDATE profiles SET merged_into = $3, updated_at = now(), version = version + 1
WHERE brand_id = $1 AND (id = ANY($2::uuid[]) OR merged_into = ANY($2::uuid[]))"""

INSERT_MERGE_LOG = """
INSERT INTO identity_merge_log (brand_id, survivor_id, merged_ids, reason, score, contributions,
                                snapshot, decided_by, features)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"""

INSERT_REVIEW = """
INSERT INTO merge_review_queue (brand_id, profile_ids, pair_key, score, contributions, reason,
                                evidence_hash, features)
SELECT $1, $2, $3, $4, $5, $6, $7, $8
WHERE NOT EXISTS (
    SELECT 1 FROM merge_review_queue
    WHERE brand_id = $1 AND pair_key = $3 AND status = 'rejected' AND evidence_hash = $7)
ON CONFLICT (brand_id, pair_key) WHERE status = 'open' DO NOTHING
RETURNING id"""

REJECTED_PAIRS = """
SELECT pair_key, evidence_hash FROM merge_review_queue
WHERE brand_id = $1 AND status = 'rejected' AND pair_key = ANY($2::text[])"""


async def lock_keys(conn: asyncpg.Connection, brand_id: UUID, keys: Sequence[str]) -> None:
    if keys:
        await conn.fetchval(LOCK_KEYS_ORDERED, str(brand_id), list(keys))


async def try_lock_keys(conn: asyncpg.Connection, brand_id: UUID, keys: Sequence[str]) -> set[str]:
    """Lock the free keys now and return the busy ones (never waits, so never deadlocks)."""
    if not keys:
        return set()
    return {r["k"] for r in await conn.fetch(TRY_LOCK_KEYS, str(brand_id), list(keys))}


async def lock_profiles(conn: asyncpg.Connection, brand_id: UUID, ids: Sequence[UUID]) -> None:
    """Every writer of a profile (streaming, merge, unmerge, review) takes these first, sorted
    in one statement, so they exclude each other without deadlocks."""
    await lock_keys(conn, brand_id, [f"profile:{i}" for i in ids])


async def lookup(
    conn: asyncpg.Connection, brand_id: UUID, refs: Sequence[tuple[str, bytes]]
) -> list[asyncpg.Record]:
    if not refs:
        return []
    return await conn.fetch(LOOKUP_KEYS, brand_id, [k for k, _ in refs], [h for _, h in refs])


async def lookup_links(
    conn: asyncpg.Connection, brand_id: UUID, refs: Sequence[tuple[str, bytes]]
) -> list[asyncpg.Record]:
    if not refs:
        return []
    return await conn.fetch(LOOKUP_LINKS, brand_id, [k for k, _ in refs], [h for _, h in refs])


async def suppressed(
    conn: asyncpg.Connection, brand_id: UUID, refs: Sequence[tuple[str, bytes]]
) -> set[tuple[str, bytes]]:
    if not refs:
        return set()
    rows = await conn.fetch(SUPPRESSED, brand_id, [k for k, _ in refs], [h for _, h in refs])
    return {(r["kind"], bytes(r["hash"])) for r in rows}


async def follow_merged(
    conn: asyncpg.Connection, brand_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, UUID]:
    """id -> live profile id (itself when not merged)."""
    if not ids:
        return {}
    rows = await conn.fetch(FOLLOW_MERGED, brand_id, list(ids))
    out = {}
    for r in rows:
        out[r["id"]] = r["target"] or r["id"]
    return out


async def recompute(conn: asyncpg.Connection, brand_id: UUID, ids: Sequence[UUID]) -> None:
    if ids:
        await conn.execute(RECOMPUTE, brand_id, sorted(set(ids)))


async def snapshot(conn: asyncpg.Connection, brand_id: UUID, ids: Sequence[UUID]) -> dict[str, Any]:
    """Every profile row, identifier row and event id of `ids`, JSON-ready."""
    profiles = await conn.fetch(PROFILE_ROWS, brand_id, list(ids))
    idents = await conn.fetch(IDENTIFIER_ROWS, brand_id, list(ids))
    events = await conn.fetch(EVENT_IDS_OF, brand_id, list(ids))
    links = await conn.fetch(LINK_ROWS, brand_id, list(ids))
    return {
        "links": [_jsonable(dict(r)) for r in links],
        "profiles": [_jsonable(dict(r)) for r in profiles],
        "identifiers": [_jsonable(dict(r)) for r in idents],
        "events": {str(r["profile_id"]): list(r["ids"]) for r in events},
    }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, bytes | bytearray | memoryview):
            out[k] = {"$hex": bytes(v).hex()}
        elif isinstance(v, UUID):
            out[k] = str(v)
        elif hasattr(v, "isoformat"):
            out[k] = {"$ts": v.isoformat()}
        elif v.__class__.__name__ == "Decimal":
            out[k] = {"$dec": str(v)}
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = v
    return out


def from_jsonable(value: Any) -> Any:
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, dict):
        if "$hex" in value:
            return bytes.fromhex(value["$hex"])
        if "$ts" in value:
            return datetime.fromisoformat(value["$ts"])
        if "$dec" in value:
            return Decimal(value["$dec"])
    return value
