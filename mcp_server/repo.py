"""All SQL of the MCP tools. Every statement filters on brand_id ($1) and is bounded by a
LIMIT or by aggregation; values are always parameters. Analytics statements that differ only
in a grouping expression are assembled from the whitelisted fragments below (never from
input text)."""

from __future__ import annotations

from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from mcp_server.repo_analytics import scan

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# --- customers ------------------------------------------------------------------------------
# The live owner of an identifier (a merged profile's identifiers point at the survivor, and
# merges point straight at the final survivor), in one round trip.
ID_OWNER = """
SELECT coalesce(p.merged_into, p.id) AS profile_id, i.status
FROM profile_identifiers i JOIN profiles p ON p.brand_id = i.brand_id AND p.id = i.profile_id
WHERE i.brand_id = $1 AND i.kind = $2 AND i.hash = $3"""
LIVE_ID = "SELECT coalesce(merged_into, id) FROM profiles WHERE brand_id = $1 AND id = $2"
# Names are indexed in profile_directory (live profiles only, sql/0010).
NAME_EXACT = """
SELECT p.id FROM profile_directory d
JOIN profiles p ON p.brand_id = d.brand_id AND p.id = d.profile_id
WHERE d.brand_id = $1 AND d.name_norm = $2 AND p.merged_into IS NULL
ORDER BY p.last_seen DESC LIMIT $3"""
NAME_FUZZY = """
SELECT p.id FROM profile_directory d
JOIN profiles p ON p.brand_id = d.brand_id AND p.id = d.profile_id
WHERE d.brand_id = $1 AND d.name_norm % $2 AND p.merged_into IS NULL
ORDER BY similarity(d.name_norm, $2) DESC, p.last_seen DESC LIMIT $3"""
PROFILES = """
SELECT id, first_seen, last_seen, city, country, event_count, order_count, total_spent,
       refund_total, first_order_at, last_order_at, channels, profile_strength, household_id,
       tags, traits_enc,
       EXISTS (SELECT 1 FROM profile_embeddings e
               WHERE e.brand_id = profiles.brand_id AND e.profile_id = profiles.id)
           AS has_embedding
FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) LIMIT 500"""
PREDICTIONS_OF = """
SELECT profile_id, kind, value, band, details, as_of FROM predictions
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) LIMIT 2000"""
# Everything the per-customer tools show, in one round trip (latency is round trips: each
# costs more than the rows it returns). Arrays of records decode as tuples, in column order.
CUSTOMER = """
SELECT p.id, p.first_seen, p.last_seen, p.city, p.country, p.order_count, p.total_spent,
       p.refund_total, p.first_order_at, p.last_order_at, p.channels, p.household_id,
       p.traits_enc,
       ARRAY(SELECT ROW(i.kind, i.masked, i.value_enc, i.status) FROM profile_identifiers i
             WHERE i.brand_id = $1 AND i.profile_id = p.id
             ORDER BY CASE i.kind WHEN 'email' THEN 0 WHEN 'phone' THEN 1 ELSE 2 END,
                      i.last_seen DESC LIMIT 10) AS identifiers,
       ARRAY(SELECT ROW(x.kind, x.value, x.band, x.details, x.as_of) FROM predictions x
             WHERE x.brand_id = $1 AND x.profile_id = p.id) AS predictions,
       ARRAY(SELECT ROW(e.type, e.source, e.occurred_at, e.total, e.store_id,
                        e.properties -> 'items', e.content_enc) FROM events e
             WHERE e.brand_id = $1 AND e.profile_id = p.id
             ORDER BY e.occurred_at DESC LIMIT $3) AS events,
       ARRAY(SELECT ROW(pr.product_id, pr.name, pr.category, pr.price) FROM products pr
             WHERE pr.brand_id = $1 AND pr.product_id IN (
                 SELECT jsonb_array_elements(r.details -> 'items') ->> 'product_id'
                 FROM predictions r WHERE r.brand_id = $1 AND r.profile_id = p.id
                   AND r.kind = 'recommendations' AND jsonb_typeof(r.details -> 'items') = 'array')
             LIMIT 50) AS rec_products,
       (SELECT j.stage FROM journeys j WHERE j.brand_id = $1 AND j.profile_id = p.id) AS stage,
       (SELECT true FROM predictions c WHERE c.brand_id = $1 AND c.kind = 'churn'
        ORDER BY c.value DESC LIMIT 1) IS NOT NULL AS churn_scored,
       (SELECT true FROM predictions c WHERE c.brand_id = $1 AND c.kind = 'recommendations'
        ORDER BY c.value DESC LIMIT 1) IS NOT NULL AS recs_scored,
       (SELECT ROW(m.version, m.metrics) FROM model_versions m
        WHERE m.brand_id = $1 AND m.kind = 'churn' AND m.status = 'active') AS churn_model
FROM profiles p WHERE p.brand_id = $1 AND p.id = $2"""
BOUGHT_PRODUCTS = """
SELECT DISTINCT i ->> 'product_id' AS product_id
FROM (SELECT properties -> 'items' AS items FROM events
      WHERE brand_id = $1 AND profile_id = $2 AND type = 'purchase'
      ORDER BY occurred_at DESC LIMIT 500) e
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.items) = 'array' THEN e.items ELSE '[]'::jsonb END) AS i
LIMIT 2000"""
CONTACTS = """
SELECT DISTINCT ON (profile_id) profile_id, kind, masked, value_enc FROM profile_identifiers
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) AND kind IN ('email', 'phone')
  AND status <> 'invalid'
ORDER BY profile_id, kind, last_seen DESC LIMIT 1000"""
TRAITS = (
    "SELECT id, traits_enc FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[]) LIMIT 1000"
)
AUDIT = """
INSERT INTO audit_log (brand_id, actor, action, subject, details)
SELECT $1, $2, $3, s, $5 FROM unnest($4::text[]) AS s"""


async def owner_of(conn: Conn, brand_id: UUID, kind: str, digest: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(ID_OWNER, brand_id, kind, digest)


async def live_id(conn: Conn, brand_id: UUID, profile_id: UUID) -> UUID | None:
    return await conn.fetchval(LIVE_ID, brand_id, profile_id)


async def by_name(conn: Conn, brand_id: UUID, name: str, limit: int) -> list[UUID]:
    rows = await conn.fetch(NAME_EXACT, brand_id, name, limit)
    if not rows:
        rows = await conn.fetch(NAME_FUZZY, brand_id, name, limit)
    return [r["id"] for r in rows]


IDENTIFIER_FIELDS = ("kind", "masked", "value_enc", "status")
PREDICTION_FIELDS = ("kind", "value", "band", "details", "as_of")
EVENT_FIELDS = ("type", "source", "occurred_at", "total", "store_id", "items", "content_enc")
PRODUCT_FIELDS = ("product_id", "name", "category", "price")


def records(rows: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """An array-of-records column of CUSTOMER as dicts."""
    return [dict(zip(fields, r, strict=True)) for r in rows or ()]


async def customer(
    conn: Conn, brand_id: UUID, profile_id: UUID, events: int = 0
) -> asyncpg.Record | None:
    """One profile with its identifiers, predictions, latest `events`, recommended products'
    catalogue rows, journey stage, and whether the brand has churn / recommendation scores."""
    return await conn.fetchrow(CUSTOMER, brand_id, profile_id, events)


async def profiles(conn: Conn, brand_id: UUID, ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(PROFILES, brand_id, ids)


async def predictions_of(conn: Conn, brand_id: UUID, ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(PREDICTIONS_OF, brand_id, ids)


async def bought_products(conn: Conn, brand_id: UUID, profile_id: UUID) -> set[str]:
    return {r["product_id"] for r in await conn.fetch(BOUGHT_PRODUCTS, brand_id, profile_id)}


async def contacts(conn: Conn, brand_id: UUID, ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(CONTACTS, brand_id, ids)


async def traits(conn: Conn, brand_id: UUID, ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(TRAITS, brand_id, ids)


async def audit(
    conn: Conn, brand_id: UUID, actor: str, action: str, subjects: list[str], details: dict
) -> None:
    await conn.execute(AUDIT, brand_id, actor, action, subjects, details)


# --- predictions ----------------------------------------------------------------------------
# "Is there any row of this kind?" as an ordered LIMIT 1, so the planner walks the
# (brand_id, kind, value) index: an EXISTS may become a sequential scan that reads every other
# kind's rows first when one brand fills the table.
HAS_KIND = """
SELECT (SELECT true FROM predictions WHERE brand_id = $1 AND kind = $2
        ORDER BY value DESC LIMIT 1) IS NOT NULL"""
ACTIVE_MODEL = """
SELECT kind, version, metrics FROM model_versions
WHERE brand_id = $1 AND kind = $2 AND status = 'active' LIMIT 1"""
SEGMENT_NAMES = """
WITH RECURSIVE b AS (
    (SELECT band FROM predictions WHERE brand_id = $1 AND kind = 'segment' AND band IS NOT NULL
     ORDER BY band LIMIT 1)
    UNION ALL
    SELECT (SELECT p.band FROM predictions p
            WHERE p.brand_id = $1 AND p.kind = 'segment' AND p.band > b.band
            ORDER BY p.band LIMIT 1)
    FROM b WHERE b.band IS NOT NULL
)
SELECT band FROM b WHERE band IS NOT NULL LIMIT 100"""
PRODUCT_INFO = """
SELECT product_id, name, category, price FROM products
WHERE brand_id = $1 AND product_id = ANY($2::text[]) LIMIT 500"""


async def has_kind(conn: Conn, brand_id: UUID, kind: str) -> bool:
    return bool(await conn.fetchval(HAS_KIND, brand_id, kind))


async def active_model(conn: Conn, brand_id: UUID, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(ACTIVE_MODEL, brand_id, kind)


async def segment_names(conn: Conn, brand_id: UUID) -> list[str]:
    return [r["band"] for r in await conn.fetch(SEGMENT_NAMES, brand_id)]


async def product_info(conn: Conn, brand_id: UUID, ids: list[str]) -> dict[str, asyncpg.Record]:
    return {r["product_id"]: r for r in await conn.fetch(PRODUCT_INFO, brand_id, ids)}


# --- similar customers ----------------------------------------------------------------------
EMBEDDING_OF = "SELECT embedding FROM profile_embeddings WHERE brand_id = $1 AND profile_id = $2"
# The HNSW index is shared by all brands: iterative scans keep reading it until enough rows
# of this brand are found (pgvector >= 0.8), instead of filtering one ef_search window.
NEAREST_SETUP = ("SET LOCAL hnsw.ef_search = 100", "SET LOCAL hnsw.iterative_scan = relaxed_order")
NEAREST = """
SELECT e.profile_id AS id, 1 - (e.embedding <=> $2) AS similarity
FROM profile_embeddings e
JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id
WHERE e.brand_id = $1 AND p.merged_into IS NULL AND e.profile_id <> $3
ORDER BY e.embedding <=> $2 LIMIT $4"""
NEAREST_BEHAVIOUR = """
SELECT id, 1 / (1 + sqrt(
        power(ln(1 + order_count) - ln(1 + $2::float8), 2)
      + power(ln(1 + total_spent::float8) - ln(1 + $3::float8), 2)
      + power((extract(epoch FROM ($5::timestamptz - last_order_at)) / 86400 - $4::float8) / 90, 2)
    )) AS similarity
FROM profiles
WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0 AND id <> $6
ORDER BY similarity DESC LIMIT $7"""
TOP_CATEGORY = """
SELECT x.pid, c.category FROM unnest($2::uuid[]) AS x(pid)
CROSS JOIN LATERAL (
    SELECT i ->> 'category' AS category, count(*) AS n
    FROM (SELECT properties -> 'items' AS items FROM events
          WHERE brand_id = $1 AND profile_id = x.pid AND type = 'purchase'
          ORDER BY occurred_at DESC LIMIT 50) e
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(e.items) = 'array' THEN e.items ELSE '[]'::jsonb END) AS i
    WHERE i ->> 'category' IS NOT NULL
    GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1) c"""


async def nearest(
    conn: asyncpg.Connection, brand_id: UUID, profile_id: UUID, limit: int
) -> list[asyncpg.Record] | None:
    """Nearest live profiles by cosine distance; None when this profile has no embedding."""
    emb = await conn.fetchval(EMBEDDING_OF, brand_id, profile_id)
    if emb is None:
        return None
    async with conn.transaction():
        for stmt in NEAREST_SETUP:
            try:
                async with conn.transaction():  # savepoint: an older pgvector lacks the knob
                    await conn.execute(stmt)
            except asyncpg.PostgresError:
                pass
        return await conn.fetch(NEAREST, brand_id, emb, profile_id, limit)


async def nearest_by_behaviour(
    conn: Conn, brand_id: UUID, p: asyncpg.Record, now: Any, limit: int
) -> list[asyncpg.Record]:
    recency = (now - p["last_order_at"]).total_seconds() / 86400 if p["last_order_at"] else 365.0
    return await conn.fetch(
        NEAREST_BEHAVIOUR,
        brand_id,
        float(p["order_count"]),
        float(p["total_spent"]),
        recency,
        now,
        p["id"],
        limit,
    )


async def top_categories(conn: Conn, brand_id: UUID, ids: list[UUID]) -> dict[UUID, str]:
    return {r["pid"]: r["category"] for r in await conn.fetch(TOP_CATEGORY, brand_id, ids)}


# --- churn, segments, recommendations, campaigns -------------------------------------------
_PRED_JOINS = """
LEFT JOIN predictions l ON l.brand_id = c.brand_id AND l.profile_id = c.profile_id AND l.kind = 'ltv'
LEFT JOIN predictions s ON s.brand_id = c.brand_id AND s.profile_id = c.profile_id
                       AND s.kind = 'segment'"""
_TOP_CHURN = (
    "SELECT c.profile_id, c.value AS churn, c.band, c.as_of, l.value AS ltv, s.band AS segment "
    "FROM predictions c"
    + _PRED_JOINS
    + """
WHERE c.brand_id = $1 AND c.kind = 'churn' AND c.value IS NOT NULL
  AND ($2::text IS NULL OR s.band = $2)
ORDER BY {order} LIMIT $3"""
)
# Probability order follows the (brand_id, kind, value DESC) index; value at risk (churn x
# LTV) sorts every scored customer (seconds at a million: the list is cached and warmed).
TOP_CHURN = {
    "probability": _TOP_CHURN.format(order="c.value DESC"),
    "value_at_risk": _TOP_CHURN.format(
        order="c.value * coalesce(l.value, 0) DESC, c.value DESC, c.profile_id"
    ),
}
# One pass over the brand's segment, churn and LTV rows, pivoted per customer (joining the
# prediction kinds to each other made the planner look up a million rows one by one), then
# sums per (segment, cluster) without a sort: averages and the commonest cluster are derived
# in Python (an ordered-set aggregate such as mode() sorted a million wide rows to disk).
# MATERIALIZED: otherwise each parallel worker recomputed the whole pivot for its hash table.
SEGMENT_STATS = """
WITH pr AS MATERIALIZED (
    SELECT profile_id, max(band) FILTER (WHERE kind = 'segment') AS segment,
           max(details ->> 'cluster_name') FILTER (WHERE kind = 'segment') AS cluster_name,
           max(value) FILTER (WHERE kind = 'churn') AS churn,
           max(value) FILTER (WHERE kind = 'ltv') AS ltv,
           max(as_of) FILTER (WHERE kind = 'segment') AS as_of
    FROM predictions WHERE brand_id = $1 AND kind IN ('segment', 'churn', 'ltv')
    GROUP BY profile_id
)
SELECT pr.segment, pr.cluster_name, count(*) AS customers,
       sum(pr.ltv) AS ltv_sum, count(pr.ltv) AS ltv_n, sum(pr.churn) AS churn_sum,
       count(pr.churn) AS churn_scored, sum(pr.churn * coalesce(pr.ltv, 0)) AS value_at_risk,
       count(*) FILTER (WHERE pr.churn > 0.66) AS high,
       count(*) FILTER (WHERE pr.churn >= 0.33 AND pr.churn <= 0.66) AS medium,
       sum(p.order_count) AS orders, sum(p.total_spent)::float8 AS revenue,
       count(*) FILTER (WHERE p.order_count > 0) AS buyers,
       count(*) FILTER (WHERE p.order_count >= 2) AS repeat_buyers,
       sum(extract(epoch FROM ($2::timestamptz - p.last_order_at)) / 86400)::float8 AS recency_sum,
       count(p.last_order_at) AS recency_n,
       count(*) FILTER (WHERE cardinality(p.channels) > 1) AS multichannel, max(pr.as_of) AS as_of
FROM pr
JOIN profiles p ON p.brand_id = $1 AND p.id = pr.profile_id AND p.merged_into IS NULL
WHERE pr.segment IS NOT NULL
GROUP BY 1, 2 LIMIT 5000"""
REC_AUDIENCE = """
SELECT p.profile_id, (i ->> 'score')::float8 AS score, i ->> 'reason' AS reason
FROM predictions p
CROSS JOIN LATERAL jsonb_array_elements(p.details -> 'items') AS i
WHERE p.brand_id = $1 AND p.kind = 'recommendations'
  AND jsonb_typeof(p.details -> 'items') = 'array'
  AND p.details -> 'items' @> jsonb_build_array(jsonb_build_object('product_id', $2::text))
  AND i ->> 'product_id' = $2
ORDER BY score DESC NULLS LAST, p.profile_id LIMIT $3"""


def _items_hold(alias: str, product: str) -> str:
    """`alias`'s items include `product`: exactly the expression of the events' GIN index of
    item product ids (sql/0008), so the planner can use it."""
    return (
        f"jsonb_path_query_array({alias}properties, '$.items[*].product_id')"
        f" @> jsonb_build_array({product})"
    )


# Customers who bought what this product's buyers also bought, but never this product.
CO_PURCHASE_AUDIENCE = f"""
WITH x AS (
    SELECT properties -> 'items' AS items FROM events
    WHERE brand_id = $1 AND type = 'purchase'
      AND {_items_hold("", "$2::text")}
    ORDER BY occurred_at DESC LIMIT 5000
), partners AS (
    SELECT i ->> 'product_id' AS pid, count(*) AS n FROM x
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(x.items) = 'array' THEN x.items ELSE '[]'::jsonb END) AS i
    WHERE i ->> 'product_id' <> $2
    GROUP BY 1 ORDER BY n DESC, 1 LIMIT 5
), cand AS (
    SELECT e.profile_id, count(*) AS n, max(e.occurred_at) AS last_at,
           array_agg(DISTINCT pp.pid) AS via
    FROM partners pp
    JOIN events e ON e.brand_id = $1 AND e.type = 'purchase'
     AND {_items_hold("e.", "pp.pid")}
    GROUP BY e.profile_id
)
SELECT c.profile_id, c.n, c.last_at, c.via FROM cand c
WHERE NOT EXISTS (
    SELECT 1 FROM events o WHERE o.brand_id = $1 AND o.profile_id = c.profile_id
      AND o.type = 'purchase'
      AND {_items_hold("o.", "$2::text")})
ORDER BY c.n DESC, c.last_at DESC, c.profile_id LIMIT $3"""
PRODUCT_SEEN = f"""
SELECT i ->> 'name' AS name, i ->> 'category' AS category
FROM (SELECT properties -> 'items' AS items FROM events
      WHERE brand_id = $1 AND type IN ('purchase', 'cart_add', 'product_view')
        AND {_items_hold("", "$2::text")}
      LIMIT 1) e
CROSS JOIN LATERAL jsonb_array_elements(e.items) AS i
WHERE i ->> 'product_id' = $2 LIMIT 1"""
POPULAR = """
SELECT i ->> 'product_id' AS product_id, max(i ->> 'name') AS name,
       max(i ->> 'category') AS category, count(DISTINCT e.profile_id) AS buyers
FROM events e
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.properties -> 'items') = 'array'
         THEN e.properties -> 'items' ELSE '[]'::jsonb END) AS i
WHERE e.brand_id = $1 AND e.type = 'purchase' AND e.occurred_at >= $2
  AND i ->> 'product_id' IS NOT NULL
GROUP BY 1 ORDER BY buyers DESC, 1 LIMIT 100"""


async def top_churn(
    conn: Conn, brand_id: UUID, segment: str | None, rank_by: str, limit: int
) -> list[asyncpg.Record]:
    if rank_by == "value_at_risk":  # sorts every scored customer
        return await scan(conn, TOP_CHURN[rank_by], brand_id, segment, limit)
    return await conn.fetch(TOP_CHURN[rank_by], brand_id, segment, limit)


async def segment_stats(conn: Conn, brand_id: UUID, now: Any) -> list[asyncpg.Record]:
    return await scan(conn, SEGMENT_STATS, brand_id, now)


async def rec_audience(conn: Conn, brand_id: UUID, product_id: str, limit: int) -> list[Any]:
    return await scan(conn, REC_AUDIENCE, brand_id, product_id, limit)


async def co_purchase_audience(
    conn: Conn, brand_id: UUID, product_id: str, limit: int
) -> list[Any]:
    return await scan(conn, CO_PURCHASE_AUDIENCE, brand_id, product_id, limit)


async def product_seen(conn: Conn, brand_id: UUID, product_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(PRODUCT_SEEN, brand_id, product_id)


async def popular(conn: Conn, brand_id: UUID, since: Any) -> list[asyncpg.Record]:
    return await scan(conn, POPULAR, brand_id, since)
