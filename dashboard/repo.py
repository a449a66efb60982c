"""The dashboard's own SQL: the overview aggregates no other package computes, integration
status, and the session key check. Every statement filters on the brand ($1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from mcp_server.repo_analytics import scan

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

PROFILE_COUNTS = """
SELECT count(*) AS live,
       count(*) FILTER (WHERE created_at >= $2) AS new_recent,
       coalesce(sum(total_spent), 0)::float8 AS revenue,
       coalesce(sum(refund_total), 0)::float8 AS refunds,
       coalesce(sum(order_count), 0) AS orders,
       count(*) FILTER (WHERE order_count > 0) AS buyers
FROM profiles WHERE brand_id = $1 AND merged_into IS NULL"""

# Events and purchase revenue per day and channel (the event's source) over the window.
EVENTS_BY_DAY = """
SELECT (date_trunc('day', occurred_at AT TIME ZONE 'UTC'))::date AS day, source,
       count(*) AS events,
       coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0)::float8 AS revenue,
       count(*) FILTER (WHERE type = 'purchase') AS orders
FROM events WHERE brand_id = $1 AND occurred_at >= $2 AND occurred_at < $3
GROUP BY 1, 2 ORDER BY 1, 2"""

IDENTITY_HEALTH = """
SELECT (SELECT count(*) FROM identity_merge_log
        WHERE brand_id = $1 AND rolled_back_at IS NULL) AS merges,
       (SELECT count(*) FROM identity_merge_log
        WHERE brand_id = $1 AND rolled_back_at IS NULL AND created_at >= $2) AS merges_recent,
       (SELECT count(*) FROM identity_merge_log
        WHERE brand_id = $1 AND rolled_back_at IS NULL AND decided_by = 'auto') AS auto_merges,
       (SELECT count(*) FROM identity_merge_log
        WHERE brand_id = $1 AND rolled_back_at IS NOT NULL) AS rollbacks,
       (SELECT count(*) FROM merge_review_queue
        WHERE brand_id = $1 AND status = 'open') AS review_open,
       (SELECT count(*) FROM profile_identifiers
        WHERE brand_id = $1 AND status = 'shared') AS shared_identifiers"""

# Churn bands by the probability itself (Low < 0.33, High > 0.66), as the MCP tools count them.
CHURN_BANDS = """
SELECT count(*) FILTER (WHERE value < 0.33) AS low,
       count(*) FILTER (WHERE value >= 0.33 AND value <= 0.66) AS medium,
       count(*) FILTER (WHERE value > 0.66) AS high
FROM predictions WHERE brand_id = $1 AND kind = 'churn' AND value IS NOT NULL"""

# Predicted 12-month value in fixed, currency-sized buckets (edges in LTV_EDGES).
LTV_EDGES = (0, 25, 50, 100, 250, 500, 1000, 2500)
LTV_BUCKETS = """
SELECT width_bucket(value, $2::float8[]) AS bucket, count(*) AS customers,
       coalesce(sum(value), 0)::float8 AS total
FROM predictions WHERE brand_id = $1 AND kind = 'ltv' AND value IS NOT NULL
GROUP BY 1 ORDER BY 1"""

SEGMENT_SIZES = """
SELECT band AS segment, count(*) AS customers FROM predictions
WHERE brand_id = $1 AND kind = 'segment' AND band IS NOT NULL
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50"""

# The newest delivery per webhook source, through (brand_id, source, received_at DESC).
LAST_DELIVERIES = """
SELECT s.source, d.received_at, d.topic, d.status, d.error
FROM unnest($2::text[]) AS s(source)
LEFT JOIN LATERAL (
    SELECT received_at, topic, status, error FROM webhook_deliveries w
    WHERE w.brand_id = $1 AND w.source = s.source ORDER BY received_at DESC LIMIT 1
) d ON true"""
DELIVERY_COUNTS = """
SELECT source, status, count(*) AS n FROM webhook_deliveries
WHERE brand_id = $1 AND received_at >= $2 GROUP BY 1, 2"""
FAILED_DELIVERIES = """
SELECT id, source, delivery_id, topic, received_at, status, error FROM webhook_deliveries
WHERE brand_id = $1 AND status = 'rejected' AND received_at >= $2
ORDER BY received_at DESC LIMIT $3"""


async def profile_counts(conn: Conn, brand_id: UUID, since: datetime) -> asyncpg.Record:
    return (await scan(conn, PROFILE_COUNTS, brand_id, since))[0]


async def events_by_day(
    conn: Conn, brand_id: UUID, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    return await scan(conn, EVENTS_BY_DAY, brand_id, start, end)


async def identity_health(conn: Conn, brand_id: UUID, since: datetime) -> asyncpg.Record:
    return (await scan(conn, IDENTITY_HEALTH, brand_id, since))[0]


async def churn_bands(conn: Conn, brand_id: UUID) -> asyncpg.Record:
    return (await scan(conn, CHURN_BANDS, brand_id))[0]


async def ltv_buckets(conn: Conn, brand_id: UUID) -> list[asyncpg.Record]:
    return await scan(conn, LTV_BUCKETS, brand_id, [float(e) for e in LTV_EDGES])


async def segment_sizes(conn: Conn, brand_id: UUID) -> list[asyncpg.Record]:
    return await scan(conn, SEGMENT_SIZES, brand_id)


async def last_deliveries(conn: Conn, brand_id: UUID, sources: list[str]) -> list[Any]:
    return await conn.fetch(LAST_DELIVERIES, brand_id, sources)


async def delivery_counts(conn: Conn, brand_id: UUID, since: datetime) -> list[Any]:
    return await conn.fetch(DELIVERY_COUNTS, brand_id, since)


async def failed_deliveries(conn: Conn, brand_id: UUID, since: datetime, limit: int) -> list[Any]:
    return await conn.fetch(FAILED_DELIVERIES, brand_id, since, limit)
