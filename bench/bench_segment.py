"""Segment-compatible API figures (issue 11), beside the ingestion figure of bench_ingest.py:

1. accept throughput through POST /v1/batch with the Segment SDK's batch size (100 messages,
   `upload_size`), 4 requests in flight, messages built by the SDK itself;
2. the same events end to end: accepted -> resolved rows in `events` (one worker process);
3. one stock `segment-analytics-python` client (one consumer thread, defaults) pushing
   messages until `flush()` returns: what a single SDK process can send.

Starts its own embedded Postgres and Valkey in a temporary CBRAIN_HOME, the API with
`cbrain serve --no-worker` and one `cbrain worker` process, all on loopback.

    python bench/bench_segment.py [--events 50000] [--sdk-events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, wait_server  # noqa: E402

from core import brands  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402

SDK_BATCH = 100  # segment-analytics-python Client(upload_size=100), its default
IN_FLIGHT = 4
DEADLINE_S = 900


def make_messages(n: int, tag: str) -> list[dict[str, Any]]:
    """A storefront's stream, built by the SDK: per shopper a page, a view, an add to cart,
    an identify, a checkout and an order."""
    from segment.analytics import Client

    sdk = Client("unused", send=False)  # builds and validates messages, sends nothing
    out: list[dict[str, Any]] = []
    person = 0
    while len(out) < n:
        uid, anon = f"{tag}-u{person}", f"{tag}-a{person}"
        product = {"product_id": f"p{person % 300}", "sku": f"S{person % 300}", "price": 19.5}
        calls: list[tuple[Any, dict[str, Any]]] = [
            (sdk.page, {"anonymous_id": anon, "name": "Home", "properties": {"path": "/"}}),
            (sdk.track, {"anonymous_id": anon, "event": "Product Viewed", "properties": product}),
            (sdk.track, {"anonymous_id": anon, "event": "Product Added", "properties": product}),
            (
                sdk.identify,
                {
                    "user_id": uid,
                    "anonymous_id": anon,
                    "traits": {"email": f"{uid}@bench-mail.com", "firstName": f"F{person}"},
                },
            ),
            (
                sdk.track,
                {
                    "user_id": uid,
                    "event": "Checkout Started",
                    "properties": {"order_id": f"o-{uid}", "value": 19.5, "currency": "GBP"},
                },
            ),
            (
                sdk.track,
                {
                    "user_id": uid,
                    "event": "Order Completed",
                    "properties": {
                        "order_id": f"o-{uid}",
                        "total": 19.5,
                        "currency": "GBP",
                        "products": [product],
                    },
                },
            ),
        ]
        for method, kwargs in calls:
            _, msg = method(**kwargs)
            out.append(msg)
        person += 1
    return out[:n]


def wire(batch: list[dict[str, Any]], key: str) -> bytes:
    """The body segment.analytics.request.post sends."""
    return orjson.dumps({"batch": batch, "sentAt": datetime.now(UTC).isoformat(), "writeKey": key})


async def wait_resolved(rt: Any, brand_id: Any, n: int, t0: float) -> float:
    while True:
        done = await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand_id)
        if done >= n:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > DEADLINE_S:
            raise RuntimeError(f"only {done} of {n} resolved after {DEADLINE_S} s")
        await asyncio.sleep(0.1)


async def batch_throughput(rt: Any, brand_id: Any, key: str, url: str, n: int) -> dict:
    messages = make_messages(n, "b")
    bodies = [wire(messages[i : i + SDK_BATCH], key) for i in range(0, n, SDK_BATCH)]
    auth = base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as c:

        async def sender() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                r = await c.post("/v1/batch", content=body)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200 or r.json() != {"success": True}:
                    raise RuntimeError(f"batch refused: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
    accept_s = time.perf_counter() - t0
    end_to_end_s = await wait_resolved(rt, brand_id, n, t0)
    latencies.sort()
    return {
        "events": n,
        "requests": len(bodies),
        "accept_events_per_s": n / accept_s,
        "end_to_end_events_per_s": n / end_to_end_s,
        "end_to_end_s": end_to_end_s,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "mean_ms": 1000 * statistics.mean(latencies),
    }


def sdk_throughput(key: str, url: str, n: int) -> dict:
    from segment.analytics import Client

    errors: list[Any] = []
    sdk = Client(key, host=url, on_error=lambda e, _batch: errors.append(e), max_queue_size=n)
    t0 = time.perf_counter()
    for i in range(n):
        sdk.track(user_id=f"s-u{i % 5000}", event="Product Viewed", properties={"sku": f"S{i}"})
    sdk.flush()
    took = time.perf_counter() - t0
    sdk.shutdown()
    return {"events": n, "events_per_s": n / took, "errors": len(errors)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--sdk-events", type=int, default=20_000)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cbrain-bench-seg-"))
    # Registered first, so it runs last: after the embedded servers' own exit handlers.
    atexit.register(shutil.rmtree, home, True)
    os.environ.update(
        {
            "CBRAIN_HOME": str(home),
            "CBRAIN_ENV": "development",
            "CBRAIN_RATE_LIMIT_PER_MINUTE": "0",
            "CBRAIN_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)  # our own embedded servers, always
    settings = load_settings()
    async with open_runtime(settings) as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.create_brand(conn, f"bench-{secrets.token_hex(3)}")
            _, key = await brands.create_key(conn, brand.id, ["ingest"], "bench")
            sdk_brand = await brands.create_brand(conn, f"bench-{secrets.token_hex(3)}")
            _, sdk_key = await brands.create_key(conn, sdk_brand.id, ["ingest"], "bench")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": rt.database_url, "REDIS_URL": rt.redis_url}
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"],
            env=env,
            cwd=ROOT,
        )
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT)
        try:
            await wait_server(url)
            batch = await batch_throughput(rt, brand.id, key, url, args.events)
            sdk = await asyncio.to_thread(sdk_throughput, sdk_key, url, args.sdk_events)
            sdk["stored"] = await rt.pool.fetchval(
                "SELECT count(*) FROM raw_events WHERE brand_id = $1", sdk_brand.id
            )
        finally:
            for p in (server, worker):
                p.terminate()
            for p in (server, worker):
                p.wait(20)
    print(f"machine: {os.cpu_count()} cores")
    print(
        f"POST /v1/batch, {SDK_BATCH} msgs/request, {IN_FLIGHT} in flight: accepted "
        f"{batch['accept_events_per_s']:10,.0f} events/s  (p50 {batch['p50_ms']:.1f} ms, "
        f"p99 {batch['p99_ms']:.1f} ms per request)"
    )
    print(
        f"same events end to end (accepted -> resolved): {batch['end_to_end_events_per_s']:10,.0f}"
        f" events/s  ({batch['events']:,} events in {batch['end_to_end_s']:.1f} s)"
    )
    print(
        f"one segment-analytics-python client (defaults):  {sdk['events_per_s']:10,.0f} events/s"
        f"  ({sdk['events']:,} sent, {sdk['stored']:,} stored, {sdk['errors']} errors)"
    )
    print(json.dumps({"batch": batch, "sdk": sdk}))


if __name__ == "__main__":
    asyncio.run(main())
