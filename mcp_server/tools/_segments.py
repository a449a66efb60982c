"""Segment statistics (segments tool, segment:// resource, analyze_segments) and segment
movement over time, shared by the predictions and analytics families."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from mcp_server import replica_sql, repo
from mcp_server import repo_analytics as ra
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import money, plain, ratio
from mcp_server.scope import Caller
from mcp_server.tools._views import NO_PREDICTIONS

# The RFM grid of ml/segments.py (rows R 5..1, columns FM 1..5): movement is computed with
# the same rule the segment model uses, so the names line up (a test checks they agree).
RFM_GRID: dict[int, tuple[str, ...]] = {
    5: ("New", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "At Risk", "Can't Lose Them"),
}
MOVEMENT_SQL = ra.movement_sql(RFM_GRID)
replica_sql.register_movement(RFM_GRID)
NEW_SINCE = "(no orders yet)"


class SegmentInfo(BaseModel):
    name: str
    customers: int
    share: float = Field(description="Share of segmented customers, 0..1.")
    average_expected_value: float | None = None
    average_churn: float | None = None
    value_at_risk: float | None = None
    churn_scored: int = Field(default=0, description="Customers with a churn prediction.")
    high_churn_risk: int = Field(default=0, description="Churn probability above 0.66.")
    medium_churn_risk: int = Field(default=0, description="Churn probability 0.33 to 0.66.")
    average_orders: float
    average_spend: float
    average_order_value: float | None = None
    repeat_rate: float | None = None
    average_days_since_last_order: float | None = None
    multichannel_share: float | None = None
    cluster_name: str | None = None
    defining_traits: list[str] = Field(description="How the segment differs from the brand.")


class SegmentsResult(BaseModel):
    segments: list[SegmentInfo]
    segmented_customers: int
    as_of: datetime | None = None
    predictions_available: bool
    computed_at: datetime
    notes: list[str] = Field(default_factory=list)


async def segment_stats(deps: Deps, caller: Caller) -> SegmentsResult:
    """Per-segment statistics with defining traits (cached a few minutes)."""

    async def compute() -> SegmentsResult:
        now = datetime.now(UTC)
        rows = await repo.segment_stats(deps.rt.pool, caller.brand_id, now)
        return _segments_result(rows, now)

    return await cached(deps.rt, caller.brand_id, "segments", {}, SegmentsResult, compute)


def _combine(rows: list[Any]) -> list[dict[str, Any]]:
    """Per-(segment, cluster) sums into one dict of averages per segment, largest first."""
    by: dict[str, dict[str, Any]] = {}
    sums = (
        "customers",
        "ltv_sum",
        "ltv_n",
        "churn_sum",
        "churn_scored",
        "value_at_risk",
        "high",
        "medium",
        "orders",
        "revenue",
        "buyers",
        "repeat_buyers",
        "recency_sum",
        "recency_n",
        "multichannel",
    )
    for r in rows:
        seg = by.setdefault(r["segment"], {k: 0.0 for k in sums} | {"clusters": {}, "as_of": None})
        for k in sums:
            seg[k] += float(r[k] or 0)
        if r["cluster_name"]:
            seg["clusters"][r["cluster_name"]] = r["customers"]
        seg["as_of"] = max(filter(None, (seg["as_of"], r["as_of"])), default=None)
    out = []
    for name, t in by.items():
        n = t["customers"]
        out.append(
            t
            | {
                "segment": name,
                "avg_ltv": t["ltv_sum"] / t["ltv_n"] if t["ltv_n"] else None,
                "avg_churn": t["churn_sum"] / t["churn_scored"] if t["churn_scored"] else None,
                "avg_orders": t["orders"] / n,
                "avg_spent": t["revenue"] / n,
                "avg_recency_days": t["recency_sum"] / t["recency_n"] if t["recency_n"] else None,
                "multichannel_share": t["multichannel"] / n,
                "cluster_name": max(t["clusters"], key=t["clusters"].get)
                if t["clusters"]
                else None,
            }
        )
    out.sort(key=lambda s: (-s["customers"], s["segment"]))
    return out[:50]


def _segments_result(raw: list[Any], now: datetime) -> SegmentsResult:
    rows = _combine(raw)
    total = int(sum(r["customers"] for r in rows))
    if not rows:
        return SegmentsResult(
            segments=[],
            segmented_customers=0,
            predictions_available=False,
            computed_at=now,
            notes=[NO_PREDICTIONS.format(kind="segment")],
        )

    def brand_avg(field: str) -> float | None:
        pairs = [(float(r[field]), r["customers"]) for r in rows if r[field] is not None]
        n = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / n if n else None

    fields = (
        "avg_orders",
        "avg_spent",
        "avg_recency_days",
        "avg_ltv",
        "avg_churn",
        "multichannel_share",
    )
    base = {f: brand_avg(f) for f in fields}
    out = [
        SegmentInfo(
            name=plain(r["segment"], 60) or "?",
            customers=int(r["customers"]),
            share=round(r["customers"] / total, 4),
            average_expected_value=_round(r["avg_ltv"], 2),
            average_churn=_round(r["avg_churn"], 4),
            value_at_risk=_round(r["value_at_risk"], 2) if r["churn_scored"] else None,
            churn_scored=int(r["churn_scored"]),
            high_churn_risk=int(r["high"]),
            medium_churn_risk=int(r["medium"]),
            average_orders=round(r["avg_orders"], 2),
            average_spend=money(r["avg_spent"]),
            average_order_value=ratio(r["revenue"], r["orders"], 2),
            repeat_rate=ratio(r["repeat_buyers"], r["buyers"]),
            average_days_since_last_order=_round(r["avg_recency_days"], 1),
            multichannel_share=_round(r["multichannel_share"], 4),
            cluster_name=plain(r["cluster_name"], 80),
            defining_traits=_traits(r, base),
        )
        for r in rows
    ]
    return SegmentsResult(
        segments=out,
        segmented_customers=total,
        as_of=max((r["as_of"] for r in rows if r["as_of"]), default=None),
        predictions_available=True,
        computed_at=now,
    )


_TRAIT_TEXT = {
    "avg_orders": ("orders per customer", "{:.1f}"),
    "avg_spent": ("lifetime spend", "{:.2f}"),
    "avg_recency_days": ("days since last order", "{:.0f}"),
    "avg_ltv": ("expected value", "{:.2f}"),
    "avg_churn": ("churn probability", "{:.2f}"),
    "multichannel_share": ("share shopping on several channels", "{:.0%}"),
}


def _traits(r: Any, base: dict[str, float | None]) -> list[str]:
    """The three measures on which the segment differs most from the brand (log ratio)."""
    scored = []
    for field, (label, fmt) in _TRAIT_TEXT.items():
        v, b = r[field], base.get(field)
        if v is None or b is None or float(v) <= 0 or b <= 0:
            continue
        gap = abs(math.log(float(v) / b))
        word = "higher" if float(v) > b else "lower"
        text = f"{label} {fmt.format(float(v))} ({word} than the brand's {fmt.format(b)})"
        scored.append((gap, text))
    return [t for _, t in sorted(scored, reverse=True)[:3]]


def _round(v: Any, digits: int) -> float | None:
    return None if v is None else round(float(v), digits)


class Flow(BaseModel):
    from_segment: str
    to_segment: str
    customers: int


class SegmentChange(BaseModel):
    segment: str
    then: int
    now: int
    change: int


class Movement(BaseModel):
    """How customers moved between RFM segments from one date to another."""

    movement_from: datetime | None = None
    movement_to: datetime | None = None
    movement_method: str | None = None
    flows: list[Flow] = Field(default_factory=list, description="Largest flows first.")
    changes: list[SegmentChange] = Field(default_factory=list)
    stayed_share: float | None = Field(
        default=None, description="Share of earlier buyers whose segment did not change."
    )
    computed_at: datetime | None = None
    notes: list[str] = Field(default_factory=list)


async def movement(deps: Deps, brand_id: Any, days: int) -> Movement:
    """Segment flows over the last `days` (cached for an hour)."""

    async def compute() -> Movement:
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        then = now - timedelta(days=days)
        rows = await ra.movement(deps.rt.pool, MOVEMENT_SQL, brand_id, then, now)
        flows = [
            Flow(
                from_segment=r["from_segment"] or NEW_SINCE,
                to_segment=r["to_segment"],
                customers=r["customers"],
            )
            for r in rows
        ]
        before: dict[str, int] = {}
        after: dict[str, int] = {}
        for f in flows:
            if f.from_segment != NEW_SINCE:
                before[f.from_segment] = before.get(f.from_segment, 0) + f.customers
            after[f.to_segment] = after.get(f.to_segment, 0) + f.customers
        earlier = sum(before.values())
        stayed = sum(f.customers for f in flows if f.from_segment == f.to_segment)
        names = sorted(set(before) | set(after), key=lambda s: -(after.get(s, 0)))
        return Movement(
            movement_from=then,
            movement_to=now,
            movement_method="RFM segments recomputed from purchases at both dates (quintiles "
            "over the buyers of each date, the segment model's R x FM grid)",
            flows=flows[:60],
            changes=[
                SegmentChange(
                    segment=s,
                    then=before.get(s, 0),
                    now=after.get(s, 0),
                    change=after.get(s, 0) - before.get(s, 0),
                )
                for s in names
            ],
            stayed_share=ratio(stayed, earlier),
            computed_at=datetime.now(UTC),
            notes=[] if flows else ["no purchases before today: nothing to compare"],
        )

    return await cached(deps.rt, brand_id, "movement", {"days": days}, Movement, compute, ttl=3600)
