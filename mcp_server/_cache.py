"""A Redis cache for aggregate tool results, served stale while it refreshes.

Analytics over a whole brand scan up to millions of rows (seconds at a million customers),
while the answer changes slowly (events trickle in, predictions change once per scoring run).
So a result is fresh for `ttl` seconds; for STALE_S more it is still answered at once while
one background task (a Redis lock makes it one across replicas) recomputes it; after that it
is recomputed in the request. `mcp_server.warm` refreshes the usual questions ahead of time.

Only aggregates and ranked profile ids are cached, never PII: personal details are added
after the cache, per caller. A Redis outage only costs the cache. Results carry their own
`computed_at`, so a stale answer says how old it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from core.logging import get_logger
from core.redis import brand_key
from core.runtime import Runtime

M = TypeVar("M", bound=BaseModel)
_log = get_logger("cbrain.mcp")
DEFAULT_TTL_S = 300
STALE_S = 3600
LOCK_S = 600
# Set by the warm-up job: recompute and store, whatever the cache holds.
force_refresh: contextvars.ContextVar[bool] = contextvars.ContextVar("force_refresh", default=False)
_background: set[asyncio.Task[Any]] = set()


def cache_key(brand_id: Any, tool: str, args: dict[str, Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(args, option=orjson.OPT_SORT_KEYS, default=str))
    return brand_key(str(brand_id), "mcp", tool, digest.hexdigest()[:24])


async def _store(rt: Runtime, key: str, value: BaseModel, ttl: int) -> None:
    body = b'{"at":%f,"v":%s}' % (time.time(), value.model_dump_json().encode())
    try:
        await rt.redis.set(key, body, ex=ttl + STALE_S)
    except Exception:
        _log.warning("mcp cache write failed", key=key.rsplit(":", 2)[-2])


async def _refresh(rt: Runtime, key: str, compute: Callable[[], Awaitable[M]], ttl: int) -> None:
    try:
        await _store(rt, key, await compute(), ttl)
    except Exception as exc:  # the stale value stays; the next request tries again
        _log.warning("mcp cache refresh failed", error=type(exc).__name__)
    finally:
        with contextlib.suppress(Exception):  # the lock expires by itself
            await rt.redis.delete(key + ":lock")


async def _refresh_later(
    rt: Runtime, key: str, compute: Callable[[], Awaitable[M]], ttl: int
) -> None:
    """One refresh at a time per key, across replicas (the lock), in the background."""
    try:
        if not await rt.redis.set(key + ":lock", b"1", nx=True, ex=LOCK_S):
            return
    except Exception:
        return  # no Redis, no lock: the stale value is served until it expires
    task = asyncio.create_task(_refresh(rt, key, compute, ttl))
    _background.add(task)  # a task nobody references may be garbage-collected mid-flight
    task.add_done_callback(_background.discard)


async def mark_stale(rt: Runtime, key: str) -> None:
    """Keep the cached value but make it stale: the next read serves it at once and starts a
    refresh (after a write the reader should see soon, without paying for the recompute)."""
    with contextlib.suppress(Exception):
        hit = await rt.redis.get(key)
        if hit:
            doc = orjson.loads(hit)
            body = orjson.dumps({"at": 0.0, "v": doc["v"]})
            await rt.redis.set(key, body, keepttl=True)


async def cached(
    rt: Runtime,
    brand_id: Any,
    tool: str,
    args: dict[str, Any],
    model: type[M],
    compute: Callable[[], Awaitable[M]],
    ttl: int = DEFAULT_TTL_S,
) -> M:
    """The result for (brand, tool, args): fresh from the cache, stale while a background task
    refreshes it, or computed now. `compute` must not use a connection it does not acquire
    itself, as it may outlive the request."""
    key = cache_key(brand_id, tool, args)
    hit = None
    if not force_refresh.get():
        try:
            hit = await rt.redis.get(key)
        except Exception:
            _log.warning("mcp cache read failed", tool=tool)
    if hit:
        try:
            doc = orjson.loads(hit)
            value = model.model_validate(doc["v"])
        except (ValueError, KeyError, TypeError):
            value = None  # an older shape: recompute
        if value is not None:
            if time.time() - float(doc["at"]) > ttl:
                await _refresh_later(rt, key, compute, ttl)
            return value
    value = await compute()
    await _store(rt, key, value, ttl)
    return value
