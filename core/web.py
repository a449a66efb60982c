"""Web plumbing shared by every router: request ids, access logs, metrics, the standard error
body, API-key authentication with scopes, and per-key rate limiting in Redis."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.brands import KeyCache, Principal
from core.errors import CBrainError, Forbidden, RateLimited, Unauthorized
from core.logging import get_logger

_log = get_logger("cbrain.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

HTTP_REQUESTS = Counter(
    "cbrain_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "cbrain_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class JSONBody(JSONResponse):
    """orjson-rendered JSON (datetimes, UUIDs and numpy scalars included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str
        )


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or request.scope.get("request_id", ""))


def error_body(code: str, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): request id, timing, access log, metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope["request_id"] = rid
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Unhandled errors surface here before Starlette's outermost handler: answer with
            # the standard body (and our request id), log the trace, never send it.
            _log.error("unhandled", request_id=rid, error=type(exc).__name__, exc_info=exc)
            if status_holder.get("started"):
                raise
            status_holder["status"] = 500
            body = JSONBody(
                error_body("internal_error", "internal server error", rid), status_code=500
            )
            await body(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path_tpl = getattr(route, "path_format", None) or getattr(route, "path", None)
            route_label = path_tpl or "unmatched"
            HTTP_REQUESTS.labels(scope["method"], route_label, str(status_holder["status"])).inc()
            HTTP_LATENCY.labels(scope["method"], route_label).observe(elapsed)
            if route_label not in ("/health", "/metrics"):
                _log.info(
                    "request",
                    method=scope["method"],
                    route=route_label,
                    status=status_holder["status"],
                    ms=round(elapsed * 1000, 2),
                    request_id=rid,
                    brand=scope.get("brand_slug"),
                )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Every error, including 404, 405, 422 and unhandled 500s, gets the standard body."""

    @app.exception_handler(CBrainError)
    async def _cbrain(request: Request, exc: CBrainError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONBody(
            error_body(exc.code, exc.message, request_id_of(request), exc.details),
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        return JSONBody(
            error_body(code, message, request_id_of(request)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"field": "body", "message": "invalid"}
        message = f"{first['field']}: {first['message']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        return JSONBody(
            error_body("validation_error", message, request_id_of(request), details),
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        _log.error(
            "unhandled", request_id=request_id_of(request), error=type(exc).__name__, exc_info=exc
        )
        return JSONBody(
            error_body("internal_error", "internal server error", request_id_of(request)),
            status_code=500,
        )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


RATE_LIMIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


async def check_rate_limit(request: Request, principal: Principal) -> None:
    """Fixed one-minute window per key. Fails open: a Redis outage never stops ingestion."""
    rt = request.app.state.rt
    limit = rt.settings.rate_limit_per_minute
    if limit <= 0:
        return
    now = int(time.time())
    window = now // 60
    key = f"cb:{{{principal.brand_id}}}:rl:{principal.key_id}:{window}"
    try:
        count = await rt.redis.eval(RATE_LIMIT_SCRIPT, 1, key, 61)
    except Exception:
        return
    if int(count) > limit:
        raise RateLimited(
            f"rate limit of {limit} requests per minute exceeded for this key",
            retry_after=max(1, (window + 1) * 60 - now),
        )


async def authenticate(request: Request, token: str | None) -> Principal:
    if token is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    cache: KeyCache = request.app.state.key_cache
    principal = await cache.principal(request.app.state.rt.pool, token)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    request.scope["brand_slug"] = principal.brand_slug
    return principal


def require(scope: str | None) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: a valid key of some brand holding `scope` (None: any valid key),
    within its rate limit."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request, bearer_token(request))
        if scope is not None and not principal.has(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope")
        await check_rate_limit(request, principal)
        return principal

    dependency.__name__ = f"require_{(scope or 'any').replace(':', '_')}"
    return dependency


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past `limit` bytes without reading the rest."""
    from core.errors import PayloadTooLarge

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    from core.errors import ValidationFailed

    if not body.strip():
        raise ValidationFailed(
            "empty body: a JSON object was expected",
            details=[{"field": "body", "message": "empty"}],
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"body is not valid JSON: {exc}", details=[{"field": "body", "message": "invalid JSON"}]
        ) from None
