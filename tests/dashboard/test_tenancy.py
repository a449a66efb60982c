"""S2 for the dashboard, generated from the route table like tests/app/test_tenancy.py: every
/dashboard route answers a signed-out visitor with the sign-in page, and a session of brand B
(admin, holding every scope) with 404 for each of brand A's ids, without changing anything of
brand A. A new dashboard route is covered as soon as it is registered."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import httpx
from fastapi.routing import APIRoute

from dashboard import imports
from tests.app.test_tenancy import _routes, _snapshot

PUBLIC = {"/dashboard/login", "/dashboard/vendor/plotly.min.js"}


async def signed_in(base_url: str, key: str) -> httpx.AsyncClient:
    h = httpx.AsyncClient(base_url=base_url)
    page = await h.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await h.post("/dashboard/login", data={"api_key": key, "csrf_token": token})
    assert r.status_code == 303
    return h


async def csrf(h: httpx.AsyncClient) -> str:
    page = await h.get("/dashboard/review")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


async def test_every_dashboard_route_is_session_and_brand_bound(rt, base_url, data):
    from app.main import create_app

    a = data.a
    merged = await rt.pool.fetchrow(
        "SELECT id, merged_ids[1] AS loser FROM identity_merge_log WHERE brand_id = $1 LIMIT 1",
        a.id,
    )
    review_id = await rt.pool.fetchval(
        "SELECT id FROM merge_review_queue WHERE brand_id = $1 LIMIT 1", a.id
    )
    upload = await imports.save_upload(
        rt, a.id, "a.csv", b"email,date\nx@a-brand.co.uk,2025-01-01\n", "csv", None, "csv"
    )
    job = await imports.start_import(rt, a.id, a.slug, upload, "test")
    await imports.wait_idle()
    fixtures: dict[str, list[Any]] = {
        "profile_id": [data.review_pair[0], merged["loser"], uuid4()],
        "merge_id": [merged["id"]],
        "review_id": [review_id],
        "decision": ["approve", "reject"],
        "upload_id": [
            await imports.save_upload(
                rt, a.id, "b.csv", b"email,date\ny@a-brand.co.uk,2025-01-01\n", "csv", None, "csv"
            )
        ],
        "job_id": [job],
        "kind": ["churn"],
    }
    routes = [
        r
        for r in _routes(create_app(rt.settings, runtime=rt))
        if isinstance(getattr(r, "original_route", r), APIRoute) and r.path.startswith("/dashboard")
    ]
    before = await _snapshot(rt, a.id)
    b = await signed_in(base_url, data.b.admin_key)
    token = await csrf(b)
    problems: list[str] = []
    walked = 0
    async with httpx.AsyncClient(base_url=base_url) as anonymous:
        for route in routes:
            names = list(route.param_convertors)
            missing = [n for n in names if n not in fixtures]
            if missing:
                problems.append(f"{route.path}: add a brand-A fixture for {missing}")
                continue
            urls = [route.path]
            for n in names:
                urls = [u.replace("{" + n + "}", str(v)) for u in urls for v in fixtures[n]]
            for method in sorted(route.methods - {"HEAD"}):
                for url in urls:
                    walked += 1
                    if route.path not in PUBLIC:
                        r = await anonymous.request(method, url, data={"csrf_token": "x"})
                        if r.status_code != 303 or "/dashboard/login" not in r.headers.get(
                            "location", ""
                        ):
                            problems.append(f"anonymous {method} {url}: {r.status_code}")
                    if not names or route.path.startswith("/dashboard/models/"):
                        continue  # no brand-A object in the URL (models: checked by snapshot)
                    r = await b.request(method, url, data={"csrf_token": token})
                    if r.status_code != 404:
                        problems.append(f"B {method} {url}: {r.status_code}, expected 404")
        # The models routes name a kind, not an object: B acting on its own registry.
        r = await b.post("/dashboard/models/churn/rollback", data={"csrf_token": token})
        assert r.status_code == 404  # B has no churn model; A's is untouched (snapshot)
    await b.aclose()
    assert problems == []
    assert await _snapshot(rt, a.id) == before, "a request of brand B changed brand A"
    assert walked > 20
    print(f"\ndashboard S2: {walked} route x id probes, cross-tenant reads 0")
