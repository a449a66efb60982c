"""Ingestion figures (issue 3), printed as a table:

1. sustained end-to-end throughput: events POSTed to /v1/events/batch (500 per request) on a
   real uvicorn server, until every one is a resolved row in `events`, beside a plain COPY of
   the same rows into an unindexed copy of `events` in the same run;
2. API accept latency p50/p99 for single events at a fixed 500 requests/s (open loop).

Starts its own embedded Postgres and Valkey in a temporary CBRAIN_HOME (or uses DATABASE_URL /
REDIS_URL), the API with `cbrain serve --no-worker` and one `cbrain worker` process.

    python bench/bench_ingest.py [--events 100000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import cpu_by_role, free_port, uptime, wait_server  # noqa: E402

from core import brands  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402


def make_events(n: int, seed: int = 1) -> list[dict]:
    """Purchases and views of n/4 people across web, POS and WhatsApp identifiers."""
    rnd = random.Random(seed)
    people = max(1, n // 4)
    out = []
    for i in range(n):
        p = rnd.randrange(people)
        kind = rnd.random()
        if kind < 0.5:
            ids = {"email": f"person{p}@bench-mail.com", "cookie_id": f"ck{p}"}
            src, typ = "web", rnd.choice(["product_view", "cart_add", "purchase"])
        elif kind < 0.85:
            ids = {"phone": f"+4477009{p % 100000:05d}", "loyalty_id": f"LC{p}"}
            src, typ = "pos", "purchase"
        else:
            ids = {"whatsapp": f"whatsapp:+4477009{p % 100000:05d}"}
            src, typ = "whatsapp", "message_in"
        ev = {
            "event_id": f"bench-{seed}-{i}",
            "source": src,
            "type": typ,
            "occurred_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "identifiers": ids,
            "traits": {"first_name": f"First{p}", "last_name": f"Last{p % 997}"},
            "properties": {},
        }
        if typ == "purchase":
            price = round(rnd.uniform(3, 80), 2)
            ev["properties"] = {
                "order_id": f"o{i}",
                "total": price,
                "currency": "GBP",
                "items": [{"product_id": f"p{rnd.randrange(300)}", "price": price}],
            }
        out.append(ev)
    return out


async def copy_baseline(rt, brand_id, events: list[dict]) -> float:
    """Plain COPY of the same rows (no resolution) into an unindexed twin of `events`."""
    import uuid

    async with rt.pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_events_copy")
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_events_copy (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cols = (
            "brand_id",
            "raw_event_id",
            "source",
            "event_id",
            "type",
            "occurred_at",
            "profile_id",
            "order_id",
            "total",
            "currency",
            "properties",
        )
        from datetime import datetime

        pid = uuid.uuid4()
        rows = [
            (
                brand_id,
                i,
                e["source"],
                e["event_id"],
                e["type"],
                datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")),
                pid,
                e["properties"].get("order_id"),
                e["properties"].get("total"),
                e["properties"].get("currency"),
                e["properties"],
            )
            for i, e in enumerate(events)
        ]
        t = time.perf_counter()
        await conn.copy_records_to_table("bench_events_copy", records=rows, columns=cols)
        took = time.perf_counter() - t
        await conn.execute("DROP TABLE bench_events_copy")
    return len(events) / took


async def end_to_end(
    rt, brand_id, key: str, url: str, events: list[dict], roles: dict[str, list[int]]
) -> dict:
    import orjson

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # Bodies are encoded before the clock starts: the load generator shares the two cores.
    bodies = [orjson.dumps({"events": events[i : i + 500]}) for i in range(0, len(events), 500)]
    sem = asyncio.Semaphore(4)
    cpu0 = cpu_by_role(roles)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as c:

        async def send(body: bytes):
            async with sem:
                r = await c.post("/v1/events/batch", content=body)
                r.raise_for_status()

        await asyncio.gather(*(send(b) for b in bodies))
    accepted_s = time.perf_counter() - t0
    # The watcher must not load the machine it measures: it polls the (small) partial index of
    # pending inbox rows, and counts `events` only once that is empty.
    n = 0
    while True:
        pending = await rt.pool.fetchval(
            "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND status = 'pending'", brand_id
        )
        if pending == 0:
            n = await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand_id)
            if n >= len(events):
                break
        if time.perf_counter() - t0 > 900:
            raise RuntimeError(f"only {n} of {len(events)} processed after 900 s")
        await asyncio.sleep(0.05)
    total_s = time.perf_counter() - t0
    cpu1 = cpu_by_role(roles)
    return {
        "cpu": {role: cpu1[role] - cpu0[role] for role in cpu1},
        "events": len(events),
        "accept_s": accepted_s,
        "end_to_end_s": total_s,
        "events_per_s": len(events) / total_s,
    }


async def latency(key: str, url: str, rate: int, seconds: int) -> dict:
    """Open loop: requests are started on schedule whatever the previous ones are doing.
    aiohttp as the load generator: httpx costs more CPU per request than the server."""
    import aiohttp
    import orjson

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lat: list[float] = []
    errors = 0
    n = rate * seconds
    bodies = [orjson.dumps(e) for e in make_events(n, seed=99)]
    conn = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(base_url=url, headers=headers, connector=conn) as c:

        async def one(body):
            nonlocal errors
            t = time.perf_counter()
            async with c.post("/v1/events", data=body) as r:
                await r.read()
                if r.status != 202:
                    errors += 1
            lat.append(time.perf_counter() - t)

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    lat.sort()
    return {
        "requests": n,
        "achieved_rps": n / wall,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
        "mean_ms": 1000 * statistics.mean(lat),
        "errors": errors,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4, help="cbrain worker processes")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cbrain-bench-"))
    atexit.register(shutil.rmtree, home, True)  # a run leaves ~500 MB of data
    env_over = {
        "CBRAIN_HOME": str(home),
        "CBRAIN_ENV": "development",
        "CBRAIN_RATE_LIMIT_PER_MINUTE": "0",
        "CBRAIN_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env_over)
    settings = load_settings()
    async with open_runtime(settings) as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.create_brand(conn, f"bench-{secrets.token_hex(3)}")
            _, key = await brands.create_key(conn, brand.id, ["ingest"], "bench")
        events = make_events(args.events)
        copy_rate = await copy_baseline(rt, brand.id, events)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": rt.database_url, "REDIS_URL": rt.redis_url}
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"],
            env=env,
            cwd=ROOT,
        )
        workers = [
            subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT)
            for _ in range(args.workers)
        ]
        try:
            await wait_server(url)
            roles = {"api": [server.pid], "workers": [w.pid for w in workers]}
            e2e = await end_to_end(rt, brand.id, key, url, events, roles)
            lat = await latency(key, url, args.rate, args.seconds) if args.seconds else None
        finally:
            for p in (server, *workers):
                p.terminate()
            for p in (server, *workers):
                p.wait(20)
    print(f"machine: {os.cpu_count()} cores; {args.workers} worker process(es); {uptime()}")
    print(f"COPY baseline (same rows, no resolution)   {copy_rate:12,.0f} rows/s")
    print(
        f"end-to-end accepted -> resolved in events  {e2e['events_per_s']:12,.0f} events/s"
        f"  ({e2e['events']:,} events in {e2e['end_to_end_s']:.1f} s; all accepted after {e2e['accept_s']:.1f} s)"
    )
    print(f"ratio end-to-end / COPY                    {e2e['events_per_s'] / copy_rate:12.3f}")
    cpu = "  ".join(f"{role} {s:.1f}" for role, s in e2e["cpu"].items())
    cores = os.cpu_count() or 1
    print(f"CPU s during end to end ({cores * e2e['end_to_end_s']:.1f} on {cores} cores): {cpu}")
    if lat is None:
        return
    print(
        f"accept latency at {args.rate} req/s (achieved {lat['achieved_rps']:.0f}): "
        f"p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms  mean {lat['mean_ms']:.1f} ms"
        f"  errors {lat['errors']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
