import asyncio
import shutil
from pathlib import Path

import pytest

from core import db, migrate
from core.errors import ConfigError


async def _fresh_database(servers, name: str) -> str:
    if servers.pg is None:
        pytest.skip("needs the embedded server to create scratch databases")
    servers.pg.server.psql(f'DROP DATABASE IF EXISTS "{name}";')
    servers.pg.server.psql(f'CREATE DATABASE "{name}";')
    return servers.pg.uri(name)


async def test_migrations_apply_on_empty_database_and_rerun_is_noop(servers):
    dsn = await _fresh_database(servers, "mig_empty")
    conn = await db.connect(dsn)
    try:
        first = await migrate.migrate(conn)
        assert [m.version for m in first] == [m.version for m in migrate.discover()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        for t in (
            "brands",
            "api_keys",
            "raw_events",
            "events",
            "profiles",
            "profile_identifiers",
            "identity_merge_log",
            "merge_review_queue",
            "products",
            "features",
            "predictions",
            "model_versions",
            "automations",
            "automation_runs",
            "journeys",
            "conversations",
            "audit_log",
            "deletion_requests",
            "schema_migrations",
        ):
            assert t in tables, t
        exts = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
        assert {"vector", "pg_trgm", "fuzzystrmatch"} <= exts
        again = await migrate.migrate(conn)
        assert again == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(first)
    finally:
        await conn.close()


async def test_two_migrators_at_once_apply_each_migration_once(servers):
    dsn = await _fresh_database(servers, "mig_race")
    conns = [await db.connect(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        applied = sum(len(r) for r in results)
        assert applied == len(migrate.discover())
    finally:
        for c in conns:
            await c.close()


async def test_edited_migration_is_refused(servers, tmp_path: Path):
    dsn = await _fresh_database(servers, "mig_edit")
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "0001_a.sql").write_text("CREATE TABLE a (x int);")
    conn = await db.connect(dsn)
    try:
        assert len(await migrate.migrate(conn, sql_dir)) == 1
        (sql_dir / "0001_a.sql").write_text("CREATE TABLE a (x bigint);")
        with pytest.raises(ConfigError, match="edited"):
            await migrate.migrate(conn, sql_dir)
        (sql_dir / "0001_a.sql").write_text("CREATE TABLE a (x int);")
        (sql_dir / "0002_bad.sql").write_text("CREATE TABLE b (x int); SELECT 1/0;")
        with pytest.raises(Exception, match="division by zero"):
            await migrate.migrate(conn, sql_dir)
        # the failed migration left nothing half-applied
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
    finally:
        await conn.close()
        shutil.rmtree(sql_dir)


def test_badly_named_migration_file_is_refused(tmp_path: Path):
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(ConfigError, match="NNNN_name"):
        migrate.discover(tmp_path)


async def test_profiles_carry_no_vector_index(rt):
    # Every event resolved to a profile updates its aggregates, and each such update writes
    # the row into every index of `profiles`. A vector index there (HNSW, IVFFlat) would cost
    # a graph insertion per event: embeddings belong in `profile_embeddings` (sql/0009).
    defs = [
        r["indexdef"]
        for r in await rt.pool.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'profiles'"
        )
    ]
    assert defs, "no index on profiles at all?"
    assert not [d for d in defs if " USING hnsw " in d or " USING ivfflat " in d], defs
    columns = {
        r["column_name"]
        for r in await rt.pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'profiles'"
        )
    }
    assert "embedding" not in columns
    hnsw = await rt.pool.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'profile_embeddings' "
        "AND indexdef LIKE '% USING hnsw %'"
    )
    assert hnsw == 1
