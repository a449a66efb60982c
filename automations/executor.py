"""Executing one claimed run: re-check the trigger, conditions and safety, then send once.

A run reaches here in status `claimed` (taken with FOR UPDATE SKIP LOCKED). The order of
checks matters: things that make the run pointless (automation off, person gone, purchase
made, conditions no longer true) cancel or skip it before anything about timing; quiet hours
defer it; consent skips it; only then are the caps decided (under the person's lock) and the
run marked `sending` — which is committed before the provider is called, so the idempotency
key is on record before any message can exist.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from automations import compose, repo, safety
from automations.actions import (
    IDEMPOTENT_CHANNELS,
    AmbiguousSendError,
    Outbound,
    PermanentSendError,
    TransientSendError,
)
from automations.conditions import facts_of, failed_conditions
from automations.config import AutomationSettings
from automations.models import Automation, CartAbandoned
from core.brands import Brand
from core.logging import get_logger
from ml.journeys import invalidate_360

_log = get_logger("cbrain.automations")


def automation_of(row: Any) -> Automation:
    return Automation.model_validate(dict(row))


class Executor:
    def __init__(self, rt: Any, settings: AutomationSettings, outbound: Outbound) -> None:
        self.rt = rt
        self.settings = settings
        self.outbound = outbound

    async def execute(self, brand: Brand, run: dict[str, Any], now: datetime) -> str:
        """Carry a claimed run to its next status and return that status."""
        try:
            return await self._execute(brand, run, now)
        except Exception as exc:
            # Unexpected (a bug, the database gone). A run still only claimed goes back to the
            # queue (bounded); one already `sending` stays put for the reaper, which knows
            # whether its channel may be sent again.
            _log.error(
                "automation run failed", run=str(run["id"]), error=type(exc).__name__, exc_info=exc
            )
            with contextlib.suppress(Exception):
                await self.rt.pool.execute(
                    repo.RELEASE,
                    brand.id,
                    run["id"],
                    now + timedelta(seconds=self.settings.run_backoff_s),
                    f"{type(exc).__name__}: {str(exc)[:200]}",
                    self.settings.run_attempts,
                )
            return "error"

    async def _execute(self, brand: Brand, run: dict[str, Any], now: datetime) -> str:
        pool = self.rt.pool
        bid = brand.id
        row = await pool.fetchrow(repo.GET_AUTOMATION, bid, run["automation_id"])
        if row is None or not row["enabled"]:
            return await self._finish(bid, run, "cancelled", "automation disabled or deleted", now)
        automation = automation_of(row)
        live = (await repo.live_ids(pool, bid, [run["profile_id"]])).get(run["profile_id"])
        if live is None:
            return await self._finish(bid, run, "cancelled", "profile no longer exists", now)
        details = run.get("details") or {}
        if isinstance(automation.trigger, CartAbandoned) and details.get("anchor_at"):
            anchor = datetime.fromisoformat(details["anchor_at"])
            if await pool.fetchval(repo.PURCHASED_SINCE, bid, live, anchor):
                return await self._finish(
                    bid, run, "cancelled", "purchase arrived within the window", now
                )
            last = await pool.fetchval(repo.LAST_CART_ACTIVITY, bid, live, anchor)
            due = (last or anchor) + timedelta(minutes=automation.trigger.window_minutes)
            if due > now:
                await pool.execute(
                    repo.DEFER, bid, run["id"], due, {"extended_to": due.isoformat()}, None
                )
                return "scheduled"
        fact_row = await pool.fetchrow(repo.PROFILE_FACTS, bid, [live])
        facts = facts_of(fact_row, now) if fact_row and not fact_row["merged_into"] else None
        if facts is None:
            return await self._finish(bid, run, "cancelled", "profile no longer exists", now)
        failed = failed_conditions(automation, facts) if automation.conditions else []
        if failed:
            return await self._finish(
                bid, run, "skipped", "conditions no longer hold: " + "; ".join(failed), now
            )
        policy = safety.Policy.of(brand.settings, automation)
        facing = safety.customer_facing(automation)
        crypto = self.rt.keyring.for_brand(str(bid))
        who = await compose.person(pool, crypto, bid, live)
        if facing:
            blocked = safety.consent_block(automation.channel, facts.get("consent"), policy)
            if blocked:
                return await self._finish(bid, run, "skipped", f"consent: {blocked}", now)
            tz = safety.zone(who.timezone, policy.timezone)
            resume = safety.quiet_until(now, tz, policy)
            if resume is not None:
                note = {
                    "deferred": {
                        "until": resume.isoformat(),
                        "reason": "quiet hours",
                        "timezone": str(tz),
                    }
                }
                await pool.execute(repo.DEFER, bid, run["id"], resume, note, None)
                return "scheduled"
        async with pool.acquire() as conn:
            ctx = await compose.context(conn, brand, automation, run, live, facts, who)
            try:
                out = await compose.outgoing(
                    conn,
                    self.rt.keyring,
                    self.settings,
                    brand,
                    automation,
                    run,
                    live,
                    facts,
                    ctx,
                    now,
                )
            except compose.Unreachable as exc:
                return await self._finish(bid, run, "skipped", str(exc), now)
            except PermanentSendError as exc:
                return await self._finish(bid, run, "failed", exc.message, now)
            record = {
                "live_profile_id": str(live),
                "would_send" if automation.dry_run else "sent": out.record,
            }
            decision = await safety.decide(
                conn,
                bid,
                run,
                automation,
                live,
                policy,
                now,
                dry_run=automation.dry_run,
                details=record,
            )
        if not decision.allowed:
            return await self._finish(
                bid, run, "skipped", decision.reason, now, {"safety": decision.counts}
            )
        if automation.dry_run:
            return "dry_run"
        return await self._send(brand, automation, run, out, live, now)

    async def _send(
        self,
        brand: Brand,
        automation: Automation,
        run: dict[str, Any],
        out: Any,
        live: UUID,
        now: datetime,
    ) -> str:
        bid = brand.id
        if out.channel == "tag":
            async with self.rt.pool.acquire() as conn, conn.transaction():
                tags = await conn.fetchval(
                    repo.APPLY_TAGS, bid, live, out.payload["add"], out.payload["remove"]
                )
                await conn.execute(
                    repo.FINISH,
                    bid,
                    run["id"],
                    "sent",
                    None,
                    f"tags:{len(tags or [])}",
                    {"tags": tags},
                    now,
                )
            await invalidate_360(self.rt, bid, [live])
            return "sent"
        try:
            result = await self.outbound.send(out)
        except TransientSendError as exc:
            return await self._reschedule(bid, run, now, exc.message)
        except AmbiguousSendError as exc:
            if out.channel in IDEMPOTENT_CHANNELS:
                return await self._reschedule(bid, run, now, exc.message)
            return await self._finish(
                bid,
                run,
                "unknown",
                f"{exc.message}; not resent (the first send may have arrived)",
                now,
            )
        except PermanentSendError as exc:
            return await self._finish(bid, run, "failed", exc.message, now)
        await self.rt.pool.execute(
            repo.FINISH,
            bid,
            run["id"],
            "sent",
            None,
            result.provider_message_id,
            {"send_attempts": result.attempts, **result.details},
            now,
        )
        return "sent"

    async def _reschedule(
        self, brand_id: UUID, run: dict[str, Any], now: datetime, error: str
    ) -> str:
        """A transient failure: try the whole run again later, a bounded number of times."""
        attempts = int(run.get("attempts") or 0) + 1
        if attempts >= self.settings.run_attempts:
            return await self._finish(
                brand_id, run, "failed", f"gave up after {attempts} attempts: {error}", now
            )
        delay = self.settings.run_backoff_s * (2 ** (attempts - 1))
        await self.rt.pool.execute(
            repo.DEFER,
            brand_id,
            run["id"],
            now + timedelta(seconds=delay),
            {"last_error": error},
            error,
        )
        return "scheduled"

    async def _finish(
        self,
        brand_id: UUID,
        run: dict[str, Any],
        status: str,
        error: str | None,
        now: datetime,
        details: dict[str, Any] | None = None,
    ) -> str:
        await self.rt.pool.execute(
            repo.FINISH, brand_id, run["id"], status, error, None, details or {}, now
        )
        return status


async def reap(rt: Any, brand_id: UUID, now: datetime, lease: timedelta) -> dict[str, int]:
    """Runs held past the lease by a worker that stopped. `claimed` ones were never sent: back
    to `scheduled`. `sending` ones may have been sent: an idempotent channel (webhook, tag)
    is sent again under the same key; the others are recorded `unknown`, never resent."""
    counts = {"requeued": 0, "unknown": 0}
    async with rt.pool.acquire() as conn, conn.transaction():
        for r in await conn.fetch(repo.STALE_INFLIGHT, brand_id, now - lease):
            if r["status"] == "claimed" or r["channel"] in IDEMPOTENT_CHANNELS:
                await conn.execute(
                    repo.DEFER, brand_id, r["id"], now, {"recovered": now.isoformat()}, None
                )
                counts["requeued"] += 1
            else:
                await conn.execute(
                    repo.FINISH,
                    brand_id,
                    r["id"],
                    "unknown",
                    "worker stopped between send and record; not resent (the first send may have arrived)",
                    None,
                    {},
                    now,
                )
                counts["unknown"] += 1
    return counts
