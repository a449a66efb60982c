"""Profile lists, exact lookups and timelines: the SQL and keyset paging behind
GET /v1/profiles, /v1/profiles/lookup and /v1/profiles/{id}/events.

Lists page by keyset on (sort value, id), never OFFSET, so page 1,000 costs what page 1 does;
every sort key has a partial index on live profiles ending in id (sql/0003). The list query is
assembled from the constant fragments below, chosen by name; values always travel as $n.
Emails and phones are sealed at rest, so they are only ever matched exactly, by keyed hash.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.brands import Brand
from core.errors import ValidationFailed
from identity import repo

SUMMARY_COLUMNS = """
SELECT p.id, p.name_norm, p.city, p.country, p.created_at, p.first_seen, p.last_seen,
       p.order_count, p.total_spent, p.refund_total, p.channels, p.profile_strength"""
FROM_LIVE = "\nFROM profiles p\nWHERE p.brand_id = $1 AND p.merged_into IS NULL"
# Name and creation date are indexed in profile_directory (live profiles only, sql/0010), so
# those sorts and the fuzzy name filter walk it and fetch each profile by primary key.
FROM_DIRECTORY = (
    "\nFROM profile_directory d\nJOIN profiles p ON p.brand_id = d.brand_id AND p.id = d.profile_id"
    "\nWHERE d.brand_id = $1 AND p.merged_into IS NULL"
)

SORTS = {
    "last_seen": "p.last_seen",
    "total_spent": "p.total_spent",
    "order_count": "p.order_count",
    "created_at": "d.created_at",
    "name": "d.name_norm",
    # Only with q=: best fuzzy match first.
    "relevance": "similarity(d.name_norm, {q})",
}
_DIRECTORY_SORTS = ("created_at", "name", "relevance")
# Each filter fragment uses {n} for its parameter (numbered when the query is assembled).
_PRED = (
    "EXISTS (SELECT 1 FROM predictions f WHERE f.brand_id = $1 AND f.profile_id = p.id "
    "AND f.kind = '{kind}' AND {cond})"
)
FILTERS = {
    "segment": _PRED.format(kind="segment", cond="f.band = {n}"),
    "churn_band": _PRED.format(kind="churn", cond="f.band = {n}"),
    "ltv_min": _PRED.format(kind="ltv", cond="f.value >= {n}"),
    "ltv_max": _PRED.format(kind="ltv", cond="f.value <= {n}"),
    "journey_stage": (
        "EXISTS (SELECT 1 FROM journeys j WHERE j.brand_id = $1 AND j.profile_id = p.id "
        "AND j.stage = {n})"
    ),
    "channel": "p.channels @> ARRAY[{n}::text]",
    "last_seen_since": "p.last_seen >= {n}",
    "last_seen_until": "p.last_seen < {n}",
    "ids": "p.id = ANY({n}::uuid[])",
    # pg_trgm's % uses the trigram index (profile_directory_name_trgm).
    "q": "d.name_norm % {n}",
}

TIMELINE_FIRST = """
SELECT id, event_id, source, type, occurred_at, order_id, total, currency, store_id, properties,
       content_enc
FROM events WHERE brand_id = $1 AND profile_id = $2 AND ($3::text IS NULL OR type = $3)
ORDER BY occurred_at DESC, id DESC LIMIT $4"""
TIMELINE_AFTER = """
SELECT id, event_id, source, type, occurred_at, order_id, total, currency, store_id, properties,
       content_enc
FROM events WHERE brand_id = $1 AND profile_id = $2 AND ($3::text IS NULL OR type = $3)
  AND (occurred_at, id) < ($5, $6)
ORDER BY occurred_at DESC, id DESC LIMIT $4"""

PROFILE_STATE = "SELECT merged_into FROM profiles WHERE brand_id = $1 AND id = $2"

# Merged id -> its live survivor, following chains (a merge re-points older redirects at the
# new survivor, but an unmerge can leave a chain behind).
SURVIVORS = """
WITH RECURSIVE chain(start, id, depth) AS (
    SELECT p.id, p.merged_into, 1 FROM profiles p
    WHERE p.brand_id = $1 AND p.id = ANY($2::uuid[]) AND p.merged_into IS NOT NULL
    UNION ALL
    SELECT c.start, p.merged_into, c.depth + 1 FROM chain c
    JOIN profiles p ON p.brand_id = $1 AND p.id = c.id
    WHERE p.merged_into IS NOT NULL AND c.depth < 50
)
SELECT DISTINCT ON (start) start, id FROM chain ORDER BY start, depth DESC"""


def encode_cursor(*values: Any) -> str:
    """Opaque page cursor: the last row's keyset values."""
    raw = orjson.dumps([str(v) if not isinstance(v, int | float) else v for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != n:
        raise ValidationFailed(
            "cursor: not a cursor from this listing",
            details=[{"field": "cursor", "message": "invalid"}],
        )
    return values


def _typed(sort: str, value: Any) -> Any:
    """A cursor value back in its column's type."""
    try:
        if sort in ("last_seen", "created_at"):
            return datetime.fromisoformat(str(value))
        if sort == "total_spent":
            return Decimal(str(value))
        if sort == "order_count":
            return int(value)
        if sort == "relevance":
            return float(value)
        return str(value)
    except (ValueError, ArithmeticError):
        raise ValidationFailed(
            "cursor: not a cursor from this listing",
            details=[{"field": "cursor", "message": "invalid"}],
        ) from None


@dataclass
class ListQuery:
    """A validated GET /v1/profiles request."""

    filters: dict[str, Any] = field(default_factory=dict)
    sort: str = "last_seen"
    descending: bool = True
    limit: int = 50
    cursor: str | None = None


def build_list_sql(q: ListQuery) -> tuple[str, list[Any]]:
    """The list statement and its parameters ($1 is the brand)."""
    params: list[Any] = []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${len(params) + 1}"

    where = []
    for name, value in q.filters.items():
        if value is not None:
            where.append(FILTERS[name].replace("{n}", arg(value)))
    col = SORTS[q.sort]
    if q.sort == "relevance":
        col = col.replace("{q}", arg(q.filters["q"]))
    select = SUMMARY_COLUMNS + (f", {col} AS sort_value" if q.sort == "relevance" else "")
    directory = q.sort in _DIRECTORY_SORTS or q.filters.get("q") is not None
    # The tie-breaker is the id column of the table whose index gives the order.
    id_col = "d.profile_id" if q.sort in _DIRECTORY_SORTS else "p.id"
    if q.cursor:
        last_value, last_id = decode_cursor(q.cursor, 2)
        op = "<" if q.descending else ">"
        where.append(
            f"({col}, {id_col}) {op} ({arg(_typed(q.sort, last_value))}, {arg(UUID(str(last_id)))})"
        )
    direction = "DESC" if q.descending else "ASC"
    sql = (
        select
        + (FROM_DIRECTORY if directory else FROM_LIVE)
        + "".join(f"\n  AND {w}" for w in where)
        + f"\nORDER BY {col} {direction}, {id_col} {direction}\nLIMIT {arg(q.limit + 1)}"
    )
    return sql, params


def summary(r: asyncpg.Record) -> dict[str, Any]:
    """A profile as it appears in lists and lookups."""
    out = {
        "id": str(r["id"]),
        "name": r["name_norm"],
        "city": r["city"],
        "country": r["country"],
        "created_at": r["created_at"],
        "first_seen": r["first_seen"],
        "last_seen": r["last_seen"],
        "order_count": r["order_count"],
        "total_spent": float(r["total_spent"]),
        "refunds": float(r["refund_total"]),
        "channels": list(r["channels"]),
        "profile_strength": r["profile_strength"],
    }
    if "sort_value" in r:
        out["relevance"] = round(float(r["sort_value"]), 3)
    return out


_SORT_KEY = {
    "last_seen": "last_seen",
    "total_spent": "total_spent",
    "order_count": "order_count",
    "created_at": "created_at",
    "name": "name_norm",
    "relevance": "sort_value",
}


# Fuzzy search first asks for a close match (a typo or two in a full name), which keeps the
# trigram candidates few; only when that does not fill the first page does it widen to
# pg_trgm's default (partial names, short queries). The cursor remembers which one it used.
STRICT_SIMILARITY = 0.45
LOOSE_SIMILARITY = 0.3
SET_SIMILARITY = "SELECT set_config('pg_trgm.similarity_threshold', $1, true)"


async def list_page(conn: asyncpg.Connection, brand_id: UUID, q: ListQuery) -> dict[str, Any]:
    """One page of live profiles: `{"data", "pagination": {"limit", "next_cursor"}}`."""
    if "q" not in q.filters:
        sql, params = build_list_sql(q)
        return _page(q, await conn.fetch(sql, brand_id, *params), None)
    thresholds = [STRICT_SIMILARITY, LOOSE_SIMILARITY]
    if q.cursor:
        *keyset, threshold = decode_cursor(q.cursor, 3)
        thresholds = [_typed("relevance", threshold)]
        q = ListQuery(q.filters, q.sort, q.descending, q.limit, encode_cursor(*keyset))
    sql, params = build_list_sql(q)
    rows: list[asyncpg.Record] = []
    for threshold in thresholds:
        async with conn.transaction():
            await conn.execute(SET_SIMILARITY, str(threshold))
            rows = await conn.fetch(sql, brand_id, *params)
        if len(rows) > q.limit:
            break
    return _page(q, rows, threshold)


def _page(q: ListQuery, rows: list[asyncpg.Record], threshold: float | None) -> dict[str, Any]:
    page = rows[: q.limit]
    nxt = None
    if len(rows) > q.limit and page:
        last = page[-1]
        extra = () if threshold is None else (threshold,)
        nxt = encode_cursor(last[_SORT_KEY[q.sort]], last["id"], *extra)
    return {
        "data": [summary(r) for r in page],
        "pagination": {"limit": q.limit, "next_cursor": nxt},
    }


def normalize_query(text: str) -> str:
    """A free-text name query normalized as profiles.name_norm is (folded, no titles)."""
    from identity._names import normalize_name_part

    return " ".join(t for t in (normalize_name_part(w) for w in text.split()) if t)


async def owners(
    conn: asyncpg.Connection, crypto: Any, brand: Brand, identifiers: dict[str, Any]
) -> list[UUID]:
    """Live profiles owning any of the identifiers, matched exactly by keyed hash after the
    same normalization identity applies (a phone in any format, an email in any case)."""
    from identity.keys import identifier_keys
    from identity.service import IdentityConfig

    cfg = IdentityConfig.of(brand)
    keys = identifier_keys(
        crypto, identifiers, region=cfg.region, provider_rules=cfg.provider_rules
    )
    wanted = {("external" if k == "external_ids" else k) for k, v in identifiers.items() if v}
    got = {k.kind for k in keys}
    missing = sorted(w for w in wanted if w not in got)
    if missing:
        raise ValidationFailed(
            f"{missing[0]}: not a valid identifier",
            details=[{"field": m, "message": "not a valid identifier"} for m in missing],
        )
    found = await repo.lookup(conn, brand.id, [k.ref for k in keys])
    ids = sorted({r["profile_id"] for r in found})
    live = await survivors(conn, brand.id, ids)
    return sorted({live.get(i, i) for i in ids})


async def survivors(conn: asyncpg.Connection, brand_id: UUID, ids: list[UUID]) -> dict[UUID, UUID]:
    """Merged ids among `ids` -> their live survivor (live ids are left out)."""
    if not ids:
        return {}
    return {r["start"]: r["id"] for r in await conn.fetch(SURVIVORS, brand_id, ids)}


async def profile_state(conn: asyncpg.Connection, brand_id: UUID, profile_id: UUID) -> str | None:
    """None: no such profile in this brand; "live"; or the live survivor's id when merged."""
    row = await conn.fetchrow(PROFILE_STATE, brand_id, profile_id)
    if row is None:
        return None
    if row["merged_into"] is None:
        return "live"
    live = await survivors(conn, brand_id, [profile_id])
    return str(live.get(profile_id, row["merged_into"]))


async def timeline(
    conn: asyncpg.Connection,
    crypto: Any,
    brand_id: UUID,
    profile_id: UUID,
    *,
    limit: int,
    cursor: str | None,
    event_type: str | None,
    reveal: bool,
) -> dict[str, Any]:
    """A profile's events newest first, paged by (occurred_at, id); sealed free text is
    opened only when `reveal` (the caller checked pii:read and audits)."""
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(str(at)), int(last_id))
        except ValueError:
            raise ValidationFailed(
                "cursor: not a cursor from this listing",
                details=[{"field": "cursor", "message": "invalid"}],
            ) from None
        rows = await conn.fetch(TIMELINE_AFTER, brand_id, profile_id, event_type, limit + 1, *after)
    else:
        rows = await conn.fetch(TIMELINE_FIRST, brand_id, profile_id, event_type, limit + 1)
    page = rows[:limit]
    data = []
    for r in page:
        item = {
            "id": r["id"],
            "event_id": r["event_id"],
            "source": r["source"],
            "type": r["type"],
            "occurred_at": r["occurred_at"],
            "order_id": r["order_id"],
            "total": None if r["total"] is None else float(r["total"]),
            "currency": r["currency"],
            "store_id": r["store_id"],
            "properties": r["properties"],
            "has_content": r["content_enc"] is not None,
        }
        if reveal and r["content_enc"] is not None:
            item["content"] = orjson.loads(crypto.decrypt(r["content_enc"]))
        data.append(item)
    nxt = None
    if len(rows) > limit and page:
        nxt = encode_cursor(page[-1]["occurred_at"].isoformat(), page[-1]["id"])
    return {"data": data, "pagination": {"limit": limit, "next_cursor": nxt}}
