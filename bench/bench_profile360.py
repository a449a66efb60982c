"""Customer 360 read latency at scale (issue 5): GET /v1/profiles/{id} cold and cached, and
list / search / lookup, over HTTP on loopback against a real uvicorn server.

The dataset is generated inside Postgres (generate_series), not through the pipeline, so a
million profiles take minutes: profiles with names and aggregates, N events each with an item,
an email and a phone per profile (keyed hashes and sealed values computed here with the
brand's keys, then COPY), and churn / LTV / segment predictions. Secondary indexes are dropped
during the load and rebuilt after it, as one would for a bulk load.

    python bench/bench_profile360.py [--profiles 1000000] [--events-per-profile 20]
                                     [--home DIR]   # reuse a dataset built earlier
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, wait_server  # noqa: E402

from core import brands  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402
from identity.keys import mask  # noqa: E402
from ml.names import RFM_SEGMENTS  # noqa: E402


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
    "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew "
    "donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy "
    "stephanie ronald rebecca edward sharon jason laura jeffrey cynthia ryan kathleen jacob amy "
    "gary angela nicholas shirley eric anna jonathan brenda stephen pamela larry emma justin "
    "nicole scott helen brandon samantha benjamin katherine samuel christine gregory debra "
    "alexander rachel frank carolyn patrick janet raymond catherine jack maria dennis heather "
    "jerry diane tyler ruth aaron julie jose olivia adam joyce henry virginia nathan victoria "
    "douglas kelly zachary lauren peter christina kyle joan ethan evelyn walter judith noah "
    "megan jeremy andrea christian cheryl keith hannah roger jacqueline terry martha gerald "
    "gloria harold teresa sean ann austin sara carl madison arthur frances lawrence kathryn "
    "dylan janice jesse jean jordan abigail bryan alice billy judy joe sophia bruce grace "
    "gabriel denise logan amber albert doris willie marilyn alan danielle juan beverly wayne "
    "isabella elijah theresa randy diana roy natalie vincent brittany ralph charlotte eugene "
    "marie russell kayla bobby alexis mason lori"
)
LAST = _words(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white "
    "harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres "
    "nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts "
    "gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales "
    "murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos "
    "kim cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes "
    "price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins perry "
    "russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons "
    "romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno west "
    "cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro "
    "marshall owens harrison fernandez mcdonald woods washington kennedy wells vargas henry "
    "chen freeman webb tucker guzman burns crawford olson simpson porter hunter gordon mendez "
    "silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson boyd "
    "rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson nichols "
    "stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold pierce "
    "vazquez hansen peters santos hart bradley knight elliott cunningham duncan armstrong "
    "hudson carroll lane riley andrews alvarado ray delgado berry perkins hoffman johnston "
    "matthews pena richards contreras willis carpenter lawrence sandoval"
)
SEGMENTS = list(RFM_SEGMENTS)

LOAD_SQL = {
    "map": """
CREATE UNLOGGED TABLE bench_map AS
SELECT g, uuidv7() AS id FROM generate_series(1, $1::int) g""",
    "profiles": """
INSERT INTO profiles (brand_id, id, created_at, first_seen, last_seen, name_norm, city, country,
                      profile_strength)
SELECT $1, m.id, now() - interval '800 days', now() - interval '800 days',
       now() - interval '800 days',
       ($2::text[])[1 + (hashint4(m.g) & 1023) % cardinality($2::text[])] || ' ' ||
       ($3::text[])[1 + (hashint4(m.g + 7) & 1023) % cardinality($3::text[])],
       'London', 'GB', 6
FROM bench_map m""",
    "events": """
INSERT INTO events (brand_id, raw_event_id, source, event_id, type, occurred_at, profile_id,
                    order_id, total, currency, properties)
SELECT $1, e, (ARRAY['shopify','pos','web','whatsapp'])[1 + e % 4], 'b' || e,
       t.type, now() - make_interval(secs => (hashint8(e) & 2147483647) % 63072000),
       m.id,
       CASE WHEN t.type = 'purchase' THEN 'o' || e END,
       CASE WHEN t.type = 'purchase' THEN 5 + e % 200 END,
       CASE WHEN t.type = 'purchase' THEN 'GBP' END,
       jsonb_build_object('items', jsonb_build_array(jsonb_build_object(
           'product_id', 'p' || (hashint8(e * 31) & 2147483647) % 2000,
           'name', 'Product ' || (hashint8(e * 31) & 2147483647) % 2000,
           'category', 'c' || ((hashint8(e * 31) & 2147483647) % 2000) % 20,
           'price', 5 + e % 200, 'quantity', 1)))
FROM generate_series($2::bigint, $3::bigint) e
JOIN bench_map m ON m.g = 1 + (e % $4::int)
CROSS JOIN LATERAL (SELECT CASE WHEN e % 20 < 5 THEN 'purchase'
                                WHEN e % 20 < 15 THEN 'product_view'
                                WHEN e % 20 < 18 THEN 'cart_add'
                                ELSE 'page_view' END AS type) t""",
    "aggregates": """
UPDATE profiles p SET event_count = a.n, order_count = a.orders, total_spent = a.spent,
       first_seen = a.first_seen, last_seen = a.last_seen, first_order_at = a.fo,
       last_order_at = a.lo, channels = a.channels
FROM (SELECT profile_id, count(*) AS n, count(*) FILTER (WHERE type = 'purchase') AS orders,
             coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0) AS spent,
             min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
             min(occurred_at) FILTER (WHERE type = 'purchase') AS fo,
             max(occurred_at) FILTER (WHERE type = 'purchase') AS lo,
             array_agg(DISTINCT source ORDER BY source) AS channels
      FROM events WHERE brand_id = $1 GROUP BY profile_id) a
WHERE p.brand_id = $1 AND p.id = a.profile_id""",
    "predictions": """
INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band, details)
SELECT $1, m.id, k.kind, now(),
       CASE k.kind WHEN 'churn' THEN (hashint4(m.g) & 1023) / 1023.0
                   WHEN 'ltv' THEN (hashint4(m.g + 3) & 4095) / 4.0 END,
       CASE k.kind WHEN 'churn' THEN (ARRAY['Low','Medium','High'])[1 + (hashint4(m.g) & 1023) * 3 / 1024]
                   WHEN 'segment' THEN ($2::text[])[1 + (hashint4(m.g + 5) & 1023) % 11] END,
       '{}'::jsonb
FROM bench_map m CROSS JOIN (VALUES ('churn'), ('ltv'), ('segment')) AS k(kind)""",
}
# Plain indexes and unique constraints of the loaded tables, dropped for the load.
LOADED = ("profiles", "events", "profile_identifiers", "predictions")
INDEXES = """
SELECT i.indexname, i.indexdef, c.conname, pg_get_constraintdef(c.oid) AS condef, i.tablename
FROM pg_indexes i
LEFT JOIN pg_constraint c ON c.conname = i.indexname
WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[]) AND c.contype IS DISTINCT FROM 'p'"""


# The pool's statement timeout (60 s) is for requests; index builds take minutes.
BIG = 3600.0


async def build(rt, n: int, per: int) -> tuple[object, str, float]:
    t0 = time.perf_counter()
    async with rt.pool.acquire() as conn:
        brand = await brands.create_brand(conn, f"bench360-{n}")
        _, key = await brands.create_key(conn, brand.id, ["read", "pii:read"], "bench")
        await conn.execute("SET work_mem = '512MB'; SET maintenance_work_mem = '2GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        idx = await conn.fetch(INDEXES, list(LOADED))
        for r in idx:
            if r["conname"]:
                await conn.execute(f'ALTER TABLE {r["tablename"]} DROP CONSTRAINT "{r["conname"]}"')
            else:
                await conn.execute(f'DROP INDEX "{r["indexname"]}"')
        await conn.execute("DROP TABLE IF EXISTS bench_map")
        await conn.execute(LOAD_SQL["map"], n, timeout=BIG)
        await conn.execute("CREATE INDEX ON bench_map (g)")
        await conn.execute(LOAD_SQL["profiles"], brand.id, FIRST, LAST, timeout=BIG)
        print(f"  profiles            {time.perf_counter() - t0:8.1f} s", flush=True)
        total = n * per
        step = 2_000_000
        for lo in range(1, total + 1, step):
            await conn.execute(
                LOAD_SQL["events"], brand.id, lo, min(total, lo + step - 1), n, timeout=BIG
            )
            print(
                f"  events {min(total, lo + step - 1):>12,} {time.perf_counter() - t0:8.1f} s",
                flush=True,
            )
        await conn.execute(LOAD_SQL["aggregates"], brand.id, timeout=BIG)
        await conn.execute(LOAD_SQL["predictions"], brand.id, SEGMENTS, timeout=BIG)
        print(f"  aggregates, preds   {time.perf_counter() - t0:8.1f} s", flush=True)
        crypto = rt.keyring.for_brand(str(brand.id))
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM bench_map ORDER BY g")]
        for lo in range(0, n, 100_000):
            rows = []
            for g in range(lo + 1, min(n, lo + 100_000) + 1):
                pid = ids[g - 1]
                email, phone = f"user{g}@bench-mail.com", f"+4474{g:08d}"
                for kind, value in (("email", email), ("phone", phone)):
                    rows.append(
                        (
                            brand.id,
                            kind,
                            crypto.blind_index(kind, value),
                            pid,
                            crypto.encrypt(value),
                            mask(kind, value),
                            "bench",
                        )
                    )
            await conn.copy_records_to_table(
                "profile_identifiers",
                records=rows,
                columns=("brand_id", "kind", "hash", "profile_id", "value_enc", "masked", "source"),
                timeout=BIG,
            )
        print(f"  identifiers         {time.perf_counter() - t0:8.1f} s", flush=True)
        for r in idx:
            if r["conname"]:
                await conn.execute(
                    f'ALTER TABLE {r["tablename"]} ADD CONSTRAINT "{r["conname"]}" {r["condef"]}',
                    timeout=BIG,
                )
            else:
                await conn.execute(r["indexdef"], timeout=BIG)
        print(f"  indexes rebuilt     {time.perf_counter() - t0:8.1f} s", flush=True)
        await conn.execute("DROP TABLE bench_map")
        for t in LOADED:
            await conn.execute(f"VACUUM ANALYZE {t}", timeout=BIG)
    took = time.perf_counter() - t0
    print(f"  vacuum analyze      {took:8.1f} s", flush=True)
    return brand, key, took


def pct(lat: list[float], p: float) -> float:
    s = sorted(lat)
    return 1000 * s[min(len(s) - 1, int(len(s) * p))]


async def run_load(url: str, key: str, paths: list[str], concurrency: int) -> dict:
    """Closed loop: `concurrency` clients, each sending its next request when the last returns.
    aiohttp as the generator: it costs less CPU per request than httpx."""
    import aiohttp

    lat: list[float] = []
    errors = 0
    it = iter(paths)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, connector=conn
    ) as c:

        async def worker() -> None:
            nonlocal errors
            for p in it:
                t = time.perf_counter()
                async with c.get(p, allow_redirects=False) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {
        "n": len(lat),
        "rps": len(lat) / wall,
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
        "mean": 1000 * statistics.mean(lat),
        "errors": errors,
    }


def typo(name: str, rnd: random.Random) -> str:
    i = rnd.randrange(1, len(name) - 1)
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :] if name[i] != " " else name


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--events-per-profile", type=int, default=20)
    ap.add_argument("--home", type=str, default=None, help="keep (or reuse) the dataset here")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--build-only", action="store_true", help="build the dataset and stop")
    args = ap.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="cbrain-bench360-"))
    os.environ.update(
        {
            "CBRAIN_HOME": str(home),
            "CBRAIN_ENV": "development",
            "CBRAIN_RATE_LIMIT_PER_MINUTE": "0",
            "CBRAIN_LOG_LEVEL": "WARNING",
        }
    )
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()}")
    settings = load_settings()
    async with open_runtime(settings) as rt:
        slug = f"bench360-{args.profiles}"
        async with rt.pool.acquire() as conn:
            found = await conn.fetchrow("SELECT id FROM brands WHERE slug = $1", slug)
        if found is not None and not (home / "bench360.key").exists():
            raise SystemExit(f"{home} holds an unfinished dataset: delete it and run again")
        if found is None:
            print(
                f"building {args.profiles:,} profiles / {args.profiles * args.events_per_profile:,} events"
            )
            brand, key, took = await build(rt, args.profiles, args.events_per_profile)
            (home / "bench360.key").write_text(key)
            print(f"built in {took:.0f} s")
        else:
            key = (home / "bench360.key").read_text()
            brand = type("B", (), {"id": found["id"]})
        if args.build_only:
            return
        rnd = random.Random(5)
        sample = [
            r["id"]
            for r in await rt.pool.fetch(
                "SELECT id FROM profiles TABLESAMPLE SYSTEM (1) WHERE brand_id = $1 LIMIT $2",
                brand.id,
                args.requests,
            )
        ]
        names = [f"{rnd.choice(FIRST)} {rnd.choice(LAST)}" for _ in range(500)]
        await rt.redis.flushdb()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": rt.database_url, "REDIS_URL": rt.redis_url}
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"],
            env=env,
            cwd=ROOT,
        )
        try:
            await wait_server(url)
            c = args.concurrency
            warm = await run_load(url, key, ["/v1/profiles?limit=1"] * 200, c)
            del warm
            cold = await run_load(url, key, [f"/v1/profiles/{p}" for p in sample], c)
            cached = await run_load(url, key, [f"/v1/profiles/{p}" for p in sample] * 2, c)
            seg = SEGMENTS
            lists = [
                "/v1/profiles?limit=50",
                "/v1/profiles?sort=total_spent&limit=50",
                "/v1/profiles?sort=order_count&order=asc&limit=50",
                "/v1/profiles?sort=name&limit=50",
                "/v1/profiles?churn_band=high&limit=50",
                "/v1/profiles?churn_band=high&sort=total_spent&limit=50",
                f"/v1/profiles?segment={seg[3]}&limit=50",
                "/v1/profiles?ltv_min=500&ltv_max=600&limit=50",
                "/v1/profiles?channel=pos&limit=50",
            ]
            list_paths = [rnd.choice(lists) for _ in range(1000)]
            listed = await run_load(url, key, list_paths, c)
            queries = [
                f"/v1/profiles?q={quote(typo(rnd.choice(names), rnd))}&limit=20" for _ in range(500)
            ]
            search = await run_load(url, key, queries, c)
            search1 = await run_load(url, key, queries[:200], 1)
            lookup = await run_load(
                url,
                key,
                [
                    f"/v1/profiles/lookup?email=User{rnd.randrange(1, args.profiles)}@Bench-Mail.com"
                    for _ in range(1000)
                ],
                c,
            )
        finally:
            server.terminate()
            server.wait(20)
    print(f"load after: {os.getloadavg()}  (concurrency {args.concurrency}, closed loop)")
    for label, r in (
        ("GET /v1/profiles/{id} cold (not cached)", cold),
        ("GET /v1/profiles/{id} cached", cached),
        ("GET /v1/profiles list/filter/sort", listed),
        ("GET /v1/profiles?q= fuzzy search", search),
        ("  the same, one client at a time", search1),
        ("GET /v1/profiles/lookup?email=", lookup),
    ):
        print(
            f"{label:42} n={r['n']:5}  p50 {r['p50']:6.2f} ms  p99 {r['p99']:7.2f} ms  "
            f"mean {r['mean']:6.2f} ms  {r['rps']:6.0f} req/s  errors {r['errors']}"
        )


if __name__ == "__main__":
    asyncio.run(main())
