"""Customer 360 and privacy endpoints.

Reads need `read`; identifier values, traits and message text need `pii:read` AND an explicit
`include_pii=true` (PII is opt-in per request, and every such read is audited); privacy jobs
need `admin`. Every statement is bound to the caller's brand, so another brand's id is a 404.
An old id of a merged profile answers 308 with the survivor in the body and in Location.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from core import brands
from core.brands import Principal
from core.errors import Forbidden, NotFound, ValidationFailed
from core.web import JSONBody, request_id_of, require
from identity import privacy, profile360, profile_list

router = APIRouter(tags=["profiles"])
privacy_router = APIRouter(tags=["privacy"])


# Brand settings (phone region, email rules) for normalizing lookups, cached in-process like
# API keys (core.brands.KeyCache): a settings change applies within BRAND_TTL_S.
BRAND_TTL_S = 30.0


async def _brand(request: Request, conn: Any, brand_id: UUID) -> brands.Brand:
    cache = getattr(request.app.state, "profile_brands", None)
    if cache is None:
        cache = request.app.state.profile_brands = {}
    hit = cache.get(brand_id)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1]
    brand = await brands.get_brand_by_id(conn, brand_id)
    if len(cache) > 10_000:
        cache.clear()
    cache[brand_id] = (now + BRAND_TTL_S, brand)
    return brand


def _actor(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def _pii(principal: Principal, include_pii: bool) -> bool:
    if include_pii and not principal.has("pii:read"):
        raise Forbidden("include_pii needs an API key with the 'pii:read' scope")
    return include_pii


def _redirect(request: Request, survivor: str, suffix: str = "") -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return JSONBody(
        {"data": {"merged_into": survivor}},
        status_code=308,
        headers={"Location": f"/v1/profiles/{survivor}{suffix}{query}"},
    )


@router.get("/v1/profiles")
async def list_profiles(
    request: Request,
    q: str | None = Query(None, max_length=200, description="Fuzzy name search (pg_trgm)."),
    email: str | None = Query(None, max_length=200, description="Exact, via the keyed hash."),
    phone: str | None = Query(None, max_length=200, description="Exact, any format."),
    segment: str | None = Query(None, max_length=100),
    churn_band: str | None = Query(None, max_length=50),
    ltv_min: float | None = None,
    ltv_max: float | None = None,
    journey_stage: str | None = Query(None, max_length=100),
    channel: str | None = Query(None, max_length=50),
    last_seen_since: datetime | None = None,
    last_seen_until: datetime | None = None,
    sort: Literal["last_seen", "total_spent", "order_count", "created_at", "name", "relevance"]
    | None = None,
    order: Literal["asc", "desc"] | None = None,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=500),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Live profiles, filtered and sorted, in keyset pages. With `q` the default order is
    relevance (trigram similarity to the normalized name)."""
    rt = request.app.state.rt
    filters: dict[str, Any] = {
        "segment": segment,
        # Bands are stored as Low / Medium / High (docs/predictions-contract.md).
        "churn_band": churn_band.strip().capitalize() if churn_band else None,
        "ltv_min": ltv_min,
        "ltv_max": ltv_max,
        "journey_stage": journey_stage,
        "channel": channel,
        "last_seen_since": last_seen_since,
        "last_seen_until": last_seen_until,
    }
    if q is not None:
        filters["q"] = profile_list.normalize_query(q)
        if not filters["q"]:
            raise ValidationFailed(
                "q: no name to search for", details=[{"field": "q", "message": "empty"}]
            )
    chosen = sort or ("relevance" if q else "last_seen")
    if chosen == "relevance" and q is None:
        raise ValidationFailed(
            "sort: relevance needs q", details=[{"field": "sort", "message": "needs q"}]
        )
    descending = (order or ("asc" if chosen == "name" else "desc")) == "desc"
    async with rt.pool.acquire() as conn:
        if email or phone:
            brand = await _brand(request, conn, principal.brand_id)
            crypto = rt.keyring.for_brand(str(brand.id))
            ids = await profile_list.owners(conn, crypto, brand, {"email": email, "phone": phone})
            filters["ids"] = ids
        query = profile_list.ListQuery(filters, chosen, descending, limit, cursor)
        return await profile_list.list_page(conn, principal.brand_id, query)


@router.get("/v1/profiles/lookup")
async def lookup_profile(
    request: Request,
    email: str | None = Query(None, max_length=200),
    phone: str | None = Query(None, max_length=200),
    loyalty_id: str | None = Query(None, max_length=200),
    external_id: str | None = Query(
        None, max_length=400, description="platform:id, e.g. shopify:123"
    ),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Exactly one identifier -> the live profile holding it (exact match on the keyed hash
    after normalization; a merged owner resolves to its survivor). 404 when nobody has it."""
    given = {
        k: v
        for k, v in {
            "email": email,
            "phone": phone,
            "loyalty_id": loyalty_id,
            "external_id": external_id,
        }.items()
        if v
    }
    if len(given) != 1:
        raise ValidationFailed(
            "give exactly one of email, phone, loyalty_id, external_id",
            details=[{"field": "query", "message": "exactly one identifier"}],
        )
    ids: dict[str, Any] = dict(given)
    if external_id:
        platform, _, value = external_id.partition(":")
        if not platform or not value:
            raise ValidationFailed(
                "external_id: use platform:id",
                details=[{"field": "external_id", "message": "platform:id"}],
            )
        ids = {"external_ids": {platform: value}}
    rt = request.app.state.rt
    async with rt.pool.acquire() as conn:
        brand = await _brand(request, conn, principal.brand_id)
        found = await profile_list.owners(conn, rt.keyring.for_brand(str(brand.id)), brand, ids)
        if not found:
            raise NotFound("no profile has that identifier")
        query = profile_list.ListQuery({"ids": found}, "last_seen", True, 1, None)
        page = await profile_list.list_page(conn, brand.id, query)
    if not page["data"]:
        raise NotFound("no profile has that identifier")
    return {"data": {**page["data"][0], "matched_by": next(iter(given))}}


@router.get("/v1/profiles/{profile_id}")
async def get_profile(
    profile_id: UUID,
    request: Request,
    include_pii: bool = Query(False, description="Full identifier values and traits (pii:read)."),
    principal: Principal = Depends(require("read")),
) -> Any:
    """The Customer 360. Identifiers are masked unless `include_pii=true` with `pii:read`."""
    reveal = _pii(principal, include_pii)
    rt = request.app.state.rt
    body = await profile360.get(rt, principal.brand_id, profile_id)
    survivor = profile360.merged_into(body)
    if survivor is not None:
        return _redirect(request, survivor)
    if not reveal:
        return Response(b'{"data":' + body + b"}", media_type="application/json")
    view = orjson.loads(body)
    crypto = rt.keyring.for_brand(str(principal.brand_id))
    async with rt.pool.acquire() as conn:
        view.update(await profile360.reveal(conn, crypto, principal.brand_id, profile_id))
        await profile360.audit(
            conn,
            principal.brand_id,
            _actor(principal),
            "pii.read",
            str(profile_id),
            {"fields": ["identifiers", "traits"], "route": "profile"},
            request_id_of(request),
        )
    return {"data": view}


async def _live_or_redirect(
    request: Request, principal: Principal, profile_id: UUID, suffix: str
) -> Response | None:
    async with request.app.state.rt.pool.acquire() as conn:
        state = await profile_list.profile_state(conn, principal.brand_id, profile_id)
    if state is None:
        raise NotFound("no such profile")
    return None if state == "live" else _redirect(request, state, suffix)


@router.get("/v1/profiles/{profile_id}/events")
async def profile_events(
    profile_id: UUID,
    request: Request,
    type: str | None = Query(None, max_length=50),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=500),
    include_pii: bool = Query(False, description="Open sealed message text (pii:read)."),
    principal: Principal = Depends(require("read")),
) -> Any:
    """The profile's timeline, newest first, paged by (occurred_at, id)."""
    reveal = _pii(principal, include_pii)
    redirect = await _live_or_redirect(request, principal, profile_id, "/events")
    if redirect is not None:
        return redirect
    rt = request.app.state.rt
    async with rt.pool.acquire() as conn:
        page = await profile_list.timeline(
            conn,
            rt.keyring.for_brand(str(principal.brand_id)),
            principal.brand_id,
            profile_id,
            limit=limit,
            cursor=cursor,
            event_type=type,
            reveal=reveal,
        )
        if reveal:
            await profile360.audit(
                conn,
                principal.brand_id,
                _actor(principal),
                "pii.read",
                str(profile_id),
                {"fields": ["event_content"], "route": "events", "events": len(page["data"])},
                request_id_of(request),
            )
    return page


@router.get("/v1/profiles/{profile_id}/merges")
async def profile_merges(
    profile_id: UUID,
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=500),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Merge history of the profile and of every profile merged into it, newest first."""
    redirect = await _live_or_redirect(request, principal, profile_id, "/merges")
    if redirect is not None:
        return redirect
    after = None
    if cursor:
        at, last = profile_list.decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(str(at)), UUID(str(last)))
        except ValueError:
            raise ValidationFailed(
                "cursor: invalid", details=[{"field": "cursor", "message": "invalid"}]
            ) from None
    async with request.app.state.rt.pool.acquire() as conn:
        rows = await profile360.merges_page(
            conn, principal.brand_id, profile_id, limit=limit + 1, after=after
        )
    page = rows[:limit]
    nxt = None
    if len(rows) > limit:
        nxt = profile_list.encode_cursor(page[-1]["created_at"].isoformat(), page[-1]["id"])
    return {"data": page, "pagination": {"limit": limit, "next_cursor": nxt}}


class PrivacyRequest(BaseModel):
    """Who the request is about: any identifier the brand sent us, or a profile id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=200)
    whatsapp: str | None = Field(None, max_length=200)
    loyalty_id: str | None = Field(None, max_length=200)
    device_id: str | None = Field(None, max_length=200)
    cookie_id: str | None = Field(None, max_length=200)
    external_ids: dict[str, str] = Field(default_factory=dict, max_length=20)
    profile_id: UUID | None = None


async def _queue(
    kind: str, body: PrivacyRequest, request: Request, principal: Principal
) -> Response:
    rt = request.app.state.rt
    idents = body.model_dump(exclude={"profile_id"}, exclude_none=True)
    async with rt.pool.acquire() as conn, conn.transaction():
        brand = await brands.get_brand_by_id(conn, principal.brand_id)
        job = await privacy.request_job(
            conn,
            rt.keyring.for_brand(str(brand.id)),
            brand,
            kind,
            idents,
            body.profile_id,
            actor=_actor(principal),
            request_id=request_id_of(request),
        )
    return JSONBody(
        {"data": job}, status_code=202, headers={"Location": f"/v1/privacy/jobs/{job['id']}"}
    )


@privacy_router.post("/v1/privacy/delete", status_code=202)
async def privacy_delete(
    body: PrivacyRequest, request: Request, principal: Principal = Depends(require("admin"))
) -> Response:
    """Erase a person (asynchronous): profiles, identifiers, events, raw events, predictions,
    features, journeys, merge history, caches and stream entries; their identifiers are
    suppressed so later events naming them are dropped."""
    return await _queue("delete", body, request, principal)


@privacy_router.post("/v1/privacy/export", status_code=202)
async def privacy_export(
    body: PrivacyRequest, request: Request, principal: Principal = Depends(require("admin"))
) -> Response:
    """Everything held about a person as JSON (asynchronous; fetch it from the job)."""
    return await _queue("export", body, request, principal)


@privacy_router.get("/v1/privacy/jobs")
async def privacy_jobs(
    request: Request,
    status: Literal["pending", "running", "done", "failed"] | None = None,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=100),
    principal: Principal = Depends(require("admin")),
) -> Any:
    """Privacy jobs, newest first (API, CLI and Shopify compliance webhooks alike)."""
    try:
        before = UUID(cursor) if cursor else None
    except ValueError:
        raise ValidationFailed(
            "cursor: invalid", details=[{"field": "cursor", "message": "invalid"}]
        ) from None
    async with request.app.state.rt.pool.acquire() as conn:
        rows = await privacy.list_jobs(
            conn, principal.brand_id, status=status, before=before, limit=limit + 1
        )
    page = rows[:limit]
    nxt = page[-1]["id"] if len(rows) > limit else None
    return {"data": page, "pagination": {"limit": limit, "next_cursor": nxt}}


@privacy_router.get("/v1/privacy/jobs/{job_id}")
async def privacy_job(
    job_id: UUID, request: Request, principal: Principal = Depends(require("admin"))
) -> Any:
    """A job's status; a finished export carries `result` (its reading is audited)."""
    rt = request.app.state.rt
    async with rt.pool.acquire() as conn:
        job = await privacy.get_job(
            conn,
            rt.keyring.for_brand(str(principal.brand_id)),
            principal.brand_id,
            job_id,
            with_result=True,
        )
        if "result" in job:
            await profile360.audit(
                conn,
                principal.brand_id,
                _actor(principal),
                "pii.read",
                str(job_id),
                {"fields": ["privacy_export"], "route": "privacy_job"},
                request_id_of(request),
            )
    return {"data": job}


def include(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(privacy_router)
