"""MCP tool latency over streamable HTTP (issue 7): p50/p99 per tool on a synthetic brand.

The brand is built with SQL (generate_series) at --profiles scale (default 1,000,000): one
email per profile (keyed hash + sealed value, as identity writes them), about 2.5 purchases
per profile with 1-3 items from a 400-product catalogue, views/carts/checkouts for part of
them, profile aggregates consistent with the events, an embedding per profile, and the four
prediction kinds of docs/predictions-contract.md. The API with the MCP mount runs in its own
process (uvicorn); one SDK client (handshake mode, as Claude Desktop) calls tools in sequence.

Aggregate tools are measured cold (their Redis cache entry deleted before every call: the
query cost) and warm (served from the cache, within its 5-minute TTL).

    python bench/bench_mcp.py [--profiles 1000000] [--home DIR (reuse a built dataset)]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, uptime  # noqa: E402

from core import brands  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402

SLUG = "bench-mcp"
TABLES = ("profiles", "events", "predictions", "profile_identifiers", "profile_embeddings")
# The goals: interactive per-customer calls by p50, analytics by p99.
GOALS = {
    "lookup_customer (email)": ("p50", 10),
    "lookup_customer (customer_ref)": ("p50", 10),
    "churn_risk (one customer)": ("p50", 20),
    "recommendations (one customer)": ("p50", 20),
    "analyze_": ("p99", 300),
}

PEOPLE = """
CREATE UNLOGGED TABLE bench_people AS
SELECT g, uuidv7() AS id, (1 + floor(-ln(1 - random()) * 1.6))::int AS orders,
       now() - (random() ^ 1.6) * interval '700 days' AS last_at,
       interval '1 day' * (14 + random() * 70) AS gap,
       (ARRAY['shopify', 'pos', 'woocommerce', 'whatsapp'])[1 + g % 4] AS channel
FROM generate_series(1, $1) g"""
CATALOG = """
CREATE UNLOGGED TABLE bench_catalog AS
SELECT i, 'P' || lpad(i::text, 4, '0') AS product_id, 'Product ' || i AS name,
       (ARRAY['Skincare', 'Haircare', 'Bath', 'Tea', 'Snacks', 'Kitchen', 'Gifts', 'Candles',
              'Coffee', 'Baby', 'Pets', 'Garden', 'Books', 'Toys', 'Sport', 'Home'])[1 + i % 16]
           AS category, (4.5 + (i % 50) * 1.5)::numeric(14, 2) AS price
FROM generate_series(0, 399) i"""
PURCHASES = """
INSERT INTO events (brand_id, raw_event_id, source, event_id, type, occurred_at, profile_id,
                    order_id, total, currency, properties)
SELECT $1, 0, src, oid, 'purchase', ts, id, oid, tot, 'GBP',
       jsonb_build_object('order_id', oid, 'total', tot, 'currency', 'GBP', 'items', items)
FROM (
    SELECT p.id, 'o' || p.g || '-' || k AS oid, p.last_at - (k - 1) * p.gap AS ts,
           CASE WHEN random() < 0.8 THEN p.channel ELSE 'shopify' END AS src,
           it.items, it.tot
    FROM bench_people p
    CROSS JOIN LATERAL generate_series(1, p.orders) k
    CROSS JOIN LATERAL (
        SELECT jsonb_agg(jsonb_build_object('product_id', c.product_id, 'name', c.name,
                         'category', c.category, 'price', c.price, 'quantity', 1)) AS items,
               sum(c.price) AS tot
        FROM (SELECT floor(400 * random() ^ 2)::int AS pick
              FROM generate_series(1, 1 + (p.g + k) % 3) j) x
        JOIN bench_catalog c ON c.i = x.pick
    ) it
) s"""
BROWSING = """
INSERT INTO events (brand_id, raw_event_id, source, event_id, type, occurred_at, profile_id,
                    properties)
SELECT $1, 0, 'web', t || '-' || p.g, t, now() - random() * interval '120 days', p.id,
       jsonb_build_object('items', jsonb_build_array(jsonb_build_object(
           'product_id', 'P' || lpad((p.g % 400)::text, 4, '0'))))
FROM bench_people p
CROSS JOIN LATERAL (VALUES ('product_view', 0.4), ('cart_add', 0.2), ('checkout_start', 0.12)) v(t, share)
WHERE (p.g * 2654435761::bigint % 1000) < v.share * 1000"""
PROFILES = """
INSERT INTO profiles (brand_id, id, created_at, first_seen, last_seen, name_norm, city, country,
                      event_count, order_count, total_spent, first_order_at, last_order_at,
                      channels, profile_strength)
SELECT $1, p.id, a.first_seen, a.first_seen, a.last_seen,
       (ARRAY['olivia', 'amelia', 'isla', 'ava', 'noah', 'oliver', 'george', 'leo', 'harry',
              'mia'])[1 + p.g % 10] || ' ' ||
       (ARRAY['smith', 'jones', 'taylor', 'brown', 'williams', 'wilson', 'johnson', 'davies',
              'patel', 'wright', 'walker', 'evans'])[1 + (p.g / 10) % 12] || ' ' || p.g,
       (ARRAY['London', 'Manchester', 'Leeds', 'Bristol', 'Glasgow', 'Cardiff', 'Birmingham',
              'Liverpool'])[1 + p.g % 8], 'GB',
       a.n, a.orders, a.spent, a.first_order, a.last_order, a.channels, 3
FROM bench_people p
JOIN (SELECT profile_id, count(*) AS n, count(*) FILTER (WHERE type = 'purchase') AS orders,
             coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0) AS spent,
             min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
             min(occurred_at) FILTER (WHERE type = 'purchase') AS first_order,
             max(occurred_at) FILTER (WHERE type = 'purchase') AS last_order,
             array_agg(DISTINCT source ORDER BY source) AS channels
      FROM events WHERE brand_id = $1 GROUP BY profile_id) a ON a.profile_id = p.id"""
EMBEDDINGS = """
INSERT INTO profile_embeddings (brand_id, profile_id, embedding)
SELECT $1, p.id,
       (SELECT l2_normalize(array_agg(random() - 0.5)::vector) FROM generate_series(1, 32)
        WHERE p.g > 0)  -- correlated, so drawn per profile
FROM bench_people p"""
PREDICTIONS = """
WITH base AS (
    SELECT p.id, b.g, p.order_count, p.total_spent::float8 AS spent,
           extract(epoch FROM now() - p.last_order_at) / 86400 AS rec,
           1 / (1 + exp(-(extract(epoch FROM now() - p.last_order_at) / 86400 - 120) / 40)) AS pc
    FROM profiles p JOIN bench_people b ON b.id = p.id WHERE p.brand_id = $1
), ins AS (
    INSERT INTO predictions (brand_id, profile_id, kind, model_version_id, as_of, value, band,
                             details)
    SELECT $1, id, 'churn', $2::uuid, now(), round(pc::numeric, 4)::float8,
           CASE WHEN pc > 0.66 THEN 'High' WHEN pc < 0.33 THEN 'Low' ELSE 'Medium' END,
           jsonb_build_object('horizon_days', 90, 'drivers', jsonb_build_array(
               jsonb_build_object('feature', 'recency_days', 'contribution', round(0.6 * pc::numeric, 3),
                                  'value', round(rec)),
               jsonb_build_object('feature', 'n_orders', 'contribution', -0.1, 'value', order_count)))
    FROM base
    UNION ALL
    SELECT $1, id, 'ltv', NULL, now(), round(spent * (1 - pc) * 0.8 + 5), NULL,
           '{"horizon_days": 365}'::jsonb FROM base
    UNION ALL
    SELECT $1, id, 'segment', NULL, now(), NULL,
           CASE WHEN order_count >= 4 AND rec < 60 THEN 'Champions' WHEN order_count >= 3 THEN 'Loyal'
                WHEN order_count = 1 AND rec < 45 THEN 'New' WHEN rec > 400 THEN 'Lost'
                WHEN rec > 200 THEN 'At Risk' WHEN rec > 120 THEN 'About to Sleep'
                ELSE 'Need Attention' END,
           jsonb_build_object('rfm', '345', 'cluster', g % 5, 'cluster_name', 'cluster ' || g % 5)
    FROM base
    UNION ALL
    SELECT $1, id, 'recommendations', NULL, now(), NULL, NULL, jsonb_build_object('items', (
        SELECT jsonb_agg(jsonb_build_object('product_id', c.product_id, 'name', c.name,
                         'category', c.category, 'score', 0.9 - 0.1 * k,
                         'reason', 'bought by similar customers'))
        FROM generate_series(0, 2) k JOIN bench_catalog c ON c.i = (g * 13 + k * 101) % 400))
    FROM base
    RETURNING 1
)
SELECT count(*) FROM ins"""
LTV_DECILES = """
UPDATE predictions p SET band = 'D' || d.decile
FROM (SELECT profile_id, ntile(10) OVER (ORDER BY value) AS decile FROM predictions
      WHERE brand_id = $1 AND kind = 'ltv') d
WHERE p.brand_id = $1 AND p.kind = 'ltv' AND p.profile_id = d.profile_id"""


async def build(rt: Any, n: int) -> None:
    """The synthetic brand, loaded with the secondary indexes dropped and rebuilt after."""
    from identity.keys import identifier_keys

    async with rt.pool.acquire() as conn:
        brand = await brands.create_brand(conn, SLUG, "MCP bench", {"default_region": "GB"})
        indexes = await conn.fetch(
            """SELECT i.indexname, i.indexdef FROM pg_indexes i
               WHERE i.tablename = ANY($1::text[]) AND NOT EXISTS (
                   SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
            list(TABLES),
        )
        for r in indexes:
            await conn.execute(f'DROP INDEX "{r["indexname"]}"')
        steps = [
            ("people", PEOPLE, (n,)),
            ("catalog", CATALOG, ()),
            ("purchases", PURCHASES, (brand.id,)),
            ("browsing", BROWSING, (brand.id,)),
            ("profiles", PROFILES, (brand.id,)),
            ("embeddings", EMBEDDINGS, (brand.id,)),
        ]
        for name, sql, args in steps:
            t = time.perf_counter()
            await conn.execute(sql, *args, timeout=3600)
            print(f"  built {name} in {time.perf_counter() - t:.0f} s", flush=True)
        await conn.execute(
            """INSERT INTO products (brand_id, product_id, name, category, price)
               SELECT $1, product_id, name, category, price FROM bench_catalog""",
            brand.id,
        )
        mv = await conn.fetchval(
            """INSERT INTO model_versions (brand_id, kind, version, status, metrics)
               VALUES ($1, 'churn', 1, 'active', '{"auc": 0.8}') RETURNING id""",
            brand.id,
        )
        t = time.perf_counter()
        await conn.fetchval(PREDICTIONS, brand.id, mv, timeout=3600)
        await conn.execute(LTV_DECILES, brand.id, timeout=3600)
        print(f"  built predictions in {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        crypto = rt.keyring.for_brand(str(brand.id))
        people = await conn.fetch("SELECT g, id FROM bench_people ORDER BY g")
        records = []
        for r in people:
            email = f"c{r['g']}@bench-mail.co.uk"
            key = identifier_keys(crypto, {"email": email})[0]
            records.append(
                (
                    brand.id,
                    "email",
                    key.hash,
                    r["id"],
                    crypto.encrypt(email),
                    key.masked(),
                    "active",
                    "bench",
                )
            )
        await conn.copy_records_to_table(
            "profile_identifiers",
            records=records,
            columns=[
                "brand_id",
                "kind",
                "hash",
                "profile_id",
                "value_enc",
                "masked",
                "status",
                "source",
            ],
        )
        print(f"  built identifiers in {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for r in indexes:
            await conn.execute(r["indexdef"], timeout=3600)
        await conn.execute("VACUUM ANALYZE", timeout=3600)
        print(f"  rebuilt {len(indexes)} indexes and analyzed in {time.perf_counter() - t:.0f} s")


def serve(port: int) -> None:
    """The API as app/main.py assembles it (MCP mounted at /mcp, its lifespan entered). The
    runtime is opened here without migrations: the parent applied them."""
    import uvicorn

    from app.main import create_app

    async def run() -> None:
        settings = load_settings()
        async with open_runtime(settings, apply_migrations=False) as rt:
            app = create_app(settings, runtime=rt)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", access_log=False
            )
            await uvicorn.Server(config).serve()

    asyncio.run(run())


async def _timed_http(h: Any, url: str, tool: str, args: dict, i: int) -> float:
    """One tools/call as a bare JSON-RPC POST (stateless, handshake-era protocol header): the
    server's latency over HTTP, without any client library's own processing."""
    body = {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    }
    t = time.perf_counter()
    resp = await h.post(f"{url}/mcp/", json=body)
    took = (time.perf_counter() - t) * 1000
    doc = resp.json()
    if resp.status_code != 200 or "error" in doc or doc["result"].get("isError"):
        raise RuntimeError(f"{tool} {args}: {resp.status_code} {resp.text[:300]}")
    return took


async def _timed_sdk(c: Any, tool: str, args: dict) -> float:
    t = time.perf_counter()
    res = await c.call_tool(tool, args)
    if res.is_error:
        raise RuntimeError(f"{tool}: {res.content[0].text}")
    return (time.perf_counter() - t) * 1000


def _row(label: str, tool: str, cache: str, via: str, times: list[float]) -> dict:
    times = sorted(times)
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    row = {
        "case": label,
        "tool": tool,
        "cache": cache,
        "via": via,
        "n": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": p99,
    }
    print(
        f"  {label:42} {cache:5} {via:4} n={len(times):<4} p50 {row['p50_ms']:8.1f} ms"
        f"   p99 {p99:8.1f} ms",
        flush=True,
    )
    return row


async def wait_replica(rt: Any, brand_id: Any, url: str, key: str) -> float:
    """The brand's first analytics question starts building its columnar replica in the
    server (mcp_server/replica.py; Postgres answers meanwhile). Seconds until a question never
    asked before is answered fast, i.e. the replica is in use."""
    import httpx2

    pattern = f"cb:{{{brand_id}}}:mcp:*"
    headers = {
        "Authorization": f"Bearer {key}",
        "MCP-Protocol-Version": "2025-11-25",
        "Accept": "application/json, text/event-stream",
    }
    started = time.perf_counter()
    async with httpx2.AsyncClient(headers=headers, timeout=600) as h:
        for i in range(600):
            async for k in rt.redis.scan_iter(match=pattern, count=1000):
                await rt.redis.delete(k)
            # A question that takes seconds on Postgres at this size (4.5 s in session 2).
            args = {"group_by": "channel", "period_days": 90}
            took = await _timed_http(h, url, "analyze_customers", args, i)
            if took < 1000:
                break
            await asyncio.sleep(1)
    return time.perf_counter() - started


async def measure(rt: Any, brand_id: Any, url: str, key: str, cases: list[tuple]) -> list[dict]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    pattern = f"cb:{{{brand_id}}}:mcp:*"
    headers = {
        "Authorization": f"Bearer {key}",
        "MCP-Protocol-Version": "2025-11-25",
        "Accept": "application/json, text/event-stream",
    }
    results = []
    async with httpx2.AsyncClient(headers=headers, timeout=600) as h:
        for label, tool, make_args, n, cache in cases:
            times = []
            # Untimed first calls: a cold entry is computed anyway; warm ones fill every variant.
            warmup = 1 if cache == "cold" else 8
            for i in range(n + warmup):
                if cache == "cold":
                    async for k in rt.redis.scan_iter(match=pattern, count=1000):
                        await rt.redis.delete(k)
                took = await _timed_http(h, url, tool, make_args(i), i)
                if i >= warmup:
                    times.append(took)
            results.append(_row(label, tool, cache, "http", times))
    # The same per-customer calls through the Python SDK client (handshake mode), which also
    # validates every result against the tool's output schema on the client side.
    auth = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=auth, timeout=600) as h,
        Client(streamable_http_client(f"{url}/mcp/", http_client=h), mode="legacy") as c,
    ):
        for label, tool, make_args, n, cache in cases:
            if cache == "none":
                times = [await _timed_sdk(c, tool, make_args(i)) for i in range(n)]
                results.append(_row(label, tool, cache, "sdk", times))
    return results


def cases(emails: list[str], refs: list[str], products: list[str]) -> list[tuple]:
    """(label, tool, args for call i, calls, cache): per-customer tools are never cached;
    aggregates are measured cold (entry deleted before each call) then warm (from the cache)."""
    rnd = random.Random(7)

    def pick(xs: list[str]) -> Any:
        return lambda i: xs[rnd.randrange(len(xs))]

    email, ref = pick(emails), pick(refs)
    groups = ["none", "channel", "country", "segment", "cohort", "city"]
    views_p = ["top_products", "top_categories", "bought_together", "category_affinity"]
    views_b = ["channel_mix", "purchase_cadence", "cohort_retention", "journey_funnel"]
    out: list[tuple] = [
        ("lookup_customer (email)", "lookup_customer", lambda i: {"query": email(i)}, 300, "none"),
        (
            "lookup_customer (customer_ref)",
            "lookup_customer",
            lambda i: {"query": ref(i)},
            300,
            "none",
        ),
        ("churn_risk (one customer)", "churn_risk", lambda i: {"customer": ref(i)}, 300, "none"),
        (
            "recommendations (one customer)",
            "recommendations",
            lambda i: {"customer": ref(i)},
            300,
            "none",
        ),
        ("similar_customers", "similar_customers", lambda i: {"customer": ref(i)}, 100, "none"),
    ]
    aggregates = [
        ("churn_risk (top 20 by probability)", "churn_risk", lambda i: {"top_n": 20}),
        (
            "churn_risk (top 20 by value at risk)",
            "churn_risk",
            lambda i: {"top_n": 20, "rank_by": "value_at_risk"},
        ),
        ("segments", "segments", lambda i: {}),
        (
            "recommendations (customers for a product)",
            "recommendations",
            lambda i: {"product_id": products[i % len(products)]},
        ),
        (
            "target_campaign (win_back, 100)",
            "target_campaign",
            lambda i: {"goal": "win_back", "size": 100},
        ),
        (
            "analyze_customers (lifetime, 6 groupings)",
            "analyze_customers",
            lambda i: {"group_by": groups[i % 6]},
        ),
        (
            "analyze_customers (90 days, by channel)",
            "analyze_customers",
            lambda i: {"period_days": 90, "group_by": "channel"},
        ),
        ("analyze_segments (with 90-day movement)", "analyze_segments", lambda i: {}),
        (
            "analyze_products (4 views, 90 days)",
            "analyze_products",
            lambda i: {"view": views_p[i % 4]},
        ),
        ("analyze_behavior (4 views)", "analyze_behavior", lambda i: {"view": views_b[i % 4]}),
        ("forecast_metrics (revenue, 8 weeks)", "forecast_metrics", lambda i: {}),
    ]
    for label, tool, args in aggregates:
        out += [(label, tool, args, 20, "cold"), (label, tool, args, 100, "warm")]
    return out


@contextlib.asynccontextmanager
async def dataset_runtime(home_arg: str | None, profiles: int, prefix: str) -> AsyncIterator[Any]:
    """A runtime on embedded servers in `home_arg` (kept, and its dataset reused) or in a
    temporary home; the synthetic brand is built there first when missing."""
    home = Path(home_arg) if home_arg else Path(tempfile.mkdtemp(prefix=prefix))
    if not home_arg:
        atexit.register(shutil.rmtree, home, True)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "CBRAIN_HOME": str(home.resolve()),
            "CBRAIN_ENV": "development",
            "CBRAIN_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    settings = load_settings()
    print(f"load before: {uptime()}")
    reuse = (home / "pgdata").exists()
    async with open_runtime(settings, apply_migrations=not reuse) as rt:
        async with rt.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT id FROM brands WHERE slug = $1", SLUG)
        if exists is None:
            t = time.perf_counter()
            print(f"building {profiles:,} profiles...", flush=True)
            await build(rt, profiles)
            print(f"built in {time.perf_counter() - t:.0f} s", flush=True)
        yield rt


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--home", help="CBRAIN_HOME to keep (and reuse) the built dataset")
    args = ap.parse_args()
    async with dataset_runtime(args.home, args.profiles, "cbrain-bench-mcp-") as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, SLUG)
            _, key = await brands.create_key(conn, brand.id, ["read"], "bench")
            size = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM profiles WHERE brand_id = $1) AS profiles,
                          (SELECT count(*) FROM events WHERE brand_id = $1) AS events,
                          (SELECT count(*) FROM predictions WHERE brand_id = $1) AS predictions""",
                brand.id,
            )
            sample = await conn.fetch(
                "SELECT g, id FROM bench_people TABLESAMPLE BERNOULLI (1) LIMIT 2000"
            )
        print(
            f"dataset: {size['profiles']:,} profiles, {size['events']:,} events, "
            f"{size['predictions']:,} prediction rows"
        )
        emails = [f"c{r['g']}@bench-mail.co.uk" for r in sample]
        refs = [str(r["id"]) for r in sample]
        products = ["P0000", "P0001", "P0050", "P0100", "P0200"]
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": rt.database_url,
            "REDIS_URL": rt.redis_url,
            "CBRAIN_LOG_LEVEL": "INFO",
        }
        log = open(Path(os.environ["CBRAIN_HOME"]) / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], env=env, cwd=ROOT, stderr=log
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                await asyncio.sleep(0.1)
            ready_s = await wait_replica(rt, brand.id, url, key)
            results = await measure(rt, brand.id, url, key, cases(emails, refs, products))
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    built = [
        line
        for line in (Path(os.environ["CBRAIN_HOME"]) / "server.log").read_text().splitlines()
        if "analytics replica built" in line
    ]
    print(f"analytics replica in use {ready_s:.1f} s after the first question; {built[:1]}")
    print(f"load after: {uptime()}")
    print(f"machine: {os.cpu_count()} cores; dataset {size['profiles']:,} profiles")
    for r in results:
        goal = next((g for prefix, g in GOALS.items() if r["case"].startswith(prefix)), None)
        if goal is not None and r["via"] == "http":
            stat, ms = goal
            verdict = "meets" if r[f"{stat}_ms"] < ms else "MISSES"
            print(
                f"goal {stat} < {ms} ms  {r['case']:42} {r['cache']:4} "
                f"{r[f'{stat}_ms']:8.1f} ms  {verdict}"
            )
    print(json.dumps({"profiles": size["profiles"], "events": size["events"], "results": results}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # the server process started by main()
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
