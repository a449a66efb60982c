"""The FastAPI application, assembled from each package's router."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.brands import KeyCache, Principal
from core.logging import configure_logging
from core.runtime import Runtime, open_runtime
from core.settings import Settings, load_settings
from core.web import JSONBody, RequestContextMiddleware, install_error_handlers, require

BackgroundStarter = Callable[[Runtime], Any]


async def _check_postgres(rt: Runtime) -> str | None:
    try:
        async with asyncio.timeout(2):
            await rt.pool.fetchval("SELECT 1")
        return None
    except Exception as exc:
        return type(exc).__name__


async def _check_redis(rt: Runtime) -> str | None:
    try:
        async with asyncio.timeout(2):
            await rt.redis.ping()
        return None
    except Exception as exc:
        return type(exc).__name__


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    background: list[BackgroundStarter] | None = None,
) -> FastAPI:
    """Build the app. Tests pass an open `runtime`; `cbrain serve` lets the lifespan open one.

    `background` are coroutine factories (e.g. the stream worker) run for the app's lifetime.
    """
    settings = settings or (runtime.settings if runtime else load_settings())
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            rt = (
                runtime
                if runtime is not None
                else await stack.enter_async_context(open_runtime(settings))
            )
            app.state.rt = rt
            # The MCP session manager must run in the app's lifespan (a mounted sub-app's
            # own lifespan never runs).
            await stack.enter_async_context(app.state.mcp_lifespan())
            from assistant import routes as assistant_routes

            # Slack and Gorgias: the Gorgias sweeper runs, the agent is closed on the way out.
            await stack.enter_async_context(assistant_routes.lifespan(app))
            tasks = [asyncio.create_task(start(rt)) for start in (background or [])]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    app = FastAPI(
        title="Customer Brain",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.key_cache = KeyCache()
    if runtime is not None:
        app.state.rt = runtime
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    async def health(request: Request) -> Response:
        """Checks Postgres and Redis; 503 naming the component that is down."""
        rt: Runtime = request.app.state.rt
        pg, rd = await asyncio.gather(_check_postgres(rt), _check_redis(rt))
        components = {
            "postgres": {"status": "up" if pg is None else "down", **({"error": pg} if pg else {})},
            "redis": {"status": "up" if rd is None else "down", **({"error": rd} if rd else {})},
        }
        ok = pg is None and rd is None
        return JSONBody(
            {"status": "ok" if ok else "degraded", "components": components},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/me", tags=["auth"])
    async def me(principal: Principal = Depends(require(None))) -> dict[str, Any]:
        """The calling key's brand and scopes."""
        return {
            "brand": principal.brand_slug,
            "brand_id": str(principal.brand_id),
            "key_id": str(principal.key_id),
            "scopes": sorted(principal.scopes),
        }

    for include in _routers():
        include(app)
    from mcp_server.http import mount as mount_mcp

    app.state.mcp_lifespan = mount_mcp(app, lambda: app.state.rt, settings)
    return app


def _routers() -> list[Callable[[FastAPI], None]]:
    """Each package that serves HTTP contributes an `include(app)`."""
    from assistant import routes as assistant_routes
    from automations import api as automations_api
    from dashboard import routes as dashboard_routes
    from identity import api as identity_api
    from identity import profiles_api
    from ingestion import api as ingestion_api
    from ingestion import segment

    return [
        ingestion_api.include,
        segment.include,
        identity_api.include,
        profiles_api.include,
        automations_api.include,
        assistant_routes.include,
        dashboard_routes.include,
    ]
