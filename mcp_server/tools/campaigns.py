"""target_campaign: an audience for a goal, each member with a reason and an expected value.

Expected value = response rate × the value the action can bring for that customer. The
response rates are stated assumptions (overridable), not fitted uplift models: we have no
treatment/control history yet. The value side comes from the models (churn × LTV) when they
have run, else from purchase history; the output says which.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_server import repo
from mcp_server import repo_analytics as ra
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import READ_ONLY, CustomerRef, money, plain
from mcp_server.tools._views import NO_PREDICTIONS

MAX_AUDIENCE = 5000
DEFAULT_SIZE = 100
Goal = Literal["win_back", "upsell", "cross_sell", "retain_vips"]

DEFAULT_RESPONSE = {"win_back": 0.08, "retain_vips": 0.25, "upsell": 0.10, "cross_sell": 0.10}
ELIGIBLE_TEXT = {
    ("model", "win_back"): "bought before, churn probability >= 0.5",
    ("model", "retain_vips"): "expected value in the top two deciles (D9, D10), churn >= 0.33",
    ("model", "upsell"): "2+ orders and low churn risk (< 0.33)",
    ("model", "cross_sell"): "churn < 0.66 and a product recommendation available",
    ("rules", "win_back"): "bought before, no order for 120+ days",
    ("rules", "retain_vips"): "top 10% by lifetime spend, no order for 60+ days",
    ("rules", "upsell"): "2+ orders, last order within 90 days",
    ("rules", "cross_sell"): "last order within 180 days",
}
VALUE_TEXT = {
    ("model", "win_back"): "response rate × annual spend when active",
    ("model", "retain_vips"): "retention uplift × churn probability × expected value (LTV)",
    ("model", "upsell"): "response rate × usual order value",
    ("model", "cross_sell"): "response rate × price of the top recommended product",
    ("rules", "win_back"): "response rate × annual spend when active",
    ("rules", "retain_vips"): "retention uplift × annual spend (churn unknown: all of it at risk)",
    ("rules", "upsell"): "response rate × usual order value",
    ("rules", "cross_sell"): "response rate × usual order value",
}


class CampaignMember(BaseModel):
    customer: CustomerRef
    expected_value: float = Field(description="Expected revenue from contacting this customer.")
    reason: str = Field(description="Why this customer is in the audience.")
    segment: str | None = None


class CampaignResult(BaseModel):
    goal: str
    method: Literal["model", "rules"]
    eligibility: str
    expected_value_formula: str
    response_rate: float = Field(description="Assumed response (or retention uplift) rate.")
    eligible_customers: int
    audience_size: int
    expected_value_total: float
    cost_per_contact: float | None = None
    cost_total: float | None = None
    expected_net: float | None = None
    members: list[CampaignMember] = Field(description="The best members first (bounded).")
    notes: list[str] = Field(default_factory=list)


class _Row(BaseModel):
    profile_id: UUID
    ev: float
    reason: str
    segment: str | None


class _Ranked(BaseModel):
    method: Literal["model", "rules"]
    rows: list[_Row]
    eligible: int
    eligible_value: float
    notes: list[str]


def _reason(path: str, goal: str, r: Any) -> str:
    days = int(r["days_since"] or 0)
    churn = f"churn risk {r['churn']:.2f}" if r["churn"] is not None else None
    if goal == "win_back":
        parts = [
            f"no order for {days} days",
            churn,
            f"spends about {r['annual_value']:.2f} a year when active ({r['order_count']} orders)",
        ]
    elif goal == "retain_vips":
        if path == "model":
            parts = [f"top expected value {r['ltv']:.2f} ({r['decile']})", churn]
        else:
            parts = [f"top-10% spender ({r['spent']:.2f} lifetime)", f"no order for {days} days"]
    elif goal == "upsell":
        parts = [
            f"active (last order {days} days ago)",
            f"{r['order_count']} orders",
            f"usual basket {r['aov']:.2f}",
        ]
    else:
        rec = r["top_rec"]
        rec = json.loads(rec) if isinstance(rec, str) else rec
        if path == "model" and isinstance(rec, dict):
            name = plain(rec.get("name")) or str(rec.get("product_id"))[:40]
            why = plain(rec.get("reason"), 120)
            parts = [f"recommended: {name}" + (f" ({why})" if why else ""), churn]
        else:
            parts = [f"bought recently ({days} days ago)", f"usual basket {r['aov']:.2f}"]
    return "; ".join(p for p in parts if p)


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.tool(title="Target a campaign", annotations=READ_ONLY)
    async def target_campaign(
        goal: Annotated[
            Goal,
            Field(
                description="win_back lapsed buyers, upsell active ones, cross_sell "
                "recommended products, or retain_vips at risk of leaving."
            ),
        ],
        size: Annotated[
            int | None, Field(ge=1, le=MAX_AUDIENCE, description="Audience size wanted.")
        ] = None,
        budget: Annotated[
            float | None,
            Field(
                gt=0,
                le=10_000_000,
                description="Or a budget: contacts = budget / cost_per_"
                "contact, keeping only customers whose expected value exceeds the cost.",
            ),
        ] = None,
        cost_per_contact: Annotated[
            float, Field(gt=0, le=1000, description="Cost of one contact (brand currency).")
        ] = 1.0,
        response_rate: Annotated[
            float | None,
            Field(gt=0, le=1, description="Override the assumed response / uplift rate."),
        ] = None,
        show: Annotated[int, Field(ge=1, le=100, description="Members to list.")] = 25,
    ) -> CampaignResult:
        """Build a campaign audience for a goal and a size or budget: who to contact, the
        reason each customer is in, and the expected value (response rate × the value at
        stake for that customer: churn × LTV for VIP retention, annual spend for win-back,
        usual basket for upsell, recommended product price for cross-sell). Returns the
        eligibility rule, the assumptions, totals (expected value, cost, net) and the best
        members first. Uses the ML predictions when available, else purchase-history rules."""
        caller = deps.caller()
        rate = response_rate or DEFAULT_RESPONSE[goal]
        limit = DEFAULT_SIZE if size is None and budget is None else MAX_AUDIENCE
        if size is not None:
            limit = min(limit, size)
        if budget is not None:
            limit = min(limit, math.floor(budget / cost_per_contact))
            if limit < 1:
                raise ToolError("the budget does not cover a single contact at that cost")
        min_ev = cost_per_contact if budget is not None else None

        async def compute() -> _Ranked:
            async with deps.rt.pool.acquire() as conn:
                return await _rank(conn, caller.brand_id, goal, rate, limit)

        args = {"goal": goal, "rate": rate, "limit": limit}
        ranked = await cached(deps.rt, caller.brand_id, "campaign", args, _Ranked, compute)
        rows = [r for r in ranked.rows if min_ev is None or r.ev > min_ev]
        async with deps.rt.pool.acquire() as conn:
            refs = await deps.refs(conn, caller, [r.profile_id for r in rows[:show]])
        total = sum(r.ev for r in rows)
        cost = len(rows) * cost_per_contact
        notes = list(ranked.notes)
        if budget is not None and len(rows) < limit:
            notes.append(f"only {len(rows)} customers have an expected value above the cost")
        return CampaignResult(
            goal=goal,
            method=ranked.method,
            eligibility=ELIGIBLE_TEXT[(ranked.method, goal)],
            expected_value_formula=VALUE_TEXT[(ranked.method, goal)],
            response_rate=rate,
            eligible_customers=ranked.eligible,
            audience_size=len(rows),
            expected_value_total=money(total),
            cost_per_contact=cost_per_contact,
            cost_total=money(cost),
            expected_net=money(total - cost),
            members=[
                CampaignMember(
                    customer=refs[r.profile_id],
                    expected_value=money(r.ev),
                    reason=r.reason,
                    segment=r.segment,
                )
                for r in rows[:show]
            ],
            notes=notes,
        )


async def _rank(conn: Any, brand_id: UUID, goal: str, rate: float, limit: int) -> _Ranked:
    notes: list[str] = []
    path = "model" if await repo.has_kind(conn, brand_id, "churn") else "rules"
    if path == "rules":
        notes.append(NO_PREDICTIONS.format(kind="churn/LTV"))
    p90 = await ra.spend_p90(conn, brand_id) if (path, goal) == ("rules", "retain_vips") else None
    rows = await ra.campaign(conn, brand_id, path, goal, datetime.now(UTC), rate, limit, p90)
    return _Ranked(
        method=path,  # type: ignore[arg-type]
        rows=[
            _Row(
                profile_id=r["profile_id"],
                ev=float(r["expected_value"] or 0),
                reason=_reason(path, goal, r),
                segment=plain(r["segment"], 60),
            )
            for r in rows
        ],
        eligible=rows[0]["eligible"] if rows else 0,
        eligible_value=float(rows[0]["eligible_value"] or 0) if rows else 0.0,
        notes=notes,
    )
