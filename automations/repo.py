"""All SQL of the automations package. Every statement takes the brand as $1.

Reads of profiles, events, predictions and identifiers are here too (not imported from
`identity`): automations sit beside identity in the import graph, and these reads are the
few columns a trigger, a condition or a message needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# -- automations ----------------------------------------------------------------------------

_A_COLS = (
    "id, brand_id, name, description, trigger, conditions, action, enabled, dry_run, settings, "
    "enabled_at, created_at, updated_at"
)
INSERT_AUTOMATION = f"""
INSERT INTO automations (brand_id, name, description, trigger, conditions, action, enabled,
                         dry_run, settings, enabled_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $7 THEN now() END)
RETURNING {_A_COLS}"""
GET_AUTOMATION = f"SELECT {_A_COLS} FROM automations WHERE brand_id = $1 AND id = $2"
GET_AUTOMATION_BY_NAME = f"SELECT {_A_COLS} FROM automations WHERE brand_id = $1 AND name = $2"
LIST_AUTOMATIONS = f"""
SELECT {_A_COLS} FROM automations
WHERE brand_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC LIMIT $4"""
ENABLED_AUTOMATIONS = f"SELECT {_A_COLS} FROM automations WHERE brand_id = $1 AND enabled"
# NULL leaves a column as it is; enabled_at moves only when the automation is switched on.
UPDATE_AUTOMATION = f"""
UPDATE automations SET
    name = coalesce($3, name),
    description = coalesce($4, description),
    conditions = coalesce($5, conditions),
    settings = coalesce($6, settings),
    enabled_at = CASE WHEN $7 AND NOT enabled THEN now() ELSE enabled_at END,
    enabled = coalesce($7, enabled),
    dry_run = coalesce($8, dry_run),
    updated_at = now()
WHERE brand_id = $1 AND id = $2
RETURNING {_A_COLS}"""

# -- state triggers: arming and per-person state --------------------------------------------

# Arming records what each person looks like now, so only later changes fire. The crossing
# counter `n` survives a re-arm: run keys are built from it and must never repeat.
_ARM_TAIL = """
ON CONFLICT (brand_id, automation_id, profile_id) DO UPDATE
SET state = jsonb_build_object('v', EXCLUDED.state -> 'v',
                               'n', coalesce(automation_state.state -> 'n', '0'::jsonb)),
    updated_at = now()"""
ARM_CHURN = (
    """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, $2, profile_id,
       jsonb_build_object('v', CASE WHEN value >= $3 THEN 'above' ELSE 'below' END, 'n', 0)
FROM predictions WHERE brand_id = $1 AND kind = 'churn' AND value IS NOT NULL"""
    + _ARM_TAIL
)
ARM_PREDICTED_LTV = (
    """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, $2, profile_id,
       jsonb_build_object('v', CASE WHEN value >= $3 THEN 'reached' ELSE 'below' END, 'n', 0)
FROM predictions WHERE brand_id = $1 AND kind = 'ltv' AND value IS NOT NULL"""
    + _ARM_TAIL
)
ARM_SPEND = (
    """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, $2, id,
       jsonb_build_object('v', CASE WHEN total_spent >= $3 THEN 'reached' ELSE 'below' END, 'n', 0)
FROM profiles WHERE brand_id = $1 AND merged_into IS NULL"""
    + _ARM_TAIL
)
ARM_SEGMENT = (
    """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, $2, profile_id, jsonb_build_object('v', band, 'n', 0)
FROM predictions WHERE brand_id = $1 AND kind = 'segment' AND band IS NOT NULL"""
    + _ARM_TAIL
)
ARM_JOURNEY = (
    """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, $2, profile_id, jsonb_build_object('v', stage, 'n', 0)
FROM journeys WHERE brand_id = $1"""
    + _ARM_TAIL
)
LOAD_STATES = """
SELECT automation_id, profile_id, state FROM automation_state
WHERE brand_id = $1 AND automation_id = ANY($2::uuid[]) AND profile_id = ANY($3::uuid[])"""
UPSERT_STATES = """
INSERT INTO automation_state (brand_id, automation_id, profile_id, state)
SELECT $1, a, p, s FROM unnest($2::uuid[], $3::uuid[], $4::jsonb[]) AS u(a, p, s)
ON CONFLICT (brand_id, automation_id, profile_id)
DO UPDATE SET state = EXCLUDED.state, updated_at = now()"""

# -- runs -----------------------------------------------------------------------------------

_R_COLS = (
    "id, automation_id, profile_id, due_at, status, trigger_type, trigger_reason, "
    "idempotency_key, channel, dry_run, attempts, error, provider_message_id, details, "
    "created_at, claimed_at, decided_at, finished_at"
)
# ON CONFLICT without a target: a repeated key, or an open run of the same automation for the
# same person (automation_runs_open), both mean "already queued".
INSERT_RUNS = """
INSERT INTO automation_runs (brand_id, automation_id, profile_id, due_at, trigger_type,
                             trigger_reason, idempotency_key, channel, details)
SELECT $1, a, p, d, t, r, k, c, x
FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::jsonb[]) AS u(a, p, d, t, r, k, c, x)
ON CONFLICT DO NOTHING
RETURNING id"""
# More cart activity pushes the reminder back: the window counts from the last activity.
EXTEND_DUE = """
UPDATE automation_runs r SET due_at = greatest(r.due_at, u.d), updated_at = now()
FROM unnest($2::text[], $3::timestamptz[]) AS u(k, d)
WHERE r.brand_id = $1 AND r.idempotency_key = u.k AND r.status = 'scheduled'"""
# A queued cart reminder whose cart is no longer the person's open cart (a purchase came
# after it, or it aged out) is cancelled. $2/$3: the people just matched and their open cart's
# first event id (NULL: no open cart).
CANCEL_CLOSED_CARTS = """
UPDATE automation_runs r
SET status = 'cancelled', finished_at = $4, updated_at = now(),
    error = CASE WHEN u.anchor IS NULL THEN 'purchase arrived within the window (or the cart expired)'
                 ELSE 'purchase arrived within the window; a newer cart is being tracked' END
FROM unnest($2::uuid[], $3::bigint[]) AS u(pid, anchor)
WHERE r.brand_id = $1 AND r.profile_id = u.pid AND r.status = 'scheduled'
  AND r.trigger_type = 'cart_abandoned'
  AND (r.details ->> 'anchor_event')::bigint IS DISTINCT FROM u.anchor
RETURNING r.id"""
RECENTLY_DECIDED = """
SELECT DISTINCT automation_id, profile_id FROM automation_runs
WHERE brand_id = $1 AND automation_id = ANY($2::uuid[]) AND profile_id = ANY($3::uuid[])
  AND status IN ('sending', 'sent', 'dry_run', 'unknown') AND decided_at > $4"""
CLAIM_DUE = f"""
UPDATE automation_runs r SET status = 'claimed', claimed_at = $2, updated_at = now()
FROM (SELECT id FROM automation_runs
      WHERE brand_id = $1 AND status = 'scheduled' AND due_at <= $2
      ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) d
WHERE r.brand_id = $1 AND r.id = d.id
RETURNING {", ".join("r." + c.strip() for c in _R_COLS.split(","))}"""
GET_RUN = f"SELECT {_R_COLS} FROM automation_runs WHERE brand_id = $1 AND id = $2"
LIST_RUNS = f"""
SELECT {_R_COLS} FROM automation_runs
WHERE brand_id = $1 AND automation_id = $2 AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC LIMIT $6"""
# Caps and cooldown: decided runs of this person. A dry-run decision counts dry runs and real
# sends (it shows what would happen); a real decision counts real sends only.
COUNT_DECIDED = """
SELECT count(*) FILTER (WHERE automation_id = $3 AND decided_at > $4) AS same_automation,
       count(*) FILTER (WHERE channel = ANY($5::text[]) AND decided_at > $6) AS day,
       count(*) FILTER (WHERE channel = ANY($5::text[]) AND decided_at > $7) AS week
FROM automation_runs
WHERE brand_id = $1 AND profile_id = ANY($2::uuid[]) AND id <> $9
  AND status IN ('sending', 'sent', 'dry_run', 'unknown')
  AND decided_at > least($4, $7) AND (NOT dry_run OR $8)"""
DECIDE = """
UPDATE automation_runs
SET status = $3::text, decided_at = $4::timestamptz, dry_run = $5, attempts = attempts + $6,
    details = details || $7,
    finished_at = CASE WHEN $3::text = 'dry_run' THEN $4::timestamptz END,
    updated_at = now()
WHERE brand_id = $1 AND id = $2 AND status = 'claimed'"""
DEFER = """
UPDATE automation_runs
SET status = 'scheduled', due_at = $3, claimed_at = NULL, decided_at = NULL,
    details = details || $4, error = $5, updated_at = now()
WHERE brand_id = $1 AND id = $2 AND status IN ('claimed', 'sending')"""
# An unexpected error while the run was only claimed (nothing sent): try again later, a
# bounded number of times. A run already `sending` is left to the reaper.
RELEASE = """
UPDATE automation_runs
SET status = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE 'scheduled' END,
    attempts = attempts + 1, due_at = $3, error = $4, claimed_at = NULL,
    finished_at = CASE WHEN attempts + 1 >= $5 THEN now() END, updated_at = now()
WHERE brand_id = $1 AND id = $2 AND status = 'claimed'"""
FINISH = """
UPDATE automation_runs
SET status = $3, error = $4, provider_message_id = coalesce($5, provider_message_id),
    details = details || $6, finished_at = $7, updated_at = now()
WHERE brand_id = $1 AND id = $2 AND status IN ('claimed', 'sending')"""
STALE_INFLIGHT = f"""
SELECT {_R_COLS} FROM automation_runs
WHERE brand_id = $1 AND status IN ('claimed', 'sending') AND claimed_at < $2
ORDER BY claimed_at LIMIT 500 FOR UPDATE SKIP LOCKED"""

# -- what triggers, conditions and messages read ---------------------------------------------

LIVE_IDS = """
SELECT id, coalesce(merged_into, id) AS live FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])"""
# Written as per-person lookups on (brand, profile) keys on purpose: stale statistics (right
# after a bulk load or a scoring run) otherwise pick a brand-wide index scan per person, 100x
# slower. Merged-away rows are filtered by the caller: a `merged_into IS NULL` here matches the
# partial list indexes, which is exactly such a plan.
PROFILE_FACTS = """
SELECT p.id, p.total_spent, p.order_count, p.event_count, p.country, p.city, p.channels, p.tags,
       p.consent, p.last_order_at, p.last_seen, p.merged_into,
       pr.churn, pr.churn_band, pr.ltv, pr.ltv_band, pr.segment,
       j.stage AS journey_stage, j.score AS journey_score
FROM profiles p
LEFT JOIN LATERAL (
    SELECT max(q.value) FILTER (WHERE q.kind = 'churn') AS churn,
           max(q.band) FILTER (WHERE q.kind = 'churn') AS churn_band,
           max(q.value) FILTER (WHERE q.kind = 'ltv') AS ltv,
           max(q.band) FILTER (WHERE q.kind = 'ltv') AS ltv_band,
           max(q.band) FILTER (WHERE q.kind = 'segment') AS segment
    FROM predictions q WHERE q.brand_id = $1 AND q.profile_id = p.id) pr ON true
LEFT JOIN LATERAL (
    SELECT stage, score FROM journeys WHERE brand_id = $1 AND profile_id = p.id) j ON true
WHERE p.brand_id = $1 AND p.id = ANY($2::uuid[])"""
# Cart and purchase events since the oldest cart any cart automation still cares about, per
# person in time order; `triggers` finds the last purchase and the cart activity after it (the
# first cart event names the cart, the last one starts the abandonment window).
CART_EVENTS_SINCE = """
SELECT e.profile_id, e.id, e.type, e.occurred_at
FROM unnest($2::uuid[]) AS x(pid)
JOIN LATERAL (
    SELECT e.profile_id, e.id, e.type, e.occurred_at FROM events e
    WHERE e.brand_id = $1 AND e.profile_id = x.pid AND e.occurred_at >= $3
      AND e.type IN ('cart_add', 'checkout_start', 'purchase')) e ON true
ORDER BY e.profile_id, e.occurred_at, e.id"""
INTENT_COUNTS = """
SELECT e.profile_id,
       CASE $6 WHEN 'product' THEN coalesce(i ->> 'product_id', e.properties ->> 'product_id')
               WHEN 'category' THEN coalesce(i ->> 'category', e.properties ->> 'category')
               ELSE '*' END AS item_key,
       count(DISTINCT e.id) AS views,
       max(coalesce(i ->> 'name', e.properties ->> 'name')) AS item_name
FROM events e
LEFT JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.properties -> 'items') = 'array' THEN e.properties -> 'items'
         ELSE '[]'::jsonb END) i ON true
WHERE e.brand_id = $1 AND e.profile_id = ANY($2::uuid[]) AND e.type = 'product_view'
  AND e.occurred_at >= $3
  AND ($4::text IS NULL OR coalesce(i ->> 'product_id', e.properties ->> 'product_id') = $4)
  AND ($5::text IS NULL OR coalesce(i ->> 'category', e.properties ->> 'category') = $5)
GROUP BY 1, 2
HAVING count(DISTINCT e.id) >= $7"""
CART_EVENTS = """
SELECT type, total, currency, properties -> 'items' AS items FROM events
WHERE brand_id = $1 AND profile_id = $2 AND type IN ('cart_add', 'checkout_start')
  AND occurred_at >= $3 ORDER BY occurred_at, id LIMIT 200"""
PURCHASED_SINCE = """
SELECT EXISTS (SELECT 1 FROM events WHERE brand_id = $1 AND profile_id = $2
               AND type = 'purchase' AND occurred_at >= $3)"""
LAST_CART_ACTIVITY = """
SELECT max(occurred_at) FROM events
WHERE brand_id = $1 AND profile_id = $2 AND type IN ('cart_add', 'checkout_start')
  AND occurred_at >= $3"""
CONTACTS = """
SELECT kind, value_enc, masked FROM profile_identifiers
WHERE brand_id = $1 AND profile_id = $2 AND kind = ANY($3::text[]) AND status = 'active'
ORDER BY last_seen DESC"""
TRAITS = "SELECT traits_enc FROM profiles WHERE brand_id = $1 AND id = $2"
RECOMMENDATIONS = """
SELECT details FROM predictions WHERE brand_id = $1 AND profile_id = $2 AND kind = 'recommendations'"""
APPLY_TAGS = """
UPDATE profiles
SET tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || $3::text[]) AS t
                 WHERE NOT t = ANY($4::text[]) ORDER BY 1),
    updated_at = now()
WHERE brand_id = $1 AND id = $2
RETURNING tags"""

# -- sweeps ---------------------------------------------------------------------------------

# Keyset pages over (changed at, profile): a scoring run gives thousands of rows the same
# timestamp, so the timestamp alone cannot be the page boundary.
CHANGED_PREDICTIONS = """
SELECT profile_id, greatest(created_at, as_of) AS at FROM predictions
WHERE brand_id = $1 AND (greatest(created_at, as_of), profile_id) > ($3, $4::uuid)
  AND kind = ANY($2::text[])
ORDER BY greatest(created_at, as_of), profile_id LIMIT $5"""
CHANGED_JOURNEYS = """
SELECT profile_id, updated_at AS at FROM journeys
WHERE brand_id = $1 AND (updated_at, profile_id) > ($2, $3::uuid)
ORDER BY updated_at, profile_id LIMIT $4"""
# People with cart / view activity since the last sweep (the safety net for stream entries
# that never arrived).
RECENT_CART_PROFILES = """
SELECT DISTINCT profile_id FROM events
WHERE brand_id = $1 AND type IN ('cart_add', 'checkout_start', 'purchase') AND occurred_at >= $2"""
RECENT_VIEW_PROFILES = """
SELECT DISTINCT profile_id FROM events
WHERE brand_id = $1 AND type = 'product_view' AND occurred_at >= $2"""
GET_CURSOR = "SELECT value FROM automation_cursors WHERE brand_id = $1 AND name = $2"
SET_CURSOR = """
INSERT INTO automation_cursors (brand_id, name, value) VALUES ($1, $2, $3)
ON CONFLICT (brand_id, name) DO UPDATE SET value = greatest(automation_cursors.value, $3)"""


async def live_ids(conn: Conn, brand_id: UUID, ids: list[UUID]) -> dict[UUID, UUID]:
    """Profile id -> its live survivor (merges point straight at the final survivor)."""
    return {r["id"]: r["live"] for r in await conn.fetch(LIVE_IDS, brand_id, ids)}


async def get_cursor(conn: Conn, brand_id: UUID, name: str) -> datetime | None:
    return await conn.fetchval(GET_CURSOR, brand_id, name)


async def set_cursor(conn: Conn, brand_id: UUID, name: str, value: datetime) -> None:
    await conn.execute(SET_CURSOR, brand_id, name, value)


def row_dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
