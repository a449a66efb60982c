"""Merge and exact unmerge of profiles, each inside the caller's transaction.

A merge snapshots every profile row, identifier row and event id of the profiles involved
into `identity_merge_log`, moves identifiers and events to the survivor, points the losers
(and anything that pointed at them) at the survivor, and recomputes the survivor's
aggregates. Unmerge puts every snapshotted row back as it was and re-resolves the events that
reached the survivor after the merge.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.crypto import BrandCrypto
from core.errors import Conflict, NotFound
from identity import repo
from identity.keys import name_norm

REDIRECTED = """
SELECT id, merged_into FROM profiles WHERE brand_id = $1 AND merged_into = ANY($2::uuid[])"""
LOCK_ALL = "SELECT id, merged_into FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE"
SURVIVOR_TRAITS = "SELECT traits_enc, consent FROM profiles WHERE brand_id = $1 AND id = $2"
SET_TRAITS = """
UPDATE profiles SET traits_enc = $3, name_norm = $4, city = $5, country = $6, consent = $7,
       profile_strength = $8
WHERE brand_id = $1 AND id = $2"""
GET_LOG = """
SELECT id, survivor_id, merged_ids, snapshot, rolled_back_at, score, reason, created_at
FROM identity_merge_log WHERE brand_id = $1 AND id = $2 FOR UPDATE"""
MARK_ROLLED_BACK = (
    "UPDATE identity_merge_log SET rolled_back_at = now() WHERE brand_id = $1 AND id = $2"
)
RESTORE_PROFILE = """
UPDATE profiles SET merged_into = $3, created_at = $4, first_seen = $5, last_seen = $6,
    name_norm = $7, traits_enc = $8, city = $9, country = $10, event_count = $11,
    order_count = $12, total_spent = $13, refund_total = $14, first_order_at = $15,
    last_order_at = $16, channels = $17, profile_strength = $18, household_id = $19,
    consent = $20, tags = $21, updated_at = now(), version = version + 1
WHERE brand_id = $1 AND id = $2"""
RESTORE_IDENTIFIER = """
INSERT INTO profile_identifiers (brand_id, kind, hash, profile_id, value_enc, masked, status,
                                 source, namespace, claims, first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (brand_id, kind, hash) DO UPDATE SET profile_id = EXCLUDED.profile_id,
    status = EXCLUDED.status, claims = GREATEST(profile_identifiers.claims, EXCLUDED.claims)"""
DROP_LINKS_BEFORE = """
DELETE FROM identifier_links WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) AND created_at <= $3"""
RESTORE_LINK = """
INSERT INTO identifier_links (brand_id, kind, hash, profile_id, created_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"""
SET_EVENTS = "UPDATE events SET profile_id = $3 WHERE brand_id = $1 AND id = ANY($2::bigint[])"
SET_MERGED_INTO = "UPDATE profiles SET merged_into = $3 WHERE brand_id = $1 AND id = $2"
EVENTS_AFTER = """
SELECT e.id, r.payload_enc FROM events e
JOIN raw_events r ON r.brand_id = e.brand_id AND r.id = e.raw_event_id
WHERE e.brand_id = $1 AND e.profile_id = $2 AND NOT (e.id = ANY($3::bigint[]))"""
REJECT_PAIR = """
INSERT INTO merge_review_queue (brand_id, profile_ids, pair_key, score, contributions, reason,
                                evidence_hash, status, decided_at, decided_by)
VALUES ($1, $2, $3, $4, '{}'::jsonb, $5, '', 'rejected', now(), $6)"""
AUDIT = """
INSERT INTO audit_log (brand_id, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5)"""


def pair_key(ids: list[UUID]) -> str:
    return ",".join(sorted(str(i) for i in ids))


async def merge(
    conn: asyncpg.Connection,
    crypto: BrandCrypto,
    brand_id: UUID,
    survivor: UUID,
    losers: list[UUID],
    *,
    score: float,
    contributions: dict[str, float],
    reason: str,
    decided_by: str,
    features: dict[str, Any] | None = None,
) -> UUID:
    """Merge `losers` into `survivor` (all live, locked by the caller or here)."""
    everyone = sorted({survivor, *losers})
    await repo.lock_profiles(conn, brand_id, everyone)
    rows = await conn.fetch(LOCK_ALL, brand_id, everyone)
    if len(rows) != len(everyone) or any(r["merged_into"] is not None for r in rows):
        raise Conflict("a profile of this merge no longer exists or is already merged")
    snap = await repo.snapshot(conn, brand_id, everyone)
    snap["redirected"] = {
        str(r["id"]): str(r["merged_into"]) for r in await conn.fetch(REDIRECTED, brand_id, losers)
    }
    # Survivor keeps its own traits; the losers fill the gaps.
    traits: dict[str, Any] = {}
    consent: dict[str, Any] = {}
    strength = 0
    for p in sorted(snap["profiles"], key=lambda p: p["id"] != str(survivor)):
        blob = repo.from_jsonable(p["traits_enc"]) if p["traits_enc"] else None
        for k, v in (orjson.loads(crypto.decrypt(blob)) if blob else {}).items():
            traits.setdefault(k, v)
        for k, v in (p["consent"] or {}).items():
            consent.setdefault(k, v)
        strength += int(p["profile_strength"] or 0)
    await conn.execute(repo.MOVE_IDENTIFIERS, brand_id, losers, survivor)
    await conn.execute(repo.MOVE_LINKS, brand_id, losers, survivor)
    await conn.execute(repo.DROP_OWNED_LINKS, brand_id, survivor)
    await conn.execute(repo.MOVE_EVENTS, brand_id, losers, survivor)
    await conn.execute(repo.MARK_MERGED, brand_id, losers, survivor)
    await conn.execute(
        SET_TRAITS,
        brand_id,
        survivor,
        crypto.encrypt(orjson.dumps(traits)) if traits else None,
        name_norm(traits),
        traits.get("city"),
        traits.get("country"),
        consent,
        min(strength, 32000),
    )
    await repo.recompute(conn, brand_id, [survivor])
    return await conn.fetchval(
        repo.INSERT_MERGE_LOG,
        brand_id,
        survivor,
        sorted(losers),
        reason,
        score,
        contributions,
        snap,
        decided_by,
        features or {},
    )


async def unmerge(
    conn: asyncpg.Connection,
    crypto: BrandCrypto,
    brand_id: UUID,
    merge_id: UUID,
    *,
    actor: str,
    region: str = "GB",
) -> dict[str, Any]:
    """Restore the snapshot of a merge exactly; events that arrived after it are re-resolved."""
    log = await conn.fetchrow(GET_LOG, brand_id, merge_id)
    if log is None:
        raise NotFound("no such merge")
    if log["rolled_back_at"] is not None:
        raise Conflict("this merge was already rolled back")
    survivor: UUID = log["survivor_id"]
    losers: list[UUID] = list(log["merged_ids"])
    everyone = sorted({survivor, *losers})
    await repo.lock_profiles(conn, brand_id, everyone)
    rows = await conn.fetch(LOCK_ALL, brand_id, everyone)
    state = {r["id"]: r["merged_into"] for r in rows}
    if state.get(survivor) is not None:
        raise Conflict("the surviving profile was merged again since; roll back that merge first")
    snap = log["snapshot"]
    j = repo.from_jsonable
    for p in snap["profiles"]:
        await conn.execute(
            RESTORE_PROFILE,
            brand_id,
            UUID(p["id"]),
            UUID(p["merged_into"]) if p["merged_into"] else None,
            j(p["created_at"]),
            j(p["first_seen"]),
            j(p["last_seen"]),
            p["name_norm"],
            j(p["traits_enc"]),
            p["city"],
            p["country"],
            p["event_count"],
            p["order_count"],
            j(p["total_spent"]),
            j(p["refund_total"]),
            j(p["first_order_at"]),
            j(p["last_order_at"]),
            p["channels"],
            p["profile_strength"],
            UUID(p["household_id"]) if p["household_id"] else None,
            p["consent"],
            p["tags"],
        )
    for i in snap["identifiers"]:
        await conn.execute(
            RESTORE_IDENTIFIER,
            brand_id,
            i["kind"],
            j(i["hash"]),
            UUID(i["profile_id"]),
            j(i["value_enc"]),
            i["masked"],
            i["status"],
            i["source"],
            i["namespace"],
            i["claims"],
            j(i["first_seen"]),
            j(i["last_seen"]),
        )
    # Links: those of the snapshot come back; links made after the merge stay.
    await conn.execute(DROP_LINKS_BEFORE, brand_id, everyone, log["created_at"])
    for link in snap.get("links", []):
        await conn.execute(
            RESTORE_LINK,
            brand_id,
            link["kind"],
            j(link["hash"]),
            UUID(link["profile_id"]),
            j(link["created_at"]),
        )
    before: list[int] = []
    for pid, ids in snap["events"].items():
        await conn.execute(SET_EVENTS, brand_id, ids, UUID(pid))
        before.extend(ids)
    for pid, target in snap.get("redirected", {}).items():
        await conn.execute(SET_MERGED_INTO, brand_id, UUID(pid), UUID(target))
    moved = await _reresolve_after(conn, crypto, brand_id, survivor, before, region)
    await repo.recompute(conn, brand_id, everyone)
    await conn.execute(MARK_ROLLED_BACK, brand_id, merge_id)
    await conn.execute(
        REJECT_PAIR,
        brand_id,
        everyone,
        pair_key(everyone),
        log["score"] or 0.0,
        f"rolled back merge {merge_id}",
        actor,
    )
    await conn.execute(
        AUDIT,
        brand_id,
        actor,
        "identity.unmerge",
        str(merge_id),
        {
            "survivor": str(survivor),
            "restored": [str(x) for x in losers],
            "reresolved_events": moved,
        },
    )
    return {
        "merge_id": str(merge_id),
        "survivor": str(survivor),
        "restored": [str(x) for x in losers],
        "reresolved_events": moved,
    }


async def _reresolve_after(
    conn: asyncpg.Connection,
    crypto: BrandCrypto,
    brand_id: UUID,
    survivor: UUID,
    before: list[int],
    region: str,
) -> int:
    """Events on the survivor that the snapshot does not know arrived after the merge: give
    each to the profile that now owns its highest-priority identifier."""
    from identity.keys import KIND_PRIORITY, identifier_keys

    rows = await conn.fetch(EVENTS_AFTER, brand_id, survivor, before)
    moved = 0
    for r in rows:
        ev = orjson.loads(crypto.decrypt(r["payload_enc"]))
        keys = sorted(
            (
                k
                for k in identifier_keys(crypto, ev.get("identifiers") or {}, region=region)
                if k.usable
            ),
            key=lambda k: KIND_PRIORITY.get(k.kind, 9),
        )
        if not keys:
            continue
        found = await repo.lookup(conn, brand_id, [k.ref for k in keys])
        owners = {(f["kind"], bytes(f["hash"])): f["profile_id"] for f in found}
        for k in keys:
            owner = owners.get(k.ref)
            if owner is not None:
                if owner != survivor:
                    await conn.execute(SET_EVENTS, brand_id, [r["id"]], owner)
                    moved += 1
                break
    return moved


async def rollback(rt: Any, brand_id: UUID, merge_id: UUID, *, actor: str) -> dict[str, Any]:
    """`unmerge` as every entry point runs it (API, CLI, dashboard): in its own transaction
    with the brand's key and phone region, then the cached 360s of everyone involved dropped."""
    from core import brands
    from identity.service import invalidate  # service imports this module

    async with rt.pool.acquire() as conn, conn.transaction():
        brand = await brands.get_brand_by_id(conn, brand_id)
        result = await unmerge(
            conn,
            rt.keyring.for_brand(str(brand.id)),
            brand.id,
            merge_id,
            actor=actor,
            region=brand.region,
        )
    await invalidate(rt, brand.id, [UUID(result["survivor"]), *map(UUID, result["restored"])])
    return result
