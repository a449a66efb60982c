"""Identity endpoints: merge rollback (unmerge) and the review queue."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from core.brands import Principal
from core.web import require
from identity import review
from identity.merge import rollback

router = APIRouter(tags=["identity"])


@router.post("/v1/merges/{merge_id}/rollback")
async def rollback_merge(
    merge_id: UUID, request: Request, principal: Principal = Depends(require("admin"))
) -> Any:
    """Undo a merge exactly; events that arrived after it are re-resolved."""
    result = await rollback(
        request.app.state.rt, principal.brand_id, merge_id, actor=f"key:{principal.key_id}"
    )
    return {"data": result}


@router.get("/v1/reviews")
async def list_reviews(
    request: Request,
    status: str = Query("open", pattern="^(open|approved|rejected|superseded)$"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    principal: Principal = Depends(require("read")),
) -> Any:
    """The review queue, both sides of each proposal with the score breakdown."""
    rt = request.app.state.rt
    return await review.list_page(rt, principal, status=status, limit=limit, cursor=cursor)


@router.post("/v1/reviews/{review_id}/approve")
async def approve(
    review_id: UUID, request: Request, principal: Principal = Depends(require("admin"))
) -> Any:
    """Merge the proposed profiles."""
    return {"data": await review.decide(request.app.state.rt, principal, review_id, approve=True)}


@router.post("/v1/reviews/{review_id}/reject")
async def reject(
    review_id: UUID, request: Request, principal: Principal = Depends(require("admin"))
) -> Any:
    """Keep them apart; the pair is not proposed again unless new evidence links them."""
    return {"data": await review.decide(request.app.state.rt, principal, review_id, approve=False)}


def include(app: FastAPI) -> None:
    app.include_router(router)
