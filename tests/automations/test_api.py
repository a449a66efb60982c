"""REST: admin creates and changes, read lists, another brand gets 404, test is dry."""

from __future__ import annotations

from datetime import timedelta

from tests.automations.conftest import base_time, event, profile_of, send, tick

SPEC = {
    "name": "Cart reminder",
    "trigger": {"type": "cart_abandoned", "window_minutes": 30},
    "conditions": [{"field": "order_count", "op": ">=", "value": 0}],
    "action": {"type": "whatsapp", "body": "Hi {first_name}, your {cart_items} is waiting"},
}


async def test_create_list_patch_runs(rt, client, sbrand, other_brand, fakes, auto_settings):
    r = await client.post("/v1/automations", json=SPEC, headers=sbrand.auth("admin"))
    assert r.status_code == 201, r.text
    a = r.json()["data"]
    assert (
        a["enabled"] is False and a["dry_run"] is True and a["trigger"]["type"] == "cart_abandoned"
    )
    aid = a["id"]

    listed = await client.get("/v1/automations", headers=sbrand.auth("read"))
    assert [x["id"] for x in listed.json()["data"]] == [aid]
    assert listed.json()["pagination"] == {"limit": 50, "next_cursor": None}
    assert (
        await client.post("/v1/automations", json=SPEC, headers=sbrand.auth("read"))
    ).status_code == 403
    dup = await client.post("/v1/automations", json=SPEC, headers=sbrand.auth("admin"))
    assert dup.status_code == 409

    on = await client.patch(
        f"/v1/automations/{aid}", json={"enabled": True}, headers=sbrand.auth("admin")
    )
    assert on.status_code == 200 and on.json()["data"]["enabled"] is True
    assert on.json()["data"]["enabled_at"] is not None

    for method, path, body in (
        ("GET", f"/v1/automations/{aid}", None),
        ("PATCH", f"/v1/automations/{aid}", {"enabled": False}),
        ("POST", f"/v1/automations/{aid}/test", {"profile_id": aid}),
        ("GET", f"/v1/automations/{aid}/runs", None),
    ):
        other = await client.request(method, path, json=body, headers=other_brand.auth("admin"))
        assert other.status_code == 404, (method, path, other.text)
    assert (await client.get("/v1/automations", headers=other_brand.auth("read"))).json()[
        "data"
    ] == []

    t0 = base_time()
    await send(rt, sbrand, event("c1", t0 - timedelta(hours=1)))
    await tick(rt, sbrand, t0, auto_settings)
    got = await client.get(f"/v1/automations/{aid}/runs", headers=sbrand.auth("read"))
    [run] = got.json()["data"]
    assert run["status"] == "dry_run" and run["trigger_type"] == "cart_abandoned"
    assert run["details"]["would_send"]["body"] == "Hi {first_name}, your Linen shirt is waiting"
    assert fakes.twilio.requests == []
    only_sent = await client.get(
        f"/v1/automations/{aid}/runs?status=sent", headers=sbrand.auth("read")
    )
    assert only_sent.json()["data"] == []

    off = await client.patch(
        f"/v1/automations/{aid}", json={"enabled": False}, headers=sbrand.auth("admin")
    )
    assert off.json()["data"]["enabled"] is False


async def test_validation_names_the_field(client, sbrand):
    bad = {**SPEC, "trigger": {"type": "cart_abandoned", "window_minutes": -5}}
    r = await client.post("/v1/automations", json=bad, headers=sbrand.auth("admin"))
    assert r.status_code == 422
    assert "window_minutes" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/automations",
        json={**SPEC, "trigger": {"type": "moon_phase"}},
        headers=sbrand.auth("admin"),
    )
    assert r.status_code == 422 and "trigger" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/automations",
        json={**SPEC, "conditions": [{"field": "password", "op": "="}]},
        headers=sbrand.auth("admin"),
    )
    assert r.status_code == 422 and "unknown field" in r.json()["error"]["message"]


async def test_webhook_secret_is_shown_once(client, sbrand, fakes):
    spec = {**SPEC, "name": "hook", "action": {"type": "webhook", "url": fakes.webhook_url}}
    r = await client.post("/v1/automations", json=spec, headers=sbrand.auth("admin"))
    data = r.json()["data"]
    assert len(data["webhook_secret"]) >= 32 and data["action"]["secret_set"] is True
    again = await client.get(f"/v1/automations/{data['id']}", headers=sbrand.auth("read"))
    assert "webhook_secret" not in again.text and data["webhook_secret"] not in again.text
    assert "secret_sealed" not in again.text


async def test_dry_test_for_one_person(rt, client, sbrand, fakes):
    t0 = base_time()
    r = await client.post(
        "/v1/automations", json={**SPEC, "enabled": True}, headers=sbrand.auth("admin")
    )
    aid = r.json()["data"]["id"]
    await send(
        rt, sbrand, event("c1", t0 - timedelta(hours=1), traits={"timezone": "Europe/London"})
    )
    pid = await profile_of(rt, sbrand, "c1")
    r = await client.post(
        f"/v1/automations/{aid}/test", json={"profile_id": str(pid)}, headers=sbrand.auth("admin")
    )
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["trigger"]["fires"] is True and "no purchase" in d["trigger"]["reason"]
    assert d["conditions"]["failed"] == []
    assert d["would_send"]["body"] == "Hi {first_name}, your Linen shirt is waiting"
    assert d["safety"]["timezone"] == "Europe/London"
    rows = await rt.pool.fetchval(
        "SELECT count(*) FROM automation_runs WHERE brand_id = $1", sbrand.id
    )
    assert rows == 0 and fakes.twilio.requests == []
    bad = await client.post(f"/v1/automations/{aid}/test", json={}, headers=sbrand.auth("admin"))
    assert bad.status_code == 422 and "profile_id" in bad.json()["error"]["message"]
