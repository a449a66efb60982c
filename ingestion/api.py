"""HTTP ingestion: /v1/events, /v1/events/batch, /v1/pos/transactions, /v1/imports and the
signed webhooks at /webhooks/{source}/{brand}."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError

from core import brands
from core.brands import Principal
from core.errors import CBrainError, NotFound, PayloadTooLarge, Unauthorized, ValidationFailed
from core.events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from core.runtime import Runtime
from core.streams import announce_raw
from core.web import JSONBody, parse_json, read_body, require
from ingestion import csv_import, service, webhooks

router = APIRouter(tags=["ingestion"])
MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
MAX_IMPORT_PREVIEW_BYTES = 50 * 1024 * 1024


def _rt(request: Request) -> Runtime:
    return request.app.state.rt


def _batcher(request: Request) -> service.InboxBatcher:
    """One group-commit batcher per app (created on first use, bound to its runtime)."""
    state = request.app.state
    batcher = getattr(state, "inbox_batcher", None)
    if batcher is None or batcher.rt is not state.rt:
        batcher = state.inbox_batcher = service.InboxBatcher(state.rt)
    return batcher


@router.post("/v1/events", status_code=202)
async def post_event(request: Request, principal: Principal = Depends(require("ingest"))) -> Any:
    """Accept one canonical event (idempotent on its event_id for the brand and source)."""
    body = await read_body(request, MAX_EVENT_BYTES)
    event = service.parse_event(parse_json(body), principal.brand_slug)
    result = await _batcher(request).submit(principal.brand_id, event)
    return JSONBody(
        {"data": {"event_id": result.event_id, "status": result.status}}, status_code=202
    )


@router.post("/v1/events/batch", status_code=200)
async def post_batch(request: Request, principal: Principal = Depends(require("ingest"))) -> Any:
    """Accept up to 500 events (1 MB); one result per item, in order. A bad item never drops
    the others."""
    body = parse_json(await read_body(request, MAX_BATCH_BYTES))
    if (
        not isinstance(body, dict)
        or set(body) != {"events"}
        or not isinstance(body["events"], list)
    ):
        raise ValidationFailed(
            'body must be {"events": [...]}', details=[{"field": "events", "message": "required"}]
        )
    items = body["events"]
    if len(items) > MAX_BATCH_EVENTS:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(items)}")
    results: list[dict[str, Any] | None] = [None] * len(items)
    good = []
    for i, raw in enumerate(items):
        try:
            good.append((i, service.parse_event(raw, principal.brand_slug)))
        except CBrainError as exc:
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            results[i] = {
                "index": i,
                "event_id": event_id,
                "status": "rejected",
                "error": {"code": exc.code, "message": exc.message},
            }
    for r in await service.accept(_rt(request), principal.brand_id, good):
        results[r.index] = {
            "index": r.index,
            "event_id": r.event_id,
            "status": r.status,
            "error": None,
        }
    return {"data": results}


@router.post("/v1/pos/transactions", status_code=202)
async def post_pos(request: Request, principal: Principal = Depends(require("ingest"))) -> Any:
    """A till's transaction: store id, bill number, items and whatever identifiers it captured."""
    from integrations.pos import PosTransaction, to_canonical

    raw = parse_json(await read_body(request, MAX_EVENT_BYTES))
    try:
        tx = PosTransaction.model_validate(raw)
    except ValidationError as exc:
        message, details = service.validation_message(exc)
        raise ValidationFailed(message, details=details) from None
    event = service.parse_event(to_canonical(tx).wire(), principal.brand_slug)
    result = await _batcher(request).submit(principal.brand_id, event)
    return JSONBody(
        {"data": {"event_id": result.event_id, "status": result.status}}, status_code=202
    )


@router.post("/v1/imports")
async def post_import(
    request: Request,
    file: UploadFile = File(..., description="CSV (or JSONL of canonical events)"),
    source: str = Form("csv"),
    type: str | None = Form(None),
    format: str = Form("csv"),
    map: list[str] = Form(default=[]),
    dry_run: bool = Form(True),
    principal: Principal = Depends(require("ingest")),
) -> Any:
    """Upload a file: with dry_run (default) a preview of the first rows mapped to canonical
    events and the row errors; otherwise import it (good rows in, bad rows reported by line)."""
    data = await file.read(MAX_IMPORT_PREVIEW_BYTES + 1)
    if len(data) > MAX_IMPORT_PREVIEW_BYTES:
        raise PayloadTooLarge("upload larger than 50 MB: use `cbrain import` for big files")
    spec = csv_import.ImportSpec.build(source=source, event_type=type, fmt=format, mappings=map)
    lines = data.decode("utf-8-sig", errors="replace").splitlines(keepends=True)
    if dry_run:
        # Parsing a large file takes seconds: off the event loop, so other requests go on.
        preview = await asyncio.to_thread(csv_import.preview, lines, spec, principal.brand_slug)
        return {"data": preview}
    report = await csv_import.import_lines(
        _rt(request), principal.brand_id, principal.brand_slug, lines, spec, process=False
    )
    return {"data": report.as_dict()}


@router.post("/webhooks/{source}/{brand_slug}")
async def webhook(source: str, brand_slug: str, request: Request) -> Response:
    """Signed deliveries from Shopify, WooCommerce and Twilio: verify on the raw body, store,
    answer fast; processing is asynchronous."""
    rt = _rt(request)
    if source not in webhooks.SOURCES:
        raise NotFound(f"no webhook source {source!r}")
    body = await read_body(request, MAX_WEBHOOK_BYTES)
    try:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, brand_slug)
            secrets = await brands.secrets_for(conn, rt.keyring, brand.id, source)
    except NotFound:
        # Same answer as a bad signature: the URL does not reveal which brands exist.
        raise Unauthorized("webhook signature could not be verified") from None
    handled = await webhooks.handle(
        rt,
        brand,
        source,
        body,
        request.headers,
        secrets,
        url=_public_url(rt, request),
        received_at=datetime.now(UTC),
    )
    if handled.raw_ids:
        await announce_raw(rt.redis, brand.id, handled.raw_ids)
    return handled.response


def _public_url(rt: Runtime, request: Request) -> str:
    """The URL Twilio signed: configured public base + path + query, never the Host header."""
    base = rt.settings.public_base_url.rstrip("/")
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


def include(app: FastAPI) -> None:
    app.include_router(router)
