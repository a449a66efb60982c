"""Redis Streams: at-least-once delivery with consumer groups; Postgres decides what is done.

Stream and key names carry the brand id in a hash tag so they shard on a Redis cluster.
Publishing never fails the caller: if Redis is down the inbox row is already in Postgres and
the sweeper announces it later.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from core.logging import get_logger
from core.redis import brand_key

RAW = "events.raw"
RESOLVED = "events.resolved"
DEAD = "events.dead"
MERGED = "profiles.merged"
GROUP = "workers"
# Streams are trimmed approximately; entries past this are long acknowledged (the sweeper
# re-announces anything the trim could have dropped before processing).
MAXLEN = 200_000

_log = get_logger("cbrain.streams")


def stream(brand_id: UUID | str, name: str) -> str:
    return brand_key(str(brand_id), name)


async def publish(
    redis: aioredis.Redis, brand_id: UUID | str, name: str, fields: dict[str, Any]
) -> bool:
    """XADD; returns False (and logs) instead of raising when Redis is unavailable."""
    try:
        await redis.xadd(
            stream(brand_id, name),
            {k: str(v) for k, v in fields.items()},
            maxlen=MAXLEN,
            approximate=True,
        )
        return True
    except (RedisError, OSError) as exc:
        _log.warning("stream publish failed", stream=name, error=type(exc).__name__)
        return False


async def announce_raw(redis: aioredis.Redis, brand_id: UUID | str, raw_ids: list[int]) -> bool:
    if not raw_ids:
        return True
    return await publish(redis, brand_id, RAW, {"ids": ",".join(map(str, raw_ids))})


async def ensure_group(redis: aioredis.Redis, key: str, group: str = GROUP) -> None:
    try:
        await redis.xgroup_create(key, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
