"""Streamable HTTP mounted in the FastAPI app, served by uvicorn on a loopback port: bearer
API keys, status codes, Host checking, and brand isolation for every tool and resource."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core import brands
from mcp_server.http import allowed_hosts
from tests.helpers import wait_for
from tests.mcp_server.conftest import B_PRODUCT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_app(rt: Any) -> Any:
    """The API exactly as app/main.py assembles it: /mcp mounted, its lifespan entered."""
    from app.main import create_app

    return create_app(rt.settings, runtime=rt)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """uvicorn in this event loop (the runtime's pool belongs to it), on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await wait_for(started, timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def app_and_url(rt: Any) -> AsyncIterator[tuple[Any, str]]:
    app = build_app(rt)
    async with serve(app) as url:
        yield app, url


@pytest.fixture
def base_url(app_and_url: tuple[Any, str]) -> str:
    return app_and_url[1]


@contextlib.asynccontextmanager
async def http_client(url: str, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as h,
        Client(streamable_http_client(f"{url}/mcp/", http_client=h), mode=mode) as c,
    ):
        yield c


async def test_tools_over_http_in_both_modes(dataset, base_url):
    for mode in ("auto", "legacy"):
        async with http_client(base_url, dataset.a.read_key, mode) as c:
            tools = (await c.list_tools()).tools
            assert len(tools) == 11
            assert all(t.annotations.read_only_hint and t.output_schema for t in tools)
            out = await c.call_tool("lookup_customer", {"query": dataset.injected_phone})
            got = out.structured_content["customers"][0]
            assert got["customer_ref"] == str(dataset.injected) and not got["pii_visible"]
        async with http_client(base_url, dataset.a.pii_key, mode) as c:
            out = await c.call_tool("lookup_customer", {"query": dataset.injected_phone})
            assert out.structured_content["customers"][0]["pii_visible"]


async def test_admin_key_implies_pii_and_ingest_key_is_refused(dataset, base_url):
    async with http_client(base_url, dataset.a.admin_key) as c:
        out = await c.call_tool("lookup_customer", {"query": dataset.injected_phone})
        assert out.structured_content["customers"][0]["pii_visible"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient() as h:
        none = await h.post(f"{base_url}/mcp/", json=body, headers=headers)
        bad = await h.post(
            f"{base_url}/mcp/",
            json=body,
            headers={**headers, "Authorization": "Bearer cb_not-a-key"},
        )
        ingest = await h.post(
            f"{base_url}/mcp/",
            json=body,
            headers={**headers, "Authorization": f"Bearer {dataset.a.ingest_key}"},
        )
        rebinding = await h.post(
            f"{base_url}/mcp/",
            json=body,
            headers={
                **headers,
                "Authorization": f"Bearer {dataset.a.read_key}",
                "Host": "evil.example",
            },
        )
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert ingest.status_code == 403 and "insufficient_scope" in ingest.headers["www-authenticate"]
    assert rebinding.status_code == 421


async def test_revoked_key_stops_working(rt, app_and_url):
    from tests.conftest import make_brand

    app, base_url = app_and_url
    brand = await make_brand(rt, "rv")
    async with http_client(base_url, brand.read_key) as c:
        assert (await c.list_tools()).tools
    async with rt.pool.acquire() as conn:
        await brands.revoke_key(conn, brand.id, brand.read_key[:10])
    # Keys are cached for 30 s, as for the REST API (one cache for both); clear it to see the
    # revocation at once.
    app.state.key_cache.clear()
    async with httpx2.AsyncClient() as h:
        resp = await h.post(
            f"{base_url}/mcp/",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {brand.read_key}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert resp.status_code == 401


def test_allowed_hosts_come_from_settings_and_env(settings):
    hosts = allowed_hosts(settings, {"CBRAIN_MCP_ALLOWED_HOSTS": "api.shop.com, mcp.shop.com:8443"})
    assert {
        "127.0.0.1:*",
        "localhost:*",
        "api.shop.com",
        "api.shop.com:*",
        "mcp.shop.com:8443",
    } <= set(hosts)
    assert "mcp.shop.com:*" not in hosts
    assert allowed_hosts(settings, {"CBRAIN_MCP_ALLOWED_HOSTS": "*"}) is None


async def test_every_tool_with_another_brands_key_sees_nothing_of_the_first(dataset, rt, base_url):
    """Brand B's key, pointed at brand A's customers and products: errors or B's own data."""
    a = dataset.a
    email_row = await rt.pool.fetchrow(
        "SELECT value_enc FROM profile_identifiers WHERE brand_id = $1 AND kind = 'email' LIMIT 1",
        a.id,
    )
    a_email = rt.keyring.for_brand(str(a.id)).decrypt_str(email_row["value_enc"])
    a_ref = str(dataset.scored[3])
    a_product = sorted(dataset.a_products)[0]
    must_fail = [
        ("lookup_customer", {"query": a_email}),
        ("lookup_customer", {"query": a_ref}),
        ("lookup_customer", {"query": dataset.injected_phone}),
        ("similar_customers", {"customer": a_ref}),
        ("churn_risk", {"customer": a_ref}),
        ("recommendations", {"customer": a_ref}),
        ("recommendations", {"product_id": a_product}),
    ]
    own_data = [
        ("churn_risk", {}),
        ("churn_risk", {"segment": "Champions"}),
        ("segments", {}),
        ("analyze_segments", {}),
        ("analyze_customers", {"group_by": "channel"}),
        ("analyze_customers", {"group_by": "segment", "period_days": 365}),
        ("analyze_products", {"view": "top_products", "period_days": 1095}),
        ("analyze_products", {"view": "bought_together", "min_together": 1}),
        ("analyze_products", {"view": "category_affinity", "min_together": 1}),
        ("analyze_behavior", {"view": "channel_mix", "period_days": 1095}),
        ("analyze_behavior", {"view": "purchase_cadence"}),
        ("analyze_behavior", {"view": "cohort_retention", "months": 24}),
        ("analyze_behavior", {"view": "journey_funnel", "period_days": 1095}),
        ("forecast_metrics", {"metric": "orders"}),
        ("recommendations", {"product_id": B_PRODUCT}),
        *[
            ("target_campaign", {"goal": g, "size": 500})
            for g in ("win_back", "upsell", "cross_sell", "retain_vips")
        ],
    ]
    tools_called = set()
    outputs = []
    async with http_client(base_url, dataset.b.admin_key) as c:
        for name, args in must_fail:
            res = await c.call_tool(name, args)
            assert res.is_error, (name, args)
            outputs.append(res.content[0].text)
            tools_called.add(name)
        for name, args in own_data:
            res = await c.call_tool(name, args)
            assert not res.is_error, (name, res.content[0].text)
            outputs.append(json.dumps(res.structured_content))
            tools_called.add(name)
        for uri in (f"customer://{a_ref}", "segment://Champions"):
            with pytest.raises(MCPError):
                await c.read_resource(uri)
        totals = (await c.call_tool("analyze_customers", {})).structured_content["totals"]
        weeks = (await c.call_tool("forecast_metrics", {"metric": "orders"})).structured_content
    assert len(tools_called) == 11
    text = "\n".join(outputs)
    # The product id we passed is echoed in its "unknown product_id" error: that is ours.
    secrets = {*dataset.a_profiles, *dataset.a_products, a_email, a.slug} - {a_product, a_ref}
    leaked = [x for x in secrets if x in text]
    assert leaked == []
    assert totals["customers"] == 4 and totals["orders"] == 24
    assert sum(w["value"] for w in weeks["recent_history"]) <= 24
