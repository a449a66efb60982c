"""The two directions of the recommendations tool: products for a customer, customers for a
product; with the fallbacks used before the recommendation model has run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_server import repo
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import CustomerRef, money, plain
from mcp_server.scope import Caller
from mcp_server.tools._views import NO_PREDICTIONS, RecommendedProduct, prediction_set


class AudienceMember(BaseModel):
    customer: CustomerRef
    score: float | None = None
    reason: str


class RecommendationsResult(BaseModel):
    mode: Literal["customer", "product"]
    customer_ref: str | None = None
    products: list[RecommendedProduct] = Field(default_factory=list)
    product_id: str | None = None
    product_name: str | None = None
    customers: list[AudienceMember] = Field(default_factory=list)
    method: str
    notes: list[str] = Field(default_factory=list)


async def for_customer(
    deps: Deps, conn: Any, caller: Caller, customer: str, limit: int
) -> RecommendationsResult:
    pid = await deps.one(conn, caller, customer)
    p = await repo.customer(conn, caller.brand_id, pid)
    assert p is not None  # `one` returned a live profile of this brand
    preds = prediction_set(repo.records(p["predictions"], repo.PREDICTION_FIELDS), limit)
    res = RecommendationsResult(mode="customer", customer_ref=str(pid), method="model")
    info = {r["product_id"]: r for r in repo.records(p["rec_products"], repo.PRODUCT_FIELDS)}
    if preds and preds.recommendations:
        res.products = preds.recommendations
    else:
        res.method = "popular in the last 90 days, not yet bought"
        res.notes.append(
            NO_PREDICTIONS.format(kind="recommendation")
            if not p["recs_scored"]
            else "the recommendation model has no items for this customer"
        )
        bought = await repo.bought_products(conn, caller.brand_id, pid)
        for item in (await _popular(deps, caller)).products:
            if item.product_id not in bought:
                res.products.append(item)
            if len(res.products) >= limit:
                break
        info = await repo.product_info(conn, caller.brand_id, [x.product_id for x in res.products])
    for item in res.products:
        if (row := info.get(item.product_id)) is not None:
            item.name = item.name or plain(row["name"])
            item.category = item.category or plain(row["category"], 60)
            item.price = money(row["price"]) if row["price"] is not None else None
    return res


class _Popular(BaseModel):
    products: list[RecommendedProduct]


async def _popular(deps: Deps, caller: Caller) -> _Popular:
    async def compute() -> _Popular:
        since = datetime.now(UTC) - timedelta(days=90)
        rows = await repo.popular(deps.rt.pool, caller.brand_id, since)
        return _Popular(
            products=[
                RecommendedProduct(
                    product_id=str(r["product_id"])[:80],
                    name=plain(r["name"]),
                    category=plain(r["category"], 60),
                    reason=f"popular: bought by {r['buyers']} customers in the last 90 days",
                )
                for r in rows
            ]
        )

    return await cached(deps.rt, caller.brand_id, "popular", {}, _Popular, compute, ttl=3600)


class _Member(BaseModel):
    profile_id: UUID
    score: float | None
    reason: str


class _Audience(BaseModel):
    method: str
    members: list[_Member]
    notes: list[str]


async def _audience(conn: Any, brand_id: UUID, product_id: str, limit: int) -> _Audience:
    """Customers for a product, ranked; no personal data (cached as it scans predictions)."""
    if await repo.has_kind(conn, brand_id, "recommendations"):
        rows = await repo.rec_audience(conn, brand_id, product_id, limit)
        return _Audience(
            method="model",
            notes=[],
            members=[
                _Member(
                    profile_id=r["profile_id"],
                    score=r["score"],
                    reason=plain(r["reason"], 200) or "recommended by the model",
                )
                for r in rows
            ],
        )
    rows = await repo.co_purchase_audience(conn, brand_id, product_id, limit)
    return _Audience(
        method="co-purchase: bought what this product's buyers buy, never this product",
        notes=[NO_PREDICTIONS.format(kind="recommendation")],
        members=[
            _Member(
                profile_id=r["profile_id"],
                score=float(r["n"]),
                reason=f"bought {r['n']} order(s) with products often bought together "
                f"with it ({', '.join(sorted(r['via'])[:3])})",
            )
            for r in rows
        ],
    )


async def for_product(
    deps: Deps, conn: Any, caller: Caller, product_id: str, limit: int
) -> RecommendationsResult:
    product_id = product_id.strip()
    info = (await repo.product_info(conn, caller.brand_id, [product_id])).get(product_id)
    seen = info or await repo.product_seen(conn, caller.brand_id, product_id)
    if seen is None:
        raise ToolError(
            f"unknown product_id {plain(product_id, 40)!r}; analyze_products lists the ids"
        )

    async def compute() -> _Audience:
        async with deps.rt.pool.acquire() as own:
            return await _audience(own, caller.brand_id, product_id, limit)

    args = {"product_id": product_id, "limit": limit}
    ranked = await cached(deps.rt, caller.brand_id, "audience", args, _Audience, compute)
    refs = await deps.refs(conn, caller, [m.profile_id for m in ranked.members])
    res = RecommendationsResult(
        mode="product",
        product_id=product_id,
        product_name=plain(seen["name"]),
        method=ranked.method,
        notes=list(ranked.notes),
        customers=[
            AudienceMember(
                customer=refs[m.profile_id],
                score=round(m.score, 4) if m.score is not None else None,
                reason=m.reason,
            )
            for m in ranked.members
        ],
    )
    if not res.customers:
        res.notes.append("no customers found for this product")
    return res
