"""Shared fixtures: the embedded Postgres and Valkey are started once for the whole run.

With DATABASE_URL / REDIS_URL set, those servers are used instead (the database must be
disposable: the test database is dropped and recreated). Each test gets its own brand, so
tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from core import brands, db, embedded
from core.crypto import Keyring
from core.redis import create_redis
from core.runtime import Runtime, run_migrations
from core.settings import load_settings

TEST_DB = "cbrain_test"
# Tests change a brand's data and ask again at once; the analytics replica (minutes fresh)
# is exercised on purpose by tests/mcp_server/test_replica.py, which turns it on.
os.environ.setdefault("ANALYTICS_REPLICA", "off")


@dataclass
class Servers:
    home: Path
    database_url: str
    redis_url: str
    pg: embedded.EmbeddedPostgres | None
    valkey: embedded.EmbeddedValkey | None


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    home = Path(tempfile.mkdtemp(prefix="cbrain-test-"))
    pg = None
    valkey = None
    if os.environ.get("DATABASE_URL"):
        database_url = os.environ["DATABASE_URL"]
    else:
        pg = embedded.start_postgres(home)
        pg.server.psql(f'DROP DATABASE IF EXISTS "{TEST_DB}";')
        database_url = embedded.ensure_database(pg, TEST_DB)
    if os.environ.get("REDIS_URL"):
        redis_url = os.environ["REDIS_URL"]
    else:
        valkey = embedded.start_valkey(home)
        redis_url = valkey.url
    yield Servers(home, database_url, redis_url, pg, valkey)
    if valkey is not None:
        valkey.stop()
    if pg is not None:
        pg.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Any:
    return load_settings(
        CBRAIN_ENV="test",
        CBRAIN_HOME=str(servers.home),
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        CBRAIN_PEPPER=secrets.token_urlsafe(32),
        CBRAIN_ENCRYPTION_KEY="rGcsWnU0mOv6Jn4vhC2v1Bq3tW3P0fJxg4Ix0kH5w8Y=",
        CBRAIN_RATE_LIMIT_PER_MINUTE=100000,
    )


@pytest.fixture(scope="session")
async def rt(settings: Any) -> AsyncIterator[Runtime]:
    await run_migrations(settings.database_url)
    pool = await db.create_pool(settings.database_url, min_size=2, max_size=12)
    redis = create_redis(settings.redis_url)
    pepper, key = settings.secrets
    runtime = Runtime(
        settings=settings,
        pool=pool,
        redis=redis,
        keyring=Keyring(pepper, key),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    yield runtime
    await redis.aclose()
    await pool.close()


@dataclass
class TestBrand:
    brand: brands.Brand
    ingest_key: str
    read_key: str
    admin_key: str
    pii_key: str

    @property
    def id(self) -> UUID:
        return self.brand.id

    @property
    def slug(self) -> str:
        return self.brand.slug

    def auth(self, which: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, which + '_key')}"}


async def make_brand(rt: Runtime, prefix: str = "t", settings: dict | None = None) -> TestBrand:
    slug = f"{prefix}-{secrets.token_hex(5)}"
    async with rt.pool.acquire() as conn:
        brand = await brands.create_brand(conn, slug, None, settings or {"default_region": "GB"})
        _, ingest = await brands.create_key(conn, brand.id, ["ingest"], "ingest")
        _, read = await brands.create_key(conn, brand.id, ["read"], "read")
        _, admin = await brands.create_key(conn, brand.id, ["admin"], "admin")
        _, pii = await brands.create_key(conn, brand.id, ["read", "pii:read"], "pii")
    return TestBrand(brand, ingest, read, admin, pii)


@pytest.fixture
async def brand(rt: Runtime) -> TestBrand:
    return await make_brand(rt)


@pytest.fixture
async def other_brand(rt: Runtime) -> TestBrand:
    return await make_brand(rt, "o")


@pytest.fixture
async def app(rt: Runtime) -> Any:
    from app.main import create_app

    return create_app(rt.settings, runtime=rt)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
