"""SQL of the analyze_* and forecast tools (the repo module for aggregates; per-customer SQL is
in repo.py). Every statement filters on brand_id ($1) and returns aggregates or a bounded
list. Grouping expressions come only from the whitelists below, never from input text."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
TIMEOUT_S = 120  # a runaway aggregate is cancelled rather than left to hold a connection
# The default 4 MB makes a million-row hash join or aggregate spill to disk in many batches.
SET_WORK_MEM = "SET LOCAL work_mem = '128MB'"


async def scan(conn: Conn, sql: str, *args: Any) -> list[Any]:
    """Run a brand-wide aggregate: on the brand's columnar replica when the statement has a
    DuckDB twin and the replica is built (replica.py), else on Postgres in a read-only
    transaction with room to work in memory. Rows read by name or position either way."""
    if isinstance(conn, asyncpg.Pool):
        from mcp_server import replica, replica_sql

        twin = replica_sql.TWIN.get(sql)
        if twin is not None:
            rep = await replica.store.get(conn, args[0])
            if rep is not None:
                return await rep.fetch(twin, *args)
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(conn, asyncpg.Pool):
            conn = await stack.enter_async_context(conn.acquire())
        await stack.enter_async_context(conn.transaction(readonly=True))
        await conn.execute(SET_WORK_MEM)
        return await conn.fetch(sql, *args, timeout=TIMEOUT_S)


# --- analyze_customers ----------------------------------------------------------------------
# One row per (customer, group) in `o`; groups and the de-duplicated total are aggregated
# from it, so a customer who shops on two channels counts once in the total.
_ITEMS = """CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.properties -> 'items') = 'array'
         THEN e.properties -> 'items' ELSE '[]'::jsonb END) AS i"""
_SEG_JOIN = """
LEFT JOIN predictions s ON s.brand_id = p.brand_id AND s.profile_id = p.id AND s.kind = 'segment'"""
_FILTERS = """
  AND ($2::text IS NULL OR upper(p.country) = upper($2))
  AND ($3::text IS NULL OR lower(p.city) = lower($3))
  AND ($5::text IS NULL OR {segment_col} = $5)
  AND ($6::timestamptz IS NULL OR p.first_order_at >= $6)
  AND ($7::timestamptz IS NULL OR p.first_order_at < $7)"""
PROFILE_GROUPS = {
    "none": "'all'",
    "country": "coalesce(upper(p.country), '(unknown)')",
    "city": "coalesce(p.city, '(unknown)')",
    "cohort": "coalesce(to_char(p.first_order_at AT TIME ZONE 'UTC', 'YYYY-MM'), '(no orders)')",
    "segment": "coalesce(s.band, '(no segment)')",
}
_SUMMARY = """
, g AS (
    SELECT grp, count(*) AS customers, count(*) FILTER (WHERE orders > 0) AS buyers,
           count(*) FILTER (WHERE orders >= 2) AS repeat_buyers, sum(orders) AS orders,
           sum(revenue) AS revenue, sum(refunds) AS refunds
    FROM o GROUP BY grp ORDER BY revenue DESC NULLS LAST, grp LIMIT 1000
), t AS (
    SELECT count(*) AS customers, count(*) FILTER (WHERE orders > 0) AS buyers,
           count(*) FILTER (WHERE orders >= 2) AS repeat_buyers, sum(orders) AS orders,
           sum(revenue) AS revenue, sum(refunds) AS refunds
    FROM {total_from}
)
SELECT true AS is_total, NULL::text AS grp, t.* FROM t
UNION ALL SELECT false, g.* FROM g"""
_LIFETIME = (
    """
WITH o AS (
    SELECT p.id AS profile_id, {grp} AS grp, p.order_count AS orders,
           p.total_spent AS revenue, p.refund_total AS refunds
    FROM profiles p {seg_join} {unnest}
    WHERE p.brand_id = $1 AND p.merged_into IS NULL
      AND ($4::text IS NULL OR $4 = ANY(p.channels))"""
    + _FILTERS
    + "\n)"
    + _SUMMARY
)
_PERIOD = (
    """
WITH o AS (
    SELECT e.profile_id, {grp} AS grp, count(*) AS orders, sum(e.total) AS revenue,
           0::numeric AS refunds
    FROM events e
    JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id {seg_join}
    WHERE e.brand_id = $1 AND e.type = 'purchase' AND e.occurred_at >= $8
      AND e.occurred_at < $9 AND ($4::text IS NULL OR e.source = $4)"""
    + _FILTERS
    + "\n    GROUP BY e.profile_id, grp\n)"
    + _SUMMARY
)
_DEDUPE = """(SELECT profile_id, {agg}(orders) AS orders, {agg}(revenue) AS revenue,
             {agg}(refunds) AS refunds FROM o GROUP BY profile_id) o"""


def customers_sql(period: bool, group_by: str, with_segment: bool) -> str:
    """The statement for one (mode, grouping); only whitelisted fragments are spliced."""
    channel = group_by == "channel"
    grp = ("e.source" if period else "ch") if channel else PROFILE_GROUPS[group_by]
    unnest = (
        "CROSS JOIN LATERAL unnest(CASE WHEN cardinality(p.channels) = 0 "
        "THEN ARRAY['(none)'] ELSE p.channels END) AS ch"
        if channel and not period
        else ""
    )
    # A customer appears once per group: on the channel grouping the total de-duplicates.
    total_from = _DEDUPE.format(agg="sum" if period else "max") if channel else "o"
    template = _PERIOD if period else _LIFETIME
    return template.format(
        grp=grp,
        seg_join=_SEG_JOIN if with_segment else "",
        unnest=unnest,
        total_from=total_from,
        segment_col="s.band" if with_segment else "NULL::text",
    )


async def analyze_customers(
    conn: Conn,
    brand_id: UUID,
    *,
    period: tuple[datetime, datetime] | None,
    group_by: str,
    country: str | None,
    city: str | None,
    channel: str | None,
    segment: str | None,
    cohort_from: datetime | None,
    cohort_to: datetime | None,
) -> list[asyncpg.Record]:
    with_segment = group_by == "segment" or segment is not None
    sql = customers_sql(period is not None, group_by, with_segment)
    args: list[Any] = [brand_id, country, city, channel, segment, cohort_from, cohort_to]
    if period is not None:
        args += list(period)
    return await scan(conn, sql, *args)


# --- analyze_segments: RFM movement ---------------------------------------------------------
# Quintile cut points: with values sorted a_0..a_{n-1}, the score with ties at their lowest
# rank, 1 + floor(5 * #{a < v} / n), is 1 + #{k in 1..4 : v > a_{ceil(k*n/5) - 1}}, and
# percentile_disc(k/5) is that a. One sort per measure instead of a window over every row; the
# fractions sit just under k/5 so float rounding cannot push ceil() one row too far.
_CUTS = "ARRAY[0.2 - 1e-9, 0.4 - 1e-9, 0.6 - 1e-9, 0.8 - 1e-9]"


def _score(col: str, cuts: str) -> str:
    return "1 + " + " + ".join(f"({col} > {cuts}[{k}])::int" for k in range(1, 5))


def movement_sql(grid: dict[int, tuple[str, ...]]) -> str:
    """RFM segments at `then` ($2) and `now` ($3): quintile scores over the buyers of each date
    (ties share the lowest score, as in the segment model), mapped through the R x FM grid
    (FM = rounded-up mean of F and M); counts per (segment then, segment now)."""
    values = ", ".join(
        f"({r}, {fm + 1}, '{name.replace(chr(39), chr(39) * 2)}')"
        for r, row in grid.items()
        for fm, name in enumerate(row)
    )

    def cuts(at: str) -> str:
        return ", ".join(
            f"percentile_disc({_CUTS}) WITHIN GROUP (ORDER BY {col}{at}) AS {col}"
            for col in ("nr", "f", "m")
        )

    return f"""
WITH per AS (
    SELECT profile_id,
           count(*) FILTER (WHERE occurred_at < $2) AS f0,
           coalesce(sum(total) FILTER (WHERE occurred_at < $2), 0) AS m0,
           -($2::date - max(occurred_at) FILTER (WHERE occurred_at < $2)::date) AS nr0,
           count(*) AS f1, coalesce(sum(total), 0) AS m1, -($3::date - max(occurred_at)::date) AS nr1
    FROM events WHERE brand_id = $1 AND type = 'purchase' AND occurred_at < $3
    GROUP BY profile_id
), c0 AS (
    SELECT {cuts("0")} FROM per WHERE f0 > 0
), c1 AS (
    SELECT {cuts("1")} FROM per
), scored AS (
    SELECT CASE WHEN f0 > 0 THEN {_score("per.nr0", "c0.nr")} END AS r0,
           CASE WHEN f0 > 0 THEN ({_score("per.f0", "c0.f")} + {_score("per.m0", "c0.m")} + 1) / 2
           END AS fm0,
           {_score("per.nr1", "c1.nr")} AS r1,
           ({_score("per.f1", "c1.f")} + {_score("per.m1", "c1.m")} + 1) / 2 AS fm1
    FROM per CROSS JOIN c0 CROSS JOIN c1
), grid(r, fm, name) AS (VALUES {values})
SELECT g0.name AS from_segment, g1.name AS to_segment, count(*) AS customers
FROM scored
JOIN grid g1 ON g1.r = scored.r1 AND g1.fm = scored.fm1
LEFT JOIN grid g0 ON g0.r = scored.r0 AND g0.fm = scored.fm0
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 200"""


async def movement(
    conn: Conn, sql: str, brand_id: UUID, then: datetime, now: datetime
) -> list[asyncpg.Record]:
    return await scan(conn, sql, brand_id, then, now)


# --- analyze_products -----------------------------------------------------------------------
_LINES = f"""
    SELECT e.id AS basket, e.profile_id, i ->> 'product_id' AS product_id, i ->> 'name' AS name,
           i ->> 'category' AS category, coalesce((i ->> 'quantity')::numeric, 1) AS qty,
           coalesce((i ->> 'price')::numeric, 0) AS price
    FROM events e {_ITEMS}
    WHERE e.brand_id = $1 AND e.type = 'purchase' AND e.occurred_at >= $2 AND e.occurred_at < $3"""
_TOP = f"""
WITH lines AS ({_LINES})
SELECT {{key}} AS key, max(name) AS name, max(category) AS category, sum(qty) AS units,
       sum(qty * price) AS revenue, count(DISTINCT profile_id) AS buyers,
       count(DISTINCT basket) AS orders, sum(sum(qty * price)) OVER () AS all_revenue
FROM lines
WHERE {{key}} IS NOT NULL AND ($4::text IS NULL OR lower(category) = lower($4))
GROUP BY 1 ORDER BY {{sort}} DESC, 1 LIMIT $5"""
TOP = {
    (key, sort): _TOP.format(key=col, sort=sort)
    for key, col in (("product", "product_id"), ("category", "category"))
    for sort in ("revenue", "units", "buyers")
}
_PAIRS = """
, n AS (SELECT count(DISTINCT unit) AS units FROM x),
c AS (SELECT item, count(DISTINCT unit) AS n, max(label) AS label FROM x GROUP BY item),
pairs AS (
    SELECT a.item AS a, b.item AS b, count(DISTINCT a.unit) AS n
    FROM x a JOIN x b ON a.unit = b.unit AND a.item < b.item
    WHERE $4::text IS NULL OR lower(a.item) = lower($4) OR lower(b.item) = lower($4)
    GROUP BY 1, 2 HAVING count(DISTINCT a.unit) >= $5
)
SELECT p.a, ca.label AS a_label, p.b, cb.label AS b_label, p.n, n.units,
       p.n::float8 / ca.n AS conf_ab, p.n::float8 / cb.n AS conf_ba,
       p.n::float8 * n.units / (ca.n::float8 * cb.n) AS lift
FROM pairs p CROSS JOIN n JOIN c ca ON ca.item = p.a JOIN c cb ON cb.item = p.b
ORDER BY {order} LIMIT $6"""
# Baskets (orders) for products bought together; customers for category affinity.
PAIRS = {
    "bought_together": f"WITH lines AS ({_LINES}),\nx AS (SELECT basket AS unit, product_id AS "
    "item, name AS label FROM lines WHERE product_id IS NOT NULL)"
    + _PAIRS.format(order="p.n DESC, lift DESC, p.a, p.b"),
    "category_affinity": f"WITH lines AS ({_LINES}),\nx AS (SELECT DISTINCT profile_id AS unit, "
    "category AS item, category AS label FROM lines WHERE category IS NOT NULL)"
    + _PAIRS.format(order="lift DESC, p.n DESC, p.a, p.b"),
}


async def top_items(
    conn: Conn,
    brand_id: UUID,
    key: str,
    sort: str,
    start: datetime,
    end: datetime,
    category: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await scan(conn, TOP[(key, sort)], brand_id, start, end, category, limit)


async def pairs(
    conn: Conn,
    brand_id: UUID,
    view: str,
    start: datetime,
    end: datetime,
    anchor: str | None,
    min_support: int,
    limit: int,
) -> list[asyncpg.Record]:
    return await scan(conn, PAIRS[view], brand_id, start, end, anchor, min_support, limit)


# --- target_campaign: brand-wide rankings --------------------------------------------------
_CAMPAIGN = """
SELECT p.id AS profile_id, p.order_count, p.total_spent::float8 AS spent,
       extract(epoch FROM ($2::timestamptz - p.last_order_at)) / 86400 AS days_since,
       p.total_spent::float8 / greatest(
           extract(epoch FROM ($2::timestamptz - p.first_order_at)) / 31557600, 1) AS annual_value,
       p.total_spent::float8 / p.order_count AS aov,
       c.value AS churn, l.value AS ltv, l.band AS decile, s.band AS segment,
       r.details -> 'items' -> 0 AS top_rec, pr.price::float8 AS rec_price,
       {ev} AS expected_value, count(*) OVER () AS eligible,
       sum({ev}) OVER () AS eligible_value, $5::float8 AS vip_threshold
FROM profiles p
LEFT JOIN predictions c ON c.brand_id = p.brand_id AND c.profile_id = p.id AND c.kind = 'churn'
LEFT JOIN predictions l ON l.brand_id = p.brand_id AND l.profile_id = p.id AND l.kind = 'ltv'
LEFT JOIN predictions s ON s.brand_id = p.brand_id AND s.profile_id = p.id AND s.kind = 'segment'
LEFT JOIN predictions r ON r.brand_id = p.brand_id AND r.profile_id = p.id
                       AND r.kind = 'recommendations'
LEFT JOIN products pr ON pr.brand_id = p.brand_id
                     AND pr.product_id = r.details -> 'items' -> 0 ->> 'product_id'
WHERE p.brand_id = $1 AND p.merged_into IS NULL AND p.order_count > 0
  AND p.last_order_at IS NOT NULL AND ({eligible})
ORDER BY expected_value DESC, p.id LIMIT $4"""
_ANNUAL = (
    "p.total_spent::float8 / greatest(extract(epoch FROM ($2::timestamptz - "
    "p.first_order_at)) / 31557600, 1)"
)
_AOV = "p.total_spent::float8 / p.order_count"
# (eligibility, expected value) per goal; `model` uses predictions, `rules` purchase history.
CAMPAIGN_RULES: dict[str, dict[str, tuple[str, str]]] = {
    "model": {
        "win_back": ("c.value >= 0.5", f"$3 * {_ANNUAL}"),
        "retain_vips": ("l.band IN ('D9', 'D10') AND c.value >= 0.33", "$3 * c.value * l.value"),
        "upsell": ("c.value < 0.33 AND p.order_count >= 2", f"$3 * {_AOV}"),
        "cross_sell": (
            "c.value < 0.66 AND r.details -> 'items' -> 0 ->> 'product_id' IS NOT NULL",
            f"$3 * coalesce(pr.price::float8, {_AOV})",
        ),
    },
    "rules": {
        "win_back": ("p.last_order_at < $2::timestamptz - interval '120 days'", f"$3 * {_ANNUAL}"),
        "retain_vips": (
            "p.total_spent >= $5 AND p.last_order_at < $2::timestamptz - interval '60 days'",
            f"$3 * {_ANNUAL}",
        ),
        "upsell": (
            "p.order_count >= 2 AND p.last_order_at >= $2::timestamptz - interval '90 days'",
            f"$3 * {_AOV}",
        ),
        "cross_sell": ("p.last_order_at >= $2::timestamptz - interval '180 days'", f"$3 * {_AOV}"),
    },
}
CAMPAIGN = {
    (path, goal): _CAMPAIGN.format(eligible=elig, ev=ev)
    for path, goals in CAMPAIGN_RULES.items()
    for goal, (elig, ev) in goals.items()
}
SPEND_P90 = """
SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY total_spent)::float8 FROM profiles
WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0"""


async def campaign(
    conn: Conn,
    brand_id: UUID,
    path: str,
    goal: str,
    now: Any,
    rate: float,
    limit: int,
    vip_threshold: float | None,
) -> list[asyncpg.Record]:
    sql = CAMPAIGN[(path, goal)]
    return await scan(conn, sql, brand_id, now, rate, limit, vip_threshold)


async def spend_p90(conn: Conn, brand_id: UUID) -> float | None:
    return (await scan(conn, SPEND_P90, brand_id))[0][0]


# --- analyze_behavior -----------------------------------------------------------------------
CHANNEL_MIX = """
SELECT source, count(*) AS events, count(DISTINCT profile_id) AS customers,
       count(*) FILTER (WHERE type = 'purchase') AS orders,
       coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0) AS revenue,
       count(DISTINCT profile_id) FILTER (WHERE type = 'purchase') AS buyers
FROM events WHERE brand_id = $1 AND occurred_at >= $2 AND occurred_at < $3
GROUP BY source ORDER BY revenue DESC, events DESC, source LIMIT 50"""
CHANNEL_COMBOS = """
SELECT array_to_string(channels, ' + ') AS combo, count(*) AS buyers FROM profiles
WHERE brand_id = $1 AND merged_into IS NULL AND order_count > 0
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100"""
CADENCE = """
SELECT count(*) FILTER (WHERE order_count > 0) AS buyers,
       count(*) FILTER (WHERE order_count >= 2) AS repeat_buyers,
       percentile_cont(ARRAY[0.1, 0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (ORDER BY gap)
           FILTER (WHERE order_count >= 2) AS gap_pct,
       avg(gap) FILTER (WHERE order_count >= 2) AS gap_mean,
       count(*) FILTER (WHERE order_count >= 2 AND since > 1.5 * gap) AS overdue,
       count(*) FILTER (WHERE order_count = 1) AS o1, count(*) FILTER (WHERE order_count = 2) AS o2,
       count(*) FILTER (WHERE order_count = 3) AS o3,
       count(*) FILTER (WHERE order_count BETWEEN 4 AND 5) AS o4_5,
       count(*) FILTER (WHERE order_count BETWEEN 6 AND 10) AS o6_10,
       count(*) FILTER (WHERE order_count > 10) AS o11
FROM (SELECT order_count,
             extract(epoch FROM (last_order_at - first_order_at)) / 86400
                 / nullif(order_count - 1, 0) AS gap,
             extract(epoch FROM ($2::timestamptz - last_order_at)) / 86400 AS since
      FROM profiles WHERE brand_id = $1 AND merged_into IS NULL) x"""
COHORTS = """
WITH c AS (
    SELECT id, date_trunc('month', first_order_at AT TIME ZONE 'UTC') AS cohort FROM profiles
    WHERE brand_id = $1 AND merged_into IS NULL AND first_order_at >= $2
), a AS (
    SELECT DISTINCT profile_id, date_trunc('month', occurred_at AT TIME ZONE 'UTC') AS m
    FROM events WHERE brand_id = $1 AND type = 'purchase' AND occurred_at >= $2
)
SELECT to_char(c.cohort, 'YYYY-MM') AS cohort,
       ((extract(year FROM a.m) - extract(year FROM c.cohort)) * 12
        + extract(month FROM a.m) - extract(month FROM c.cohort))::int AS k,
       count(DISTINCT c.id) AS customers
FROM c JOIN a ON a.profile_id = c.id
GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 400"""
FUNNEL = """
SELECT count(*) AS active, count(*) FILTER (WHERE v) AS viewed, count(*) FILTER (WHERE c) AS carted,
       count(*) FILTER (WHERE k) AS checkout, count(*) FILTER (WHERE p >= 1) AS purchased,
       count(*) FILTER (WHERE p >= 2) AS repeated
FROM (SELECT profile_id, bool_or(type = 'product_view') AS v, bool_or(type = 'cart_add') AS c,
             bool_or(type = 'checkout_start') AS k, count(*) FILTER (WHERE type = 'purchase') AS p
      FROM events WHERE brand_id = $1 AND occurred_at >= $2 AND occurred_at < $3
        AND type IN ('product_view', 'cart_add', 'checkout_start', 'purchase')
      GROUP BY profile_id) x"""
JOURNEY_STAGES = """
SELECT stage, count(*) AS customers FROM journeys WHERE brand_id = $1
GROUP BY stage ORDER BY customers DESC, stage LIMIT 30"""


async def fetch(conn: Conn, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one of this module's constant statements."""
    return await scan(conn, sql, *args)


# --- forecast_metrics -----------------------------------------------------------------------
WEEKLY = """
SELECT date_trunc('week', occurred_at AT TIME ZONE 'UTC') AS week, count(*) AS orders,
       coalesce(sum(total), 0)::float8 AS revenue, count(DISTINCT profile_id) AS customers
FROM events
WHERE brand_id = $1 AND type = 'purchase' AND occurred_at >= $2 AND occurred_at < $3
GROUP BY 1 ORDER BY 1 LIMIT 400"""
