import dataclasses

import httpx
import pytest

from app.main import create_app
from core.embedded import start_valkey
from core.redis import create_redis


def _assert_error_body(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code
    assert err["message"]
    assert err["request_id"] == resp.headers["x-request-id"]
    return err


async def test_health_reports_both_components_up(client):
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["components"] == {"postgres": {"status": "up"}, "redis": {"status": "up"}}


async def test_health_reports_a_stopped_redis(rt, tmp_path):
    valkey = start_valkey(tmp_path, port=None)
    redis = create_redis(valkey.url)
    app = create_app(rt.settings, runtime=dataclasses.replace(rt, redis=redis))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/health")).status_code == 200
        valkey.stop()
        resp = await c.get("/health")
    await redis.aclose()
    assert resp.status_code == 503
    comps = resp.json()["components"]
    assert comps["postgres"]["status"] == "up"
    assert comps["redis"]["status"] == "down"


async def test_request_id_is_generated_or_echoed(client):
    assert len((await client.get("/health")).headers["x-request-id"]) == 32
    resp = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    resp = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.headers["x-request-id"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_bad_key_gets_401_standard_body(client, headers):
    err = _assert_error_body(await client.get("/v1/me", headers=headers), 401, "unauthorized")
    assert "key" in err["message"].lower()


async def test_revoked_key_is_refused(rt, client, brand):
    from core import brands

    async with rt.pool.acquire() as conn:
        key_id, key = await brands.create_key(conn, brand.id, ["read"], "tmp")
        assert (
            await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 200
        await brands.revoke_key(conn, brand.id, str(key_id))
    client._transport.app.state.key_cache.clear()
    resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    _assert_error_body(resp, 401, "unauthorized")


async def test_unknown_route_and_wrong_method_get_standard_bodies(client):
    _assert_error_body(await client.get("/v1/nothing-here"), 404, "not_found")
    _assert_error_body(await client.post("/health"), 405, "method_not_allowed")


async def test_unhandled_error_is_500_without_a_stack_trace(rt):
    app = create_app(rt.settings, runtime=rt)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals /etc/passwd")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        resp = await c.get("/boom")
    err = _assert_error_body(resp, 500, "internal_error")
    assert "internals" not in resp.text and "Traceback" not in resp.text
    assert err["message"] == "internal server error"


async def test_me_returns_the_calling_keys_brand_and_scopes(client, brand):
    resp = await client.get("/v1/me", headers=brand.auth("pii"))
    assert resp.status_code == 200
    assert resp.json()["brand"] == brand.slug
    assert resp.json()["scopes"] == ["pii:read", "read"]


async def test_key_of_brand_b_never_sees_brand_a(client, brand, other_brand):
    resp = await client.get("/v1/me", headers=other_brand.auth("admin"))
    assert resp.json()["brand"] == other_brand.slug
    assert str(brand.id) not in resp.text and brand.slug not in resp.text


async def test_rate_limit_gives_429_with_retry_after(rt, brand):
    settings = rt.settings.model_copy(update={"rate_limit_per_minute": 3})
    app = create_app(settings, runtime=dataclasses.replace(rt, settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = [(await c.get("/v1/me", headers=brand.auth("read"))).status_code for _ in range(5)]
        resp = await c.get("/v1/me", headers=brand.auth("read"))
        other = await c.get("/v1/me", headers=brand.auth("admin"))
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    _assert_error_body(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert other.status_code == 200  # the limit is per key


async def test_metrics_are_prometheus_text(client):
    await client.get("/health")
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert "cbrain_http_requests_total" in resp.text


async def test_key_cache_by_id_serves_sessions_and_forgets_revoked_keys(rt, brand, other_brand):
    from core import brands
    from core.brands import KeyCache

    cache = KeyCache(ttl=60)
    async with rt.pool.acquire() as conn:
        key_id, _ = await brands.create_key(conn, brand.id, ["read"], "session-key")
    found = await cache.by_id(rt.pool, brand.id, key_id)
    assert found is not None
    principal, name = found
    assert principal.brand_id == brand.id and principal.scopes == frozenset({"read"})
    assert name  # the brand's display name, shown by the dashboard
    # A key id under another brand names nothing.
    assert await cache.by_id(rt.pool, other_brand.id, key_id) is None
    async with rt.pool.acquire() as conn:
        await brands.revoke_key(conn, brand.id, str(key_id))
    assert await cache.by_id(rt.pool, brand.id, key_id) == found  # within the ttl
    cache.clear()
    assert await cache.by_id(rt.pool, brand.id, key_id) is None
