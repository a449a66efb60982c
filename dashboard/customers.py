"""Profiles (search, filters, sort, pages), the Customer 360 with unmerge, and the merge
review queue."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from core import brands
from core.errors import NotFound, ValidationFailed
from core.events import SOURCES
from dashboard import auth, overview
from dashboard.auth import DashSession
from dashboard.web import PREFIX, PageRoute, actor, redirect, render
from identity import profile360, profile_list, review
from identity.merge import rollback
from mcp_server import repo as mcp_repo

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
PAGE_SIZE = 50
TIMELINE_SIZE = 30
CHURN_BANDS = ("Low", "Medium", "High")


# --- profiles --------------------------------------------------------------------------------
def _search_kind(text: str) -> str:
    if _UUID.match(text):
        return "id"
    if "@" in text:
        return "email"
    digits = re.sub(r"[\s()+\-.]", "", text)
    if digits.isdigit() and len(digits) >= 6:
        return "phone"
    return "name"


@router.get("/profiles")
async def profiles(
    request: Request,
    q: str | None = Query(None, max_length=200),
    segment: str | None = Query(None, max_length=100),
    churn_band: str | None = Query(None, pattern="^(|Low|Medium|High)$"),
    ltv_min: str | None = Query(None, max_length=30),
    ltv_max: str | None = Query(None, max_length=30),
    channel: str | None = Query(None, max_length=50),
    last_seen_since: str | None = Query(None, max_length=10),
    last_seen_until: str | None = Query(None, max_length=10),
    sort: str | None = Query(
        None, pattern="^(|last_seen|total_spent|order_count|created_at|name|relevance)$"
    ),
    order: str | None = Query(None, pattern="^(|asc|desc)$"),
    cursor: str | None = Query(None, max_length=500),
    s: DashSession = Depends(auth.page("read")),
) -> Response:
    rt = request.app.state.rt
    brand_id = s.principal.brand_id
    params = {
        k: v
        for k, v in {
            "q": q,
            "segment": segment,
            "churn_band": churn_band,
            "ltv_min": ltv_min,
            "ltv_max": ltv_max,
            "channel": channel,
            "last_seen_since": last_seen_since,
            "last_seen_until": last_seen_until,
        }.items()
        if v not in (None, "")
    }
    text = (q or "").strip()
    kind = _search_kind(text) if text else None
    filters: dict[str, Any] = {
        "segment": segment or None,
        "churn_band": churn_band or None,
        "ltv_min": _number(ltv_min, "ltv_min"),
        "ltv_max": _number(ltv_max, "ltv_max"),
        "channel": channel or None,
        "last_seen_since": _date(last_seen_since, "last_seen_since"),
        "last_seen_until": _date(last_seen_until, "last_seen_until", end=True),
    }
    async with rt.pool.acquire() as conn:
        if kind == "id":
            state = await profile_list.profile_state(conn, brand_id, UUID(text))
            if state is not None:
                target = text if state == "live" else state
                return redirect(f"{PREFIX}/profiles/{target}")
            filters["ids"] = []
        elif kind in ("email", "phone"):
            brand = await brands.get_brand_by_id(conn, brand_id)
            try:
                filters["ids"] = await profile_list.owners(
                    conn, rt.keyring.for_brand(str(brand_id)), brand, {kind: text}
                )
            except ValidationFailed:
                filters["ids"] = []
        elif kind == "name":
            filters["q"] = profile_list.normalize_query(text) or None
        chosen = sort or ("relevance" if filters.get("q") else "last_seen")
        if chosen == "relevance" and not filters.get("q"):
            chosen = "last_seen"
        descending = (order or ("asc" if chosen == "name" else "desc")) == "desc"
        query = profile_list.ListQuery(
            {k: v for k, v in filters.items() if v is not None},
            chosen,
            descending,
            PAGE_SIZE,
            cursor or None,
        )
        page = await profile_list.list_page(conn, brand_id, query)
        ids = [UUID(p["id"]) for p in page["data"]]
        preds: dict[str, dict[str, Any]] = {}
        for r in await mcp_repo.predictions_of(conn, brand_id, ids) if ids else []:
            preds.setdefault(str(r["profile_id"]), {})[r["kind"]] = r
        segments = await mcp_repo.segment_names(conn, brand_id)
    base = {**params, "sort": chosen, "order": "desc" if descending else "asc"}
    next_url = (
        f"{PREFIX}/profiles?{urlencode({**base, 'cursor': page['pagination']['next_cursor']})}"
        if page["pagination"]["next_cursor"]
        else None
    )
    return render(
        request,
        "profiles.html",
        {
            "rows": page["data"],
            "preds": preds,
            "params": params,
            "sort": chosen,
            "descending": descending,
            "next_url": next_url,
            "paged": bool(cursor),
            "segments": segments,
            "channels": SOURCES,
            "bands": CHURN_BANDS,
            "search_kind": kind,
        },
    )


def _number(value: str | None, field: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise ValidationFailed(f"{field}: not a number") from None


def _date(value: str | None, field: str, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed(f"{field}: use YYYY-MM-DD") from None
    return d + timedelta(days=1) if end else d


# --- customer 360 ----------------------------------------------------------------------------
@router.get("/profiles/{profile_id}")
async def customer(
    request: Request,
    profile_id: UUID,
    pii: bool = False,
    events_cursor: str | None = Query(None, max_length=500),
    s: DashSession = Depends(auth.page("read")),
) -> Response:
    rt = request.app.state.rt
    brand_id = s.principal.brand_id
    body = await profile360.get(rt, brand_id, profile_id)
    survivor = profile360.merged_into(body)
    if survivor is not None:
        return redirect(f"{PREFIX}/profiles/{survivor}")
    view = orjson.loads(body)
    reveal = pii and s.can("pii:read")
    crypto = rt.keyring.for_brand(str(brand_id))
    async with rt.pool.acquire() as conn:
        if reveal:
            view.update(await profile360.reveal(conn, crypto, brand_id, profile_id))
            await profile360.audit(
                conn,
                brand_id,
                actor(s),
                "pii.read",
                str(profile_id),
                {"fields": ["identifiers", "traits"], "route": "dashboard"},
                request.scope.get("request_id"),
            )
        timeline = await profile_list.timeline(
            conn,
            crypto,
            brand_id,
            profile_id,
            limit=PAGE_SIZE,
            cursor=events_cursor,
            event_type=None,
            reveal=False,
        )
        near = await mcp_repo.nearest(conn, brand_id, profile_id, 6)
        similar: list[dict[str, Any]] = []
        if near:
            score = {r["id"]: float(r["similarity"]) for r in near}
            page = await profile_list.list_page(
                conn,
                brand_id,
                profile_list.ListQuery({"ids": list(score)}, "last_seen", True, len(score), None),
            )
            similar = sorted(
                ({**p, "similarity": score[UUID(p["id"])]} for p in page["data"]),
                key=lambda p: -p["similarity"],
            )
    churn = next((p for p in view["predictions"] if p["kind"] == "churn"), None)
    ltv = next((p for p in view["predictions"] if p["kind"] == "ltv"), None)
    return render(
        request,
        "customer.html",
        {
            "p": view,
            "reveal": reveal,
            "timeline": timeline["data"],
            "events_next": timeline["pagination"]["next_cursor"],
            "churn": churn,
            "ltv": ltv,
            "similar": similar,
            "has_embedding": near is not None,
        },
    )


@router.post("/merges/{merge_id}/unmerge")
async def unmerge_action(
    request: Request, merge_id: UUID, s: DashSession = Depends(auth.action("admin"))
) -> Response:
    rt = request.app.state.rt
    brand_id = s.principal.brand_id
    result = await rollback(rt, brand_id, merge_id, actor=actor(s))
    await overview.mark_stale(rt, brand_id)
    n = len(result["restored"])
    await auth.flash(
        request,
        "ok",
        f"Merge undone: {n} profile{'s' if n != 1 else ''} restored"
        + (
            f", {result['reresolved_events']} later event(s) re-resolved."
            if result["reresolved_events"]
            else "."
        ),
    )
    return redirect(f"{PREFIX}/profiles/{result['survivor']}")


# --- merge review ----------------------------------------------------------------------------
@router.get("/review")
async def review_page(
    request: Request,
    status: str = Query("open", pattern="^(open|approved|rejected|superseded)$"),
    cursor: str | None = Query(None, max_length=64),
    s: DashSession = Depends(auth.page("read")),
) -> Response:
    page = await review.list_page(
        request.app.state.rt, s.principal, status=status, limit=20, cursor=cursor
    )
    nxt = page["pagination"]["next_cursor"]
    return render(
        request,
        "review.html",
        {
            "items": page["data"],
            "status": status,
            "next_url": f"{PREFIX}/review?{urlencode({'status': status, 'cursor': nxt})}"
            if nxt
            else None,
        },
    )


@router.post("/review/{review_id}/{decision}")
async def review_decide(
    request: Request,
    review_id: UUID,
    decision: str,
    s: DashSession = Depends(auth.action("admin")),
) -> Response:
    if decision not in ("approve", "reject"):
        raise NotFound("no such action")
    rt = request.app.state.rt
    result = await review.decide(rt, s.principal, review_id, approve=decision == "approve")
    await overview.mark_stale(rt, s.principal.brand_id)
    if result["status"] == "approved":
        await auth.flash(request, "ok", f"Merged {len(result['merged']) + 1} profiles into one.")
        return redirect(f"{PREFIX}/profiles/{result['survivor']}")
    text = {
        "rejected": "Kept apart: this pair is not proposed again without new evidence.",
        "superseded": "Nothing to merge any more: these profiles were already merged.",
    }[result["status"]]
    await auth.flash(request, "ok", text)
    return redirect(f"{PREFIX}/review")
