"""Automation figures (issue 9), printed as a table:

1. trigger-matcher throughput over a synthetic `events.resolved` stream: batches of 500
   events (the worker's batch size; each names the distinct people it touched) evaluated by
   `AutomationRunner.evaluate` against six enabled automations (one per trigger type, with
   conditions), with and without the per-batch journey update, expressed in incoming
   events/s the matcher keeps up with (goal: 10,000);
2. does it slow ingestion: inbox + resolution (`process_batch`) throughput of live traffic
   (events stamped "now") alone, then with the runner consuming `events.resolved` in the
   same process, then with the runner as its own process (`cbrain automation run`);
3. executing the runs that were queued (dry run), as if every cart window had passed.

Starts its own embedded Postgres and Valkey in a temporary CBRAIN_HOME (or uses DATABASE_URL /
REDIS_URL). Prints `uptime` before and after: the 2-core box is shared.

    python bench/bench_automations.py [--people 10000] [--batches 60] [--ingest 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from automations import service  # noqa: E402
from automations.models import AutomationSpec  # noqa: E402
from automations.scheduler import AutomationRunner  # noqa: E402
from core import brands  # noqa: E402
from core.events import CanonicalEvent  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.streams import RESOLVED, stream  # noqa: E402
from ingestion import service as ingest_service  # noqa: E402
from ingestion.processing import process_batch  # noqa: E402

BATCH = 500
TYPES = ["product_view"] * 6 + ["cart_add"] * 2 + ["checkout_start", "purchase", "page_view"]
AUTOMATIONS = [
    {"name": "cart", "trigger": {"type": "cart_abandoned", "window_minutes": 60}, "action": {"type": "whatsapp", "body": "Hi {first_name}", "from": "+14155238886"}},
    {"name": "intent", "trigger": {"type": "product_intent", "min_views": 3, "window_hours": 24}, "action": {"type": "email", "subject": "Still looking?", "body": "{product}"}},
    {"name": "churn", "trigger": {"type": "churn_threshold", "threshold": 0.66}, "conditions": [{"field": "total_spent", "op": ">=", "value": 50}], "action": {"type": "email", "subject": "We miss you", "body": "Hi"}},
    {"name": "ltv", "trigger": {"type": "ltv_milestone", "amount": 300}, "action": {"type": "tag", "add": ["300-club"]}},
    {"name": "segment", "trigger": {"type": "segment_changed", "segment": "At Risk"}, "action": {"type": "slack", "channel": "#crm", "text": "{profile_id}"}},
    {"name": "journey", "trigger": {"type": "journey_stage_changed", "to": "at_risk"}, "conditions": [{"field": "country", "op": "in", "value": ["GB", "IE"]}], "action": {"type": "tag", "add": ["at-risk"]}},
]  # fmt: skip


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return "uptime unavailable"


def make_event(i: int, person: int, at: datetime, rnd: random.Random, tag: str) -> dict:
    kind = rnd.choice(TYPES)
    product = rnd.randrange(200)
    item = {
        "product_id": f"p{product}",
        "name": f"Product {product}",
        "category": f"c{product % 12}",
        "price": 20.0,
    }
    props: dict = {"items": [item]}
    if kind == "purchase":
        props = {
            "order_id": f"{tag}-o{i}",
            "total": 20.0 + rnd.random() * 80,
            "currency": "GBP",
            "items": [item],
        }
    return {
        "event_id": f"{tag}-{i}",
        "source": "shopify" if kind == "purchase" else "web",
        "type": kind,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "identifiers": {
            "email": f"person{person}@bench-shop.example",
            "phone": f"+4477009{person % 100000:05d}",
        },
        "traits": {
            "first_name": f"First{person}",
            "last_name": f"Last{person % 997}",
            "country": "GB",
        },
        "properties": props,
    }


async def ingest(rt, brand, events: list[dict]) -> float:
    """Inbox + resolution in batches of BATCH; returns events/s."""
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        chunk = [
            (j, CanonicalEvent.model_validate({**e, "brand": brand.slug}))
            for j, e in enumerate(events[i : i + BATCH])
        ]
        res = await ingest_service.accept(rt, brand.id, chunk, conn=rt.pool)
        ids = [r.raw_id for r in res if r.raw_id]
        if ids:
            await process_batch(rt, brand, ids)
    return len(events) / (time.perf_counter() - started)


async def predictions(rt, brand_id, rnd: random.Random) -> None:
    rows = await rt.pool.fetch(
        "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand_id
    )
    segs = ["Champions", "Loyal", "At Risk", "Hibernating", "New", "Need Attention"]
    now = datetime.now(UTC)
    records = []
    for r in rows:
        churn = rnd.random()
        records.append(
            (brand_id, r["id"], "churn", now, churn, "High" if churn > 0.66 else "Low", {})
        )
        records.append(
            (brand_id, r["id"], "ltv", now, rnd.random() * 500, f"D{rnd.randrange(1, 11)}", {})
        )
        records.append((brand_id, r["id"], "segment", now, None, rnd.choice(segs), {}))
    await rt.pool.copy_records_to_table(
        "predictions",
        records=records,
        columns=["brand_id", "profile_id", "kind", "as_of", "value", "band", "details"],
    )


def stream_batches(people: list, n: int, rnd: random.Random) -> list[list]:
    """The distinct people of n batches of BATCH events each (what events.resolved carries)."""
    return [list({rnd.choice(people) for _ in range(BATCH)}) for _ in range(n)]


async def matcher(rt, brand, batches: list[list], *, journeys: bool, per_read: int = 1) -> dict:
    """Evaluate the batches as the runner does: `per_read` stream entries read at once, their
    people de-duplicated and matched in chunks of 1,000 (1 = the runner keeps up entry by
    entry, the worst case; more = entries that piled up during a pass)."""
    runner = AutomationRunner(rt, journeys=journeys)
    lat = []
    try:
        await runner.automations(brand.id, fresh=True)
        started = time.perf_counter()
        for g in range(0, len(batches), per_read):
            people = list(dict.fromkeys(p for b in batches[g : g + per_read] for p in b))
            t = time.perf_counter()
            for i in range(0, len(people), 1000):
                await runner.evaluate(brand, people[i : i + 1000])
            lat.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
    finally:
        await runner.close()
    lat.sort()
    return {
        "events_per_s": len(batches) * BATCH / elapsed,
        "people_per_s": sum(len(b) for b in batches) / elapsed,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
        "queued": runner.stats.queued,
    }


async def scoring_sweep(rt, brand) -> dict:
    """A scoring run rewrites every prediction; time the sweep that re-matches everyone
    against the prediction-driven automations (churn threshold, segment changed)."""
    await rt.pool.execute(
        "UPDATE predictions SET value = CASE WHEN kind = 'churn' THEN random() ELSE value END, "
        "band = CASE WHEN kind = 'segment' AND random() < 0.1 THEN 'At Risk' ELSE band END, "
        "as_of = now(), created_at = now() WHERE brand_id = $1",
        brand.id,
    )
    runner = AutomationRunner(rt, journeys=False)
    runner.settings = runner.settings.model_copy(update={"sweep_budget_s": 3600})
    people = await rt.pool.fetchval(
        "SELECT count(DISTINCT profile_id) FROM predictions WHERE brand_id = $1", brand.id
    )
    try:
        started = time.perf_counter()
        queued = await runner.sweep(brand)
        elapsed = time.perf_counter() - started
    finally:
        await runner.close()
    return {"people": people, "people_per_s": people / elapsed, "queued": queued}


async def ingest_with_runner(rt, brand, events: list[dict]) -> tuple[float, dict]:
    runner = AutomationRunner(rt)
    runner.settings = runner.settings.model_copy(update={"poll_s": 0.2, "sweep_s": 3600})
    stop = asyncio.Event()
    since = datetime.now(UTC)
    task = asyncio.create_task(runner.run(stop))
    try:
        await _startup_sweep_done(rt, brand, since)
        await _drained(rt, brand)
        rate = await ingest(rt, brand, events)
        await _drained(rt, brand)  # what ingestion published, before stopping the runner
    finally:
        stop.set()
        await task
    return rate, {
        "batches": runner.stats.batches,
        "queued": runner.stats.queued,
        "errors": runner.stats.errors,
    }


async def _startup_sweep_done(rt, brand, since: datetime, timeout: float = 300) -> None:
    """A runner sweeps once when it starts (catching up after downtime); the figure is about
    matching new traffic, so ingestion starts after that sweep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await rt.pool.fetchrow(
            "SELECT max(value) FILTER (WHERE name = 'activity') AS a, "
            "count(*) FILTER (WHERE name = 'journeys_full') AS j "
            "FROM automation_cursors WHERE brand_id = $1",
            brand.id,
        )
        if row["a"] is not None and row["a"] >= since and row["j"]:
            return
        await asyncio.sleep(0.2)


async def _drained(rt, brand, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await rt.redis.xinfo_groups(stream(brand.id, RESOLVED))
        mine = [g for g in info if g.get("name") in (b"automations", "automations")]
        if mine and not mine[0].get("pending") and not mine[0].get("lag"):
            return
        await asyncio.sleep(0.2)


async def ingest_with_runner_process(rt, brand, events: list[dict], **extra_env: str) -> float:
    """The runner as its own process (`cbrain automation run`), as one would deploy it."""
    env = {
        **os.environ,
        **extra_env,
        "DATABASE_URL": rt.database_url,
        "REDIS_URL": rt.redis_url,
        "CBRAIN_AUTOMATION_POLL": "0.2",
        "CBRAIN_AUTOMATION_SWEEP": "3600",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "automation", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    since = datetime.now(UTC)
    try:
        await _startup_sweep_done(rt, brand, since)
        await _drained(rt, brand)
        rate = await ingest(rt, brand, events)
        await _drained(rt, brand)
    finally:
        proc.terminate()
        proc.wait(30)
    return rate


async def execute_all(rt, brand) -> dict:
    """Execute every queued run (dry run: checks, message composed, recorded), as if the
    clock had moved past every cart window."""
    later = datetime.now(UTC) + timedelta(hours=3)
    runner = AutomationRunner(rt, clock=lambda: later)
    done = 0
    try:
        started = time.perf_counter()
        while n := await runner.execute_due(brand, limit=500):
            done += n
        elapsed = time.perf_counter() - started
    finally:
        await runner.close()
    return {
        "runs": done,
        "runs_per_s": done / elapsed if elapsed else 0.0,
        "by": runner.stats.executed,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--events-per-person", type=int, default=4)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--ingest", type=int, default=20_000)
    args = ap.parse_args()
    print(f"load before: {uptime()}")
    home = None
    if not os.environ.get("DATABASE_URL"):
        home = tempfile.mkdtemp(prefix="cbrain-bench-auto-")
        os.environ["CBRAIN_HOME"] = home
    os.environ.setdefault("CBRAIN_ENV", "development")
    os.environ.setdefault("CBRAIN_LOG_LEVEL", "WARNING")
    rnd = random.Random(9)
    settings = load_settings()
    async with open_runtime(settings) as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.create_brand(
                conn,
                f"bench-auto-{secrets.token_hex(3)}",
                None,
                {"default_region": "GB", "automations": {"quiet_hours": None}},
            )
        now = datetime.now(UTC)
        history = [
            make_event(i, i % args.people, now - timedelta(hours=rnd.uniform(1, 24 * 60)), rnd, "h")
            for i in range(args.people * args.events_per_person)
        ]
        t = time.perf_counter()
        await ingest(rt, brand, history)
        print(
            f"loaded {len(history):,} events for {args.people:,} people in {time.perf_counter() - t:.1f} s"
        )
        await predictions(rt, brand.id, rnd)
        async with rt.pool.acquire() as conn:
            for spec in AUTOMATIONS:
                await service.create(
                    conn,
                    rt.keyring,
                    brand.id,
                    AutomationSpec.model_validate({**spec, "enabled": True, "dry_run": True}),
                )
        people = [
            r["id"]
            for r in await rt.pool.fetch(
                "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
            )
        ]
        # The history's own stream entries are not part of the figure.
        await rt.redis.delete(stream(brand.id, RESOLVED))
        batches = stream_batches(people, args.batches, rnd)
        warm = await matcher(rt, brand, batches[:5], journeys=True)
        del warm
        only = await matcher(rt, brand, batches, journeys=False)
        full = await matcher(rt, brand, stream_batches(people, args.batches, rnd), journeys=True)
        piled = await matcher(
            rt, brand, stream_batches(people, args.batches, rnd), journeys=True, per_read=10
        )

        fresh, fresh2 = (
            [
                make_event(
                    i,
                    rnd.randrange(args.people),
                    now - timedelta(seconds=rnd.uniform(0, 60)),
                    rnd,
                    tag,
                )
                for i in range(args.ingest)
            ]
            for tag in ("a", "b")
        )
        swept = await scoring_sweep(rt, brand)
        alone = await ingest(rt, brand, fresh)
        with_runner, rstats = await ingest_with_runner(rt, brand, fresh2)
        fresh3 = [
            make_event(
                i,
                rnd.randrange(args.people),
                now - timedelta(seconds=rnd.uniform(0, 60)),
                rnd,
                "c",
            )
            for i in range(args.ingest)
        ]
        beside = await ingest_with_runner_process(rt, brand, fresh3)
        fresh4 = [
            make_event(
                i, rnd.randrange(args.people), now - timedelta(seconds=rnd.uniform(0, 60)), rnd, "d"
            )
            for i in range(args.ingest)
        ]
        lean = await ingest_with_runner_process(
            rt, brand, fresh4, CBRAIN_AUTOMATION_JOURNEYS_ON_EVENTS="false"
        )
        fresh5 = [
            make_event(
                i, rnd.randrange(args.people), now - timedelta(seconds=rnd.uniform(0, 60)), rnd, "e"
            )
            for i in range(args.ingest)
        ]
        # Ingestion slows as the tables grow over the phases: measure it alone before and
        # after, and compare the runner phases with the mean of the two.
        alone_after = await ingest(rt, brand, fresh5)
        executed = await execute_all(rt, brand)
        runs = await rt.pool.fetchval(
            "SELECT count(*) FROM automation_runs WHERE brand_id = $1", brand.id
        )
    if home:
        shutil.rmtree(home, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores; load after: {uptime()}")
    print(
        f"people {len(people):,}; automations {len(AUTOMATIONS)} (one per trigger type); batch {BATCH} events"
    )
    for label, m in (
        ("matcher only, per entry", only),
        ("+ journeys, per entry", full),
        ("+ journeys, 10 entries/read", piled),
    ):
        print(
            f"{label:28} {m['events_per_s']:10,.0f} events/s  ({m['people_per_s']:,.0f} people/s; "
            f"per read p50 {m['p50_ms']:.0f} ms, p99 {m['p99_ms']:.0f} ms; runs queued {m['queued']:,})"
        )
    print(
        f"scoring sweep (predictions)  {swept['people_per_s']:10,.0f} people/s  "
        f"({swept['people']:,} re-scored people matched; runs queued {swept['queued']:,})"
    )
    print(
        f"ingestion alone              {alone:10,.0f} events/s  before, {alone_after:,.0f} after "
        f"the runner phases ({args.ingest:,} events each)"
    )
    alone = (alone + alone_after) / 2
    print(
        f"ingestion + runner           {with_runner:10,.0f} events/s  (ratio {with_runner / alone:.2f}; "
        f"runner batches {rstats['batches']}, errors {rstats['errors']})"
    )
    print(
        f"ingestion + runner process   {beside:10,.0f} events/s  (ratio {beside / alone:.2f}; "
        "`cbrain automation run` beside it)"
    )
    print(f"  same, journeys not on events {lean:8,.0f} events/s  (ratio {lean / alone:.2f})")
    print(
        f"executing queued runs        {executed['runs_per_s']:10,.0f} runs/s  "
        f"({executed['runs']:,} runs: {executed['by']})"
    )
    print(f"automation_runs rows: {runs:,}")
    print(
        "same-run ratios: matcher / ingestion "
        f"{only['events_per_s'] / alone:.1f}x, with journeys {full['events_per_s'] / alone:.1f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
