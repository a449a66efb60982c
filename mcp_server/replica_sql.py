"""The analytics statements of repo_analytics.py (and segment statistics of repo.py) written
for the DuckDB replica (replica.py), keyed by the Postgres statement they answer for.

Same parameters ($1 the brand, unused here: a replica holds one brand), same columns, same
order. Differences are dialect only: timestamps are naive UTC (no AT TIME ZONE), lists
instead of arrays, `//` for integer division (DuckDB's `/` is always fractional), purchase
lines pre-extracted into `lines`, `live` instead of `merged_into IS NULL`, and an explicit
final ORDER BY where Postgres relied on UNION ALL keeping its branches in order.
"""

from __future__ import annotations

from mcp_server import repo
from mcp_server import repo_analytics as ra

# --- analyze_customers ----------------------------------------------------------------------
# Each replica profile carries its segment (replica._FINISH): no predictions join.
_FILTERS = """
  AND ($2::VARCHAR IS NULL OR upper(p.country) = upper($2))
  AND ($3::VARCHAR IS NULL OR lower(p.city) = lower($3))
  AND ($5::VARCHAR IS NULL OR p.segment = $5)
  AND ($6::TIMESTAMP IS NULL OR p.first_order_at >= $6)
  AND ($7::TIMESTAMP IS NULL OR p.first_order_at < $7)"""
PROFILE_GROUPS = {
    **ra.PROFILE_GROUPS,
    "cohort": "coalesce(strftime(p.first_order_at, '%Y-%m'), '(no orders)')",
    "segment": "coalesce(p.segment, '(no segment)')",
}
# One row per (profile, channel) for the lifetime channel grouping: unnest in a projection
# (a LATERAL join over a million lists was 1.1 s, this is ~0.1 s).
_BY_CHANNEL = (
    "(SELECT *, unnest(CASE WHEN len(channels) = 0 THEN ['(none)'] ELSE channels END) AS ch "
    "FROM profiles)"
)
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
SELECT * FROM (
    SELECT true AS is_total, NULL::VARCHAR AS grp, t.* FROM t
    UNION ALL SELECT false, g.* FROM g
) u ORDER BY is_total DESC, revenue DESC NULLS LAST, grp"""
_LIFETIME = (
    """
WITH o AS (
    SELECT p.id AS profile_id, {grp} AS grp, p.order_count AS orders,
           p.total_spent AS revenue, p.refund_total AS refunds
    FROM {source} p
    WHERE p.live AND ($4::VARCHAR IS NULL OR list_contains(p.channels, $4))"""
    + _FILTERS
    + "\n)"
    + _SUMMARY
)
_PERIOD = (
    """
WITH o AS (
    SELECT e.profile_id, {grp} AS grp, count(*) AS orders, sum(e.total) AS revenue,
           0::DECIMAL(14,2) AS refunds
    FROM events e
    JOIN profiles p ON p.id = e.profile_id
    WHERE e.type = 'purchase' AND e.occurred_at >= $8
      AND e.occurred_at < $9 AND ($4::VARCHAR IS NULL OR e.source = $4)"""
    + _FILTERS
    + "\n    GROUP BY e.profile_id, grp\n)"
    + _SUMMARY
)


def customers_sql(period: bool, group_by: str) -> str:
    channel = group_by == "channel"
    grp = ("e.source" if period else "p.ch") if channel else PROFILE_GROUPS[group_by]
    total_from = ra._DEDUPE.format(agg="sum" if period else "max") if channel else "o"
    return (_PERIOD if period else _LIFETIME).format(
        grp=grp,
        source=_BY_CHANNEL if channel and not period else "profiles",
        total_from=total_from,
    )


# --- analyze_segments: movement -------------------------------------------------------------
# Per customer, purchases before each date: a customer with none since the earlier date has
# the same figures at both dates, its lifetime ones (`buyers`); only the others are grouped
# from `events` (grouping every purchase per customer was 170 of the 250 ms). Quintile cut
# points as Postgres' percentile_disc computes them: the value at sorted row
# max(1, ceil(q * n)). Read off a histogram of each measure (distinct values with running
# counts) instead of DuckDB's quantile aggregate, which runs single-threaded: six of those
# over a million buyers were 150 ms of the 350. Spend sums are compared as doubles (exact sums
# of cents below 2^53 / 100 convert without ties, so every comparison gives Postgres' answer).
_FRACTIONS = [0.2 - 1e-9, 0.4 - 1e-9, 0.6 - 1e-9, 0.8 - 1e-9]


def _score(col: str, cuts: str) -> str:
    # Cut points as scalar columns (cuts.nr_1 ...): indexing a list per row cost 100 ms here.
    return "1 + " + " + ".join(f"({col} > {cuts}_{k})::INTEGER" for k in range(1, 5))


def _histogram(col: str, where: str) -> str:
    return f"""h_{col} AS MATERIALIZED (
    SELECT v, sum(c) OVER (ORDER BY v) AS cum, sum(c) OVER () AS n
    FROM (SELECT {col} AS v, count(*) AS c FROM per WHERE {col} IS NOT NULL AND {where}
          GROUP BY 1) x
)"""


def _cuts(col: str, name: str) -> str:
    """The four cut points of one measure, in one pass over its histogram."""
    picks = ", ".join(
        f"min(v) FILTER (WHERE cum >= greatest(1, ceil({q!r} * n))) AS {name}_{k}"
        for k, q in enumerate(_FRACTIONS, 1)
    )
    return f"(SELECT {picks} FROM h_{col})"


def movement_sql(grid: dict[int, tuple[str, ...]]) -> str:
    values = ", ".join(
        f"({r}, {fm + 1}, '{name.replace(chr(39), chr(39) * 2)}')"
        for r, row in grid.items()
        for fm, name in enumerate(row)
    )
    hist = ",\n".join(
        _histogram(f"{col}{at}", "f0 > 0" if at == "0" else "true")
        for at in ("0", "1")
        for col in ("nr", "f", "m")
    )
    return f"""
WITH per AS MATERIALIZED (
    SELECT b.profile_id, b.f AS f0, b.m::DOUBLE AS m0, -($2::DATE - CAST(b.last AS DATE)) AS nr0,
           b.f AS f1, b.m::DOUBLE AS m1, -($3::DATE - CAST(b.last AS DATE)) AS nr1
    FROM buyers b
    WHERE b.last < $2
    UNION ALL
    SELECT profile_id,
           count(*) FILTER (WHERE occurred_at < $2) AS f0,
           coalesce(sum(total) FILTER (WHERE occurred_at < $2), 0)::DOUBLE AS m0,
           -($2::DATE - CAST(max(occurred_at) FILTER (WHERE occurred_at < $2) AS DATE)) AS nr0,
           count(*) AS f1, coalesce(sum(total), 0)::DOUBLE AS m1,
           -($3::DATE - CAST(max(occurred_at) AS DATE)) AS nr1
    FROM events
    WHERE type = 'purchase' AND occurred_at < $3
      AND profile_id IN (SELECT profile_id FROM buyers WHERE last >= $2)
    GROUP BY profile_id
),
{hist},
c0 AS (
    SELECT * FROM {_cuts("nr0", "nr")} CROSS JOIN {_cuts("f0", "f")} CROSS JOIN {_cuts("m0", "m")}
), c1 AS (
    SELECT * FROM {_cuts("nr1", "nr")} CROSS JOIN {_cuts("f1", "f")} CROSS JOIN {_cuts("m1", "m")}
), scored AS (
    SELECT CASE WHEN f0 > 0 THEN {_score("per.nr0", "c0.nr")} END AS r0,
           CASE WHEN f0 > 0 THEN ({_score("per.f0", "c0.f")} + {_score("per.m0", "c0.m")} + 1) // 2
           END AS fm0,
           {_score("per.nr1", "c1.nr")} AS r1,
           ({_score("per.f1", "c1.f")} + {_score("per.m1", "c1.m")} + 1) // 2 AS fm1
    FROM per CROSS JOIN c0 CROSS JOIN c1
), cells AS (
    SELECT r0, fm0, r1, fm1, count(*) AS n FROM scored GROUP BY ALL
), grid(r, fm, name) AS (VALUES {values})
SELECT g0.name AS from_segment, g1.name AS to_segment, sum(cells.n)::BIGINT AS customers
FROM cells
JOIN grid g1 ON g1.r = cells.r1 AND g1.fm = cells.fm1
LEFT JOIN grid g0 ON g0.r = cells.r0 AND g0.fm = cells.fm0
GROUP BY 1, 2 ORDER BY 3 DESC, 1 NULLS LAST, 2 LIMIT 200"""


# --- analyze_products -----------------------------------------------------------------------
_LINES = """
    SELECT basket, profile_id, product_id, name, category, qty, price FROM lines
    WHERE occurred_at >= $2 AND occurred_at < $3"""
_TOP = f"""
WITH lines AS ({_LINES})
SELECT {{key}} AS key, max(name) AS name, max(category) AS category, sum(qty) AS units,
       sum(qty * price) AS revenue, count(DISTINCT profile_id) AS buyers,
       count(DISTINCT basket) AS orders, sum(sum(qty * price)) OVER () AS all_revenue
FROM lines
WHERE {{key}} IS NOT NULL AND ($4::VARCHAR IS NULL OR lower(category) = lower($4))
GROUP BY 1 ORDER BY {{sort}} DESC, 1 LIMIT $5"""
TOP = {
    (key, sort): _TOP.format(key=col, sort=sort)
    for key, col in (("product", "product_id"), ("category", "category"))
    for sort in ("revenue", "units", "buyers")
}
# Everything is counted over xu, distinct on (unit, item): the same (unit, a, b) triples as
# Postgres' x, so count(*) here is its count(DISTINCT ...), without a DISTINCT over the join;
# the max label per (unit, item), then per item, is its max(label) per item.
_PAIRS = """
, n AS (SELECT count(DISTINCT unit) AS units FROM xu),
c AS (SELECT item, count(*) AS n, max(label) AS label FROM xu GROUP BY item),
pairs AS (
    SELECT a.item AS a, b.item AS b, count(*) AS n
    FROM xu a JOIN xu b ON a.unit = b.unit AND a.item < b.item
    WHERE $4::VARCHAR IS NULL OR lower(a.item) = lower($4) OR lower(b.item) = lower($4)
    GROUP BY 1, 2 HAVING count(*) >= $5
)
SELECT p.a, ca.label AS a_label, p.b, cb.label AS b_label, p.n, n.units,
       p.n::DOUBLE / ca.n AS conf_ab, p.n::DOUBLE / cb.n AS conf_ba,
       p.n::DOUBLE * n.units / (ca.n::DOUBLE * cb.n) AS lift
FROM pairs p CROSS JOIN n JOIN c ca ON ca.item = p.a JOIN c cb ON cb.item = p.b
ORDER BY {order} LIMIT $6"""
PAIRS = {
    "bought_together": f"WITH lines AS ({_LINES}),\nxu AS MATERIALIZED (SELECT basket AS unit, "
    "product_id AS item, max(name) AS label FROM lines WHERE product_id IS NOT NULL GROUP BY 1, 2)"
    + _PAIRS.format(order="p.n DESC, lift DESC, p.a, p.b"),
    "category_affinity": f"WITH lines AS ({_LINES}),\nxu AS MATERIALIZED (SELECT DISTINCT "
    "profile_id AS unit, category AS item, category AS label FROM lines "
    "WHERE category IS NOT NULL)" + _PAIRS.format(order="lift DESC, p.n DESC, p.a, p.b"),
}

# --- analyze_behavior -----------------------------------------------------------------------
CHANNEL_MIX = """
SELECT source, count(*) AS events, count(DISTINCT profile_id) AS customers,
       count(*) FILTER (WHERE type = 'purchase') AS orders,
       coalesce(sum(total) FILTER (WHERE type = 'purchase'), 0) AS revenue,
       count(DISTINCT profile_id) FILTER (WHERE type = 'purchase') AS buyers
FROM events WHERE occurred_at >= $2 AND occurred_at < $3
GROUP BY source ORDER BY revenue DESC, events DESC, source LIMIT 50"""
CHANNEL_COMBOS = """
SELECT array_to_string(channels, ' + ') AS combo, count(*) AS buyers FROM profiles
WHERE live AND order_count > 0
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100"""
CADENCE = """
SELECT count(*) FILTER (WHERE order_count > 0) AS buyers,
       count(*) FILTER (WHERE order_count >= 2) AS repeat_buyers,
       percentile_cont([0.1, 0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (ORDER BY gap)
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
             extract(epoch FROM ($2::TIMESTAMP - last_order_at)) / 86400 AS since
      FROM profiles WHERE live) x"""
# a is distinct on (customer, month) and a customer has one cohort, so each (customer, k)
# appears once: count(*) is Postgres' count(DISTINCT c.id).
COHORTS = """
WITH c AS (
    SELECT id, date_trunc('month', first_order_at) AS cohort FROM profiles
    WHERE live AND first_order_at >= $2
), a AS (
    SELECT DISTINCT profile_id, date_trunc('month', occurred_at) AS m
    FROM events WHERE type = 'purchase' AND occurred_at >= $2
)
SELECT strftime(c.cohort, '%Y-%m') AS cohort,
       ((extract(year FROM a.m) - extract(year FROM c.cohort)) * 12
        + extract(month FROM a.m) - extract(month FROM c.cohort))::INTEGER AS k,
       count(*) AS customers
FROM c JOIN a ON a.profile_id = c.id
GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 400"""
FUNNEL = """
SELECT count(*) AS active, count(*) FILTER (WHERE v) AS viewed, count(*) FILTER (WHERE c) AS carted,
       count(*) FILTER (WHERE k) AS checkout, count(*) FILTER (WHERE p >= 1) AS purchased,
       count(*) FILTER (WHERE p >= 2) AS repeated
FROM (SELECT profile_id, bool_or(type = 'product_view') AS v, bool_or(type = 'cart_add') AS c,
             bool_or(type = 'checkout_start') AS k, count(*) FILTER (WHERE type = 'purchase') AS p
      FROM events WHERE occurred_at >= $2 AND occurred_at < $3
        AND type IN ('product_view', 'cart_add', 'checkout_start', 'purchase')
      GROUP BY profile_id) x"""
JOURNEY_STAGES = """
SELECT stage, count(*) AS customers FROM journeys
GROUP BY stage ORDER BY customers DESC, stage LIMIT 30"""

# --- forecast_metrics -----------------------------------------------------------------------
WEEKLY = """
SELECT date_trunc('week', occurred_at) AS week, count(*) AS orders,
       coalesce(sum(total), 0)::DOUBLE AS revenue, count(DISTINCT profile_id) AS customers
FROM events
WHERE type = 'purchase' AND occurred_at >= $2 AND occurred_at < $3
GROUP BY 1 ORDER BY 1 LIMIT 400"""

# --- segments (repo.SEGMENT_STATS) ----------------------------------------------------------
SEGMENT_STATS = """
SELECT p.segment, p.cluster_name, count(*) AS customers,
       sum(p.ltv) AS ltv_sum, count(p.ltv) AS ltv_n, sum(p.churn) AS churn_sum,
       count(p.churn) AS churn_scored, sum(p.churn * coalesce(p.ltv, 0)) AS value_at_risk,
       count(*) FILTER (WHERE p.churn > 0.66) AS high,
       count(*) FILTER (WHERE p.churn >= 0.33 AND p.churn <= 0.66) AS medium,
       sum(p.order_count) AS orders, sum(p.total_spent)::DOUBLE AS revenue,
       count(*) FILTER (WHERE p.order_count > 0) AS buyers,
       count(*) FILTER (WHERE p.order_count >= 2) AS repeat_buyers,
       sum(extract(epoch FROM ($2::TIMESTAMP - p.last_order_at)) / 86400)::DOUBLE AS recency_sum,
       count(p.last_order_at) AS recency_n,
       count(*) FILTER (WHERE len(p.channels) > 1) AS multichannel,
       max(p.seg_as_of) AS as_of
FROM profiles p
WHERE p.live AND p.segment IS NOT NULL
GROUP BY 1, 2 LIMIT 5000"""

# --- churn_risk ranked by value at risk (repo.TOP_CHURN) --------------------------------------
TOP_CHURN_VALUE = """
SELECT p.uid AS profile_id, p.churn, p.churn_band AS band, p.churn_as_of AS as_of, p.ltv,
       p.segment
FROM profiles p
WHERE p.churn IS NOT NULL AND ($2::VARCHAR IS NULL OR p.segment = $2)
ORDER BY p.churn * coalesce(p.ltv, 0) DESC, p.churn DESC, p.uid LIMIT $3"""

# Postgres statement -> its DuckDB twin. A statement without a twin always runs on Postgres.
TWIN: dict[str, str] = {
    **{
        ra.customers_sql(period, group_by, seg): customers_sql(period, group_by)
        for period in (False, True)
        for group_by in ("none", "channel", "country", "city", "cohort", "segment")
        for seg in (False, True)
    },
    **{ra.TOP[k]: TOP[k] for k in ra.TOP},
    **{ra.PAIRS[k]: PAIRS[k] for k in ra.PAIRS},
    ra.CHANNEL_MIX: CHANNEL_MIX,
    ra.CHANNEL_COMBOS: CHANNEL_COMBOS,
    ra.CADENCE: CADENCE,
    ra.COHORTS: COHORTS,
    ra.FUNNEL: FUNNEL,
    ra.JOURNEY_STAGES: JOURNEY_STAGES,
    ra.WEEKLY: WEEKLY,
    repo.SEGMENT_STATS: SEGMENT_STATS,
    repo.TOP_CHURN["value_at_risk"]: TOP_CHURN_VALUE,
}


def register_movement(grid: dict[int, tuple[str, ...]]) -> None:
    """The movement statement depends on the segment grid, known to the segments module."""
    TWIN[ra.movement_sql(grid)] = movement_sql(grid)
