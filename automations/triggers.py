"""The trigger matcher: which enabled automations fire for a batch of people, and why.

Matching is set-based (a few statements per batch of profiles, not per event) and
idempotent: every firing carries a deterministic key (automation, trigger, person, and the
cart / crossing / time bucket it is about), stored unique in `automation_runs`, so evaluating
the same people twice (a redelivered stream entry, the sweep, two runners) queues nothing twice.

- State triggers (churn threshold, LTV milestone, segment entered/left, journey stage
  changed) compare what a person looks like now with what this automation last saw
  (`automation_state`); a change fires once. Switching an automation on records everyone's
  current state first ("arming"), so only changes after that fire unless `include_existing`.
- Cart abandonment queues a run due `window` after the last cart activity; a purchase cancels
  it (here, for the batch, and again just before sending).
- Product intent counts product views per product / category in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from automations import repo
from automations.conditions import facts_of, failed_conditions
from automations.models import (
    STATE_TRIGGERS,
    Automation,
    CartAbandoned,
    ChurnThreshold,
    JourneyStageChanged,
    LtvMilestone,
    ProductIntent,
    SegmentChanged,
)


@dataclass
class Fire:
    automation: Automation
    profile_id: UUID
    key: str
    reason: str
    due_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Match:
    fires: list[Fire] = field(default_factory=list)
    # (automation id, profile id, new state) for state triggers whose view changed.
    states: list[tuple[UUID, UUID, dict[str, Any]]] = field(default_factory=list)
    # Why a firing was held back, per (automation, person): for `test` and for counters.
    held: dict[tuple[UUID, UUID], str] = field(default_factory=dict)
    # Cart automations only: each matched person's open cart (first event id), None if none.
    open_carts: dict[UUID, int | None] = field(default_factory=dict)


def driven_by(a: Automation) -> frozenset[str]:
    """What can make this trigger fire: new `events` (the stream), `predictions` (scoring),
    `journeys` (a stage change). The runner matches a person only against the automations
    that what just happened can affect: a new page view cannot move a churn score."""
    t = a.trigger
    if isinstance(t, CartAbandoned | ProductIntent):
        return frozenset({"events"})
    if isinstance(t, LtvMilestone):
        return frozenset({"events" if t.metric == "total_spent" else "predictions"})
    if isinstance(t, JourneyStageChanged):
        return frozenset({"journeys", "events"})
    return frozenset({"predictions"})


async def match(
    conn: asyncpg.Connection | asyncpg.Pool,
    brand_id: UUID,
    automations: list[Automation],
    profile_ids: list[UUID],
    now: datetime,
) -> Match:
    """Evaluate `automations` for `profile_ids` (live ids); nothing is written."""
    out = Match()
    if not automations or not profile_ids:
        return out
    state_autos = [a for a in automations if a.trigger_type in STATE_TRIGGERS]
    facts: dict[UUID, dict[str, Any]] = {}
    if state_autos:
        facts = await _facts(conn, brand_id, profile_ids, now)
        await _state_triggers(conn, brand_id, state_autos, facts, now, out)
    carts = [a for a in automations if isinstance(a.trigger, CartAbandoned)]
    if carts:
        await _carts(conn, brand_id, carts, profile_ids, now, out)
    for a in automations:
        if isinstance(a.trigger, ProductIntent):
            await _intent(conn, brand_id, a, a.trigger, profile_ids, now, out)
    conditional = [f for f in out.fires if f.automation.conditions]
    if conditional:
        missing = list({f.profile_id for f in conditional} - set(facts))
        if missing:
            facts |= await _facts(conn, brand_id, missing, now)
        kept = []
        for f in out.fires:
            failed = failed_conditions(f.automation, facts.get(f.profile_id))
            if f.automation.conditions and failed:
                out.held[(f.automation.id, f.profile_id)] = "conditions: " + "; ".join(failed)
            else:
                kept.append(f)
        out.fires = kept
    return out


async def _facts(conn: Any, brand_id: UUID, ids: list[UUID], now: datetime) -> dict[UUID, dict]:
    rows = await conn.fetch(repo.PROFILE_FACTS, brand_id, ids)
    return {r["id"]: facts_of(r, now) for r in rows if r["merged_into"] is None}


async def _state_triggers(
    conn: Any,
    brand_id: UUID,
    autos: list[Automation],
    facts: dict[UUID, dict[str, Any]],
    now: datetime,
    out: Match,
) -> None:
    rows = await conn.fetch(repo.LOAD_STATES, brand_id, [a.id for a in autos], list(facts))
    seen = {(r["automation_id"], r["profile_id"]): r["state"] for r in rows}
    for a in autos:
        for pid, f in facts.items():
            prev = seen.get((a.id, pid))
            step = _step(a, f, prev)
            if step is None:
                continue
            value, fire_reason = step
            n = int((prev or {}).get("n", 0))
            if fire_reason is not None:
                n += 1
                out.fires.append(
                    Fire(
                        a,
                        pid,
                        f"{a.id}:{a.trigger_type}:{pid}:{n}",
                        fire_reason,
                        now,
                        {"was": (prev or {}).get("v"), "now": value},
                    )
                )
            if prev is None or prev.get("v") != value or fire_reason is not None:
                out.states.append((a.id, pid, {"v": value, "n": n}))


def _step(
    a: Automation, f: dict[str, Any], prev: dict[str, Any] | None
) -> tuple[Any, str | None] | None:
    """(the state this trigger sees now, why it fires or None); None when it cannot tell."""
    t = a.trigger
    was = (prev or {}).get("v")
    if isinstance(t, ChurnThreshold):
        p = f.get("churn")
        if p is None:
            return None
        if p >= t.threshold:
            now_v = "above"
        elif p < t.threshold - t.hysteresis or was is None:
            now_v = "below"
        else:
            now_v = was  # inside the hysteresis band: no re-arming yet
        if now_v == "above" and was != "above":
            return now_v, f"churn probability {p:.2f} crossed {t.threshold:.2f}"
        return now_v, None
    if isinstance(t, LtvMilestone):
        v = f.get("total_spent") if t.metric == "total_spent" else f.get("ltv")
        if v is None:
            return None
        # Reached stays reached: a milestone is celebrated once per person.
        now_v = "reached" if was == "reached" or float(v) >= t.amount else "below"
        if now_v == "reached" and was != "reached":
            label = "lifetime spend" if t.metric == "total_spent" else "predicted LTV"
            return now_v, f"{label} {float(v):.2f} reached {t.amount:g}"
        return now_v, None
    if isinstance(t, SegmentChanged):
        seg = f.get("segment")
        if seg is None:
            return None
        if t.change == "entered" and seg == t.segment and was != t.segment:
            return seg, f"entered segment {t.segment}" + (f" (from {was})" if was else "")
        if t.change == "left" and was == t.segment and seg != t.segment:
            return seg, f"left segment {t.segment} (now {seg})"
        return seg, None
    if isinstance(t, JourneyStageChanged):
        stage = f.get("journey_stage")
        if stage is None:
            return None
        changed = stage != was
        fits = (t.to is None or stage == t.to) and (t.from_stage is None or was == t.from_stage)
        if changed and fits:
            return stage, f"journey stage {was or 'none'} -> {stage}"
        return stage, None
    return None


def cart_anchors(rows: list[Any]) -> dict[UUID, dict[str, Any]]:
    """Per person: the cart activity after their last purchase (first event id and time, last
    time), from their cart/purchase events in time order. No entry: no open cart."""
    out: dict[UUID, dict[str, Any]] = {}
    for r in rows:
        pid = r["profile_id"]
        if r["type"] == "purchase":
            out.pop(pid, None)
        elif pid in out:
            out[pid]["last_at"] = r["occurred_at"]
        else:
            out[pid] = {
                "first_id": r["id"],
                "first_at": r["occurred_at"],
                "last_at": r["occurred_at"],
            }
    return out


async def _carts(
    conn: Any, brand_id: UUID, autos: list[Automation], pids: list[UUID], now: datetime, out: Match
) -> None:
    longest = max(a.trigger.max_age_hours for a in autos)  # type: ignore[union-attr]
    rows = await conn.fetch(repo.CART_EVENTS_SINCE, brand_id, pids, now - timedelta(hours=longest))
    carts = cart_anchors(rows)
    out.open_carts = {pid: None for pid in pids} | {p: c["first_id"] for p, c in carts.items()}
    for a in autos:
        t: CartAbandoned = a.trigger  # type: ignore[assignment]
        oldest = now - timedelta(hours=t.max_age_hours)
        for pid, c in carts.items():
            if c["last_at"] < oldest:
                continue
            due = c["last_at"] + timedelta(minutes=t.window_minutes)
            out.fires.append(
                Fire(
                    a,
                    pid,
                    f"{a.id}:cart:{pid}:{c['first_id']}",
                    f"cart activity at {c['last_at']:%Y-%m-%d %H:%M} UTC with no purchase "
                    f"within {t.window_minutes:g} min",
                    due,
                    {"anchor_event": c["first_id"], "anchor_at": c["first_at"].isoformat()},
                )
            )


async def _intent(
    conn: Any,
    brand_id: UUID,
    a: Automation,
    t: ProductIntent,
    pids: list[UUID],
    now: datetime,
    out: Match,
) -> None:
    window = timedelta(hours=t.window_hours)
    rows = await conn.fetch(
        repo.INTENT_COUNTS,
        brand_id,
        pids,
        now - window,
        t.product_id,
        t.category,
        t.per,
        t.min_views,
    )
    best: dict[UUID, asyncpg.Record] = {}
    for r in rows:
        if r["item_key"] is None:
            continue
        if r["profile_id"] not in best or r["views"] > best[r["profile_id"]]["views"]:
            best[r["profile_id"]] = r
    if not best:
        return
    # A person keeps viewing after the automation ran: skip them here rather than queue runs
    # that the cooldown would only skip.
    cooled = await conn.fetch(
        repo.RECENTLY_DECIDED, brand_id, [a.id], list(best), now - _cooldown(a)
    )
    skip = {r["profile_id"] for r in cooled}
    bucket = int(now.timestamp() // window.total_seconds())
    for pid, r in best.items():
        if pid in skip:
            out.held[(a.id, pid)] = "cooldown"
            continue
        what = {"product": "product", "category": "category", "any": "products"}[t.per]
        out.fires.append(
            Fire(
                a,
                pid,
                f"{a.id}:intent:{pid}:{r['item_key']}:{bucket}",
                f"{r['views']} views of {what} {r['item_key'] if t.per != 'any' else ''} "
                f"within {t.window_hours:g} h".replace("  ", " "),
                now,
                {"item_key": r["item_key"], "item_name": r["item_name"], "views": r["views"]},
            )
        )


def _cooldown(a: Automation) -> timedelta:
    hours = a.settings.cooldown_hours
    return timedelta(hours=24 if hours is None else hours)


async def arm(conn: asyncpg.Connection, brand_id: UUID, a: Automation) -> int:
    """Record everyone's current state for a state trigger being switched on (same
    transaction as the switch), so only later changes fire. Returns the people armed."""
    t = a.trigger
    if getattr(t, "include_existing", False) or a.trigger_type not in STATE_TRIGGERS:
        return 0
    if isinstance(t, ChurnThreshold):
        status = await conn.execute(repo.ARM_CHURN, brand_id, a.id, t.threshold)
    elif isinstance(t, LtvMilestone):
        sql = repo.ARM_SPEND if t.metric == "total_spent" else repo.ARM_PREDICTED_LTV
        status = await conn.execute(sql, brand_id, a.id, t.amount)
    elif isinstance(t, SegmentChanged):
        status = await conn.execute(repo.ARM_SEGMENT, brand_id, a.id)
    else:
        status = await conn.execute(repo.ARM_JOURNEY, brand_id, a.id)
    return int(status.split()[-1])


async def record(conn: asyncpg.Connection, brand_id: UUID, m: Match, now: datetime) -> list[UUID]:
    """Write a match: new runs (a known key or an open run is skipped), later due times for
    carts with new activity, cancelled reminders of closed carts, and the state changes. One
    transaction; returns the new run ids."""
    async with conn.transaction():
        if m.states:
            await conn.execute(
                repo.UPSERT_STATES,
                brand_id,
                [s[0] for s in m.states],
                [s[1] for s in m.states],
                [s[2] for s in m.states],
            )
        carts = [f for f in m.fires if f.automation.trigger_type == "cart_abandoned"]
        if carts:
            await conn.execute(
                repo.EXTEND_DUE, brand_id, [f.key for f in carts], [f.due_at for f in carts]
            )
        if m.open_carts:
            await conn.execute(
                repo.CANCEL_CLOSED_CARTS,
                brand_id,
                list(m.open_carts),
                list(m.open_carts.values()),
                now,
            )
        if not m.fires:
            return []
        rows = await conn.fetch(
            repo.INSERT_RUNS,
            brand_id,
            [f.automation.id for f in m.fires],
            [f.profile_id for f in m.fires],
            [f.due_at for f in m.fires],
            [f.automation.trigger_type for f in m.fires],
            [f.reason for f in m.fires],
            [f.key for f in m.fires],
            [f.automation.channel for f in m.fires],
            [f.details for f in m.fires],
        )
    return [r["id"] for r in rows]
