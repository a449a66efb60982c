"""The manual review queue: proposals with both sides and the score breakdown; approve merges,
reject remembers the pair (never proposed again unless new evidence). Answers are labels for
re-fitting the scoring weights."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from core import brands
from core.brands import Principal
from core.errors import Conflict, NotFound, ValidationFailed
from identity import repo
from identity.merge import merge
from identity.service import invalidate

LIST = """
SELECT id, profile_ids, score, contributions, reason, status, created_at, decided_at, decided_by
FROM merge_review_queue
WHERE brand_id = $1 AND status = $2 AND ($3::uuid IS NULL OR id > $3)
ORDER BY id LIMIT $4"""
GET_FOR_UPDATE = """
SELECT id, profile_ids, score, contributions, status, features FROM merge_review_queue
WHERE brand_id = $1 AND id = $2 FOR UPDATE"""
SET_STATUS = """
UPDATE merge_review_queue SET status = $3, decided_at = now(), decided_by = $4
WHERE brand_id = $1 AND id = $2"""
SUMMARIES = """
SELECT p.id, p.merged_into, p.name_norm, p.city, p.country, p.order_count, p.total_spent,
       p.first_seen, p.last_seen, p.profile_strength, p.created_at, p.channels,
       coalesce((SELECT json_agg(json_build_object('kind', i.kind, 'masked', i.masked,
                                                   'status', i.status) ORDER BY i.kind)
                 FROM profile_identifiers i WHERE i.brand_id = p.brand_id AND i.profile_id = p.id),
                '[]'::json) AS identifiers
FROM profiles p WHERE p.brand_id = $1 AND p.id = ANY($2::uuid[])"""


def _summary(r: Any) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "merged_into": str(r["merged_into"]) if r["merged_into"] else None,
        "name": r["name_norm"],
        "city": r["city"],
        "country": r["country"],
        "order_count": r["order_count"],
        "total_spent": float(r["total_spent"]),
        "first_seen": r["first_seen"],
        "last_seen": r["last_seen"],
        "channels": list(r["channels"]),
        "identifiers": r["identifiers"],
    }


async def list_page(
    rt: Any, principal: Principal, *, status: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    try:
        after = UUID(cursor) if cursor else None
    except ValueError:
        raise ValidationFailed("cursor: invalid") from None
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(LIST, principal.brand_id, status, after, limit + 1)
        page = rows[:limit]
        ids = sorted({p for r in page for p in r["profile_ids"]})
        summaries = {
            r["id"]: _summary(r) for r in await conn.fetch(SUMMARIES, principal.brand_id, ids)
        }
    data = [
        {
            "id": str(r["id"]),
            "status": r["status"],
            "score": r["score"],
            "contributions": r["contributions"],
            "reason": r["reason"],
            "created_at": r["created_at"],
            "decided_at": r["decided_at"],
            "profiles": [summaries.get(p) for p in r["profile_ids"]],
        }
        for r in page
    ]
    more = len(rows) > limit
    return {
        "data": data,
        "pagination": {"limit": limit, "next_cursor": str(page[-1]["id"]) if more else None},
    }


async def decide(
    rt: Any, principal: Principal, review_id: UUID, *, approve: bool
) -> dict[str, Any]:
    actor = f"key:{principal.key_id}"
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(GET_FOR_UPDATE, principal.brand_id, review_id)
        if row is None:
            raise NotFound("no such review item")
        if row["status"] != "open":
            raise Conflict(f"this review item is already {row['status']}")
        if not approve:
            await conn.execute(SET_STATUS, principal.brand_id, review_id, "rejected", actor)
            return {"id": str(review_id), "status": "rejected"}
        brand = await brands.get_brand_by_id(conn, principal.brand_id)
        live = await repo.follow_merged(conn, brand.id, list(row["profile_ids"]))
        ids = sorted(set(live.values()))
        if len(ids) < 2:
            await conn.execute(SET_STATUS, principal.brand_id, review_id, "superseded", actor)
            return {"id": str(review_id), "status": "superseded"}
        ranked = await conn.fetch(
            "SELECT id FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) "
            "ORDER BY profile_strength DESC, created_at, id",
            brand.id,
            ids,
        )
        survivor = ranked[0]["id"]
        losers = [r["id"] for r in ranked[1:]]
        merge_id = await merge(
            conn,
            rt.keyring.for_brand(str(brand.id)),
            brand.id,
            survivor,
            losers,
            score=row["score"],
            contributions=row["contributions"],
            reason="approved in review",
            decided_by=actor,
            features=row["features"],
        )
        await conn.execute(SET_STATUS, principal.brand_id, review_id, "approved", actor)
    await invalidate(rt, brand.id, ids)
    return {
        "id": str(review_id),
        "status": "approved",
        "merge_id": str(merge_id),
        "survivor": str(survivor),
        "merged": [str(x) for x in losers],
    }
