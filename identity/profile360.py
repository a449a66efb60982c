"""The Customer 360: everything about one profile in one read, served from Redis.

The aggregates (orders, spend, first/last seen, channels) are kept incrementally by the
pipeline (`Resolution.apply_aggregates`); this module only reads them, plus a bounded scan of
the profile's latest events for affinities and last products.

Cache: one JSON value per profile at `brand_key(brand, "p360", id)`, the key identity already
deletes after every write that changes a profile (event attached, merge, unmerge, review
approval). Filling is race-free against those deletes: a reader first plants a placeholder
(`SET NX GET`, which is also the cache lookup, so a hit costs one round trip), reads Postgres,
and stores the result only if its placeholder is still there. A writer's delete after its
commit removes the placeholder, so a 360 read before the commit is never cached.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from redis.exceptions import RedisError

from core.errors import NotFound
from core.logging import get_logger
from core.redis import brand_key
from identity.profile_list import survivors

CACHE_TTL_S = 600
FILL_TTL_MS = 5000
# Affinity and last-products read at most this many of the latest product events.
AFFINITY_EVENTS = 1000
TOP_CATEGORIES = 5
TOP_PRODUCTS = 10
LAST_PRODUCTS = 10
MERGES_IN_360 = 20
# Why a view counts less than a cart add, and that less than a purchase: intent.
AFFINITY_WEIGHTS = {"purchase": 3.0, "cart_add": 2.0, "product_view": 1.0}

_log = get_logger("cbrain.profile360")
_PLACEHOLDER = b"\x00fill:"

PROFILE = """
SELECT p.id, p.merged_into, p.created_at, p.updated_at, p.first_seen, p.last_seen, p.name_norm,
       p.city, p.country, p.event_count, p.order_count, p.total_spent, p.refund_total,
       p.first_order_at, p.last_order_at, p.channels, p.profile_strength, p.household_id,
       p.consent, p.tags, p.version,
       CASE WHEN p.household_id IS NULL THEN NULL ELSE (
           SELECT count(*) FROM profiles h
           WHERE h.brand_id = p.brand_id AND h.household_id = p.household_id
             AND h.merged_into IS NULL) END AS household_size
FROM profiles p WHERE p.brand_id = $1 AND p.id = $2"""

IDENTIFIERS = """
SELECT kind, masked, status, source, namespace, first_seen, last_seen
FROM profile_identifiers WHERE brand_id = $1 AND profile_id = $2 ORDER BY kind, first_seen"""

IDENTIFIER_VALUES = """
SELECT kind, value_enc, status, source, first_seen, last_seen
FROM profile_identifiers WHERE brand_id = $1 AND profile_id = $2 ORDER BY kind, first_seen"""

TRAITS = "SELECT traits_enc FROM profiles WHERE brand_id = $1 AND id = $2"

PREDICTIONS = """
SELECT p.kind, p.value, p.band, p.details, p.as_of, p.model_version_id, m.version AS model_version
FROM predictions p
LEFT JOIN model_versions m ON m.brand_id = p.brand_id AND m.id = p.model_version_id
WHERE p.brand_id = $1 AND p.profile_id = $2 ORDER BY p.kind"""

JOURNEY = """
SELECT stage, score, parts, next_milestone, next_action, updated_at
FROM journeys WHERE brand_id = $1 AND profile_id = $2"""

# The profile and every profile merged into it (merges point straight at the final survivor).
ABSORBED = "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into = $2"

MERGES_OF = """
SELECT id, survivor_id, merged_ids, reason, score, contributions, decided_by, created_at,
       rolled_back_at
FROM identity_merge_log
WHERE brand_id = $1 AND (survivor_id = ANY($2::uuid[]) OR merged_ids && $2::uuid[])
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5"""

ITEM_ROWS = """
WITH recent AS (
    SELECT type, occurred_at, properties -> 'items' AS items FROM events
    WHERE brand_id = $1 AND profile_id = $2 AND type IN ('purchase', 'cart_add', 'product_view')
    ORDER BY occurred_at DESC LIMIT $3
)
SELECT r.type, r.occurred_at, i ->> 'product_id' AS product_id, i ->> 'sku' AS sku,
       i ->> 'name' AS name, i ->> 'category' AS category,
       coalesce((i ->> 'quantity')::float8, 1) AS quantity
FROM recent r
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(r.items) = 'array' THEN r.items ELSE '[]'::jsonb END) AS i
ORDER BY r.occurred_at DESC"""

AUDIT = """
INSERT INTO audit_log (brand_id, actor, action, subject, details, request_id)
VALUES ($1, $2, $3, $4, $5, $6)"""


def cache_key(brand_id: UUID, profile_id: UUID) -> str:
    """The Redis key of a cached 360 (the one `identity.service.invalidate` deletes)."""
    return brand_key(str(brand_id), "p360", str(profile_id))


def _num(value: Decimal | float | int | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _merge_row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "survivor_id": str(r["survivor_id"]),
        "merged_ids": [str(x) for x in r["merged_ids"]],
        "reason": r["reason"],
        "score": r["score"],
        "contributions": r["contributions"],
        "decided_by": r["decided_by"],
        "created_at": r["created_at"],
        "rolled_back_at": r["rolled_back_at"],
    }


def _orders(p: asyncpg.Record) -> dict[str, Any]:
    n = p["order_count"]
    spent = float(p["total_spent"])
    refunds = float(p["refund_total"])
    gap = None
    if n >= 2 and p["first_order_at"] and p["last_order_at"]:
        # The mean of consecutive gaps telescopes to (last - first) / (n - 1): no event scan.
        gap = round((p["last_order_at"] - p["first_order_at"]).total_seconds() / 86400 / (n - 1), 2)
    return {
        "count": n,
        "total_spent": round(spent, 2),
        "refunds": round(refunds, 2),
        "net_spent": round(spent - refunds, 2),
        "average_order_value": round(spent / n, 2) if n else None,
        "average_days_between_orders": gap,
        "first_order_at": p["first_order_at"],
        "last_order_at": p["last_order_at"],
    }


def _affinity(rows: list[asyncpg.Record]) -> dict[str, Any]:
    """Category and product affinity (weighted shares) and the last products seen/bought."""
    cats: dict[str, dict[str, float]] = {}
    prods: dict[str, dict[str, Any]] = {}
    last: dict[str, list[dict[str, Any]]] = {"product_view": [], "purchase": []}
    seen: dict[str, set[str]] = {"product_view": set(), "purchase": set()}
    for r in rows:
        key = r["product_id"] or r["sku"] or r["name"]
        if not key:
            continue
        qty = max(float(r["quantity"] or 1), 1.0) if r["type"] == "purchase" else 1.0
        w = AFFINITY_WEIGHTS[r["type"]] * qty
        if r["category"]:
            c = cats.setdefault(r["category"], {"score": 0.0, "purchased": 0.0, "viewed": 0.0})
            c["score"] += w
            c["purchased" if r["type"] == "purchase" else "viewed"] += qty
        p = prods.setdefault(key, {"score": 0.0, "name": r["name"], "category": r["category"]})
        p["score"] += w
        if (
            r["type"] in last
            and key not in seen[r["type"]]
            and len(last[r["type"]]) < LAST_PRODUCTS
        ):
            seen[r["type"]].add(key)
            last[r["type"]].append(
                {
                    "product_id": key,
                    "name": r["name"],
                    "category": r["category"],
                    "at": r["occurred_at"],
                }
            )
    cat_total = sum(c["score"] for c in cats.values()) or 1.0
    prod_total = sum(p["score"] for p in prods.values()) or 1.0
    top_cats = sorted(cats.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:TOP_CATEGORIES]
    top_prods = sorted(prods.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:TOP_PRODUCTS]
    return {
        "categories": [
            {
                "category": name,
                "score": round(c["score"] / cat_total, 3),
                "purchased": c["purchased"],
                "viewed": c["viewed"],
            }
            for name, c in top_cats
        ],
        "products": [
            {
                "product_id": key,
                "name": p["name"],
                "category": p["category"],
                "score": round(p["score"] / prod_total, 3),
            }
            for key, p in top_prods
        ],
        "last_viewed": last["product_view"],
        "last_bought": last["purchase"],
    }


def _predictions(rows: list[asyncpg.Record]) -> dict[str, Any]:
    preds = [
        {
            "kind": r["kind"],
            "value": r["value"],
            "band": r["band"],
            "details": r["details"],
            "as_of": r["as_of"],
            "model": (
                {"id": str(r["model_version_id"]), "version": r["model_version"]}
                if r["model_version_id"]
                else None
            ),
        }
        for r in rows
    ]
    by_kind = {p["kind"]: p for p in preds}
    seg = by_kind.get("segment")
    recs = by_kind.get("recommendations")
    return {
        # No rows yet (the brand was never scored): say so rather than imply "no risk".
        "predictions_available": bool(preds),
        "predictions": [p for p in preds if p["kind"] not in ("segment", "recommendations")],
        "segment": (
            {"name": seg["band"], "value": seg["value"], "details": seg["details"]} if seg else None
        ),
        "recommendations": (recs["details"] or {}).get("items", []) if recs else [],
    }


async def build(conn: asyncpg.Connection, brand_id: UUID, profile_id: UUID) -> dict[str, Any]:
    """The 360 straight from Postgres. A merged id answers `{"merged_into": survivor}`.
    Unknown ids raise NotFound."""
    p = await conn.fetchrow(PROFILE, brand_id, profile_id)
    if p is None:
        raise NotFound("no such profile")
    if p["merged_into"] is not None:
        live = await survivors(conn, brand_id, [profile_id])
        return {"merged_into": str(live.get(profile_id, p["merged_into"]))}
    idents = await conn.fetch(IDENTIFIERS, brand_id, profile_id)
    items = await conn.fetch(ITEM_ROWS, brand_id, profile_id, AFFINITY_EVENTS)
    preds = await conn.fetch(PREDICTIONS, brand_id, profile_id)
    journey = await conn.fetchrow(JOURNEY, brand_id, profile_id)
    absorbed = [r["id"] for r in await conn.fetch(ABSORBED, brand_id, profile_id)]
    merges = await conn.fetch(
        MERGES_OF, brand_id, [profile_id, *absorbed], None, None, MERGES_IN_360
    )
    aff = _affinity(items)
    return {
        # "id" first: a cached body is told apart from a redirect by its first bytes.
        "id": str(p["id"]),
        "name": p["name_norm"],
        "city": p["city"],
        "country": p["country"],
        "created_at": p["created_at"],
        "updated_at": p["updated_at"],
        "first_seen": p["first_seen"],
        "last_seen": p["last_seen"],
        "channels": list(p["channels"]),
        "event_count": p["event_count"],
        "profile_strength": p["profile_strength"],
        "identifiers": [
            {
                "kind": r["kind"],
                "value": r["masked"],
                "masked": True,
                "status": r["status"],
                "source": r["source"],
                "first_seen": r["first_seen"],
                "last_seen": r["last_seen"],
            }
            for r in idents
        ],
        "orders": _orders(p),
        "affinity": {"categories": aff["categories"], "products": aff["products"]},
        "last_viewed": aff["last_viewed"],
        "last_bought": aff["last_bought"],
        **_predictions(preds),
        "journey": dict(journey) if journey else None,
        "merges": [_merge_row(r) for r in merges],
        "merged_profiles": [str(x) for x in absorbed],
        "consent": p["consent"],
        "household": (
            {"id": str(p["household_id"]), "members": p["household_size"]}
            if p["household_id"]
            else None
        ),
        "tags": list(p["tags"]),
        "version": p["version"],
    }


def _dumps(view: dict[str, Any]) -> bytes:
    return orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS, default=str)


async def get(rt: Any, brand_id: UUID, profile_id: UUID) -> bytes:
    """The 360 as JSON bytes: from Redis when cached, else built and cached (race-free)."""
    key = cache_key(brand_id, profile_id)
    token = _PLACEHOLDER + secrets.token_bytes(8)
    planted = False
    try:
        found = await rt.redis.set(key, token, nx=True, px=FILL_TTL_MS, get=True)
        if found is not None and not found.startswith(_PLACEHOLDER):
            return bytes(found)
        planted = found is None
    except (RedisError, OSError) as exc:
        # The cache is an optimisation: Postgres answers when Redis cannot.
        _log.warning("360 cache unavailable", error=type(exc).__name__)
    async with rt.pool.acquire() as conn:
        try:
            body = _dumps(await build(conn, brand_id, profile_id))
        except NotFound:
            if planted:
                await _forget(rt, key, token)
            raise
    if planted:
        try:
            await rt.redis.eval(FILL_SCRIPT, 1, key, token, body, CACHE_TTL_S)
        except (RedisError, OSError) as exc:
            _log.warning("360 cache fill failed", error=type(exc).__name__)
    return body


FILL_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
    return 1
end
return 0"""

FORGET_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0"""


async def _forget(rt: Any, key: str, token: bytes) -> None:
    # On failure the placeholder expires on its own within FILL_TTL_MS.
    with contextlib.suppress(RedisError, OSError):
        await rt.redis.eval(FORGET_SCRIPT, 1, key, token)


def merged_into(body: bytes) -> str | None:
    """The survivor's id when `body` is a merged profile's redirect, else None."""
    if body.startswith(b'{"merged_into"'):
        return str(orjson.loads(body)["merged_into"])
    return None


async def reveal(conn: asyncpg.Connection, crypto: Any, brand_id: UUID, profile_id: UUID) -> dict:
    """Decrypted identifiers and traits of a live profile (callers check `pii:read` and audit)."""
    rows = await conn.fetch(IDENTIFIER_VALUES, brand_id, profile_id)
    traits_enc = await conn.fetchval(TRAITS, brand_id, profile_id)
    return {
        "identifiers": [
            {
                "kind": r["kind"],
                "value": crypto.decrypt_str(r["value_enc"]),
                "masked": False,
                "status": r["status"],
                "source": r["source"],
                "first_seen": r["first_seen"],
                "last_seen": r["last_seen"],
            }
            for r in rows
        ],
        "traits": orjson.loads(crypto.decrypt(traits_enc)) if traits_enc else {},
    }


async def audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    actor: str,
    action: str,
    subject: str | None,
    details: dict[str, Any],
    request_id: str | None = None,
) -> None:
    """One audit_log row: who (key id), did what (`pii.read`, `privacy.delete`...), to what."""
    await conn.execute(AUDIT, brand_id, actor, action, subject, details, request_id)


async def merges_page(
    conn: asyncpg.Connection,
    brand_id: UUID,
    profile_id: UUID,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[dict[str, Any]]:
    """Merge history of a live profile and everything merged into it, newest first."""
    absorbed = [r["id"] for r in await conn.fetch(ABSORBED, brand_id, profile_id)]
    rows = await conn.fetch(
        MERGES_OF,
        brand_id,
        [profile_id, *absorbed],
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_merge_row(r) for r in rows]
