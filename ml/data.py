"""Load a brand's history from Postgres as the frames `ml/` expects (see docs/ml.md).

Everything streams through `COPY ... TO STDOUT (FORMAT csv)` into memory and is parsed by
pandas' C reader: at millions of rows this is several times faster than fetching records.
Only live profiles are read (merges move events to the survivor, so nothing is lost).
"""

from __future__ import annotations

import io
from typing import Any
from uuid import UUID

import pandas as pd

_EVENTS = """
SELECT e.profile_id, e.occurred_at, e.type, e.source, e.total::float8 AS total, e.order_id
FROM events e
JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id AND p.merged_into IS NULL
WHERE e.brand_id = $1 AND e.occurred_at < $2
"""

_LINES = """
SELECT e.profile_id, e.occurred_at, e.order_id,
       coalesce(it->>'product_id', it->>'sku') AS product_id,
       coalesce(it->>'category', 'other') AS category,
       coalesce((it->>'quantity')::float8, 1) AS quantity,
       coalesce((it->>'price')::float8, 0) * coalesce((it->>'quantity')::float8, 1) AS value
FROM events e
JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id AND p.merged_into IS NULL
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.properties->'items') = 'array' THEN e.properties->'items'
         ELSE '[]'::jsonb END) AS it
WHERE e.brand_id = $1 AND e.type = 'purchase' AND e.occurred_at < $2
  AND coalesce(it->>'product_id', it->>'sku') IS NOT NULL
"""

# The product catalogue as seen in purchases and views: last name/category/price per product.
_PRODUCTS = """
SELECT DISTINCT ON (coalesce(it->>'product_id', it->>'sku'))
       coalesce(it->>'product_id', it->>'sku') AS product_id,
       it->>'sku' AS sku, it->>'name' AS name, it->>'category' AS category,
       (it->>'price')::float8 AS price, e.occurred_at
FROM events e
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.properties->'items') = 'array' THEN e.properties->'items'
         ELSE '[]'::jsonb END) AS it
WHERE e.brand_id = $1 AND e.occurred_at < $2
  AND coalesce(it->>'product_id', it->>'sku') IS NOT NULL
ORDER BY coalesce(it->>'product_id', it->>'sku'), e.occurred_at DESC
"""

# created_at = first activity: profiles created by a backfill carry the import time.
_PROFILES = """
SELECT id AS profile_id, coalesce(least(first_seen, created_at), created_at) AS created_at,
       profile_strength
FROM profiles WHERE brand_id = $1 AND merged_into IS NULL
"""


async def _copy(conn: Any, query: str, *args: Any, dtype: dict[str, Any]) -> pd.DataFrame:
    buf = io.BytesIO()
    await conn.copy_from_query(query, *args, output=buf, format="csv", header=True)
    buf.seek(0)
    times = [c for c in ("occurred_at", "created_at") if c in dtype]
    df = pd.read_csv(buf, dtype={k: v for k, v in dtype.items() if k not in times})
    for c in times:
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df


def _end(as_of: pd.Timestamp | None) -> pd.Timestamp:
    if as_of is None:
        return pd.Timestamp.now(tz="UTC")
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


async def load_events(pool: Any, brand_id: UUID, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """[profile_id, occurred_at, type, source, total, order_id] for events before ``as_of``."""
    async with pool.acquire() as conn:
        return await _copy(
            conn,
            _EVENTS,
            brand_id,
            _end(as_of).to_pydatetime(),
            dtype={
                "profile_id": str,
                "occurred_at": None,
                "type": "category",
                "source": "category",
                "total": float,
                "order_id": str,
            },
        )


async def load_lines(pool: Any, brand_id: UUID, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Purchase line items before ``as_of``: profile_id, occurred_at, order_id, product_id,
    category, quantity, value (price x quantity)."""
    async with pool.acquire() as conn:
        return await _copy(
            conn,
            _LINES,
            brand_id,
            _end(as_of).to_pydatetime(),
            dtype={
                "profile_id": str,
                "occurred_at": None,
                "order_id": str,
                "product_id": str,
                "category": str,
                "quantity": float,
                "value": float,
            },
        )


async def load_products(
    pool: Any, brand_id: UUID, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """product_id, sku, name, category, price (the last seen), from event items."""
    async with pool.acquire() as conn:
        df = await _copy(
            conn,
            _PRODUCTS,
            brand_id,
            _end(as_of).to_pydatetime(),
            dtype={
                "product_id": str,
                "sku": str,
                "name": str,
                "category": str,
                "price": float,
                "occurred_at": None,
            },
        )
    return df.drop(columns=["occurred_at"])


async def load_profiles(pool: Any, brand_id: UUID) -> pd.DataFrame:
    """Live profiles: profile_id, created_at (first activity), profile_strength."""
    async with pool.acquire() as conn:
        return await _copy(
            conn,
            _PROFILES,
            brand_id,
            dtype={"profile_id": str, "created_at": None, "profile_strength": float},
        )
