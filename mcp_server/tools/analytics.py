"""analyze_customers, analyze_segments, analyze_products: aggregates over a brand's customers,
orders and baskets. Results are cached per brand and arguments for a few minutes (see
_cache.py) and carry `computed_at`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_server import repo_analytics as ra
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import READ_ONLY, money, plain, ratio
from mcp_server.tools._segments import Movement, SegmentInfo, movement, segment_stats
from mcp_server.tools._views import NO_PREDICTIONS


class Metrics(BaseModel):
    customers: int = Field(description="Customers counted (in period mode: buyers).")
    buyers: int
    orders: int
    revenue: float = Field(description="Gross purchases, brand currency.")
    refunds: float | None = Field(default=None, description="Lifetime mode only.")
    average_order_value: float | None
    repeat_rate: float | None = Field(description="Buyers with 2+ orders / buyers.")
    revenue_per_customer: float | None


class Group(Metrics):
    key: str


class CustomersAnalysis(BaseModel):
    mode: Literal["lifetime", "period"]
    window_start: datetime | None = None
    window_end: datetime | None = None
    filters: dict[str, str]
    group_by: str
    totals: Metrics
    groups: list[Group]
    groups_total: int = Field(description="Groups before truncation to `limit`.")
    computed_at: datetime
    notes: list[str] = Field(default_factory=list)


class SegmentsAnalysis(Movement):
    compared: list[SegmentInfo]


class ProductRow(BaseModel):
    key: str = Field(description="product_id, or the category name.")
    name: str | None = None
    category: str | None = None
    units: float
    revenue: float
    revenue_share: float | None
    buyers: int
    orders: int


class Pair(BaseModel):
    a: str
    a_name: str | None = None
    b: str
    b_name: str | None = None
    together: int = Field(description="Orders (or customers, for categories) with both.")
    support: float
    confidence_a_to_b: float = Field(description="Share of those with A that also have B.")
    confidence_b_to_a: float
    lift: float = Field(description="> 1: bought together more often than by chance.")


class ProductsAnalysis(BaseModel):
    view: str
    window_start: datetime
    window_end: datetime
    rows: list[ProductRow] = Field(default_factory=list)
    pairs: list[Pair] = Field(default_factory=list)
    computed_at: datetime
    notes: list[str] = Field(default_factory=list)


def _metrics(r: Any, lifetime: bool) -> dict[str, Any]:
    return {
        "customers": r["customers"],
        "buyers": r["buyers"],
        "orders": int(r["orders"] or 0),
        "revenue": money(r["revenue"]),
        "refunds": money(r["refunds"]) if lifetime else None,
        "average_order_value": ratio(r["revenue"], r["orders"], 2),
        "repeat_rate": ratio(r["repeat_buyers"], r["buyers"]),
        "revenue_per_customer": ratio(r["revenue"], r["customers"], 2),
    }


def _month(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ToolError(f"{field} must be a month written YYYY-MM, e.g. 2025-03") from None


def window(days: int) -> tuple[datetime, datetime]:
    """The last `days` up to the next full hour: the same window (and cache key) all hour."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(days=days), end


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.tool(title="Analyze customers", annotations=READ_ONLY)
    async def analyze_customers(
        group_by: Annotated[
            Literal["none", "channel", "country", "city", "cohort", "segment"],
            Field(
                description="Break down by sales channel, country, city, first-order month "
                "(cohort) or RFM segment."
            ),
        ] = "none",
        period_days: Annotated[
            int | None,
            Field(
                ge=1,
                le=1095,
                description="Only purchases of the last N days (customers = "
                "buyers in the window). Empty: lifetime totals of all customers.",
            ),
        ] = None,
        country: Annotated[
            str | None, Field(max_length=60, description="Filter: country code.")
        ] = None,
        city: Annotated[str | None, Field(max_length=80, description="Filter: city.")] = None,
        channel: Annotated[
            str | None,
            Field(max_length=30, description="Filter: channel (shopify, pos, whatsapp…)."),
        ] = None,
        segment: Annotated[
            str | None, Field(max_length=60, description="Filter: RFM segment.")
        ] = None,
        cohort_from: Annotated[
            str | None, Field(max_length=7, description="Filter: first order on/after YYYY-MM.")
        ] = None,
        cohort_to: Annotated[
            str | None, Field(max_length=7, description="Filter: first order before YYYY-MM.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="Groups to return.")] = 20,
    ) -> CustomersAnalysis:
        """Customer counts, buyers, orders, revenue, average order value, repeat rate and
        revenue per customer, for all customers or a filtered set (country, city, channel,
        segment, first-order cohort), optionally broken down by channel, country, city,
        cohort or segment, over the lifetime or the last N days. A customer active on two
        channels counts in both channel groups but once in the totals."""
        caller = deps.caller()
        args = {
            "group_by": group_by,
            "period_days": period_days,
            "country": country,
            "city": city,
            "channel": channel,
            "segment": segment,
            "cohort_from": cohort_from,
            "cohort_to": cohort_to,
        }
        c_from, c_to = _month(cohort_from, "cohort_from"), _month(cohort_to, "cohort_to")

        async def compute() -> CustomersAnalysis:
            now = datetime.now(UTC)
            period = window(period_days) if period_days else None
            rows = await ra.analyze_customers(
                deps.rt.pool,
                caller.brand_id,
                period=period,
                group_by=group_by,
                country=country,
                city=city,
                channel=channel,
                segment=segment,
                cohort_from=c_from,
                cohort_to=c_to,
            )
            lifetime = period is None
            total = next(r for r in rows if r["is_total"])
            groups = [
                Group(key=plain(r["grp"], 80) or "?", **_metrics(r, lifetime))
                for r in rows
                if not r["is_total"]
            ]
            notes = []
            if group_by == "segment" and all(g.key == "(no segment)" for g in groups):
                notes.append(NO_PREDICTIONS.format(kind="segment"))
            if not lifetime:
                notes.append("period mode counts gross purchases in the window (refunds excluded)")
            return CustomersAnalysis(
                mode="lifetime" if lifetime else "period",
                window_start=period[0] if period else None,
                window_end=period[1] if period else None,
                filters={
                    k: str(v)
                    for k, v in args.items()
                    if v is not None and k not in ("group_by", "period_days")
                },
                group_by=group_by,
                totals=Metrics(**_metrics(total, lifetime)),
                groups=groups[:limit] if group_by != "none" else [],
                groups_total=len(groups) if group_by != "none" else 0,
                computed_at=now,
                notes=notes,
            )

        key = {**args, "limit": limit}
        return await cached(deps.rt, caller.brand_id, "customers", key, CustomersAnalysis, compute)

    @mcp.tool(title="Analyze segments", annotations=READ_ONLY)
    async def analyze_segments(
        segments: Annotated[
            list[str] | None,
            Field(max_length=12, description="Segments to compare (default: all)."),
        ] = None,
        movement_days: Annotated[
            int | None,
            Field(
                ge=0,
                le=730,
                description="Also show how customers moved between RFM "
                "segments from N days ago to today (default 90; 0 to skip).",
            ),
        ] = 90,
    ) -> SegmentsAnalysis:
        """Compare segments side by side (size, value, churn, orders, spend, order value,
        repeat rate, recency) and show movement between RFM segments over time: how many
        customers went from each segment N days ago to each segment today (e.g. Loyal ->
        At Risk), the net change per segment and the share who stayed put."""
        caller = deps.caller()
        # Statistics and movement are independent scans: run them side by side.
        moving = (
            asyncio.ensure_future(movement(deps, caller.brand_id, movement_days))
            if movement_days
            else None
        )
        try:
            stats = await segment_stats(deps, caller)
        except BaseException:
            if moving is not None:
                moving.cancel()
            raise
        wanted = {s.strip().casefold() for s in segments or []}
        compared = [s for s in stats.segments if not wanted or s.name.casefold() in wanted]
        notes = list(stats.notes)
        if wanted and not compared and stats.segments:
            if moving is not None:
                moving.cancel()
            raise ToolError(
                "none of those segments exist; known: " + ", ".join(s.name for s in stats.segments)
            )
        if moving is None:
            return SegmentsAnalysis(compared=compared, computed_at=stats.computed_at, notes=notes)
        moved = await moving
        return SegmentsAnalysis(
            **moved.model_dump(exclude={"notes"}), compared=compared, notes=notes + moved.notes
        )

    @mcp.tool(title="Analyze products", annotations=READ_ONLY)
    async def analyze_products(
        view: Annotated[
            Literal["top_products", "top_categories", "bought_together", "category_affinity"],
            Field(
                description="Best sellers, best categories, products bought in the same "
                "order, or categories bought by the same customers."
            ),
        ] = "top_products",
        period_days: Annotated[int, Field(ge=1, le=1095, description="Window: last N days.")] = 90,
        sort_by: Annotated[
            Literal["revenue", "units", "buyers"], Field(description="Top lists: order by.")
        ] = "revenue",
        category: Annotated[
            str | None,
            Field(
                max_length=60,
                description="Top lists: only this category; "
                "category_affinity: pairs with this category.",
            ),
        ] = None,
        product_id: Annotated[
            str | None,
            Field(max_length=100, description="bought_together: pairs with this product."),
        ] = None,
        min_together: Annotated[
            int, Field(ge=1, le=1000, description="Pairs: minimum orders/customers together.")
        ] = 3,
        limit: Annotated[int, Field(ge=1, le=50, description="Rows to return.")] = 10,
    ) -> ProductsAnalysis:
        """Product analytics over purchases of the last N days: top products or categories
        by revenue, units or buyers (with revenue share); products frequently bought together
        in one order; and category affinities (customers who buy A also buy B), each pair with
        support, confidence both ways and lift."""
        caller = deps.caller()
        args = {
            "view": view,
            "period_days": period_days,
            "sort_by": sort_by,
            "category": category,
            "product_id": product_id,
            "min": min_together,
            "limit": limit,
        }

        async def compute() -> ProductsAnalysis:
            start, end = window(period_days)
            res = ProductsAnalysis(
                view=view, window_start=start, window_end=end, computed_at=datetime.now(UTC)
            )
            pool = deps.rt.pool
            if view in ("top_products", "top_categories"):
                key = "product" if view == "top_products" else "category"
                rows = await ra.top_items(
                    pool, caller.brand_id, key, sort_by, start, end, category, limit
                )
                res.rows = [_product_row(r) for r in rows]
            else:
                anchor = product_id if view == "bought_together" else category
                rows = await ra.pairs(
                    pool, caller.brand_id, view, start, end, anchor, min_together, limit
                )
                res.pairs = [_pair(r) for r in rows]
            if not rows:
                res.notes.append("no purchases match in this window")
            return res

        return await cached(deps.rt, caller.brand_id, "products", args, ProductsAnalysis, compute)


def _product_row(r: Any) -> ProductRow:
    return ProductRow(
        key=plain(r["key"], 100) or "?",
        name=plain(r["name"]),
        category=plain(r["category"], 60),
        units=float(r["units"]),
        revenue=money(r["revenue"]),
        revenue_share=ratio(r["revenue"], r["all_revenue"]),
        buyers=r["buyers"],
        orders=r["orders"],
    )


def _pair(r: Any) -> Pair:
    return Pair(
        a=plain(r["a"], 100) or "?",
        a_name=plain(r["a_label"]),
        b=plain(r["b"], 100) or "?",
        b_name=plain(r["b_label"]),
        together=r["n"],
        support=round(r["n"] / r["units"], 4),
        confidence_a_to_b=round(r["conf_ab"], 4),
        confidence_b_to_a=round(r["conf_ba"], 4),
        lift=round(r["lift"], 3),
    )
