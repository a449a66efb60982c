"""A columnar replica of one brand's analytic facts, in process (DuckDB), for the analyze_*
tools, segment statistics and forecasts.

Brand-wide analytics read millions of rows; Postgres, a row store tuned for the ingest and
per-customer paths, needs seconds for them at a million customers on our 2-core machines,
whatever the indexes. The Redis cache (`_cache`) hides that for questions already asked; this
replica makes the first answer to a new question fast too: the facts the analytics read
(profiles' aggregates and groupings, events without their payloads, purchase lines, segment,
churn and value predictions, journey stages) are copied into an in-memory DuckDB database per
brand, and the same statements, written for DuckDB (`replica_sql.py`), run there in tens of
milliseconds over a vectorised column store.

- **Consistent:** one REPEATABLE READ read-only transaction exports every table (COPY ... TO
  STDOUT as CSV into a private temporary directory, removed once loaded).
- **Fresh enough:** a replica older than `ANALYTICS_REPLICA_TTL_S` (default 300 s, like the
  cache) still answers while one background task rebuilds it, so an answer's `computed_at` can
  be up to that much later than the data it read.
  `cbrain mcp --warm` builds it ahead of the first question.
- **Bounded:** at most `ANALYTICS_REPLICA_BRANDS` brands per process (default 4, least recently
  used dropped first). Roughly 150 bytes per event and per purchase line: ~1 GB for a brand
  with 5 M events. `ANALYTICS_REPLICA=off` turns it off; every statement then runs on Postgres.
- **No personal data:** profile ids, country, city, amounts, product ids and names, channel
  names; no names, emails, phones, traits or free text.
- **Same answers:** `tests/mcp_server/test_replica.py` runs every analytics view on both
  engines and compares the results.

Until a brand's first replica is built, its questions are answered by Postgres (the build
starts with the first question), so nothing waits for it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from core.logging import get_logger

_log = get_logger("cbrain.mcp.replica")

# name -> (export query for Postgres with $1 = brand, DuckDB column types in order)
EXPORTS: dict[str, tuple[str, dict[str, str]]] = {
    "profiles": (
        """SELECT id, merged_into IS NULL, country, city, first_order_at AT TIME ZONE 'UTC',
                  last_order_at AT TIME ZONE 'UTC', order_count, total_spent, refund_total,
                  array_to_string(channels, ',')
           FROM profiles WHERE brand_id = $1""",
        {
            "id": "UUID",
            "live": "BOOLEAN",
            "country": "VARCHAR",
            "city": "VARCHAR",
            "first_order_at": "TIMESTAMP",
            "last_order_at": "TIMESTAMP",
            "order_count": "INTEGER",
            "total_spent": "DECIMAL(14,2)",
            "refund_total": "DECIMAL(14,2)",
            "channels_csv": "VARCHAR",
        },
    ),
    "events": (
        """SELECT id, profile_id, type, source, occurred_at AT TIME ZONE 'UTC', total
           FROM events WHERE brand_id = $1""",
        {
            "id": "BIGINT",
            "profile_id": "UUID",
            "type": "VARCHAR",
            "source": "VARCHAR",
            "occurred_at": "TIMESTAMP",
            "total": "DECIMAL(14,2)",
        },
    ),
    # One row per purchase line, as the Postgres statements read them from properties.items.
    "lines": (
        """SELECT e.id, e.profile_id, e.occurred_at AT TIME ZONE 'UTC', i ->> 'product_id',
                  i ->> 'name', i ->> 'category', coalesce((i ->> 'quantity')::numeric, 1),
                  coalesce((i ->> 'price')::numeric, 0)
           FROM events e CROSS JOIN LATERAL jsonb_array_elements(
               CASE WHEN jsonb_typeof(e.properties -> 'items') = 'array'
                    THEN e.properties -> 'items' ELSE '[]'::jsonb END) AS i
           WHERE e.brand_id = $1 AND e.type = 'purchase'""",
        {
            "basket": "BIGINT",
            "profile_id": "UUID",
            "occurred_at": "TIMESTAMP",
            "product_id": "VARCHAR",
            "name": "VARCHAR",
            "category": "VARCHAR",
            "qty": "DECIMAL(18,4)",
            "price": "DECIMAL(18,4)",
        },
    ),
    "predictions": (
        """SELECT profile_id, kind, band, value, details ->> 'cluster_name',
                  as_of AT TIME ZONE 'UTC'
           FROM predictions WHERE brand_id = $1 AND kind IN ('segment', 'churn', 'ltv')""",
        {
            "profile_id": "UUID",
            "kind": "VARCHAR",
            "band": "VARCHAR",
            "value": "DOUBLE",
            "cluster_name": "VARCHAR",
            "as_of": "TIMESTAMP",
        },
    ),
    "journeys": (
        "SELECT profile_id, stage FROM journeys WHERE brand_id = $1",
        {"profile_id": "UUID", "stage": "VARCHAR"},
    ),
}
# Shaped once loaded: profile ids become dense integers (joins and DISTINCT on 4-byte keys
# instead of 16-byte UUIDs: ~2x faster, half the memory); each profile carries its segment,
# cluster, churn and LTV (one row instead of three prediction rows to join); channels are a
# list, as in Postgres. Only rankings of customers (churn_risk) return `uid`, the profile id.
# Purchase lines are stored in time order, so a window (the last 90 days) reads only its own
# row groups (DuckDB skips the others by their min/max): top products 140 -> 105 ms. Events
# are stored per customer, then time: their statements group and count by customer, and in
# time order (as Postgres returns them) channel mix and cohorts were 20-30% slower.
# `buyers` holds each buyer's lifetime purchase count, spend and last date (segment movement
# reads it for the customers who bought nothing since its earlier date).
_FINISH = """
CREATE TABLE ids AS SELECT id AS uid, (row_number() OVER ())::INTEGER AS pk FROM profiles_raw;
CREATE TABLE pred AS
SELECT i.pk, max(band) FILTER (WHERE kind = 'segment') AS segment,
       max(cluster_name) FILTER (WHERE kind = 'segment') AS cluster_name,
       max(value) FILTER (WHERE kind = 'churn') AS churn,
       max(value) FILTER (WHERE kind = 'ltv') AS ltv,
       max(as_of) FILTER (WHERE kind = 'segment') AS seg_as_of,
       max(band) FILTER (WHERE kind = 'churn') AS churn_band,
       max(as_of) FILTER (WHERE kind = 'churn') AS churn_as_of
FROM predictions_raw r JOIN ids i ON i.uid = r.profile_id GROUP BY i.pk;
CREATE TABLE profiles AS
SELECT i.pk AS id, i.uid, r.live, r.country, r.city, r.first_order_at, r.last_order_at, r.order_count,
       r.total_spent, r.refund_total,
       CASE WHEN r.channels_csv IS NULL OR r.channels_csv = '' THEN []::VARCHAR[]
            ELSE string_split(r.channels_csv, ',') END AS channels,
       pr.segment, pr.cluster_name, pr.churn, pr.ltv, pr.seg_as_of, pr.churn_band,
       pr.churn_as_of
FROM profiles_raw r JOIN ids i ON i.uid = r.id LEFT JOIN pred pr ON pr.pk = i.pk;
CREATE TABLE events AS
SELECT r.id, i.pk AS profile_id, r.type, r.source, r.occurred_at, r.total
FROM events_raw r LEFT JOIN ids i ON i.uid = r.profile_id ORDER BY i.pk, r.occurred_at;
CREATE TABLE lines AS
SELECT r.basket, i.pk AS profile_id, r.occurred_at, r.product_id, r.name, r.category, r.qty,
       r.price
FROM lines_raw r LEFT JOIN ids i ON i.uid = r.profile_id ORDER BY r.occurred_at;
CREATE TABLE buyers AS
SELECT profile_id, count(*) AS f, coalesce(sum(total), 0) AS m, max(occurred_at) AS last
FROM events WHERE type = 'purchase' GROUP BY profile_id;
CREATE TABLE journeys AS
SELECT i.pk AS profile_id, r.stage FROM journeys_raw r LEFT JOIN ids i ON i.uid = r.profile_id;
DROP TABLE profiles_raw; DROP TABLE events_raw; DROP TABLE lines_raw;
DROP TABLE predictions_raw; DROP TABLE journeys_raw; DROP TABLE pred; DROP TABLE ids;
"""
_PARAM = re.compile(r"\$(\d+)")
# Columns that Postgres returns as timestamptz (the rest it returns as naive UTC too, e.g.
# date_trunc over `AT TIME ZONE 'UTC'`): given back tz-aware, as asyncpg would.
AWARE = frozenset({"as_of"})


def enabled() -> bool:
    return os.environ.get("ANALYTICS_REPLICA", "on").lower() not in ("off", "0", "false", "no")


def ttl_s() -> float:
    return float(os.environ.get("ANALYTICS_REPLICA_TTL_S", "300"))


def max_brands() -> int:
    return max(1, int(os.environ.get("ANALYTICS_REPLICA_BRANDS", "4")))


class Row(tuple):  # type: ignore[type-arg]
    """A result row readable by position and by column name, like an asyncpg Record."""

    _index: dict[str, int]

    def __new__(cls, values: tuple[Any, ...], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        return default if i is None else tuple.__getitem__(self, i)

    def keys(self) -> list[str]:
        return list(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index


def _param(value: Any) -> Any:
    """Timestamps are naive UTC in the replica."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


@functools.lru_cache(maxsize=256)
def _named(sql: str) -> tuple[str, tuple[int, ...]]:
    """$n placeholders as in the Postgres statements, renamed $pn, and the n used: DuckDB
    wants exactly the parameters a statement uses."""
    used = tuple(sorted({int(n) for n in _PARAM.findall(sql)}))
    return _PARAM.sub(lambda m: f"$p{m.group(1)}", sql), used


@dataclass
class Replica:
    brand_id: UUID
    con: Any  # duckdb.DuckDBPyConnection
    snapshot_at: float  # time.monotonic() when its export began
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.snapshot_at

    def _run(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        named, used = _named(sql)
        params = {f"p{n}": _param(args[n - 1]) for n in used}
        cur = self.con.cursor()
        try:
            cur.execute(named, params)
            index = {d[0]: i for i, d in enumerate(cur.description or [])}
            rows = cur.fetchall()
            aware = [i for c, i in index.items() if c in AWARE]
            if aware:
                rows = [
                    tuple(
                        v.replace(tzinfo=UTC) if i in aware and isinstance(v, datetime) else v
                        for i, v in enumerate(r)
                    )
                    for r in rows
                ]
            return [Row(r, index) for r in rows]
        finally:
            cur.close()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a DuckDB statement; `args` numbered as in Postgres ($1 is the brand)."""
        return await asyncio.to_thread(self._run, sql, args)

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:  # already closed
            _log.debug("replica already closed")


async def _export(pool: asyncpg.Pool, brand_id: UUID, folder: Path) -> dict[str, Path]:
    """Every table from one snapshot, as CSV files."""
    paths = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for name, (query, _) in EXPORTS.items():
            path = folder / f"{name}.csv"
            await conn.copy_from_query(query, brand_id, output=str(path), format="csv")
            paths[name] = path
    return paths


def _load(paths: dict[str, Path]) -> tuple[Any, dict[str, int]]:
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": max(1, os.cpu_count() or 1)})
    rows = {}
    for name, (_, columns) in EXPORTS.items():
        cols = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
        con.execute(
            f"CREATE TABLE {name}_raw AS SELECT * FROM read_csv(?, header = false, "
            f"columns = {{{cols}}}, quote = '\"', escape = '\"', "
            "allow_quoted_nulls = false, auto_detect = false)",
            [str(paths[name])],
        )
        (rows[name],) = con.execute(f"SELECT count(*) FROM {name}_raw").fetchone() or (0,)
    con.execute(_FINISH)
    (used,) = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone() or (0,)
    rows["memory_mb"] = round((used or 0) / 1e6)
    return con, rows


async def build(pool: asyncpg.Pool, brand_id: UUID) -> Replica:
    """Export the brand's facts from Postgres and load them into a new DuckDB database."""
    started = time.perf_counter()
    snapshot_at = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="cbrain-replica-"))  # mode 0700
    try:
        paths = await _export(pool, brand_id, folder)
        con, rows = await asyncio.to_thread(_load, paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _log.info("analytics replica built", seconds=round(time.perf_counter() - started, 2), **rows)
    return Replica(brand_id, con, snapshot_at, rows)


class ReplicaStore:
    """The replicas of this process, least recently used first, rebuilt in the background."""

    def __init__(self) -> None:
        self._replicas: OrderedDict[UUID, Replica] = OrderedDict()
        self._building: dict[UUID, asyncio.Task[Replica | None]] = {}

    def peek(self, brand_id: UUID) -> Replica | None:
        return self._replicas.get(brand_id)

    async def get(self, pool: asyncpg.Pool, brand_id: UUID) -> Replica | None:
        """The brand's replica if there is one (a rebuild starts when it is stale or
        missing); None means: answer from Postgres this time."""
        if not enabled():
            return None
        rep = self._replicas.get(brand_id)
        if rep is None or rep.age_s > ttl_s():
            self._start(pool, brand_id)
        if rep is not None:
            self._replicas.move_to_end(brand_id)
        return rep

    async def refresh(self, pool: asyncpg.Pool, brand_id: UUID) -> Replica | None:
        """Build now (or join the build under way) and return the new replica."""
        if not enabled():
            return None
        return await self._start(pool, brand_id)

    def _start(self, pool: asyncpg.Pool, brand_id: UUID) -> asyncio.Task[Replica | None]:
        task = self._building.get(brand_id)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.create_task(self._build(pool, brand_id))
            self._building[brand_id] = task
        return task

    async def _build(self, pool: asyncpg.Pool, brand_id: UUID) -> Replica | None:
        try:
            rep = await build(pool, brand_id)
        except Exception as exc:  # Postgres keeps answering; the next question tries again
            _log.warning("analytics replica build failed", error=type(exc).__name__)
            return None
        finally:
            self._building.pop(brand_id, None)
        old = self._replicas.pop(brand_id, None)
        self._replicas[brand_id] = rep
        retired = [old] if old is not None else []
        while len(self._replicas) > max_brands():
            retired.append(self._replicas.popitem(last=False)[1])
        for r in retired:
            # Closed a minute later, so that questions running on it finish first.
            asyncio.get_running_loop().call_later(60, r.close)
        return rep

    def drop(self, brand_id: UUID | None = None) -> None:
        """Forget one brand's replica, or all (tests)."""
        ids = [brand_id] if brand_id is not None else list(self._replicas)
        for b in ids:
            rep = self._replicas.pop(b, None)
            if rep is not None:
                rep.close()


store = ReplicaStore()
