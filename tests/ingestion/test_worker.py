import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys

import httpx
import orjson

from app.main import create_app
from core.embedded import start_valkey
from core.redis import create_redis
from core.streams import GROUP, RAW, stream
from ingestion import inbox
from ingestion.processing import process_batch
from ingestion.worker import Worker, WorkerConfig, drain
from tests.helpers import event, wait_for

FAST = WorkerConfig(
    block_ms=100, claim_idle_ms=500, sweep_every_s=0.3, sweep_age_s=1.0, brands_refresh_s=0.2
)


async def _status(rt, brand) -> dict[str, int]:
    return await inbox.status_counts(rt.pool, brand.id)


@contextlib.asynccontextmanager
async def running(worker: Worker):
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _people_events(n: int, prefix: str, people: int = 0):
    people = people or max(1, n // 4)
    return [
        event(
            f"{prefix}-{i}",
            identifiers={"email": f"{prefix}{i % people}@mail-{prefix}.net"},
            traits={"first_name": f"N{i % people}"},
        )
        for i in range(n)
    ]


async def _post_all(client, brand, events):
    for i in range(0, len(events), 500):
        resp = await client.post(
            "/v1/events/batch", json={"events": events[i : i + 500]}, headers=brand.auth("ingest")
        )
        assert resp.status_code == 200, resp.text


async def test_worker_consumes_the_stream_and_acknowledges_after_commit(rt, client, brand):
    async with running(Worker(rt, FAST)):
        await _post_all(client, brand, _people_events(200, "w"))
        await wait_for(lambda: _processed(rt, brand, 200), timeout=30)
    key = stream(brand.id, RAW)
    pending = await rt.redis.xpending(key, GROUP)
    assert pending["pending"] == 0
    assert (
        await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand.id) == 200
    )
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
        )
        == 50
    )


async def _processed(rt, brand, n):
    return (await _status(rt, brand)).get("processed", 0) >= n


async def test_redis_outage_loses_nothing(rt, brand, tmp_path):
    valkey = start_valkey(tmp_path)
    redis = create_redis(valkey.url)
    local = dataclasses.replace(rt, redis=redis)
    app = create_app(local.settings, runtime=local)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        running(Worker(local, FAST)),
    ):
        await _post_all(c, brand, _people_events(100, "before"))
        await wait_for(lambda: _processed(rt, brand, 100))
        port = valkey.port
        valkey.stop()
        # Redis is down: the API keeps accepting into the Postgres inbox ...
        await _post_all(c, brand, _people_events(300, "during"))
        health = await c.get("/health")
        assert (
            health.status_code == 503 and health.json()["components"]["redis"]["status"] == "down"
        )
        # ... and the worker drains the inbox from Postgres while Redis is away.
        await wait_for(lambda: _processed(rt, brand, 400), timeout=60)
        valkey = start_valkey(tmp_path, port=port)
        await wait_for(lambda: _health_ok(c), timeout=20)
        await _post_all(c, brand, _people_events(100, "after"))
        await wait_for(lambda: _processed(rt, brand, 500), timeout=60)
    await redis.aclose()
    valkey.stop()
    assert (
        await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand.id) == 500
    )


async def _health_ok(c):
    return (await c.get("/health")).status_code == 200


async def test_killing_a_worker_mid_stream_loses_nothing_and_stores_nothing_twice(
    rt, client, brand, settings
):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CBRAIN_HOME": str(settings.home),
        "CBRAIN_ENV": "test",
        "CBRAIN_PEPPER": settings.pepper.get_secret_value(),
        "CBRAIN_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
    }
    # Groups must exist before the worker starts reading (it creates them for known brands).
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        events = _people_events(20_000, "k", people=5_000)
        await _post_all(client, brand, events)
        await wait_for(lambda: _processed(rt, brand, 2_000), timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_at_kill = (await _status(rt, brand)).get("processed", 0)
    assert done_at_kill < 20_000, "the worker finished before it could be killed"
    async with running(Worker(rt, FAST)):
        await wait_for(lambda: _processed(rt, brand, 20_000), timeout=180)
    counts = await rt.pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE brand_id = $1",
        brand.id,
    )
    assert counts["n"] == counts["d"] == 20_000
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
        )
        == 5_000
    )
    assert (await rt.redis.xpending(stream(brand.id, RAW), GROUP))["pending"] == 0


async def test_poison_row_is_dead_lettered_with_its_reason_and_the_rest_goes_through(
    rt, client, brand
):
    await _post_all(client, brand, _people_events(5, "ok"))
    crypto = rt.keyring.for_brand(str(brand.id))
    poison_id = await rt.pool.fetchval(
        "INSERT INTO raw_events (brand_id, source, event_id, type, occurred_at, payload_enc) "
        "VALUES ($1, 'api', 'poison', 'purchase', now(), $2) RETURNING id",
        brand.id,
        crypto.encrypt(orjson.dumps({"event_id": "poison", "identifiers": {}})),
    )
    ids = [
        r["id"]
        for r in await rt.pool.fetch("SELECT id FROM raw_events WHERE brand_id = $1", brand.id)
    ]
    result = await process_batch(rt, brand.brand, ids)
    assert result.processed == 5 and result.dead == 1
    dead = await inbox.dead_letters(rt.pool, brand.id)
    assert [d["id"] for d in dead] == [poison_id]
    assert "KeyError" in dead[0]["error"]
    assert await inbox.revive(rt.pool, brand.id, [poison_id]) == [poison_id]
    await drain(rt, brand.id)
    assert [d["id"] for d in await inbox.dead_letters(rt.pool, brand.id)] == [poison_id]


async def test_entries_of_a_dead_consumer_are_reclaimed_and_poison_entries_dead_lettered(
    rt, client, brand
):
    worker = Worker(rt, dataclasses.replace(FAST, claim_idle_ms=0, max_deliveries=3))
    await worker._refresh_brands(force=True)
    await _post_all(client, brand, _people_events(20, "ghost"))
    key = stream(brand.id, RAW)
    taken = await rt.redis.xreadgroup(GROUP, "ghost", {key: ">"}, count=10)
    assert taken and taken[0][1]
    assert await worker.reclaim() >= 1
    assert (await _status(rt, brand)).get("processed") == 20
    assert (await rt.redis.xpending(key, GROUP))["pending"] == 0
    # an entry delivered too often is dead-lettered, not retried forever
    await _post_all(client, brand, [event("ghost-poison")])
    [[_, [(entry_id, _fields)]]] = await rt.redis.xreadgroup(GROUP, "ghost", {key: ">"}, count=1)
    for _ in range(4):
        await rt.redis.xclaim(key, GROUP, "ghost", 0, [entry_id])
    await worker.reclaim()
    assert (await _status(rt, brand)).get("dead") == 1
    assert (await rt.redis.xpending(key, GROUP))["pending"] == 0
