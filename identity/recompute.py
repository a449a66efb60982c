"""`cbrain recompute`: check the incrementally kept profile aggregates against the events,
repair drift and report what was repaired, field by field.

Live profiles are compared in id-ordered batches with one read-only statement each. Only the
profiles that differ are then rewritten, under the same advisory profile locks every identity
writer takes, with the aggregates computed again inside that transaction, so an event that
arrives between the check and the fix is never lost. Their cached 360s are dropped after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from identity import repo

FIELDS = (
    "event_count",
    "order_count",
    "total_spent",
    "refund_total",
    "first_seen",
    "last_seen",
    "first_order_at",
    "last_order_at",
    "channels",
)

COUNT_LIVE = "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL"
NEXT_IDS = """
SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL AND id > $2
ORDER BY id LIMIT $3"""

# The same definitions as identity.repo.RECOMPUTE; one row per profile that differs, with a
# flag per field.
_AGG = """
SELECT count(*) AS n,
       count(*) FILTER (WHERE type = 'purchase') AS orders,
       coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0) AS spent,
       coalesce(sum(abs(total)) FILTER (WHERE type = 'refund'), 0) AS refunds,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
       min(occurred_at) FILTER (WHERE type = 'purchase') AS first_order,
       max(occurred_at) FILTER (WHERE type = 'purchase') AS last_order,
       coalesce(array_agg(DISTINCT source ORDER BY source), '{}') AS channels
FROM events e WHERE e.brand_id = $1 AND e.profile_id = p.id"""
DRIFT = f"""
SELECT p.id,
       p.event_count <> a.n AS event_count,
       p.order_count <> a.orders AS order_count,
       p.total_spent <> a.spent AS total_spent,
       p.refund_total <> a.refunds AS refund_total,
       p.first_seen IS DISTINCT FROM coalesce(a.first_seen, p.created_at) AS first_seen,
       p.last_seen IS DISTINCT FROM coalesce(a.last_seen, p.created_at) AS last_seen,
       p.first_order_at IS DISTINCT FROM a.first_order AS first_order_at,
       p.last_order_at IS DISTINCT FROM a.last_order AS last_order_at,
       p.channels IS DISTINCT FROM a.channels AS channels
FROM profiles p
CROSS JOIN LATERAL ({_AGG}) a
WHERE p.brand_id = $1 AND p.id = ANY($2::uuid[]) AND p.merged_into IS NULL"""


@dataclass
class RecomputeReport:
    """What a run checked and repaired (counts per field)."""

    profiles_checked: int = 0
    profiles_fixed: int = 0
    fields: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "profiles_checked": self.profiles_checked,
            "profiles_fixed": self.profiles_fixed,
            "fields": {k: v for k, v in self.fields.items() if v},
            "dry_run": self.dry_run,
        }


def _drifted(rows: list[Any]) -> dict[UUID, list[str]]:
    out = {}
    for r in rows:
        bad = [f for f in FIELDS if r[f]]
        if bad:
            out[r["id"]] = bad
    return out


async def recompute_brand(
    rt: Any,
    brand_id: UUID,
    *,
    batch: int = 5000,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RecomputeReport:
    """Compare every live profile's aggregates with its events; fix and count what differs."""
    from identity.service import invalidate

    report = RecomputeReport(dry_run=dry_run)
    total = await rt.pool.fetchval(COUNT_LIVE, brand_id)
    last = UUID(int=0)
    while True:
        async with rt.pool.acquire() as conn:
            ids = [r["id"] for r in await conn.fetch(NEXT_IDS, brand_id, last, batch)]
            if not ids:
                break
            last = ids[-1]
            drift = _drifted(await conn.fetch(DRIFT, brand_id, ids))
        report.profiles_checked += len(ids)
        if drift and not dry_run:
            fixed = await _fix(rt, brand_id, sorted(drift))
            for fields in fixed.values():
                for f in fields:
                    report.fields[f] += 1
            report.profiles_fixed += len(fixed)
            await invalidate(rt, brand_id, fixed)
        elif drift:
            report.profiles_fixed += len(drift)
            for fields in drift.values():
                for f in fields:
                    report.fields[f] += 1
        if progress is not None:
            progress(report.profiles_checked, total)
    return report


async def _fix(rt: Any, brand_id: UUID, ids: list[UUID]) -> dict[UUID, list[str]]:
    """Re-check under the profile locks (an event may have landed since) and rewrite."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await repo.lock_profiles(conn, brand_id, ids)
        drift = _drifted(await conn.fetch(DRIFT, brand_id, ids))
        if drift:
            await repo.recompute(conn, brand_id, sorted(drift))
    return drift
