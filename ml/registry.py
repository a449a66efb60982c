"""Model registry on `model_versions`: numbered versions per (brand, kind), one active.

Kinds written by the pipeline: `churn`, `ltv`, `segment`, `recommendations` (the
prediction kinds they produce). Artifacts are the models' own `to_bytes` (no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from core.errors import CBrainError

KINDS = ("churn", "ltv", "segment", "recommendations")


class RegistryError(CBrainError):
    code = "not_found"
    status = 404


@dataclass
class ModelVersion:
    id: UUID
    kind: str
    version: int
    status: str
    params: dict
    data_window: dict
    metrics: dict
    created_at: datetime
    activated_at: datetime | None
    artifact: bytes | None = None


_COLS = "id, kind, version, status, params, data_window, metrics, created_at, activated_at"


def _mv(r: Any) -> ModelVersion:
    return ModelVersion(
        r["id"],
        r["kind"],
        r["version"],
        r["status"],
        r["params"],
        r["data_window"],
        r["metrics"],
        r["created_at"],
        r["activated_at"],
        r.get("artifact") if hasattr(r, "get") else None,
    )


async def save(
    conn: Any,
    brand_id: UUID,
    kind: str,
    artifact: bytes | None,
    *,
    params: dict | None = None,
    metrics: dict | None = None,
    data_window: dict | None = None,
    activate_now: bool = False,
) -> ModelVersion:
    """Store a new candidate version (numbered max + 1 for the kind); optionally activate it."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"model_versions:{brand_id}:{kind}"
        )
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions"
            " WHERE brand_id = $1 AND kind = $2",
            brand_id,
            kind,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO model_versions
                  (brand_id, kind, version, params, data_window, metrics, artifact)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLS}""",
            brand_id,
            kind,
            version,
            params or {},
            data_window or {},
            metrics or {},
            artifact,
        )
        mv = _mv(row)
        if activate_now:
            mv = await activate(conn, brand_id, kind, version)
    return mv


async def activate(conn: Any, brand_id: UUID, kind: str, version: int) -> ModelVersion:
    """Make ``version`` the active one of its kind; the previously active one is retired."""
    async with conn.transaction():
        exists = await conn.fetchval(
            "SELECT 1 FROM model_versions WHERE brand_id = $1 AND kind = $2 AND version = $3",
            brand_id,
            kind,
            version,
        )
        if not exists:
            raise RegistryError(f"no {kind} model version {version}")
        await conn.execute(
            "UPDATE model_versions SET status = 'retired'"
            " WHERE brand_id = $1 AND kind = $2 AND status = 'active' AND version <> $3",
            brand_id,
            kind,
            version,
        )
        row = await conn.fetchrow(
            f"""UPDATE model_versions SET status = 'active', activated_at = now()
                WHERE brand_id = $1 AND kind = $2 AND version = $3 RETURNING {_COLS}""",
            brand_id,
            kind,
            version,
        )
    return _mv(row)


async def rollback(conn: Any, brand_id: UUID, kind: str) -> ModelVersion:
    """Activate the newest version older than the active one (retiring the active one)."""
    active = await conn.fetchval(
        "SELECT version FROM model_versions WHERE brand_id = $1 AND kind = $2 AND status = 'active'",
        brand_id,
        kind,
    )
    if active is None:
        raise RegistryError(f"no active {kind} model to roll back")
    prev = await conn.fetchval(
        "SELECT max(version) FROM model_versions WHERE brand_id = $1 AND kind = $2 AND version < $3",
        brand_id,
        kind,
        active,
    )
    if prev is None:
        raise RegistryError(f"{kind} version {active} has no earlier version to roll back to")
    return await activate(conn, brand_id, kind, prev)


async def list_versions(conn: Any, brand_id: UUID, kind: str | None = None) -> list[ModelVersion]:
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM model_versions WHERE brand_id = $1"
        " AND ($2::text IS NULL OR kind = $2) ORDER BY kind, version",
        brand_id,
        kind,
    )
    return [_mv(r) for r in rows]


async def load_active(conn: Any, brand_id: UUID, kind: str) -> ModelVersion | None:
    """The active version of ``kind`` with its artifact, or None."""
    row = await conn.fetchrow(
        f"SELECT {_COLS}, artifact FROM model_versions"
        " WHERE brand_id = $1 AND kind = $2 AND status = 'active'",
        brand_id,
        kind,
    )
    if row is None:
        return None
    mv = _mv(row)
    mv.artifact = row["artifact"]
    return mv
