"""Brands (tenants), their API keys and their webhook secrets. All SQL for them lives here."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from core.crypto import Keyring, api_key_hash, new_api_key
from core.errors import Conflict, NotFound, ValidationFailed

SCOPES = ("ingest", "read", "pii:read", "admin")
DEFAULT_SCOPES = ("ingest", "read")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")

INSERT_BRAND = "INSERT INTO brands (slug, name, settings) VALUES ($1, $2, $3) RETURNING id, slug, name, settings, created_at"
BRAND_BY_SLUG = "SELECT id, slug, name, settings, created_at FROM brands WHERE slug = $1"
BRAND_BY_ID = "SELECT id, slug, name, settings, created_at FROM brands WHERE id = $1"
LIST_BRANDS = "SELECT id, slug, name, settings, created_at FROM brands ORDER BY slug"
UPDATE_SETTINGS = "UPDATE brands SET settings = settings || $2 WHERE id = $1 RETURNING settings"
INSERT_KEY = """
INSERT INTO api_keys (brand_id, key_hash, prefix, name, scopes)
VALUES ($1, $2, $3, $4, $5) RETURNING id"""
KEY_BY_HASH = """
SELECT k.id, k.brand_id, k.scopes, b.slug
FROM api_keys k JOIN brands b ON b.id = k.brand_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL"""
KEY_BY_ID = """
SELECT k.id, k.brand_id, k.scopes, b.slug, b.name
FROM api_keys k JOIN brands b ON b.id = k.brand_id
WHERE k.brand_id = $1 AND k.id = $2 AND k.revoked_at IS NULL"""
LIST_KEYS = """
SELECT id, prefix, name, scopes, created_at, revoked_at, last_used_at
FROM api_keys WHERE brand_id = $1 ORDER BY created_at"""
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = now()
WHERE brand_id = $1 AND (id::text = $2 OR prefix = $2) AND revoked_at IS NULL RETURNING id"""
INSERT_SECRET = "INSERT INTO brand_secrets (brand_id, source, secret_enc) VALUES ($1, $2, $3)"
DELETE_SECRETS = "DELETE FROM brand_secrets WHERE brand_id = $1 AND source = $2"
LIST_SECRETS = """
SELECT secret_enc FROM brand_secrets WHERE brand_id = $1 AND source = $2
ORDER BY created_at DESC LIMIT $3"""
SECRET_STATUS = """
SELECT source, count(*) AS n, max(created_at) AS latest FROM brand_secrets
WHERE brand_id = $1 GROUP BY source"""

# During a rotation the newest two secrets are accepted (Shopify signs with the old one for
# up to an hour after a rotation).
ACCEPTED_SECRETS = 2
WEBHOOK_SOURCES = ("shopify", "woocommerce", "twilio", "gorgias", "slack")


@dataclass(frozen=True)
class Brand:
    id: UUID
    slug: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return str(self.settings.get("default_region", "GB"))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the brand behind the key and what the key may do."""

    brand_id: UUID
    brand_slug: str
    key_id: UUID
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _brand(row: asyncpg.Record) -> Brand:
    return Brand(id=row["id"], slug=row["slug"], name=row["name"], settings=row["settings"])


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValidationFailed(
            f"unknown scope(s): {', '.join(bad) or '(none given)'}; choose from {', '.join(SCOPES)}"
        )
    return sorted(set(scopes))


async def create_brand(
    conn: asyncpg.Connection, slug: str, name: str | None = None, settings: dict | None = None
) -> Brand:
    if not _SLUG.match(slug):
        raise ValidationFailed(
            "brand slug must be 2-63 characters of a-z, 0-9, '-' or '_', starting with a "
            "letter or digit"
        )
    try:
        row = await conn.fetchrow(INSERT_BRAND, slug, name or slug, settings or {})
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"brand {slug!r} already exists") from exc
    return _brand(row)


async def get_brand(conn: asyncpg.Connection, slug: str) -> Brand:
    row = await conn.fetchrow(BRAND_BY_SLUG, slug)
    if row is None:
        raise NotFound(f"no brand {slug!r}")
    return _brand(row)


async def get_brand_by_id(conn: asyncpg.Connection, brand_id: UUID) -> Brand:
    row = await conn.fetchrow(BRAND_BY_ID, brand_id)
    if row is None:
        raise NotFound("no such brand")
    return _brand(row)


async def list_brands(conn: asyncpg.Connection) -> list[Brand]:
    return [_brand(r) for r in await conn.fetch(LIST_BRANDS)]


async def update_settings(conn: asyncpg.Connection, brand_id: UUID, patch: dict) -> dict:
    return await conn.fetchval(UPDATE_SETTINGS, brand_id, patch)


async def create_key(
    conn: asyncpg.Connection,
    brand_id: UUID,
    scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
    name: str = "",
) -> tuple[UUID, str]:
    """Create a key; the clear key is returned once and only its hash is stored."""
    clean = validate_scopes(list(scopes))
    key = new_api_key()
    key_id = await conn.fetchval(INSERT_KEY, brand_id, api_key_hash(key), key[:10], name, clean)
    return key_id, key


async def list_keys(conn: asyncpg.Connection, brand_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_KEYS, brand_id)


async def revoke_key(conn: asyncpg.Connection, brand_id: UUID, key_id_or_prefix: str) -> None:
    if await conn.fetchval(REVOKE_KEY, brand_id, key_id_or_prefix) is None:
        raise NotFound("no active key with that id or prefix for this brand")


class KeyCache:
    """API key -> principal, cached in-process for a short time (revocation applies within ttl).
    By the key itself (API requests) or by its id (a dashboard session remembers the id)."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}

    async def _get(self, key: Any, load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit and hit[0] > now:
            return hit[1]
        found = await load()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (now + self.ttl, found)
        return found

    async def principal(self, pool: asyncpg.Pool, key: str) -> Principal | None:
        digest = api_key_hash(key)

        async def load() -> Principal | None:
            return _principal_of(await pool.fetchrow(KEY_BY_HASH, digest))

        return await self._get(digest, load)

    async def by_id(
        self, pool: asyncpg.Pool, brand_id: UUID, key_id: UUID
    ) -> tuple[Principal, str] | None:
        """The principal of a live key of `brand_id`, and the brand's display name."""

        async def load() -> tuple[Principal, str] | None:
            row = await pool.fetchrow(KEY_BY_ID, brand_id, key_id)
            principal = _principal_of(row)
            return None if principal is None else (principal, row["name"])

        return await self._get((brand_id, key_id), load)

    def clear(self) -> None:
        self._entries.clear()


def _principal_of(row: asyncpg.Record | None) -> Principal | None:
    if row is None:
        return None
    return Principal(
        brand_id=row["brand_id"],
        brand_slug=row["slug"],
        key_id=row["id"],
        scopes=frozenset(row["scopes"]),
    )


async def add_secret(
    conn: asyncpg.Connection,
    keyring: Keyring,
    brand_id: UUID,
    source: str,
    secret: str,
    *,
    replace: bool = False,
) -> None:
    if source not in WEBHOOK_SOURCES:
        raise ValidationFailed(
            f"unknown source {source!r}; choose from {', '.join(WEBHOOK_SOURCES)}"
        )
    if len(secret.strip()) < 8:
        raise ValidationFailed("a webhook secret must be at least 8 characters")
    async with conn.transaction():
        if replace:
            await conn.execute(DELETE_SECRETS, brand_id, source)
        sealed = keyring.for_brand(str(brand_id)).encrypt(secret.strip())
        await conn.execute(INSERT_SECRET, brand_id, source, sealed)


async def secrets_for(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, brand_id: UUID, source: str
) -> list[str]:
    rows = await conn.fetch(LIST_SECRETS, brand_id, source, ACCEPTED_SECRETS)
    crypto = keyring.for_brand(str(brand_id))
    return [crypto.decrypt_str(r["secret_enc"]) for r in rows]


async def secret_status(conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID) -> dict[str, Any]:
    rows = await conn.fetch(SECRET_STATUS, brand_id)
    return {r["source"]: {"count": r["n"], "latest": r["latest"]} for r in rows}
