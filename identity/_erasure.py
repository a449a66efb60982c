"""The SQL of data-subject requests: find a person, export everything held about them, erase
them. Runs inside the caller's transaction; every statement takes the brand first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from identity import repo
from identity.profile_list import survivors

EXISTING = "SELECT id FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])"

# A profile and everything merged into it, at any depth.
DESCENDANTS = """
WITH RECURSIVE d(id) AS (
    SELECT id FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])
    UNION
    SELECT p.id FROM profiles p JOIN d ON p.brand_id = $1 AND p.merged_into = d.id
)
SELECT id FROM d"""

PERSON_KEYS = """
SELECT kind, hash, status FROM profile_identifiers
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"""

HOUSEHOLDS_OF = """
SELECT DISTINCT household_id FROM profiles
WHERE brand_id = $1 AND id = ANY($2::uuid[]) AND household_id IS NOT NULL"""

INSERT_SUPPRESSIONS = """
INSERT INTO suppressions (brand_id, kind, hash)
SELECT $1, u.kind, u.hash FROM unnest($2::text[], $3::bytea[]) AS u(kind, hash)
ON CONFLICT DO NOTHING"""

DELETE_EVENTS = """
DELETE FROM events WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) RETURNING raw_event_id"""
DELETE_RAW = "DELETE FROM raw_events WHERE brand_id = $1 AND id = ANY($2::bigint[])"
# Inbox rows dropped because they named a suppressed identifier: only deleted people's.
PURGE_SUPPRESSED_RAW = """
DELETE FROM raw_events WHERE brand_id = $1 AND status = 'suppressed' RETURNING id"""
# Dead letters can only be matched by opening them. Pending rows are left to the workers
# (deleting a row a worker has claimed would wait on it while it waits on our identifier
# locks): once the suppressions commit they end up 'suppressed' and are purged.
DEAD_RAW = """
SELECT id, payload_enc FROM raw_events
WHERE brand_id = $1 AND status = 'dead' ORDER BY id LIMIT $2"""

DELETE_LINKS = """
DELETE FROM identifier_links l
WHERE l.brand_id = $1 AND (l.profile_id = ANY($2::uuid[])
    OR (l.kind, l.hash) IN (SELECT * FROM unnest($3::text[], $4::bytea[])))"""
DELETE_IDENTIFIERS = """
DELETE FROM profile_identifiers WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"""
# Every other table with (brand_id, profile_id): features, predictions, journeys, automation
# runs and state, conversations, and whatever a later package adds. Found in the catalog at
# run time so a new per-profile table can never be missed by an erasure; tables handled
# above (ordered deletes) are left out.
PER_PROFILE_TABLES = """
SELECT c.table_name, c.data_type FROM information_schema.columns c
JOIN information_schema.columns b ON b.table_schema = c.table_schema
     AND b.table_name = c.table_name AND b.column_name = 'brand_id'
JOIN information_schema.tables t ON t.table_schema = c.table_schema
     AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
WHERE c.table_schema = current_schema() AND c.column_name = 'profile_id'
  AND c.table_name <> ALL($1::text[])
ORDER BY c.table_name"""
HANDLED = ["events", "profile_identifiers", "identifier_links", "profiles"]
# Statement templates for a catalog table name (an identifier quoted by `_ident`, never a value).
DELETE_PER_PROFILE = "DELETE FROM {table} WHERE brand_id = $1 AND profile_id{cast} = ANY($2{arr})"
SELECT_PER_PROFILE = (
    "SELECT * FROM {table} WHERE brand_id = $1 AND profile_id{cast} = ANY($2{arr}) LIMIT $3"
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def per_profile_tables(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(table, profile_id data type) of every brand table keyed by profile outside identity."""
    return [
        (r["table_name"], r["data_type"]) for r in await conn.fetch(PER_PROFILE_TABLES, HANDLED)
    ]


def _per_profile(template: str, table: str, data_type: str) -> tuple[str, bool]:
    is_uuid = data_type == "uuid"
    sql = template.format(
        table=_ident(table),
        cast="" if is_uuid else "::text",
        arr="::uuid[]" if is_uuid else "::text[]",
    )
    return sql, is_uuid


DELETE_MERGE_LOG = """
DELETE FROM identity_merge_log
WHERE brand_id = $1 AND (survivor_id = ANY($2::uuid[]) OR merged_ids && $2::uuid[])
RETURNING id"""
DELETE_REVIEWS = """
DELETE FROM merge_review_queue WHERE brand_id = $1 AND profile_ids && $2::uuid[] RETURNING id"""
DELETE_PROFILES = "DELETE FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])"
DELETE_ORPHAN_HOUSEHOLDS = """
DELETE FROM households h WHERE h.brand_id = $1 AND h.id = ANY($2::uuid[])
  AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.brand_id = $1 AND p.household_id = h.id)"""
# Audit rows keep who did what and when; what tied them to the person goes.
PSEUDONYMISE_AUDIT = """
UPDATE audit_log SET subject = 'erased', details = '{"erased": true}'::jsonb
WHERE brand_id = $1 AND subject = ANY($2::text[])"""
# An earlier export of the person is a copy of their data: it goes with them.
DROP_EXPORTS = """
UPDATE deletion_requests d SET result_enc = NULL,
       summary = d.summary || '{"result_erased": true}'::jsonb
WHERE d.brand_id = $1 AND d.kind = 'export' AND d.result_enc IS NOT NULL AND d.id <> $2
  AND EXISTS (SELECT 1 FROM jsonb_array_elements(d.identifier_hashes) h
              WHERE h ->> 'hash' = ANY($3::text[]) OR h ->> 'id' = ANY($4::text[]))"""

EXPORT_EVENTS = """
SELECT e.id, e.event_id, e.source, e.type, e.occurred_at, e.order_id, e.total, e.currency,
       e.store_id, e.properties, e.content_enc, r.payload_enc
FROM events e
LEFT JOIN raw_events r ON r.brand_id = e.brand_id AND r.id = e.raw_event_id
WHERE e.brand_id = $1 AND e.profile_id = ANY($2::uuid[]) ORDER BY e.occurred_at, e.id"""
EXPORT_MERGES = """
SELECT id, survivor_id, merged_ids, reason, score, contributions, decided_by, created_at,
       rolled_back_at
FROM identity_merge_log
WHERE brand_id = $1 AND (survivor_id = ANY($2::uuid[]) OR merged_ids && $2::uuid[])
ORDER BY created_at"""
EXPORT_CONSENT_PROFILE = """
SELECT id, merged_into, created_at, first_seen, last_seen, name_norm, traits_enc, city, country,
       event_count, order_count, total_spent, refund_total, first_order_at, last_order_at,
       channels, profile_strength, household_id, consent, tags
FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) ORDER BY created_at"""


Ref = tuple[str, bytes]


@dataclass
class Person:
    """Everything that identifies one data subject inside a brand."""

    profiles: list[UUID] = field(default_factory=list)
    keys: list[tuple[str, bytes, str]] = field(default_factory=list)  # kind, hash, status

    @property
    def refs(self) -> list[Ref]:
        return [(k, h) for k, h, _ in self.keys]


async def find_person(
    conn: asyncpg.Connection, brand_id: UUID, refs: Sequence[Ref], profile_ids: Sequence[UUID]
) -> Person:
    """Profiles owning any of `refs`, the named profiles, the live survivor of each, and every
    profile merged into those survivors: one person, whichever old id was named."""
    seeds = {r["profile_id"] for r in await repo.lookup(conn, brand_id, list(refs))}
    if profile_ids:
        seeds |= {r["id"] for r in await conn.fetch(EXISTING, brand_id, list(profile_ids))}
    if not seeds:
        return Person()
    live = await survivors(conn, brand_id, sorted(seeds))
    roots = sorted(seeds | set(live.values()))
    everyone = sorted({r["id"] for r in await conn.fetch(DESCENDANTS, brand_id, roots)})
    keys = [
        (r["kind"], bytes(r["hash"]), r["status"])
        for r in await conn.fetch(PERSON_KEYS, brand_id, everyone)
    ]
    return Person(everyone, keys)


def _count(status: str) -> int:
    """Row count from an asyncpg command tag ("DELETE 3", "UPDATE 1")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def erase(
    conn: asyncpg.Connection,
    crypto: Any,
    brand_id: UUID,
    job_id: UUID,
    person: Person,
    requested: Sequence[Ref],
    *,
    region: str,
    scan_limit: int = 10_000,
) -> tuple[dict[str, int], list[int]]:
    """Delete the person and leave suppressions; returns (counts per table, raw ids removed)."""
    from identity.keys import identifier_keys

    pids = person.profiles
    # Suppress what was asked for and every working identifier of theirs. Shared and
    # placeholder values (a store's phone, test@test.com) would drop other people's events.
    suppress = sorted(
        set(requested) | {(k, h) for k, h, status in person.keys if status == "active"}
    )
    counts: dict[str, int] = {}
    counts["suppressions"] = _count(
        await conn.execute(
            INSERT_SUPPRESSIONS, brand_id, [k for k, _ in suppress], [h for _, h in suppress]
        )
    )
    raw_ids = [r["raw_event_id"] for r in await conn.fetch(DELETE_EVENTS, brand_id, pids)]
    counts["events"] = len(raw_ids)
    blocked = set(suppress)
    for r in await conn.fetch(DEAD_RAW, brand_id, scan_limit):
        ev = orjson.loads(crypto.decrypt(r["payload_enc"]))
        keys = identifier_keys(crypto, ev.get("identifiers") or {}, region=region)
        if any(k.ref in blocked for k in keys):
            raw_ids.append(r["id"])
    counts["raw_events"] = _count(await conn.execute(DELETE_RAW, brand_id, raw_ids))
    counts["identifier_links"] = _count(
        await conn.execute(
            DELETE_LINKS, brand_id, pids, [k for k, _ in suppress], [h for _, h in suppress]
        )
    )
    counts["profile_identifiers"] = _count(await conn.execute(DELETE_IDENTIFIERS, brand_id, pids))
    for table, data_type in await per_profile_tables(conn):
        sql, is_uuid = _per_profile(DELETE_PER_PROFILE, table, data_type)
        counts[table] = _count(
            await conn.execute(sql, brand_id, pids if is_uuid else [str(p) for p in pids])
        )
    merge_ids = [r["id"] for r in await conn.fetch(DELETE_MERGE_LOG, brand_id, pids)]
    review_ids = [r["id"] for r in await conn.fetch(DELETE_REVIEWS, brand_id, pids)]
    counts["identity_merge_log"] = len(merge_ids)
    counts["merge_review_queue"] = len(review_ids)
    households = [r["household_id"] for r in await conn.fetch(HOUSEHOLDS_OF, brand_id, pids)]
    counts["profiles"] = _count(await conn.execute(DELETE_PROFILES, brand_id, pids))
    counts["households"] = _count(
        await conn.execute(DELETE_ORPHAN_HOUSEHOLDS, brand_id, households)
    )
    subjects = [str(x) for x in [*pids, *merge_ids, *review_ids]]
    counts["audit_log_pseudonymised"] = _count(
        await conn.execute(PSEUDONYMISE_AUDIT, brand_id, subjects)
    )
    counts["exports_dropped"] = _count(
        await conn.execute(
            DROP_EXPORTS,
            brand_id,
            job_id,
            [h.hex() for _, h in suppress],
            [str(p) for p in pids],
        )
    )
    return counts, raw_ids


async def purge_suppressed(conn: asyncpg.Connection, brand_id: UUID) -> list[int]:
    """Delete inbox rows that were dropped as suppressed (their sealed payloads name a deleted
    person); returns their ids so their stream entries can go too."""
    return [r["id"] for r in await conn.fetch(PURGE_SUPPRESSED_RAW, brand_id)]


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value.__class__.__name__ == "Decimal":
        return float(value)
    return value


def _row(r: asyncpg.Record, skip: Iterable[str] = ()) -> dict[str, Any]:
    return {k: _plain(v) for k, v in r.items() if k not in skip}


async def export(conn: asyncpg.Connection, crypto: Any, brand_id: UUID, person: Person) -> dict:
    """Everything held about the person, decrypted: profiles with traits, identifiers, events
    (with sealed content and the payload as received), merge history, and the rows of every
    other per-profile table (predictions, features, journeys, automations, conversations)."""
    pids = person.profiles
    profiles = []
    for r in await conn.fetch(EXPORT_CONSENT_PROFILE, brand_id, pids):
        row = _row(r, skip=("traits_enc",))
        row["traits"] = orjson.loads(crypto.decrypt(r["traits_enc"])) if r["traits_enc"] else {}
        profiles.append(row)
    identifiers = [
        {
            "kind": r["kind"],
            "value": crypto.decrypt_str(r["value_enc"]),
            "status": r["status"],
            "source": r["source"],
            "profile_id": str(r["profile_id"]),
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
        }
        for r in await conn.fetch(repo.IDENTIFIER_ROWS, brand_id, pids)
    ]
    events = []
    for r in await conn.fetch(EXPORT_EVENTS, brand_id, pids):
        row = _row(r, skip=("content_enc", "payload_enc"))
        row["content"] = (
            orjson.loads(crypto.decrypt(r["content_enc"])) if r["content_enc"] else None
        )
        row["as_received"] = (
            orjson.loads(crypto.decrypt(r["payload_enc"])) if r["payload_enc"] else None
        )
        events.append(row)
    return {
        "profiles": profiles,
        "identifiers": identifiers,
        "events": events,
        "merges": [_row(r) for r in await conn.fetch(EXPORT_MERGES, brand_id, pids)],
        # predictions, features, journeys, automation runs, conversations, ...
        **{table: rows for table, rows in (await _per_profile_rows(conn, brand_id, pids)).items()},
    }


async def _per_profile_rows(
    conn: asyncpg.Connection, brand_id: UUID, pids: list[UUID], limit: int = 100_000
) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for table, data_type in await per_profile_tables(conn):
        sql, is_uuid = _per_profile(SELECT_PER_PROFILE, table, data_type)
        rows = await conn.fetch(sql, brand_id, pids if is_uuid else [str(p) for p in pids], limit)
        out[table] = [_row(r, skip=("brand_id",)) for r in rows]
    return out
