"""redis.asyncio client for Valkey/Redis: cache, streams, rate limits."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, socket_timeout: float = 2.0) -> aioredis.Redis:
    # Short timeouts: Redis is a buffer and a cache; when it is down, callers degrade
    # (the inbox keeps accepting) instead of hanging.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        health_check_interval=15,
        decode_responses=False,
    )


def brand_key(brand_id: str, *parts: str) -> str:
    """Keys are named per brand (hash tag) so they shard on a Redis cluster."""
    return "cb:{" + str(brand_id) + "}:" + ":".join(parts)
