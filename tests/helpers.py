"""Small test helpers: waiting on a condition with a deadline (never a blind sleep), signing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    cond: Callable[[], Awaitable[Any]], timeout: float = 30.0, every: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(every)


def shopify_sig(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def event(event_id: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "source": "api",
        "type": "purchase",
        "occurred_at": "2025-05-01T10:00:00Z",
        "identifiers": {"email": f"{event_id}@example-shop.co.uk"},
        "traits": {"first_name": "Ada", "last_name": "Lovelace"},
        "properties": {
            "order_id": event_id,
            "total": 12.5,
            "currency": "GBP",
            "items": [{"product_id": "p1", "price": 12.5, "quantity": 1}],
        },
    }
    base.update(over)
    return base


async def table_text(rt: Any, brand_id: Any, table: str) -> str:
    """Every row of a brand in a table, as JSON text (for plaintext-PII scans)."""
    rows = await rt.pool.fetch(
        f"SELECT row_to_json(t)::text AS j FROM {table} t WHERE brand_id = $1", brand_id
    )
    return "\n".join(r["j"] for r in rows)
