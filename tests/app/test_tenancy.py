"""RELIABILITY S2 (BOLA) and API5 (function-level authorization), generated from the route
table: every route of the app is walked with another brand's key (-> 404 for brand A's ids,
nothing of brand A in any answer, nothing of brand A changed) and with a key whose scopes are
too narrow (-> 403). A new route is covered as soon as it is registered; a route whose scope
or path parameter this test cannot work out fails the test until a probe is added here.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.routing import APIRoute

from identity import privacy
from tests.identity.streaming_helpers import ev, ingest

# Routes that are not bound to a brand's API key, and why.
SKIP = {
    "/health": "liveness probe: no brand data, no key",
    "/metrics": "Prometheus text: no brand data, no key",
    "/webhooks/": "authenticated by the brand's webhook signature, walked in tests/ingestion",
    "/slack": "authenticated by Slack's request signature, not an API key",
    "/mcp": "MCP transport with its own bearer auth, walked in the MCP tests",
    "/integrations/": "authenticated by the brand's X-Webhook-Token, walked in tests/surfaces",
    "/dashboard": "browser pages on a cookie session, not an API key: tests/dashboard walks them",
    "/docs": "static OpenAPI UI",
    "/redoc": "static OpenAPI UI",
    "/openapi.json": "the API description: no brand data",
}
# Routes that authenticate inside the handler (Segment's write-key conventions), by tag.
IN_HANDLER_SCOPE = {"segment": "ingest"}
# A key of brand A holding everything but the scope a route needs.
NARROWER = {"read": "ingest", "ingest": "read", "pii:read": "read", "admin": "pii"}
# The key of brand B that holds a route's scope.
HOLDER = {"read": "read", "ingest": "ingest", "pii:read": "pii", "admin": "admin", None: "read"}


def _routes(app: Any) -> list[Any]:
    """Every route as served, included routers flattened (FastAPI >= 0.16x keeps included
    routers as one entry in app.routes; older versions list their routes there)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def _scope(route: Any) -> str | bool | None:
    """The scope a route's `require(...)` dependency asks for; False when it has none."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            scope = name.removeprefix("require_")
            return None if scope == "any" else scope.replace("pii_read", "pii:read")
        stack.extend(dep.dependencies)
    for tag in route.tags:
        if tag in IN_HANDLER_SCOPE:
            return IN_HANDLER_SCOPE[tag]
    return False


async def _brand_a(rt: Any, client: Any, a: Any) -> dict[str, Any]:
    """Brand A's objects: a live profile, a merged-away id, a merge, a review, a privacy job."""
    await ingest(
        rt,
        a,
        [ev("t1", first="Zebedee", last="Quillfeather", email="zeb@quill-mail.com")],
    )
    await ingest(
        rt,
        a,
        [
            ev("t2", first="Zebedee", source="pos", phone="07700 900808", loyalty_id="ZQ-1"),
            ev(
                "t3",
                first="Zebedee",
                source="whatsapp",
                type="message_in",
                whatsapp="whatsapp:+447700900808",
                email="zeb@quill-mail.com",
            ),
        ],
        batch=1,
    )
    merge = await rt.pool.fetchrow(
        "SELECT id, survivor_id, merged_ids[1] AS loser FROM identity_merge_log WHERE brand_id = $1",
        a.id,
    )
    assert merge is not None
    await ingest(rt, a, [ev("t4", first="Ida", last="Quillfeather", email="ida@quill-mail.com")])
    other = await rt.pool.fetchval(
        "SELECT id FROM profiles WHERE brand_id = $1 AND name_norm = 'ida quillfeather'", a.id
    )
    review = await rt.pool.fetchval(
        "INSERT INTO merge_review_queue (brand_id, profile_ids, pair_key, score, reason) "
        "VALUES ($1, $2, 'tenancy', 0.6, 'test') RETURNING id",
        a.id,
        sorted([merge["survivor_id"], other]),
    )
    job = await client.post(
        "/v1/privacy/export", json={"email": "ida@quill-mail.com"}, headers=a.auth("admin")
    )
    return {
        "profile_id": [merge["survivor_id"], merge["loser"], uuid.uuid4()],
        "merge_id": [merge["id"]],
        "review_id": [review],
        "job_id": [uuid.UUID(job.json()["data"]["id"])],
        "markers": [
            str(merge["survivor_id"]),
            str(merge["loser"]),
            str(other),
            str(merge["id"]),
            str(review),
            job.json()["data"]["id"],
            "quillfeather",
        ],
    }


async def _automation(rt: Any, client: Any, a: Any) -> list[Any]:
    """An automation of brand A, made through its own API from the shipped sample."""
    from automations.samples import SAMPLES

    resp = await client.post("/v1/automations", json=SAMPLES[0], headers=a.auth("admin"))
    assert resp.status_code == 201, resp.text
    return [uuid.UUID(resp.json()["data"]["id"])]


# Path parameters whose brand-A object only some deployments have: made when a route needs one.
LAZY_FIXTURES = {"automation_id": _automation}


# What a probe sends to routes without path parameters: aimed at brand A where it can be.
QUERY_PROBES: dict[str, list[dict[str, Any]]] = {
    "/v1/profiles": [{}, {"q": "Zebedee Quillfeather"}, {"email": "zeb@quill-mail.com"}],
    "/v1/profiles/lookup": [{"email": "zeb@quill-mail.com"}, {"phone": "07700900808"}],
}
BODY_PROBES: dict[str, Any] = {
    "/v1/privacy/delete": {"email": "zeb@quill-mail.com"},
    "/v1/privacy/export": {"email": "zeb@quill-mail.com"},
}


async def _snapshot(rt: Any, brand_id: Any) -> dict[str, str]:
    tables = [
        r["table_name"]
        for r in await rt.pool.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'brand_id' ORDER BY 1"
        )
    ]
    out = {}
    for t in tables:
        out[t] = await rt.pool.fetchval(
            f"SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM "
            f"(SELECT row_to_json(t)::text AS x FROM {t} t WHERE brand_id = $1) s",
            brand_id,
        )
    return out


async def test_every_route_is_tenant_bound_and_scope_checked(rt, app, client, brand, other_brand):
    a, b = brand, other_brand
    fixtures = await _brand_a(rt, client, a)
    routes = _routes(app)
    for n in sorted({n for r in routes for n in getattr(r, "param_convertors", {})}):
        if n not in fixtures and n in LAZY_FIXTURES:
            fixtures[n] = await LAZY_FIXTURES[n](rt, client, a)
    before = await _snapshot(rt, a.id)
    walked: list[str] = []
    problems: list[str] = []
    for route in routes:
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            continue  # mounts (MCP transport) and the docs pages are not API-key routes
        if any(route.path.startswith(p) for p in SKIP):
            continue
        scope = _scope(route)
        if scope is False:
            problems.append(f"{route.path}: no require(scope) and no IN_HANDLER_SCOPE entry")
            continue
        names = list(route.param_convertors)
        unknown = [n for n in names if n not in fixtures]
        if unknown:
            problems.append(f"{route.path}: add a brand-A fixture id for {unknown}")
            continue
        for method in sorted(route.methods - {"HEAD"}):
            urls = [route.path]
            for n in names:
                urls = [u.replace("{" + n + "}", str(v)) for u in urls for v in fixtures[n]]
            for url in urls:
                walked.append(f"{method} {url}")
                problems += await _probe(
                    client, method, route.path, url, scope, names, a, b, fixtures
                )
    await privacy.process_pending(rt, b.id)
    assert problems == []
    assert await _snapshot(rt, a.id) == before, "a request with brand B's key changed brand A"
    areas = {w.split(" ", 1)[1].split("/")[2] for w in walked}
    assert {"profiles", "privacy", "reviews", "merges", "events"} <= areas
    print(f"\nS2: {len(walked)} route x id probes, cross-tenant reads 0")


async def _probe(client, method, path, url, scope, names, a, b, fixtures) -> list[str]:
    problems = []
    queries = QUERY_PROBES.get(path, [{}]) if not names else [{}]
    body = BODY_PROBES.get(path, {"brand": a.slug})
    for params in queries:
        kwargs: dict[str, Any] = {"params": params}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body
        # brand B, with the scope the route needs
        resp = await client.request(method, url, headers=b.auth(HOLDER[scope]), **kwargs)
        if names or path == "/v1/profiles/lookup":
            if resp.status_code != 404:
                problems.append(f"B {method} {url} {params}: {resp.status_code}, expected 404")
        elif resp.status_code >= 500:
            problems.append(f"B {method} {url}: {resp.status_code}")
        leaked = [m for m in fixtures["markers"] if m in resp.text]
        if leaked:
            problems.append(f"B {method} {url} {params}: brand A's {leaked} in the answer")
        # brand A, with a key one scope too narrow
        if scope is not None:
            resp = await client.request(method, url, headers=a.auth(NARROWER[scope]), **kwargs)
            if resp.status_code != 403:
                problems.append(f"A-narrow {method} {url}: {resp.status_code}, expected 403")
        # brand A with the right key reads its own objects: the 404s above are about tenancy
        if method == "GET" and names:
            resp = await client.request(method, url, headers=a.auth(HOLDER[scope]), **kwargs)
            random_id = str(fixtures["profile_id"][2]) in url
            expect = {404} if random_id else {200, 308}
            if resp.status_code not in expect:
                problems.append(f"A {method} {url}: {resp.status_code}, expected {expect}")
    return problems
