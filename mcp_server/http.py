"""Streamable HTTP at `/mcp` of the FastAPI app, authenticated per brand by bearer API key.

`mount` adds the endpoint and returns the async context manager that runs the MCP session
manager; the app's lifespan must enter it (a mounted sub-app's own lifespan never runs):

    mcp_lifespan = mount(app, lambda: app.state.rt, settings)
    ...
    async with mcp_lifespan():   # inside the app lifespan, after app.state.rt is set
        yield

Stateless mode with JSON responses: no session lives in a process, so any replica can answer
any request (ARCHITECTURE: the MCP server is stateless). Host-header checking (DNS-rebinding
protection) accepts loopback, the host of CBRAIN_PUBLIC_URL and the hosts listed in
CBRAIN_MCP_ALLOWED_HOSTS.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings

from core.brands import KeyCache
from core.runtime import Runtime
from core.settings import Settings
from mcp_server.auth import ApiKeyVerifier
from mcp_server.server import build_server

ALLOWED_HOSTS_ENV = "CBRAIN_MCP_ALLOWED_HOSTS"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY = 256 * 1024  # tool arguments are small; a large body is a mistake or an attack


def allowed_hosts(settings: Settings, env: Mapping[str, str] | None = None) -> list[str] | None:
    """Host header values to accept, or None to switch the check off.

    CBRAIN_MCP_ALLOWED_HOSTS is comma-separated: `api.example.com` (any port),
    `api.example.com:8443` (that port only), or `*` (no check: only behind a proxy that
    validates Host itself). It is read here, not in core/settings.py, because only the MCP
    transport uses it.
    """
    raw = (os.environ if env is None else env).get(ALLOWED_HOSTS_ENV, "")
    items = [h.strip().lower() for h in raw.split(",") if h.strip()]
    if "*" in items:
        return None
    public = urlsplit(settings.public_base_url).hostname
    hosts: list[str] = []
    for host in [*LOOPBACK, *([public] if public else []), *items]:
        if ":" in host and not host.endswith("]"):
            hosts.append(host)  # an explicit port
        else:
            hosts += [host, f"{host}:*"]
    return list(dict.fromkeys(hosts))


def transport_security(
    settings: Settings, env: Mapping[str, str] | None = None
) -> TransportSecuritySettings:
    hosts = allowed_hosts(settings, env)
    if hosts is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def mount(
    app: FastAPI,
    rt_provider: Callable[[], Runtime],
    settings: Settings,
    *,
    path: str = "/mcp",
    env: Mapping[str, str] | None = None,
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """Serve MCP at `path` (clients use `<base>/mcp/`; `/mcp` redirects there) and return the
    lifespan to enter once the runtime is open. The API-key cache is shared with the REST
    API's when the app has one, so a revoked key stops working on both at once."""
    cache = getattr(app.state, "key_cache", None) or KeyCache()
    server = build_server(
        rt_provider,
        token_verifier=ApiKeyVerifier(rt_provider, cache),
        public_url=settings.public_base_url,
    )
    sub = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY,
        transport_security=transport_security(settings, env),
    )
    app.mount(path, sub)
    app.state.mcp_server = server

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    return lifespan
