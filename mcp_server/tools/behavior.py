"""analyze_behavior: how customers shop over time (channels, cadence, retention, funnel).

Part of the analytics family (see analytics.py); its own module to stay small."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from mcp_server import repo_analytics as ra
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import READ_ONLY, money, plain, ratio
from mcp_server.tools.analytics import window

FUNNEL_STEPS = (
    ("viewed", "viewed a product"),
    ("carted", "added to cart"),
    ("checkout", "started checkout"),
    ("purchased", "purchased"),
    ("repeated", "purchased twice or more"),
)
ORDER_BUCKETS = (
    ("o1", "1"),
    ("o2", "2"),
    ("o3", "3"),
    ("o4_5", "4-5"),
    ("o6_10", "6-10"),
    ("o11", "11+"),
)


class ChannelRow(BaseModel):
    channel: str
    events: int
    customers: int
    buyers: int
    orders: int
    revenue: float
    revenue_share: float | None


class Combo(BaseModel):
    channels: str
    buyers: int
    share: float | None


class Bucket(BaseModel):
    label: str
    customers: int
    share: float | None


class Cohort(BaseModel):
    cohort: str = Field(description="Month of first order, YYYY-MM.")
    customers: int
    retention: list[float] = Field(description="Share buying in month 0, 1, 2… after the first.")


class Step(BaseModel):
    step: str
    customers: int
    share_of_active: float | None
    conversion_from_previous: float | None


class BehaviorAnalysis(BaseModel):
    view: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    channels: list[ChannelRow] = Field(default_factory=list)
    channel_combinations: list[Combo] = Field(default_factory=list)
    multichannel_share: float | None = None
    buyers: int | None = None
    repeat_rate: float | None = None
    days_between_orders: dict[str, float] = Field(
        default_factory=dict,
        description="Per-customer average gap: p10, p25, median, p75, p90, mean.",
    )
    overdue_share: float | None = Field(
        default=None, description="Repeat buyers whose last order is over 1.5x their usual gap ago."
    )
    orders_per_buyer: list[Bucket] = Field(default_factory=list)
    cohorts: list[Cohort] = Field(default_factory=list)
    average_retention: list[float] = Field(default_factory=list)
    funnel: list[Step] = Field(default_factory=list)
    journey_stages: list[Bucket] = Field(default_factory=list)
    computed_at: datetime
    notes: list[str] = Field(default_factory=list)


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.tool(title="Analyze behaviour", annotations=READ_ONLY)
    async def analyze_behavior(
        view: Annotated[
            Literal["channel_mix", "purchase_cadence", "cohort_retention", "journey_funnel"],
            Field(
                description="Channel mix, purchase cadence, monthly cohort retention, or the "
                "view -> cart -> checkout -> purchase funnel with journey stages."
            ),
        ],
        period_days: Annotated[
            int, Field(ge=1, le=1095, description="channel_mix / journey_funnel: last N days.")
        ] = 90,
        months: Annotated[
            int, Field(ge=2, le=24, description="cohort_retention: cohorts of the last N months.")
        ] = 6,
    ) -> BehaviorAnalysis:
        """How customers behave: channel mix (events, buyers, orders and revenue share per
        channel, and which channel combinations buyers use); purchase cadence (days between
        orders, orders per buyer, repeat rate, share overdue); cohort retention curves by
        first-order month; and the journey funnel (viewed -> carted -> checkout -> purchased
        -> repeated, with conversion rates) plus journey-stage counts."""
        caller = deps.caller()

        async def compute() -> BehaviorAnalysis:
            pool = deps.rt.pool
            now = datetime.now(UTC)
            res = BehaviorAnalysis(view=view, computed_at=now)
            if view == "channel_mix":
                res.window_start, res.window_end = window(period_days)
                await _channel_mix(pool, caller.brand_id, res)
            elif view == "purchase_cadence":
                await _cadence(pool, caller.brand_id, now, res)
            elif view == "cohort_retention":
                await _cohorts(pool, caller.brand_id, now, months, res)
            else:
                res.window_start, res.window_end = window(period_days)
                await _funnel(pool, caller.brand_id, res)
            return res

        args = {"view": view, "period_days": period_days, "months": months}
        return await cached(deps.rt, caller.brand_id, "behavior", args, BehaviorAnalysis, compute)


async def _channel_mix(pool: Any, brand_id: Any, res: BehaviorAnalysis) -> None:
    rows = await ra.fetch(pool, ra.CHANNEL_MIX, brand_id, res.window_start, res.window_end)
    revenue = sum(float(r["revenue"]) for r in rows)
    res.channels = [
        ChannelRow(
            channel=plain(r["source"], 30) or "?",
            events=r["events"],
            customers=r["customers"],
            buyers=r["buyers"],
            orders=r["orders"],
            revenue=money(r["revenue"]),
            revenue_share=ratio(r["revenue"], revenue),
        )
        for r in rows
    ]
    combos = await ra.fetch(pool, ra.CHANNEL_COMBOS, brand_id)
    buyers = sum(r["buyers"] for r in combos)
    res.buyers = buyers
    res.channel_combinations = [
        Combo(
            channels=plain(r["combo"], 100) or "(none)",
            buyers=r["buyers"],
            share=ratio(r["buyers"], buyers),
        )
        for r in combos[:15]
    ]
    multi = sum(r["buyers"] for r in combos if " + " in (r["combo"] or ""))
    res.multichannel_share = ratio(multi, buyers)
    res.notes.append("channel combinations are over all buyers' lifetime, not only the window")


async def _cadence(pool: Any, brand_id: Any, now: datetime, res: BehaviorAnalysis) -> None:
    r = (await ra.fetch(pool, ra.CADENCE, brand_id, now))[0]
    res.buyers = r["buyers"]
    res.repeat_rate = ratio(r["repeat_buyers"], r["buyers"])
    if r["gap_pct"]:
        labels = ("p10", "p25", "median", "p75", "p90")
        res.days_between_orders = {
            k: round(float(v), 1) for k, v in zip(labels, r["gap_pct"], strict=True)
        }
        res.days_between_orders["mean"] = round(float(r["gap_mean"]), 1)
    res.overdue_share = ratio(r["overdue"], r["repeat_buyers"])
    res.orders_per_buyer = [
        Bucket(label=label, customers=r[col], share=ratio(r[col], r["buyers"]))
        for col, label in ORDER_BUCKETS
    ]
    if not r["repeat_buyers"]:
        res.notes.append("no customer has two orders yet: no cadence to measure")


async def _cohorts(
    pool: Any, brand_id: Any, now: datetime, months: int, res: BehaviorAnalysis
) -> None:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    res.window_start, res.window_end = first, now
    rows = await ra.fetch(pool, ra.COHORTS, brand_id, first)
    by: dict[str, dict[int, int]] = {}
    for r in rows:
        by.setdefault(r["cohort"], {})[r["k"]] = r["customers"]
    for cohort, counts in sorted(by.items()):
        size = counts.get(0, 0)
        if not size:
            continue
        last = max(counts)
        res.cohorts.append(
            Cohort(
                cohort=cohort,
                customers=size,
                retention=[round(counts.get(k, 0) / size, 4) for k in range(last + 1)],
            )
        )
    # Weighted by cohort size, over the cohorts old enough to have reached month k.
    horizon = max((len(c.retention) for c in res.cohorts), default=0)
    for k in range(horizon):
        have = [c for c in res.cohorts if len(c.retention) > k]
        n = sum(c.customers for c in have)
        res.average_retention.append(
            round(sum(c.retention[k] * c.customers for c in have) / n, 4) if n else 0.0
        )
    res.notes.append("the current month is incomplete, so the newest retention points are low")


async def _funnel(pool: Any, brand_id: Any, res: BehaviorAnalysis) -> None:
    r = (await ra.fetch(pool, ra.FUNNEL, brand_id, res.window_start, res.window_end))[0]
    prev = None
    for col, label in FUNNEL_STEPS:
        res.funnel.append(
            Step(
                step=label,
                customers=r[col],
                share_of_active=ratio(r[col], r["active"]),
                conversion_from_previous=ratio(r[col], prev) if prev is not None else None,
            )
        )
        prev = r[col]
    stages = await ra.fetch(pool, ra.JOURNEY_STAGES, brand_id)
    total = sum(s["customers"] for s in stages)
    res.journey_stages = [
        Bucket(
            label=plain(s["stage"], 60) or "?",
            customers=s["customers"],
            share=ratio(s["customers"], total),
        )
        for s in stages
    ]
    res.notes.append(
        "steps count customers who did each step in the window; in-store buyers "
        "skip the online steps, so later steps can exceed earlier ones"
    )
    if not stages:
        res.notes.append("no journey stages computed yet (the journeys job has not run)")
