"""SQL of the assistant's surfaces: Slack workspaces, Gorgias accounts, deliveries.

Secrets are sealed with the brand's key (AES-GCM with the brand id as associated data) and
only opened here, on the way to the request that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from core.crypto import Keyring

UPSERT_WORKSPACE = """
INSERT INTO slack_workspaces (team_id, brand_id, team_name, bot_user_id, bot_id, bot_token_enc,
                              signing_secret_enc)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (team_id) DO UPDATE SET
    brand_id = EXCLUDED.brand_id, team_name = EXCLUDED.team_name,
    bot_user_id = EXCLUDED.bot_user_id, bot_id = EXCLUDED.bot_id,
    bot_token_enc = EXCLUDED.bot_token_enc, signing_secret_enc = EXCLUDED.signing_secret_enc,
    updated_at = now()"""
WORKSPACE = """
SELECT w.team_id, w.brand_id, b.slug, w.team_name, w.bot_user_id, w.bot_id, w.bot_token_enc,
       w.signing_secret_enc
FROM slack_workspaces w JOIN brands b ON b.id = w.brand_id WHERE w.team_id = $1"""
WORKSPACES_OF = """
SELECT team_id, team_name, bot_user_id, signing_secret_enc IS NOT NULL AS own_secret, updated_at
FROM slack_workspaces WHERE brand_id = $1 ORDER BY team_id"""
DELETE_WORKSPACE = "DELETE FROM slack_workspaces WHERE brand_id = $1 AND team_id = $2"
# url_verification carries no team: its signature is checked against every workspace secret.
SIGNING_SECRETS = """
SELECT brand_id, signing_secret_enc FROM slack_workspaces
WHERE signing_secret_enc IS NOT NULL ORDER BY updated_at DESC LIMIT 1000"""

UPSERT_GORGIAS = """
INSERT INTO gorgias_accounts (brand_id, base_url, api_email, api_key_enc) VALUES ($1, $2, $3, $4)
ON CONFLICT (brand_id) DO UPDATE SET base_url = EXCLUDED.base_url,
    api_email = EXCLUDED.api_email, api_key_enc = EXCLUDED.api_key_enc, updated_at = now()"""
GORGIAS = "SELECT base_url, api_email, api_key_enc FROM gorgias_accounts WHERE brand_id = $1"
GORGIAS_BRANDS = "SELECT brand_id FROM gorgias_accounts ORDER BY brand_id"

# The webhook inbox row of a ticket: new, or re-armed by a later webhook (a new message).
ARM = """
INSERT INTO assistant_deliveries (brand_id, surface, delivery_key, detail)
VALUES ($1, $2, $3, $4)
ON CONFLICT (brand_id, surface, delivery_key) DO UPDATE SET
    status = 'pending', generation = assistant_deliveries.generation + 1, attempts = 0,
    detail = EXCLUDED.detail, error = NULL, updated_at = now()
RETURNING generation"""
START = """
UPDATE assistant_deliveries SET attempts = attempts + 1, claimed_at = now(), updated_at = now()
WHERE brand_id = $1 AND surface = $2 AND delivery_key = $3 AND generation = $4
  AND status = 'pending'
RETURNING attempts"""
# A run closes only the generation it read: a webhook that arrived meanwhile stays pending.
FINISH = """
UPDATE assistant_deliveries SET status = $5, detail = detail || $6, error = $7, updated_at = now()
WHERE brand_id = $1 AND surface = $2 AND delivery_key = $3 AND generation = $4"""
RETRY_LATER = """
UPDATE assistant_deliveries SET error = $5, updated_at = now()
WHERE brand_id = $1 AND surface = $2 AND delivery_key = $3 AND generation = $4"""
STALE = """
SELECT delivery_key, generation, detail, attempts FROM assistant_deliveries
WHERE brand_id = $1 AND surface = $2 AND status = 'pending' AND updated_at < now() - $3::interval
ORDER BY updated_at LIMIT $4"""
GIVE_UP = """
UPDATE assistant_deliveries SET status = 'failed', updated_at = now()
WHERE brand_id = $1 AND surface = $2 AND status = 'pending' AND attempts >= $3"""

# The claim on one message: taken if new, failed, or held by a run that died (stale claim).
CLAIM = """
INSERT INTO assistant_deliveries (brand_id, surface, delivery_key, status, attempts, claimed_at,
                                  detail)
VALUES ($1, $2, $3, 'processing', 1, now(), $4)
ON CONFLICT (brand_id, surface, delivery_key) DO UPDATE SET
    status = 'processing', attempts = assistant_deliveries.attempts + 1, claimed_at = now(),
    updated_at = now()
WHERE assistant_deliveries.status = 'failed'
   OR (assistant_deliveries.status = 'processing'
       AND assistant_deliveries.claimed_at < now() - $5::interval)
RETURNING attempts"""
RELEASE = """
UPDATE assistant_deliveries SET status = $4, detail = detail || $5, error = $6, updated_at = now()
WHERE brand_id = $1 AND surface = $2 AND delivery_key = $3"""
# Finished rows are kept for a while (inspection; the note's footer on the ticket keeps
# idempotency after they are gone).
PURGE = """
DELETE FROM assistant_deliveries
WHERE brand_id = $1 AND surface = $2 AND status IN ('done', 'skipped', 'failed')
  AND updated_at < now() - $3::interval"""
DELIVERY = """
SELECT status, generation, attempts, detail, error FROM assistant_deliveries
WHERE brand_id = $1 AND surface = $2 AND delivery_key = $3"""


@dataclass(frozen=True)
class Workspace:
    team_id: str
    brand_id: UUID
    brand_slug: str
    team_name: str
    bot_user_id: str
    bot_id: str
    bot_token: str
    signing_secret: str | None


@dataclass(frozen=True)
class GorgiasAccount:
    brand_id: UUID
    base_url: str
    api_email: str
    api_key: str


def _seal(keyring: Keyring, brand_id: UUID, value: str) -> bytes:
    return keyring.for_brand(str(brand_id)).encrypt(value)


async def upsert_workspace(
    conn: asyncpg.Connection | asyncpg.Pool,
    keyring: Keyring,
    brand_id: UUID,
    *,
    team_id: str,
    team_name: str,
    bot_user_id: str,
    bot_id: str,
    bot_token: str,
    signing_secret: str | None,
) -> None:
    await conn.execute(
        UPSERT_WORKSPACE,
        team_id,
        brand_id,
        team_name,
        bot_user_id,
        bot_id,
        _seal(keyring, brand_id, bot_token),
        _seal(keyring, brand_id, signing_secret) if signing_secret else None,
    )


async def workspace(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, team_id: str
) -> Workspace | None:
    row = await conn.fetchrow(WORKSPACE, team_id)
    if row is None:
        return None
    crypto = keyring.for_brand(str(row["brand_id"]))
    secret = row["signing_secret_enc"]
    return Workspace(
        team_id=row["team_id"],
        brand_id=row["brand_id"],
        brand_slug=row["slug"],
        team_name=row["team_name"],
        bot_user_id=row["bot_user_id"],
        bot_id=row["bot_id"],
        bot_token=crypto.decrypt_str(row["bot_token_enc"]),
        signing_secret=crypto.decrypt_str(secret) if secret else None,
    )


async def workspaces_of(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(WORKSPACES_OF, brand_id)


async def delete_workspace(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, team_id: str
) -> bool:
    return (await conn.execute(DELETE_WORKSPACE, brand_id, team_id)).endswith(" 1")


async def workspace_signing_secrets(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring
) -> list[str]:
    return [
        keyring.for_brand(str(r["brand_id"])).decrypt_str(r["signing_secret_enc"])
        for r in await conn.fetch(SIGNING_SECRETS)
    ]


async def upsert_gorgias(
    conn: asyncpg.Connection | asyncpg.Pool,
    keyring: Keyring,
    brand_id: UUID,
    *,
    base_url: str,
    api_email: str,
    api_key: str,
) -> None:
    await conn.execute(
        UPSERT_GORGIAS, brand_id, base_url, api_email, _seal(keyring, brand_id, api_key)
    )


async def gorgias_account(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, brand_id: UUID
) -> GorgiasAccount | None:
    row = await conn.fetchrow(GORGIAS, brand_id)
    if row is None:
        return None
    return GorgiasAccount(
        brand_id=brand_id,
        base_url=row["base_url"],
        api_email=row["api_email"],
        api_key=keyring.for_brand(str(brand_id)).decrypt_str(row["api_key_enc"]),
    )


async def gorgias_brands(conn: asyncpg.Connection | asyncpg.Pool) -> list[UUID]:
    return [r["brand_id"] for r in await conn.fetch(GORGIAS_BRANDS)]


# ----------------------------------------------------------------------------- deliveries


async def arm(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    key: str,
    detail: dict[str, Any],
) -> int:
    """Record (or re-arm) a delivery as pending; its generation."""
    return await conn.fetchval(ARM, brand_id, surface, key, detail)


async def start(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, surface: str, key: str, gen: int
) -> int | None:
    """Count an attempt on a pending delivery; None if it is no longer pending at `gen`."""
    return await conn.fetchval(START, brand_id, surface, key, gen)


async def finish(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    key: str,
    gen: int,
    status: str,
    detail: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(FINISH, brand_id, surface, key, gen, status, detail or {}, error)


async def retry_later(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    key: str,
    gen: int,
    error: str,
) -> None:
    await conn.execute(RETRY_LATER, brand_id, surface, key, gen, error[:500])


async def stale(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    older_than_s: float,
    limit: int = 50,
) -> list[asyncpg.Record]:
    return await conn.fetch(STALE, brand_id, surface, timedelta(seconds=older_than_s), limit)


async def give_up(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, surface: str, max_attempts: int
) -> None:
    await conn.execute(GIVE_UP, brand_id, surface, max_attempts)


async def purge(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, surface: str, older_than_s: float
) -> None:
    await conn.execute(PURGE, brand_id, surface, timedelta(seconds=older_than_s))


async def claim(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    key: str,
    detail: dict[str, Any],
    stale_after_s: float,
) -> bool:
    """Take the work of one item; False if it is done or another live run holds it."""
    got = await conn.fetchval(
        CLAIM,
        brand_id,
        surface,
        key,
        detail,
        timedelta(seconds=stale_after_s),
    )
    return got is not None


async def release(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    surface: str,
    key: str,
    status: str,
    detail: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(RELEASE, brand_id, surface, key, status, detail or {}, error)


async def delivery(
    conn: asyncpg.Connection | asyncpg.Pool, brand_id: UUID, surface: str, key: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(DELIVERY, brand_id, surface, key)
