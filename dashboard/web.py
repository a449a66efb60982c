"""Rendering and page plumbing: the Jinja2 environment, security headers, and a route class
that turns our typed errors into HTML pages (the API's JSON error bodies are for machines)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import CBrainError
from core.logging import get_logger

HERE = Path(__file__).resolve().parent
PREFIX = "/dashboard"
_log = get_logger("cbrain.dashboard")

# Plotly builds its styles at run time (inline <style>), hence 'unsafe-inline' for styles only;
# scripts come from our own origin alone, and nothing is loaded from anywhere else.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages carry customer data: never kept by the browser or a proxy.
    "Cache-Control": "no-store",
}


class SignInRequired(CBrainError):
    code = "sign_in_required"
    status = 401


def _money(value: Any, currency: str = "") -> str:
    if value is None:
        return "–"
    v = float(value)
    return f"{currency}{v:,.2f}" if abs(v) < 1e6 else f"{currency}{v / 1e6:,.2f}M"


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.0f}%"


def _when(value: Any) -> str:
    if not value:
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _day(value: Any) -> str:
    return _when(value)[:10]


def _ago(value: Any) -> str:
    if not value:
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    secs = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return "just now"


def _title(value: Any) -> str:
    return " ".join(w.capitalize() for w in str(value or "").split()) or "(no name)"


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(money=_money, num=_num, pct=_pct, when=_when, day=_day, ago=_ago, title=_title)
env.globals.update(PREFIX=PREFIX, urlencode=urlencode, quote=quote)


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """A page with the session's nav, CSRF token and flash messages."""
    session = getattr(request.state, "dash", None)
    ctx = {
        "request": request,
        "session": session,
        "principal": session.principal if session else None,
        "csrf": session.csrf if session else getattr(request.state, "pre_csrf", ""),
        "flash": getattr(request.state, "flash", []),
        "path": request.url.path,
        **context,
    }
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Already done",
    413: "Too large",
    422: "Check the form",
    429: "Slow down",
}


class PageRoute(APIRoute):
    """Dashboard routes answer errors with an HTML page (a read-only key posting an admin
    action gets a 403 page, another brand's id a 404 page), send a signed-out visitor to the
    sign-in page, and report their server time in `Server-Timing`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response = await handler(request)
            except SignInRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                nxt = target if request.method == "GET" else PREFIX + "/"
                response = RedirectResponse(
                    f"{PREFIX}/login?{urlencode({'next': nxt})}", status_code=303
                )
            except CBrainError as exc:
                if exc.status >= 500:
                    _log.error("dashboard error", code=exc.code, error=exc.message)
                response = error_page(
                    request,
                    exc.status,
                    _TITLES.get(exc.status, "Something went wrong"),
                    exc.message,
                )
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "input"
                response = error_page(
                    request, 422, _TITLES[422], f"{field}: {first.get('msg', 'invalid')}"
                )
            except StarletteHTTPException as exc:
                response = error_page(
                    request,
                    exc.status_code,
                    _TITLES.get(exc.status_code, "Error"),
                    str(exc.detail),
                )
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
            )
            return response

        return page


def redirect(url: str) -> RedirectResponse:
    """After a POST: see-other, so a reload never re-submits the form."""
    return RedirectResponse(url, status_code=303)


def actor(session: Any) -> str:
    """The audit/decision actor of a session: its API key, as the API records it."""
    return f"key:{session.principal.key_id}"
