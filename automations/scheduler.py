"""The automation runner: turns resolved events and new predictions into runs, and runs them.

Three loops in one task, all driven by Postgres state so a restart loses nothing:

1. `events.resolved` (and `profiles.merged`) of every brand, read with the runner's own
   consumer group (`automations`): the people of each batch get their journeys updated and
   the triggers matched; the entry is acknowledged after the match is committed.
2. Due runs: `automation_runs` rows with status `scheduled` and `due_at <= now`, claimed with
   `FOR UPDATE SKIP LOCKED` and executed (cart reminders wait here across restarts).
3. Sweeps: predictions and journeys changed since a watermark (scoring does not publish a
   stream entry), recent cart/view activity (covers stream entries lost to a Redis outage or
   trim), runs held past their lease (the reaper), and a daily full journey pass (stages move
   with time passing, not only with events).

`evaluate_once(rt, brand_id)` does one pass of all three for one brand (tests, CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError

from automations import executor as executor_mod
from automations import repo, triggers
from automations.actions import Outbound
from automations.config import AutomationSettings, automation_settings
from automations.models import Automation
from core import brands as brands_repo
from core.brands import Brand
from core.logging import get_logger
from core.runtime import Runtime
from core.streams import MERGED, RESOLVED, ensure_group, stream
from ml.journeys import update_journeys

_log = get_logger("cbrain.automations")
GROUP = "automations"
Clock = Callable[[], datetime]
_PREDICTION_KINDS = ["churn", "ltv", "segment"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunnerStats:
    batches: int = 0
    profiles: int = 0
    queued: int = 0
    executed: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def _ids(fields: dict[Any, Any], name: str) -> list[UUID]:
    raw = fields.get(name.encode()) or fields.get(name) or b""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out = []
    for part in text.split(","):
        with contextlib.suppress(ValueError):
            out.append(UUID(part.strip()))
    return out


class AutomationRunner:
    """One runner per process; any number may run (SKIP LOCKED claims, idempotent matching)."""

    def __init__(
        self,
        rt: Runtime,
        settings: AutomationSettings | None = None,
        *,
        clock: Clock = utcnow,
        name: str | None = None,
        journeys: bool | None = None,
        brand_ids: set[UUID] | None = None,
    ) -> None:
        self.rt = rt
        self.settings = settings or automation_settings(rt)
        self.clock = clock
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.journeys = self.settings.journeys_on_events if journeys is None else journeys
        # None: every brand. A set: only these (a runner per brand group, or a test).
        self.brand_ids = brand_ids
        self.outbound = Outbound(self.settings, rt.settings)
        self.executor = executor_mod.Executor(rt, self.settings, self.outbound)
        self.stats = RunnerStats()
        self._brands: dict[str, Brand] = {}  # stream key -> brand, groups ensured
        self.brand_list: list[Brand] = []
        self._brands_at = 0.0
        self._autos: dict[UUID, tuple[float, list[Automation]]] = {}
        self._swept_at = 0.0

    async def close(self) -> None:
        await self.outbound.close()

    # -- automations and brands -------------------------------------------------------------

    async def automations(self, brand_id: UUID, *, fresh: bool = False) -> list[Automation]:
        """Enabled automations of a brand, cached for a few seconds (read per batch)."""
        hit = self._autos.get(brand_id)
        if hit and not fresh and time.monotonic() - hit[0] < 5.0:
            return hit[1]
        rows = await self.rt.pool.fetch(repo.ENABLED_AUTOMATIONS, brand_id)
        autos = [executor_mod.automation_of(r) for r in rows]
        self._autos[brand_id] = (time.monotonic(), autos)
        return autos

    async def _refresh_brands(self) -> None:
        """Brands from Postgres, and their stream groups in Redis. A Redis failure leaves the
        brand list (due runs and sweeps need only Postgres) and is retried next time."""
        if self._brands_at and time.monotonic() - self._brands_at < 10.0:
            return
        async with self.rt.pool.acquire() as conn:
            found = await brands_repo.list_brands(conn)
        if self.brand_ids is not None:
            found = [b for b in found if b.id in self.brand_ids]
        self.brand_list = found
        self._brands_at = time.monotonic()
        keys: dict[str, Brand] = {}
        for b in found:
            for name in (RESOLVED, MERGED):
                key = stream(b.id, name)
                if key not in self._brands:
                    await ensure_group(self.rt.redis, key, GROUP)
                keys[key] = b
        self._brands = keys

    # -- 1. matching ------------------------------------------------------------------------

    async def evaluate(self, brand: Brand, profile_ids: list[UUID]) -> int:
        """Journeys, then triggers, for these people; returns the runs queued."""
        if not profile_ids:
            return 0
        now = self.clock()
        pool = self.rt.pool
        live = list(dict.fromkeys((await repo.live_ids(pool, brand.id, profile_ids)).values()))
        if self.journeys:
            await update_journeys(self.rt, brand.id, list(dict.fromkeys(profile_ids)), now=now)
        autos = [a for a in await self.automations(brand.id) if "events" in triggers.driven_by(a)]
        self.stats.batches += 1
        self.stats.profiles += len(live)
        if not autos or not live:
            return 0
        m = await triggers.match(pool, brand.id, autos, live, now)
        async with pool.acquire() as conn:
            queued = await triggers.record(conn, brand.id, m, now)
        self.stats.queued += len(queued)
        return len(queued)

    async def read_streams(self, *, block_ms: int | None = 1000, only: UUID | None = None) -> bool:
        """One XREADGROUP over every brand's streams; True if anything came."""
        await self._refresh_brands()
        keys = {k: b for k, b in self._brands.items() if only is None or b.id == only}
        if not keys:
            return False
        client = self.rt.redis if block_ms is None else self.rt.blocking_redis()
        resp: Any = await client.xreadgroup(
            GROUP, self.name, {k: ">" for k in keys}, count=200, block=block_ms
        )
        for key, entries in resp or []:
            key_s = key.decode() if isinstance(key, bytes) else key
            brand = keys.get(key_s)
            if brand is None or not entries:
                continue
            people: list[UUID] = []
            for _, fields in entries:
                people += _ids(fields, "profiles") + _ids(fields, "survivor")
                people += _ids(fields, "merged")  # their journeys go; survivors are matched
            # Entries pile up while a pass runs; one person in many of them is matched once,
            # and bigger chunks cost less per person: the runner speeds up under load.
            people = list(dict.fromkeys(people))
            for i in range(0, len(people), 1000):
                await self.evaluate(brand, people[i : i + 1000])
            await self.rt.redis.xack(key_s, GROUP, *[e[0] for e in entries])
        return bool(resp)

    # -- 2. due runs ------------------------------------------------------------------------

    async def execute_due(self, brand: Brand, limit: int = 100) -> int:
        """Claim due runs of a brand and execute them, a few at a time."""
        now = self.clock()
        rows = await self.rt.pool.fetch(repo.CLAIM_DUE, brand.id, now, limit)
        if not rows:
            return 0
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(run: dict[str, Any]) -> None:
            async with gate:
                status = await self.executor.execute(brand, run, now)
                self.stats.executed[status] = self.stats.executed.get(status, 0) + 1

        await asyncio.gather(*(one(dict(r)) for r in rows))
        return len(rows)

    # -- 3. sweeps --------------------------------------------------------------------------

    async def sweep(self, brand: Brand, *, overlap: timedelta = timedelta(minutes=5)) -> int:
        """Re-match people whose predictions or journeys changed, or who had cart / view
        activity since the last sweep; reap stale runs; the daily journey pass."""
        autos = await self.automations(brand.id, fresh=True)
        now = self.clock()
        pool = self.rt.pool
        queued = 0
        for name, sql, args in (
            ("predictions", repo.CHANGED_PREDICTIONS, [_PREDICTION_KINDS]),
            ("journeys", repo.CHANGED_JOURNEYS, []),
        ):
            relevant = [a for a in autos if name in triggers.driven_by(a)]
            if relevant:
                mark = await repo.get_cursor(pool, brand.id, name) or _EPOCH
                at, after = mark - overlap, UUID(int=0)
                # A full scoring run changes everyone: take a bounded bite per sweep (the
                # cursor keeps the place) so due runs are not held up behind it.
                budget = time.monotonic() + self.settings.sweep_budget_s
                while time.monotonic() < budget:
                    rows = await pool.fetch(sql, brand.id, *args, at, after, 5000)
                    if not rows:
                        break
                    ids = list(dict.fromkeys(r["profile_id"] for r in rows))
                    queued += await self._match_only(brand, relevant, ids, now)
                    at, after = rows[-1]["at"], rows[-1]["profile_id"]
                    await repo.set_cursor(pool, brand.id, name, at)
        windows = [
            timedelta(hours=a.trigger.max_age_hours)  # type: ignore[union-attr]
            if a.trigger_type == "cart_abandoned"
            else timedelta(hours=a.trigger.window_hours)  # type: ignore[union-attr]
            for a in autos
            if a.trigger_type in ("cart_abandoned", "product_intent")
        ]
        if windows:
            last = await repo.get_cursor(pool, brand.id, "activity") or _EPOCH
            since = max(now - max(windows), last - overlap)
            people: set[UUID] = set()
            if any(a.trigger_type == "cart_abandoned" for a in autos):
                rows = await pool.fetch(repo.RECENT_CART_PROFILES, brand.id, since)
                people |= {r["profile_id"] for r in rows}
            if any(a.trigger_type == "product_intent" for a in autos):
                rows = await pool.fetch(repo.RECENT_VIEW_PROFILES, brand.id, since)
                people |= {r["profile_id"] for r in rows}
            ordered = sorted(people)
            busy = [a for a in autos if a.trigger_type in ("cart_abandoned", "product_intent")]
            for i in range(0, len(ordered), 1000):
                queued += await self._match_only(brand, busy, ordered[i : i + 1000], now)
            await repo.set_cursor(pool, brand.id, "activity", now)
        await executor_mod.reap(self.rt, brand.id, now, timedelta(seconds=self.settings.lease_s))
        await self._daily_journeys(brand, now)
        return queued

    async def _match_only(
        self, brand: Brand, autos: list[Automation], ids: list[UUID], now: datetime
    ) -> int:
        if not autos:
            return 0
        live = list(dict.fromkeys((await repo.live_ids(self.rt.pool, brand.id, ids)).values()))
        m = await triggers.match(self.rt.pool, brand.id, autos, live, now)
        async with self.rt.pool.acquire() as conn:
            return len(await triggers.record(conn, brand.id, m, now))

    async def _daily_journeys(self, brand: Brand, now: datetime) -> None:
        last = await repo.get_cursor(self.rt.pool, brand.id, "journeys_full")
        if last is not None and now - last < timedelta(days=1):
            return
        await repo.set_cursor(self.rt.pool, brand.id, "journeys_full", now)
        result = await update_journeys(self.rt, brand.id, now=now)
        _log.info(
            "journeys recomputed",
            brand=brand.slug,
            profiles=result.profiles,
            changed=len(result.changed),
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Until `stop` is set or the task is cancelled; errors are logged and retried. With
        Redis down, due runs and sweeps go on from Postgres (the sweep is the safety net for
        stream entries that never arrive)."""
        stop = stop or asyncio.Event()
        backoff = 0.5
        next_poll = 0.0
        next_read = 0.0
        try:
            while not stop.is_set():
                try:
                    try:
                        wait = next_read - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(min(wait, self.settings.poll_s))
                        next_read = time.monotonic() + self.settings.coalesce_s
                        await self.read_streams(block_ms=int(self.settings.poll_s * 1000))
                    except (RedisError, OSError) as exc:
                        self.stats.errors += 1
                        _log.warning("automation streams unavailable", error=type(exc).__name__)
                        await asyncio.sleep(min(backoff, self.settings.poll_s))
                        backoff = min(backoff * 2, 10.0)
                    else:
                        backoff = 0.5
                    if time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + self.settings.poll_s
                        for brand in self.brand_list:
                            await self.execute_due(brand)
                    if time.monotonic() - self._swept_at >= self.settings.sweep_s:
                        self._swept_at = time.monotonic()
                        for brand in self.brand_list:
                            await self.sweep(brand)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.errors += 1
                    _log.error(
                        "automation runner step failed", error=type(exc).__name__, exc_info=exc
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            await self.close()


async def run_automations(rt: Runtime) -> None:
    """The long-running task `cbrain serve` starts beside the API (see app/wiring.py)."""
    await AutomationRunner(rt).run()


async def evaluate_once(
    rt: Runtime,
    brand_id: UUID,
    *,
    now: datetime | None = None,
    settings: AutomationSettings | None = None,
    runner: AutomationRunner | None = None,
) -> dict[str, Any]:
    """One pass for one brand: read what its streams hold, sweep, execute what is due.

    `now` stands in for the clock (tests move time forward without waiting). Returns the
    runner's counters for this pass.
    """
    own = runner is None
    r = runner or AutomationRunner(rt, settings, clock=(lambda: now) if now else utcnow)
    try:
        async with rt.pool.acquire() as conn:
            brand = await brands_repo.get_brand_by_id(conn, brand_id)
        with contextlib.suppress(RedisError, OSError):
            while await r.read_streams(block_ms=None, only=brand_id):
                pass
        queued = await r.sweep(brand)
        executed = 0
        while True:
            n = await r.execute_due(brand)
            executed += n
            if n == 0:
                break
        return {
            "queued": r.stats.queued + queued,
            "executed": dict(r.stats.executed),
            "claimed": executed,
        }
    finally:
        if own:
            await r.close()
