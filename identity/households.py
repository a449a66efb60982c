"""Households: people who share a home address, or a household phone and a surname, are linked
as a household (an entity of its own, shown in the 360), never merged into one person."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from core.crypto import BrandCrypto
from identity._names import normalize_name_part
from identity._traits import normalize_address, normalize_postcode

UPSERT = """
INSERT INTO households (brand_id, link_kind, link_hash)
SELECT $1, k, h FROM unnest($2::text[], $3::bytea[]) AS u(k, h)
ON CONFLICT (brand_id, link_kind, link_hash) DO UPDATE SET link_kind = EXCLUDED.link_kind
RETURNING id, link_kind, link_hash"""
ASSIGN = """
UPDATE profiles p SET household_id = u.household
FROM unnest($2::uuid[], $3::uuid[]) AS u(id, household)
WHERE p.brand_id = $1 AND p.id = u.id AND p.household_id IS NULL"""


def address_key(crypto: BrandCrypto, traits: dict) -> bytes | None:
    """Keyed hash of a normalized street line + postcode; None without both."""
    street = normalize_address(traits.get("address")) if traits.get("address") else ""
    postcode = normalize_postcode(traits.get("postcode"), traits.get("country") or "GB")
    if not street or not postcode:
        return None
    return crypto.blind_index("household_address", f"{street}|{postcode}")


def same_surname(a: dict, b: dict) -> bool:
    la, lb = normalize_name_part(a.get("last_name")), normalize_name_part(b.get("last_name"))
    return bool(la) and la == lb


async def link(
    conn: asyncpg.Connection,
    brand_id: UUID,
    members: Iterable[tuple[str, bytes, UUID]],
) -> int:
    """Put each profile in the household of its (kind, key); returns profiles assigned."""
    rows = list(members)
    if not rows:
        return 0
    keys = sorted({(k, h) for k, h, _ in rows})
    found = await conn.fetch(UPSERT, brand_id, [k for k, _ in keys], [h for _, h in keys])
    ids = {(r["link_kind"], bytes(r["link_hash"])): r["id"] for r in found}
    pairs = {pid: ids[(k, h)] for k, h, pid in rows if (k, h) in ids}
    if not pairs:
        return 0
    order = sorted(pairs)
    await conn.execute(ASSIGN, brand_id, order, [pairs[p] for p in order])
    return len(order)
