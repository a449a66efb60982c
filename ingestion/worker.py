"""The stream worker: consumes `events.raw` of every brand with a consumer group, processes
in batches, acknowledges only after commit; reclaims stale entries (XAUTOCLAIM), dead-letters
poison after N deliveries, and sweeps the inbox so Postgres alone decides what is processed."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError

from core import brands as brands_repo
from core.brands import Brand
from core.errors import CBrainError
from core.logging import get_logger
from core.runtime import Runtime
from core.streams import GROUP, RAW, ensure_group, stream
from ingestion import inbox
from ingestion.processing import bump_attempts, mark_dead, process_batch

_log = get_logger("cbrain.worker")


@dataclass
class WorkerConfig:
    count: int = 100  # stream entries per read (an entry holds one or many raw ids)
    block_ms: int = 1000
    max_batch_events: int = 1000
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    sweep_every_s: float = 30.0
    sweep_age_s: float = 300.0
    brands_refresh_s: float = 10.0


@dataclass
class WorkerStats:
    processed: int = 0
    batches: int = 0
    reclaimed: int = 0
    dead: int = 0
    swept: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


def _ids(fields: dict[Any, Any]) -> list[int]:
    raw = fields.get(b"ids") or fields.get("ids") or b""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return [int(x) for x in text.split(",") if x.strip().isdigit()]


class Worker:
    def __init__(self, rt: Runtime, config: WorkerConfig | None = None, name: str | None = None):
        self.rt = rt
        self.config = config or WorkerConfig()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stats = WorkerStats()
        self._brands: dict[str, Brand] = {}  # stream key -> brand
        self._brands_at = 0.0
        self._swept_at = time.monotonic()
        self._claimed_at = time.monotonic()

    async def _refresh_brands(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._brands_at < self.config.brands_refresh_s and self._brands:
            return
        async with self.rt.pool.acquire() as conn:
            found = await brands_repo.list_brands(conn)
        keys = {}
        for b in found:
            key = stream(b.id, RAW)
            if key not in self._brands:
                await ensure_group(self.rt.redis, key)
            keys[key] = b
        self._brands = keys
        self._brands_at = now

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Loop until `stop` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._refresh_brands()
                did = await self.step()
                backoff = 0.5
                if not did:
                    await self.maintenance()
            except (RedisError, OSError) as exc:
                # Redis down: keep draining the inbox from Postgres until it returns.
                self.stats.errors += 1
                _log.warning("redis unavailable, sweeping inbox", error=type(exc).__name__)
                try:
                    await self.sweep(age_s=0)
                except Exception as sweep_exc:
                    _log.warning("sweep failed", error=type(sweep_exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.errors += 1
                _log.error("worker step failed", error=type(exc).__name__, exc_info=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def step(self) -> bool:
        """Read once from every brand stream and process what came; True if anything did."""
        if not self._brands:
            await asyncio.sleep(self.config.block_ms / 1000)
            return False
        resp: Any = await self.rt.blocking_redis().xreadgroup(
            GROUP,
            self.name,
            {k: ">" for k in self._brands},
            count=self.config.count,
            block=self.config.block_ms,
        )
        if not resp:
            return False
        for key, entries in resp:
            key_s = key.decode() if isinstance(key, bytes) else key
            brand = self._brands.get(key_s)
            if brand is not None and entries:
                await self._handle(key_s, brand, entries)
        return True

    async def _handle(self, key: str, brand: Brand, entries: list[tuple[Any, dict]]) -> None:
        chunk_ids: list[int] = []
        chunk_entries: list[Any] = []
        for entry_id, fields in entries:
            chunk_ids.extend(_ids(fields))
            chunk_entries.append(entry_id)
            if len(chunk_ids) >= self.config.max_batch_events:
                await self._process_and_ack(key, brand, chunk_ids, chunk_entries)
                chunk_ids, chunk_entries = [], []
        if chunk_entries:
            await self._process_and_ack(key, brand, chunk_ids, chunk_entries)

    async def _process_and_ack(
        self, key: str, brand: Brand, raw_ids: list[int], entry_ids: list[Any]
    ) -> None:
        try:
            if raw_ids:
                result = await process_batch(self.rt, brand, raw_ids)
                self.stats.processed += result.processed + result.suppressed
                self.stats.dead += result.dead
                self.stats.batches += 1
        except CBrainError as exc:
            # Not acknowledged: redelivered after claim_idle_ms, dead-lettered after N tries.
            await bump_attempts(self.rt, brand.id, raw_ids, exc.message)
            _log.warning("batch will be retried", error=exc.code, n=len(raw_ids))
            return
        await self.rt.redis.xack(key, GROUP, *entry_ids)

    async def maintenance(self) -> None:
        now = time.monotonic()
        if now - self._claimed_at >= self.config.claim_idle_ms / 1000 / 2:
            self._claimed_at = now
            await self.reclaim()
        if now - self._swept_at >= self.config.sweep_every_s:
            self._swept_at = now
            await self.sweep()

    async def reclaim(self) -> int:
        """Take over entries idle longer than claim_idle_ms (their consumer died)."""
        total = 0
        for key, brand in list(self._brands.items()):
            claimed: Any = await self.rt.redis.xautoclaim(
                key, GROUP, self.name, self.config.claim_idle_ms, start_id="0-0", count=100
            )
            entries = claimed[1]
            if not entries:
                continue
            total += len(entries)
            pending: Any = await self.rt.redis.xpending_range(
                key, GROUP, min=entries[0][0], max=entries[-1][0], count=len(entries) + 10
            )
            deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
            fresh = []
            for entry_id, fields in entries:
                if deliveries.get(entry_id, 0) > self.config.max_deliveries:
                    ids = _ids(fields)
                    reason = f"failed {deliveries[entry_id]} deliveries"
                    if ids:
                        await mark_dead(self.rt, brand.id, ids, reason)
                    await self.rt.redis.xack(key, GROUP, entry_id)
                    self.stats.dead += len(ids)
                else:
                    fresh.append((entry_id, fields))
            if fresh:
                await self._handle(key, brand, fresh)
        self.stats.reclaimed += total
        return total

    async def sweep(self, age_s: float | None = None) -> int:
        """Process inbox rows still pending after `age_s` (announcement lost, Redis restarted
        or trimmed) straight from Postgres."""
        age = self.config.sweep_age_s if age_s is None else age_s
        if not self._brands:
            async with self.rt.pool.acquire() as conn:
                found = await brands_repo.list_brands(conn)
        else:
            found = list(self._brands.values())
        total = 0
        for brand in found:
            while True:
                ids = await inbox.stale_pending(
                    self.rt.pool, brand.id, age, self.config.max_batch_events
                )
                if not ids:
                    break
                result = await process_batch(self.rt, brand, ids)
                total += result.processed + result.suppressed + result.dead
                if result.claimed == 0:
                    break  # someone else holds them right now
        self.stats.swept += total
        return total


async def run_worker(rt: Runtime, config: WorkerConfig | None = None) -> None:
    await Worker(rt, config).run()


async def drain(rt: Runtime, brand_id: UUID, timeout_s: float = 60.0) -> int:
    """Process everything pending for a brand now (used by imports and tests)."""
    async with rt.pool.acquire() as conn:
        brand = await brands_repo.get_brand_by_id(conn, brand_id)
    w = Worker(rt)
    deadline = time.monotonic() + timeout_s
    total = 0
    while time.monotonic() < deadline:
        ids = await inbox.stale_pending(rt.pool, brand.id, 0, w.config.max_batch_events)
        if not ids:
            break
        result = await process_batch(rt, brand, ids)
        total += result.processed + result.suppressed + result.dead
    return total
