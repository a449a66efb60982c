"""churn_risk, segments and recommendations: what the ML models say, shaped for a reader.

Every tool works before ML has run (the prediction tables exist but are empty): it answers
from purchase history where it can and says that predictions are missing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_server import repo
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import READ_ONLY, CustomerRef, ModelInfo, metrics_of, money, plain
from mcp_server.scope import Caller
from mcp_server.tools import _recs, campaigns
from mcp_server.tools._recs import RecommendationsResult
from mcp_server.tools._segments import SegmentsResult, segment_stats
from mcp_server.tools._views import (
    NO_PREDICTIONS,
    ChurnView,
    LtvView,
    SegmentView,
    band_of,
    prediction_set,
)


class AtRisk(BaseModel):
    customer: CustomerRef
    probability: float
    band: str
    expected_value: float | None = Field(
        default=None, description="LTV prediction (brand currency)."
    )
    value_at_risk: float | None = Field(default=None, description="probability × expected_value.")
    segment: str | None = None


class ChurnSummary(BaseModel):
    scored_customers: int
    high_risk: int
    medium_risk: int
    total_value_at_risk: float


class ChurnRiskResult(BaseModel):
    """Either `customer` (one person) or `at_risk` (a ranked list) is filled."""

    mode: Literal["customer", "list"]
    customer_ref: str | None = None
    churn: ChurnView | None = None
    ltv: LtvView | None = None
    value_at_risk: float | None = None
    segment: SegmentView | None = None
    days_since_last_order: int | None = None
    orders: int | None = None
    list_segment: str | None = None
    rank_by: str | None = None
    at_risk: list[AtRisk] = Field(default_factory=list)
    summary: ChurnSummary | None = None
    model: ModelInfo | None = None
    predictions_available: bool
    notes: list[str] = Field(default_factory=list)


class _ChurnRow(BaseModel):
    profile_id: UUID
    churn: float
    band: str | None
    ltv: float | None
    segment: str | None


class _RankedChurn(BaseModel):
    rows: list[_ChurnRow]
    as_of: datetime | None


async def model_info(conn: Any, brand_id: Any, kind: str, as_of: Any) -> ModelInfo | None:
    row = await repo.active_model(conn, brand_id, kind)
    if row is None and as_of is None:
        return None
    return ModelInfo(
        kind=kind,
        version=row["version"] if row else None,
        as_of=as_of,
        metrics=metrics_of(row["metrics"]) if row else {},
    )


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.tool(title="Churn risk", annotations=READ_ONLY)
    async def churn_risk(
        customer: Annotated[
            str | None,
            Field(
                description="One customer: customer_ref or exact email / phone / loyalty id. "
                "Leave empty to list the most at-risk customers instead.",
                max_length=200,
            ),
        ] = None,
        segment: Annotated[
            str | None,
            Field(
                description="List mode: only this segment (e.g. 'At Risk', 'Champions').",
                max_length=60,
            ),
        ] = None,
        top_n: Annotated[int, Field(ge=1, le=100, description="List mode: how many.")] = 10,
        rank_by: Annotated[
            Literal["probability", "value_at_risk"],
            Field(description="List mode: by churn probability, or by probability × LTV."),
        ] = "probability",
    ) -> ChurnRiskResult:
        """Churn risk from the churn model. For one customer: probability of not buying
        again within the horizon, band (Low/Medium/High), the top drivers (e.g. days since
        last order), expected value, value at risk and a suggested action. Without a
        customer: the top-N at-risk customers (optionally of one segment), ranked by
        probability or by value at risk (probability × expected value), with the totals.
        Says so when the churn model has not run yet."""
        caller = deps.caller()
        async with deps.rt.pool.acquire() as conn:
            if customer:
                return await _one_churn(deps, conn, caller, customer)
            if not await repo.has_kind(conn, caller.brand_id, "churn"):
                return ChurnRiskResult(
                    mode="list",
                    predictions_available=False,
                    rank_by=rank_by,
                    notes=[NO_PREDICTIONS.format(kind="churn")],
                )
            seg = await _segment_name(conn, caller, segment) if segment else None

            async def compute() -> _RankedChurn:
                # Always the top 100 (the most top_n allows): one cache entry per list. The pool,
                # not a connection: the value-at-risk ranking runs on the analytics replica.
                rows = await repo.top_churn(deps.rt.pool, caller.brand_id, seg, rank_by, 100)
                return _RankedChurn(
                    rows=[_ChurnRow.model_validate(dict(r)) for r in rows],
                    as_of=max((r["as_of"] for r in rows), default=None),
                )

            args = {"segment": seg, "rank_by": rank_by}
            ranked = await cached(deps.rt, caller.brand_id, "churn", args, _RankedChurn, compute)
            stats = await segment_stats(deps, caller)
            top = ranked.rows[:top_n]
            refs = await deps.refs(conn, caller, [r.profile_id for r in top])
            info = await model_info(conn, caller.brand_id, "churn", ranked.as_of)
        at_risk = []
        for r in top:
            at_risk.append(
                AtRisk(
                    customer=refs[r.profile_id],
                    probability=round(r.churn, 4),
                    band=r.band or band_of(r.churn),
                    expected_value=money(r.ltv) if r.ltv is not None else None,
                    value_at_risk=money(r.churn * r.ltv) if r.ltv is not None else None,
                    segment=plain(r.segment, 60),
                )
            )
        return ChurnRiskResult(
            mode="list",
            list_segment=seg,
            rank_by=rank_by,
            at_risk=at_risk,
            summary=_summary(stats, seg),
            model=info,
            predictions_available=True,
        )

    @mcp.tool(title="Customer segments", annotations=READ_ONLY)
    async def segments() -> SegmentsResult:
        """The brand's customer segments (RFM segments such as Champions, Loyal, At Risk,
        Hibernating) with size, share, average expected value (LTV), average churn
        probability, value at risk, orders, spend, order value, repeat rate, recency and
        the traits that set each segment apart from the brand as a whole."""
        return await segment_stats(deps, deps.caller())

    @mcp.tool(title="Recommendations", annotations=READ_ONLY)
    async def recommendations(
        customer: Annotated[
            str | None,
            Field(
                description="Products for this customer (customer_ref or exact email / "
                "phone / loyalty id).",
                max_length=200,
            ),
        ] = None,
        product_id: Annotated[
            str | None,
            Field(
                description="Or: customers to offer this product to (a product_id, as "
                "shown by analyze_products).",
                max_length=100,
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="How many results.")] = 10,
    ) -> RecommendationsResult:
        """Product recommendations with the reason for each. Give `customer` for the
        products to suggest to that person, or `product_id` for the customers most likely to
        want that product (from the recommendation model; before it has run, buyers of
        products often bought together with it who have not bought it yet)."""
        if bool(customer) == bool(product_id):
            raise ToolError("give exactly one of `customer` or `product_id`")
        caller = deps.caller()
        async with deps.rt.pool.acquire() as conn:
            if customer:
                return await _recs.for_customer(deps, conn, caller, customer, limit)
            return await _recs.for_product(deps, conn, caller, product_id or "", limit)

    campaigns.register(mcp, deps)


async def _one_churn(deps: Deps, conn: Any, caller: Caller, customer: str) -> ChurnRiskResult:
    pid = await deps.one(conn, caller, customer)
    p = await repo.customer(conn, caller.brand_id, pid)
    assert p is not None  # `one` returned a live profile of this brand
    preds = prediction_set(repo.records(p["predictions"], repo.PREDICTION_FIELDS))
    now = datetime.now(UTC)
    res = ChurnRiskResult(
        mode="customer",
        customer_ref=str(pid),
        days_since_last_order=(now - p["last_order_at"]).days if p["last_order_at"] else None,
        orders=p["order_count"],
        predictions_available=p["churn_scored"],
    )
    if preds is not None:
        res.churn, res.ltv, res.segment = preds.churn, preds.ltv, preds.segment
    if res.churn is not None:
        version, metrics = p["churn_model"] or (None, None)
        res.model = ModelInfo(
            kind="churn",
            version=version,
            as_of=preds.as_of if preds else None,
            metrics=metrics_of(metrics),
        )
    if res.churn and res.ltv:
        res.value_at_risk = money(res.churn.probability * res.ltv.expected_value)
    if res.churn is None:
        res.notes.append(
            NO_PREDICTIONS.format(kind="churn")
            if not p["churn_scored"]
            else "this customer has not been scored by the churn model (e.g. no orders yet)"
        )
    return res


def _summary(stats: SegmentsResult, segment: str | None) -> ChurnSummary:
    """Churn totals of the brand (over its segmented customers) or of one segment."""
    rows = [s for s in stats.segments if segment is None or s.name == segment]
    return ChurnSummary(
        scored_customers=sum(s.churn_scored for s in rows),
        high_risk=sum(s.high_churn_risk for s in rows),
        medium_risk=sum(s.medium_churn_risk for s in rows),
        total_value_at_risk=money(sum(s.value_at_risk or 0 for s in rows)),
    )


async def _segment_name(conn: Any, caller: Caller, segment: str) -> str:
    names = await repo.segment_names(conn, caller.brand_id)
    for name in names:
        if name.casefold() == segment.strip().casefold():
            return name
    raise ToolError(
        f"unknown segment {plain(segment, 60)!r}; segments of this brand: "
        + (", ".join(names) if names else "none yet (segments are not computed)")
    )
