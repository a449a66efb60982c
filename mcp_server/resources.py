"""Resources: `customer://{customer_ref}` (the Customer 360 summary) and `segment://{name}`
(one segment's statistics and its most at-risk members). Same scoping and PII rules as the
tools."""

from __future__ import annotations

from uuid import UUID

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import BaseModel, Field

from mcp_server import repo
from mcp_server.deps import Deps
from mcp_server.models import CustomerRef
from mcp_server.tools._segments import SegmentInfo, segment_stats
from mcp_server.tools.customers import summarize

SEGMENT_MEMBERS = 10


class SegmentResource(BaseModel):
    segment: SegmentInfo
    most_at_risk: list[CustomerRef] = Field(description="Highest churn probability first.")


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.resource(
        "customer://{customer_ref}",
        name="customer",
        title="Customer 360 summary",
        mime_type="application/json",
    )
    async def customer(customer_ref: str) -> str:
        """One customer's summary (as lookup_customer returns it), by customer_ref."""
        caller = deps.caller()
        try:
            pid = UUID(customer_ref)
        except ValueError:
            raise ResourceNotFoundError("a customer_ref is a UUID") from None
        async with deps.rt.pool.acquire() as conn:
            live = await repo.live_id(conn, caller.brand_id, pid)
            if live is None:
                raise ResourceNotFoundError("no such customer")
            summary = await summarize(deps, conn, caller, live, "customer_ref")
            if caller.pii:
                await deps.audit_pii(conn, caller, [live], "customer resource")
        return summary.model_dump_json()

    @mcp.resource(
        "segment://{name}",
        name="segment",
        title="Customer segment",
        mime_type="application/json",
    )
    async def segment(name: str) -> str:
        """A segment's size, value, churn and defining traits, with its most at-risk
        members (e.g. segment://At Risk)."""
        caller = deps.caller()
        stats = await segment_stats(deps, caller)
        found = next((s for s in stats.segments if s.name.casefold() == name.casefold()), None)
        if found is None:
            known = ", ".join(s.name for s in stats.segments) or "none yet"
            raise ResourceNotFoundError(f"no segment {name[:60]!r}; segments: {known}")
        async with deps.rt.pool.acquire() as conn:
            rows = await repo.top_churn(
                conn, caller.brand_id, found.name, "probability", SEGMENT_MEMBERS
            )
            refs = await deps.refs(conn, caller, [r["profile_id"] for r in rows])
        return SegmentResource(segment=found, most_at_risk=list(refs.values())).model_dump_json()
