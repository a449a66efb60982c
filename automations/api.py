"""Automation endpoints: `admin` changes and tests, `read` lists. Every statement is bound to
the caller's brand, so another brand's automation is a 404.

Bodies of the routes with an id in the path are parsed after the automation is found, so a
caller of another brand learns nothing (not even that its body was malformed).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from automations import service
from automations.models import AutomationPatch, AutomationSpec
from core.brands import Principal
from core.errors import ValidationFailed
from core.web import JSONBody, require

router = APIRouter(tags=["automations"])
RUN_STATUSES = "^(scheduled|claimed|sending|sent|dry_run|skipped|cancelled|failed|unknown)$"


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile_id: UUID


def _parse(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = details[0]
        raise ValidationFailed(f"{first['field']}: {first['message']}", details=details) from None


@router.post("/v1/automations", status_code=201)
async def create_automation(
    request: Request, body: Any = Body(None), principal: Principal = Depends(require("admin"))
) -> Any:
    """Create an automation (disabled and in dry run unless the body says otherwise). A
    webhook action without a `secret` gets one generated, returned here once as
    `webhook_secret`."""
    spec = _parse(AutomationSpec, body)
    rt = request.app.state.rt
    async with rt.pool.acquire() as conn:
        automation, secret = await service.create(conn, rt.keyring, principal.brand_id, spec)
    data = automation.public()
    if secret:
        data["webhook_secret"] = secret
    return JSONBody({"data": data}, status_code=201)


@router.get("/v1/automations")
async def list_automations(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=200),
    principal: Principal = Depends(require("read")),
) -> Any:
    """The brand's automations, newest first, in keyset pages."""
    async with request.app.state.rt.pool.acquire() as conn:
        return await service.list_page(conn, principal.brand_id, limit, cursor)


@router.get("/v1/automations/{automation_id}")
async def get_automation(
    automation_id: UUID, request: Request, principal: Principal = Depends(require("read"))
) -> Any:
    """One automation."""
    async with request.app.state.rt.pool.acquire() as conn:
        automation = await service.get(conn, principal.brand_id, automation_id)
    return {"data": automation.public()}


@router.patch("/v1/automations/{automation_id}")
async def patch_automation(
    automation_id: UUID,
    request: Request,
    body: Any = Body(None),
    principal: Principal = Depends(require("admin")),
) -> Any:
    """Enable / disable (`{"enabled": true}`), leave dry run (`{"dry_run": false}`), rename,
    or change conditions and safety settings. Enabling arms a state trigger: only changes
    from now on fire (unless the trigger has `include_existing`)."""
    async with request.app.state.rt.pool.acquire() as conn:
        await service.get(conn, principal.brand_id, automation_id)
        patch = _parse(AutomationPatch, body)
        automation = await service.update(conn, principal.brand_id, automation_id, patch)
    return {"data": automation.public()}


@router.post("/v1/automations/{automation_id}/test")
async def test_automation(
    automation_id: UUID,
    request: Request,
    body: Any = Body(None),
    principal: Principal = Depends(require("admin")),
) -> Any:
    """Dry evaluation for one person (`{"profile_id": ...}`): whether the trigger would fire
    now, which conditions fail, consent and quiet hours, and the message that would be sent
    (address masked, personal placeholders unfilled). Nothing is recorded or sent."""
    rt = request.app.state.rt
    from automations.config import automation_settings

    async with rt.pool.acquire() as conn:
        await service.get(conn, principal.brand_id, automation_id)
        req = _parse(TestRequest, body)
        result = await service.dry_test(
            conn,
            rt.keyring,
            automation_settings(rt),
            principal.brand_id,
            automation_id,
            req.profile_id,
        )
    return {"data": result}


@router.get("/v1/automations/{automation_id}/runs")
async def list_runs(
    automation_id: UUID,
    request: Request,
    status: str | None = Query(None, pattern=RUN_STATUSES),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=200),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Runs of an automation, newest first: status, trigger reason, error, the provider's
    message id, and in `details` what was (or, in dry run, would have been) sent."""
    async with request.app.state.rt.pool.acquire() as conn:
        return await service.runs_page(
            conn, principal.brand_id, automation_id, status=status, limit=limit, cursor=cursor
        )


def include(app: FastAPI) -> None:
    app.include_router(router)
