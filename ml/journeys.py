"""Customer journeys: a stage per person, a 0-100 journey score with its parts, the next
milestone and the next best action, stored in `journeys` with the stage history.

Stages: awareness, consideration, first_purchase, retention, advocacy, at_risk, lapsed
(`ml._journey_rules` has the rules). Facts come from one set-based statement per batch of
people (profile aggregates, the last 90 days of events, predictions); the rules run in Python;
the write is one upsert per batch that appends to the history only when the stage changed
(decided in SQL against the stored row, so two writers never append the same change twice)
and skips rows where nothing changed.

Called for the people touched by new events (the automation runner does it per batch) and
after scoring (`update_journeys(rt, brand_id)` walks every live profile in batches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from core.logging import get_logger
from core.redis import brand_key
from ml._journey_rules import (
    STAGES,
    JourneyConfig,
    action_of,
    milestone_of,
    parts_of,
    score_of,
    stage_of,
)

__all__ = ["STAGES", "JourneyConfig", "JourneyUpdate", "invalidate_360", "update_journeys"]

_log = get_logger("cbrain.journeys")
BATCH = 2000
HISTORY_KEEP = 100
_SPEND_TTL_S = 600.0
_spend_cache: dict[UUID, tuple[float, list[float]]] = {}

BRAND_SETTINGS = "SELECT settings FROM brands WHERE id = $1"
LIVE_PAGE = """
SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL AND id > $2
ORDER BY id LIMIT $3"""
SPEND_CUTS = """
SELECT percentile_cont(ARRAY[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
                             0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
       WITHIN GROUP (ORDER BY total_spent::float8) AS cuts
FROM profiles WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0"""
# Per-person lookups on (brand, profile) keys: robust to stale statistics, which otherwise pick
# a brand-wide index scan per person right after a bulk load or a scoring run.
FACTS = """
SELECT p.id, p.merged_into, p.order_count, p.total_spent::float8 AS total_spent,
       p.first_order_at, p.last_order_at, p.last_seen, p.channels, p.consent,
       pr.churn, pr.churn_band, pr.ltv, pr.ltv_band, pr.ltv_details, pr.segment, pr.recs,
       ev.n90, ev.active_days90, ev.views30, ev.carts30, ev.last_cart_at, ids.kinds
FROM profiles p
LEFT JOIN LATERAL (
    SELECT max(q.value) FILTER (WHERE q.kind = 'churn') AS churn,
           max(q.band) FILTER (WHERE q.kind = 'churn') AS churn_band,
           max(q.value) FILTER (WHERE q.kind = 'ltv') AS ltv,
           max(q.band) FILTER (WHERE q.kind = 'ltv') AS ltv_band,
           (array_agg(q.details) FILTER (WHERE q.kind = 'ltv'))[1] AS ltv_details,
           max(q.band) FILTER (WHERE q.kind = 'segment') AS segment,
           (array_agg(q.details) FILTER (WHERE q.kind = 'recommendations'))[1] AS recs
    FROM predictions q WHERE q.brand_id = $1 AND q.profile_id = p.id) pr ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS n90,
           count(DISTINCT date_trunc('day', e.occurred_at)) AS active_days90,
           count(*) FILTER (WHERE e.type = 'product_view'
                              AND e.occurred_at >= $3::timestamptz - interval '30 days') AS views30,
           count(*) FILTER (WHERE e.type IN ('cart_add', 'checkout_start')
                              AND e.occurred_at >= $3::timestamptz - interval '30 days') AS carts30,
           max(e.occurred_at) FILTER (WHERE e.type IN ('cart_add', 'checkout_start')) AS last_cart_at
    FROM events e
    WHERE e.brand_id = $1 AND e.profile_id = p.id
      AND e.occurred_at >= $3::timestamptz - interval '90 days'
      AND e.occurred_at <= $3::timestamptz) ev ON true
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT i.kind) AS kinds FROM profile_identifiers i
    WHERE i.brand_id = $1 AND i.profile_id = p.id AND i.status = 'active') ids ON true
WHERE p.brand_id = $1 AND p.id = ANY($2::uuid[])"""
# History: the new entry (stage, reason, at) gets `from` = the stored stage, appended only when
# the stage differs from the stored row's; the newest HISTORY_KEEP entries are kept.
UPSERT = f"""
INSERT INTO journeys AS j (brand_id, profile_id, stage, score, parts, next_milestone,
                           next_action, history, stage_since, updated_at)
SELECT $1, u.pid, u.stage, u.score, u.parts, u.milestone, u.action,
       jsonb_build_array(u.entry || jsonb_build_object('from', NULL)), $8, $8
FROM unnest($2::uuid[], $3::text[], $4::int[], $5::jsonb[], $6::text[], $7::jsonb[],
            $9::jsonb[]) AS u(pid, stage, score, parts, milestone, action, entry)
ON CONFLICT (brand_id, profile_id) DO UPDATE SET
    history = CASE WHEN j.stage IS DISTINCT FROM EXCLUDED.stage
        THEN jsonb_path_query_array(
            j.history || jsonb_build_array(
                (EXCLUDED.history -> 0) || jsonb_build_object('from', j.stage)),
            '$[last-{HISTORY_KEEP - 1} to last]')
        ELSE j.history END,
    stage_since = CASE WHEN j.stage IS DISTINCT FROM EXCLUDED.stage
                       THEN EXCLUDED.stage_since ELSE j.stage_since END,
    stage = EXCLUDED.stage, score = EXCLUDED.score, parts = EXCLUDED.parts,
    next_milestone = EXCLUDED.next_milestone, next_action = EXCLUDED.next_action,
    updated_at = EXCLUDED.updated_at
WHERE j.stage IS DISTINCT FROM EXCLUDED.stage OR j.score <> EXCLUDED.score
   OR j.parts IS DISTINCT FROM EXCLUDED.parts
   OR j.next_milestone IS DISTINCT FROM EXCLUDED.next_milestone
   OR j.next_action IS DISTINCT FROM EXCLUDED.next_action
RETURNING j.profile_id, old.stage AS old_stage, new.stage AS new_stage"""
# Merged-away profiles are no longer people: their journeys go (the survivor has its own).
DROP_MERGED = "DELETE FROM journeys WHERE brand_id = $1 AND profile_id = ANY($2::uuid[])"


@dataclass
class JourneyUpdate:
    profiles: int = 0
    written: int = 0
    changed: list[tuple[UUID, str | None, str]] = field(default_factory=list)
    seconds: float = 0.0


async def invalidate_360(rt: Any, brand_id: UUID, profile_ids: list[UUID]) -> None:
    """Drop cached Customer 360s after a journey or tag write. The key layout is identity's
    (`identity.service.invalidate`), which `ml` and `automations` may not import; it belongs
    in `core` (see docs/automations.md). A Redis outage is logged: the cache has a TTL."""
    keys = [brand_key(str(brand_id), "p360", str(p)) for p in profile_ids]
    try:
        for i in range(0, len(keys), 500):
            await rt.redis.delete(*keys[i : i + 500])
    except Exception:
        _log.warning("cache invalidation failed", n=len(keys))


async def _spend_cuts(conn: Any, brand_id: UUID) -> list[float]:
    """The brand's spend percentiles, cached a few minutes: they move slowly, and computing
    them per streamed batch would scan every profile each time."""
    hit = _spend_cache.get(brand_id)
    now = time.monotonic()
    if hit and now - hit[0] < _SPEND_TTL_S:
        return hit[1]
    cuts = await conn.fetchval(SPEND_CUTS, brand_id)
    value = [float(c) for c in cuts or [] if c is not None]
    _spend_cache[brand_id] = (now, value)
    return value


def assess(
    f: dict[str, Any], now: datetime, cfg: JourneyConfig, cuts: list[float]
) -> dict[str, Any]:
    """Stage, score, parts, milestone and action for one person's facts."""
    stage, why = stage_of(f, now, cfg)
    parts = parts_of(f, now, cuts)
    milestone, milestone_why = milestone_of(stage, f, parts, now)
    action = action_of(stage, why, milestone, f)
    if milestone_why:
        action["milestone_reason"] = milestone_why
    return {
        "stage": stage,
        "why": why,
        "score": score_of(parts),
        "parts": parts,
        "milestone": milestone,
        "action": action,
    }


async def _batch(
    rt: Any, brand_id: UUID, ids: list[UUID], now: datetime, cfg: JourneyConfig, out: JourneyUpdate
) -> None:
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(FACTS, brand_id, ids, now)
        merged = [r["id"] for r in rows if r["merged_into"] is not None]
        live = [dict(r) for r in rows if r["merged_into"] is None]
        cuts = await _spend_cuts(conn, brand_id) if live else []
        assessed = [(f["id"], assess(f, now, cfg, cuts)) for f in live]
        async with conn.transaction():
            if merged:
                await conn.execute(DROP_MERGED, brand_id, merged)
            written = []
            if assessed:
                written = await conn.fetch(
                    UPSERT,
                    brand_id,
                    [pid for pid, _ in assessed],
                    [a["stage"] for _, a in assessed],
                    [a["score"] for _, a in assessed],
                    [a["parts"] for _, a in assessed],
                    [a["milestone"] for _, a in assessed],
                    [a["action"] for _, a in assessed],
                    now,
                    [
                        {"stage": a["stage"], "reason": a["why"], "at": now.isoformat()}
                        for _, a in assessed
                    ],
                )
    out.profiles += len(live)
    out.written += len(written)
    out.changed += [
        (r["profile_id"], r["old_stage"], r["new_stage"])
        for r in written
        if r["old_stage"] != r["new_stage"]
    ]
    touched = [r["profile_id"] for r in written] + merged
    if touched:
        await invalidate_360(rt, brand_id, touched)


async def update_journeys(
    rt: Any,
    brand_id: UUID,
    profile_ids: list[UUID] | None = None,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
) -> JourneyUpdate:
    """Recompute journeys for `profile_ids` (every live profile when None), in batches.

    Returns how many people were assessed and written, and the stage changes
    `(profile_id, old stage or None, new stage)`. Merged-away ids among `profile_ids` lose
    their journey row.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    settings = await rt.pool.fetchval(BRAND_SETTINGS, brand_id)
    cfg = JourneyConfig.of(settings)
    out = JourneyUpdate()
    if profile_ids is not None:
        unique = list(dict.fromkeys(profile_ids))
        for i in range(0, len(unique), batch):
            await _batch(rt, brand_id, unique[i : i + batch], now, cfg, out)
    else:
        after = UUID(int=0)
        while True:
            ids = [r["id"] for r in await rt.pool.fetch(LIVE_PAGE, brand_id, after, batch)]
            if not ids:
                break
            await _batch(rt, brand_id, ids, now, cfg, out)
            after = ids[-1]
    out.seconds = time.perf_counter() - started
    return out
