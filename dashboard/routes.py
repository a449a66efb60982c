"""The dashboard's pages under /dashboard: sign-in, the overview, and the assembly of the
page routers (`customers`: profiles, Customer 360, merge review; `operations`: imports,
integrations, models). Every page reads through the packages that own the data (identity,
ingestion, ml, mcp_server) with the session's brand; admin actions are POSTs with a CSRF
token and the `admin` scope (imports: `ingest`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from dashboard import auth, customers, operations, overview
from dashboard.auth import DashSession
from dashboard.web import HERE, PREFIX, PageRoute, redirect, render

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can end the element early."""
    text = orjson.dumps(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _safe_next(value: str | None) -> str:
    # Only a path of ours: never an open redirect to another site.
    if value and value.startswith(PREFIX + "/") and not value.startswith("//"):
        return value
    return PREFIX + "/"


# --- sign-in ---------------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    token = request.cookies.get(auth.PRE_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.pre_csrf = token
    resp = render(request, "login.html", {"next": _safe_next(next), "error": None})
    auth.set_cookie(request, resp, auth.PRE_CSRF_COOKIE, token, 3600)
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    await auth.check_csrf(request, request.cookies.get(auth.PRE_CSRF_COOKIE, ""))
    form = await request.form()
    key = str(form.get("api_key") or "").strip()
    nxt = _safe_next(str(form.get("next") or ""))
    principal = None
    if key:
        principal = await request.app.state.key_cache.principal(request.app.state.rt.pool, key)
    if principal is None:
        request.state.pre_csrf = request.cookies.get(auth.PRE_CSRF_COOKIE, "")
        return render(
            request,
            "login.html",
            {"next": nxt, "error": "That API key is not valid (or was revoked)."},
            status=401,
        )
    if nxt == PREFIX + "/" and not principal.has("read"):
        nxt = PREFIX + "/imports"  # an ingest-only key: the one page it may use
    cookie = await auth.start_session(request, principal)
    resp = redirect(nxt)
    auth.set_cookie(request, resp, auth.COOKIE, cookie, auth.MAX_AGE_S)
    resp.delete_cookie(auth.PRE_CSRF_COOKIE, path=PREFIX)
    return resp


@router.post("/logout")
async def logout(request: Request, s: DashSession = Depends(auth.action(None))) -> Response:
    await auth.end_session(request, request.cookies.get(auth.COOKIE))
    resp = redirect(f"{PREFIX}/login")
    resp.delete_cookie(auth.COOKIE, path=PREFIX)
    return resp


# --- overview --------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request, s: DashSession = Depends(auth.page("read"))) -> Response:
    rt = request.app.state.rt
    ov = await overview.get(rt, s.principal.brand_id)
    return render(
        request,
        "overview.html",
        {
            "ov": ov,
            "charts_json": _script_json(overview.charts(ov)),
            "churn_total": sum(ov["churn"].values()),
        },
    )


# --- static assets ---------------------------------------------------------------------------
def _plotly_js() -> str:
    import plotly

    return str(Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js")


@router.get("/vendor/plotly.min.js")
async def plotly_js() -> Response:
    """Plotly's browser bundle, shipped inside the `plotly` package: served by us, so the
    dashboard works offline and loads nothing from a CDN."""
    return FileResponse(
        _plotly_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=604800", "X-Content-Type-Options": "nosniff"},
    )


def include(app: FastAPI) -> None:
    """Mount the dashboard: its pages and its static files."""
    app.include_router(router)
    app.include_router(customers.router)
    app.include_router(operations.router)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=HERE / "static"),
        name="dashboard-static",
    )
