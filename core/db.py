"""asyncpg pool with the pgvector and JSON codecs, and brand-bound helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import asyncpg
import orjson
from pgvector.asyncpg import register_vector

from core.errors import CBrainError


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _jsonb_encode(value: Any) -> bytes:
    # Binary jsonb is a version byte (1) then the JSON text; binary works for COPY too.
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec("json", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    # The vector extension is created by the first migration; before it, no codec.
    with contextlib.suppress(ValueError):
        await register_vector(conn)


# asyncpg prepares every statement, and after five runs Postgres may switch a prepared statement
# to a generic plan made without the parameter values. For our batch statements (`unnest($2)`
# joins, `= ANY($2)`) the generic plan misjudges the row counts and scans a brand's whole
# profile or event set: recomputing one profile's aggregates took 7 ms instead of 0.4 ms, and
# streaming resolution ran 30% slower. Planning each execution costs ~0.1 ms; we pay it.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    await _init_connection(conn)
    return conn


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 16) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=SERVER_SETTINGS,
        command_timeout=60,
        max_inactive_connection_lifetime=300,
    )
    assert pool is not None
    return pool


LOCK_XACT = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def advisory_xact_locks(conn: asyncpg.Connection, keys: Iterable[str]) -> None:
    """Take transaction-scoped advisory locks in sorted order, so two workers never deadlock.

    Keys are hashed by Postgres; this serialises work even before the row it protects exists.
    """
    for key in sorted(set(keys)):
        await conn.execute(LOCK_XACT, key)


def is_transient(exc: BaseException) -> bool:
    """A failure of the moment, worth another try: a lost or refused connection, a deadlock or
    serialization conflict with a concurrent transaction, a timeout, or one of our errors
    marked retryable."""
    if isinstance(exc, CBrainError):
        return exc.retryable
    return isinstance(
        exc,
        asyncpg.exceptions.SerializationError
        | asyncpg.exceptions.DeadlockDetectedError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.TooManyConnectionsError
        | ConnectionError
        | OSError
        | TimeoutError,
    )
