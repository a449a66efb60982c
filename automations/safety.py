"""Safety rules every run passes before anything is sent.

- one execution per automation per person per cooldown (24 h unless configured);
- frequency caps per person per day and per week across all automations (customer-facing
  channels only: WhatsApp and email, and webhooks marked customer-facing);
- quiet hours in the customer's time zone (traits `timezone`, else the brand's default):
  a run due inside them is deferred to their end, not dropped;
- consent: an explicit opt-out (`whatsapp_consent` / `email_consent` false, e.g. a WhatsApp
  "STOP") blocks that channel; with `require_opt_in` a missing consent blocks it too;
- dry run: every check runs and the run is recorded with what would have been sent.

The cap and cooldown check and the decision to send are one transaction under an advisory
lock on the person, so two runners (or two runs of one runner) cannot both pass a cap of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from automations import repo
from automations.models import CUSTOMER_CHANNELS, Automation
from core.db import advisory_xact_locks

_CONSENT_KEY = {"whatsapp": "whatsapp_consent", "email": "email_consent"}


@dataclass(frozen=True)
class Policy:
    """The brand's rules (`brands.settings["automations"]`) with per-automation overrides."""

    cooldown: timedelta = timedelta(hours=24)
    cap_per_day: int = 2
    cap_per_week: int = 5
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(8, 0)
    timezone: str = "UTC"
    require_opt_in: bool = False

    @classmethod
    def of(cls, brand_settings: dict[str, Any] | None, automation: Automation | None) -> Policy:
        raw = (brand_settings or {}).get("automations") or {}
        quiet = raw.get("quiet_hours", {"start": "21:00", "end": "08:00"})
        start = end = None
        if quiet and (automation is None or automation.settings.quiet_hours):
            start, end = _hhmm(quiet.get("start", "21:00")), _hhmm(quiet.get("end", "08:00"))
        hours = raw.get("cooldown_hours", 24)
        if automation is not None and automation.settings.cooldown_hours is not None:
            hours = automation.settings.cooldown_hours
        return cls(
            cooldown=timedelta(hours=float(hours)),
            cap_per_day=int(raw.get("cap_per_day", 2)),
            cap_per_week=int(raw.get("cap_per_week", 5)),
            quiet_start=start,
            quiet_end=end,
            timezone=str(raw.get("timezone") or (brand_settings or {}).get("timezone") or "UTC"),
            require_opt_in=bool(raw.get("require_opt_in", False)),
        )


def _hhmm(value: str) -> time:
    hour, _, minute = str(value).partition(":")
    return time(int(hour), int(minute or 0))


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The customer's zone; an unknown name falls back to the brand's, then UTC."""
    for candidate in (name, fallback, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(str(candidate))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def quiet_until(now: datetime, tz: ZoneInfo, policy: Policy) -> datetime | None:
    """When quiet hours end, if `now` falls inside them in zone `tz`; None otherwise.

    Windows may wrap midnight (21:00-08:00). The end is computed in local wall time, so a DST
    change inside the window still ends it at 08:00 local.
    """
    start, end = policy.quiet_start, policy.quiet_end
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    wraps = start > end
    inside = (t >= start or t < end) if wraps else (start <= t < end)
    if not inside:
        return None
    day = local.date()
    if wraps and t >= start:
        day += timedelta(days=1)
    resume = datetime.combine(day, end, tzinfo=tz)
    return resume.astimezone(now.tzinfo)


def consent_block(channel: str, consent: dict[str, Any] | None, policy: Policy) -> str | None:
    """Why `channel` may not be used for this person, or None."""
    key = _CONSENT_KEY.get(channel)
    if key is None:
        return None
    value = (consent or {}).get(key)
    if value is False:
        return f"{channel} opted out ({key} = false)"
    if value is None and policy.require_opt_in:
        return f"no {channel} opt-in on record and the brand requires one"
    return None


def customer_facing(automation: Automation) -> bool:
    action = automation.action
    return action["type"] in CUSTOMER_CHANNELS or bool(action.get("customer_facing"))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None
    counts: dict[str, int]


async def decide(
    conn: asyncpg.Connection,
    brand_id: UUID,
    run: dict[str, Any],
    automation: Automation,
    live_id: UUID,
    policy: Policy,
    now: datetime,
    *,
    dry_run: bool,
    details: dict[str, Any],
) -> Decision:
    """Check cooldown and caps and, if they pass, mark the run decided (`sending`, or
    `dry_run`) in the same transaction, under the person's advisory lock."""
    async with conn.transaction():
        await advisory_xact_locks(conn, [f"automation-person:{brand_id}:{live_id}"])
        people = list({run["profile_id"], live_id})
        channels = (
            [automation.channel]
            if not customer_facing(automation)
            else sorted(CUSTOMER_CHANNELS | {automation.channel})
        )
        row = await conn.fetchrow(
            repo.COUNT_DECIDED,
            brand_id,
            people,
            automation.id,
            now - policy.cooldown,
            channels,
            now - timedelta(days=1),
            now - timedelta(days=7),
            dry_run,
            run["id"],
        )
        counts = {k: int(row[k]) for k in ("same_automation", "day", "week")}
        reason = None
        if policy.cooldown > timedelta(0) and counts["same_automation"] > 0:
            hours = policy.cooldown.total_seconds() / 3600
            reason = f"cooldown: this automation already ran for this person within {hours:g} h"
        elif customer_facing(automation) and counts["day"] >= policy.cap_per_day:
            reason = f"frequency cap: {counts['day']} message(s) in the last 24 h"
        elif customer_facing(automation) and counts["week"] >= policy.cap_per_week:
            reason = f"frequency cap: {counts['week']} message(s) in the last 7 days"
        if reason is not None:
            return Decision(False, reason, counts)
        status = "dry_run" if dry_run else "sending"
        await conn.execute(
            repo.DECIDE,
            brand_id,
            run["id"],
            status,
            now,
            dry_run,
            0 if dry_run else 1,
            {**details, "safety": counts},
        )
        return Decision(True, None, counts)
