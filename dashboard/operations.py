"""Imports (upload, mapping, dry run, import with progress), integrations (secrets, webhook
deliveries, dead letters with replay) and the model registry (activate, roll back)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from core import brands
from core.errors import ValidationFailed
from core.events import EVENT_TYPES, SOURCES
from dashboard import auth, imports, overview, repo
from dashboard.auth import DashSession
from dashboard.web import PREFIX, PageRoute, actor, redirect, render
from ingestion import inbox
from ml import registry

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)


# --- imports ---------------------------------------------------------------------------------
@router.get("/imports")
async def imports_page(request: Request, s: DashSession = Depends(auth.page("ingest"))) -> Response:
    return render(
        request, "imports.html", {"sources": SOURCES, "types": EVENT_TYPES, "error": None}
    )


@router.post("/imports")
async def upload(request: Request, s: DashSession = Depends(auth.action("ingest"))) -> Response:
    form = await request.form()
    file = form.get("file")
    if file is None or isinstance(file, str) or not file.filename:
        raise ValidationFailed("choose a CSV file to upload")
    data = await file.read(imports.MAX_UPLOAD_BYTES + 1)
    upload_id = await imports.save_upload(
        request.app.state.rt,
        s.principal.brand_id,
        file.filename,
        data,
        str(form.get("source") or "csv"),
        str(form.get("type") or "") or None,
        str(form.get("format") or "csv"),
    )
    return redirect(f"{PREFIX}/imports/{upload_id}")


@router.get("/imports/{upload_id}")
async def import_preview(
    request: Request, upload_id: str, s: DashSession = Depends(auth.page("ingest"))
) -> Response:
    doc = await imports.load_upload(request.app.state.rt, s.principal.brand_id, upload_id)
    result = await asyncio.to_thread(imports.preview, doc, s.principal.brand_slug)
    header = imports.header_of(doc["text"]) if doc["meta"]["format"] == "csv" else []
    return render(
        request,
        "import_preview.html",
        {
            "upload_id": upload_id,
            "meta": doc["meta"],
            "header": header,
            "fields": imports.FIELDS,
            "types": EVENT_TYPES,
            "result": result,
        },
    )


@router.post("/imports/{upload_id}/mapping")
async def import_mapping(
    request: Request, upload_id: str, s: DashSession = Depends(auth.action("ingest"))
) -> Response:
    form = await request.form()
    mapping = {
        str(k)[4:]: str(v)
        for k, v in form.multi_items()
        if str(k).startswith("map:") and isinstance(v, str) and v
    }
    await imports.update_mapping(
        request.app.state.rt,
        s.principal.brand_id,
        upload_id,
        mapping,
        str(form.get("type") or "") or None,
    )
    return redirect(f"{PREFIX}/imports/{upload_id}")


@router.post("/imports/{upload_id}/run")
async def import_run(
    request: Request, upload_id: str, s: DashSession = Depends(auth.action("ingest"))
) -> Response:
    job_id = await imports.start_import(
        request.app.state.rt, s.principal.brand_id, s.principal.brand_slug, upload_id, actor(s)
    )
    return redirect(f"{PREFIX}/imports/jobs/{job_id}")


@router.get("/imports/jobs/{job_id}")
async def import_job(
    request: Request, job_id: str, s: DashSession = Depends(auth.page("ingest"))
) -> Response:
    state = await imports.job(request.app.state.rt, s.principal.brand_id, job_id)
    return render(request, "import_job.html", {"job": state})


@router.get("/imports/jobs/{job_id}/status")
async def import_job_status(
    request: Request, job_id: str, s: DashSession = Depends(auth.page("ingest"))
) -> Response:
    state = await imports.job(request.app.state.rt, s.principal.brand_id, job_id)
    keep = ("id", "status", "total", "done", "report", "error")
    return JSONResponse({k: state.get(k) for k in keep}, headers={"Cache-Control": "no-store"})


# --- integrations ----------------------------------------------------------------------------
@router.get("/integrations")
async def integrations(request: Request, s: DashSession = Depends(auth.page("read"))) -> Response:
    rt = request.app.state.rt
    brand_id = s.principal.brand_id
    since = datetime.now(UTC) - timedelta(days=7)
    sources = list(brands.WEBHOOK_SOURCES)
    async with rt.pool.acquire() as conn:
        status = await brands.secret_status(conn, brand_id)
        last = {r["source"]: r for r in await repo.last_deliveries(conn, brand_id, sources)}
        counts: dict[str, dict[str, int]] = {}
        for r in await repo.delivery_counts(conn, brand_id, since):
            counts.setdefault(r["source"], {})[r["status"]] = r["n"]
        failed = await repo.failed_deliveries(conn, brand_id, since, 20)
        dead = await inbox.dead_letters(conn, brand_id, 100)
    rows = [
        {
            "source": src,
            "secret": status.get(src),
            "last": last.get(src),
            "counts": counts.get(src, {}),
        }
        for src in sources
    ]
    return render(
        request,
        "integrations.html",
        {"rows": rows, "failed": failed, "dead": dead, "public_url": rt.settings.public_base_url},
    )


@router.post("/integrations/deadletters/replay")
async def replay(request: Request, s: DashSession = Depends(auth.action("admin"))) -> Response:
    from ingestion.worker import drain

    rt = request.app.state.rt
    form = await request.form()
    ids: list[int] | None = None
    if form.get("all") != "1":
        try:
            ids = [int(str(v)) for v in form.getlist("id")]
        except ValueError:
            raise ValidationFailed("id: not a dead letter id") from None
        if not ids:
            raise ValidationFailed("tick the dead letters to replay, or replay all")
    async with rt.pool.acquire() as conn:
        revived = await inbox.revive(conn, s.principal.brand_id, ids)
    await drain(rt, s.principal.brand_id)
    await overview.mark_stale(rt, s.principal.brand_id)  # the replayed events changed profiles
    still = await inbox.dead_count(rt.pool, s.principal.brand_id)
    await auth.flash(
        request,
        "ok" if not still else "warn",
        f"Replayed {len(revived)} dead letter(s); {still} still dead.",
    )
    return redirect(f"{PREFIX}/integrations")


# --- models ----------------------------------------------------------------------------------
HEADLINE = {
    "churn": ("auc", "brier", "lift_top_decile"),
    "ltv": ("gini", "spearman", "aggregate_error"),
    "segment": ("k",),
    "recommendations": ("precision@10", "recall@10", "ndcg@10"),
}


@router.get("/models")
async def models(request: Request, s: DashSession = Depends(auth.page("read"))) -> Response:
    async with request.app.state.rt.pool.acquire() as conn:
        versions = await registry.list_versions(conn, s.principal.brand_id)
    by_kind: dict[str, list[Any]] = {}
    for v in versions:
        by_kind.setdefault(v.kind, []).append(v)
    for vs in by_kind.values():
        vs.sort(key=lambda v: -v.version)
    return render(
        request,
        "models.html",
        {"by_kind": by_kind, "kinds": registry.KINDS, "headline": HEADLINE},
    )


@router.post("/models/{kind}/activate")
async def model_activate(
    request: Request, kind: str, s: DashSession = Depends(auth.action("admin"))
) -> Response:
    form = await request.form()
    try:
        version = int(str(form.get("version") or ""))
    except ValueError:
        raise ValidationFailed("version: a version number is needed") from None
    async with request.app.state.rt.pool.acquire() as conn:
        mv = await registry.activate(conn, s.principal.brand_id, kind, version)
    await auth.flash(
        request,
        "ok",
        f"{mv.kind} version {mv.version} is active. Run `cbrain score --brand "
        f"{s.principal.brand_slug}` to rewrite the predictions with it.",
    )
    return redirect(f"{PREFIX}/models")


@router.post("/models/{kind}/rollback")
async def model_rollback(
    request: Request, kind: str, s: DashSession = Depends(auth.action("admin"))
) -> Response:
    async with request.app.state.rt.pool.acquire() as conn:
        mv = await registry.rollback(conn, s.principal.brand_id, kind)
    await auth.flash(
        request,
        "ok",
        f"Rolled back: {mv.kind} version {mv.version} is active again. Run `cbrain score --brand "
        f"{s.principal.brand_slug}` to rewrite the predictions with it.",
    )
    return redirect(f"{PREFIX}/models")
