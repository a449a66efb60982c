"""Forward-only migrations: sql/NNNN_name.sql applied in order, each in one transaction.

Recorded in `schema_migrations` with a checksum; an edited, already-applied file is refused.
A session advisory lock serialises concurrent migrators (two `cbrain serve` starting at once).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from core.errors import ConfigError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = "cbrain:migrate"

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""
APPLIED = "SELECT version, checksum FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
LOCK = "SELECT pg_advisory_lock(hashtextextended($1, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ConfigError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply what is missing; return the migrations applied by this call."""
    pending = discover(sql_dir)
    await conn.execute(LOCK, _LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        applied = {r["version"]: r["checksum"] for r in await conn.fetch(APPLIED)}
        done = []
        for m in pending:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise ConfigError(
                        f"migration {m.version:04d}_{m.name} was edited after being applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(RECORD, m.version, m.name, m.checksum)
            done.append(m)
        return done
    finally:
        await conn.execute(UNLOCK, _LOCK_KEY)
