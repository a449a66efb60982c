"""Opens what an entry point needs: settings, Postgres pool, Redis client, keyring.

With DATABASE_URL / REDIS_URL unset the embedded servers are started (or joined) first, and
they are stopped when the runtime closes if this process started them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from core import db, embedded, migrate
from core.crypto import Keyring
from core.redis import create_redis
from core.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keyring: Keyring
    database_url: str
    redis_url: str
    extras: dict[str, Any] = field(default_factory=dict)

    def blocking_redis(self) -> aioredis.Redis:
        """The client for blocking stream reads (XREADGROUP BLOCK). With the cache's 2 s
        socket timeout, a reply to a 1 s block read late by a busy event loop (a batch being
        resolved in the same process) looked like a dead Redis: the worker logged "redis
        unavailable", swept and backed off. Its timeout outlasts any block we ask for; a Redis
        that is really down still refuses the connection at once."""
        client = self.extras.get("_blocking_redis")
        if client is None:
            client = create_redis(self.redis_url, socket_timeout=30.0)
            self.extras["_blocking_redis"] = client
        return client


def resolve_database_url(settings: Settings, database: str = "cbrain") -> str:
    if settings.database_url:
        return settings.database_url
    pg = embedded.start_postgres(settings.home)
    return embedded.ensure_database(pg, database)


def resolve_redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return embedded.start_valkey(settings.home).url


async def run_migrations(dsn: str) -> list[migrate.Migration]:
    conn = await db.connect(dsn)
    try:
        return await migrate.migrate(conn)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, apply_migrations: bool = True, pool_max: int | None = None
) -> AsyncIterator[Runtime]:
    """Everything an entry point needs, closed in reverse order on exit."""
    dsn = resolve_database_url(settings)
    redis_url = resolve_redis_url(settings)
    if apply_migrations:
        await run_migrations(dsn)
    pepper, key = settings.secrets
    pool = await db.create_pool(
        dsn, min_size=settings.db_pool_min, max_size=pool_max or settings.db_pool_max
    )
    redis = create_redis(redis_url)
    rt = Runtime(
        settings=settings,
        pool=pool,
        redis=redis,
        keyring=Keyring(pepper, key),
        database_url=dsn,
        redis_url=redis_url,
    )
    try:
        yield rt
    finally:
        blocking = rt.extras.pop("_blocking_redis", None)
        if blocking is not None:
            await blocking.aclose()
        await redis.aclose()
        await pool.close()
