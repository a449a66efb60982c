"""Customer 360, lists, lookups, timelines and `cbrain recompute` against real Postgres/Valkey."""

from __future__ import annotations

from typing import Any

from identity import profile360
from identity.recompute import recompute_brand
from tests.identity.streaming_helpers import ev, ingest


def order(
    event_id: str,
    day: int,
    total: float,
    items: list[tuple[str, str, float]],
    *,
    type: str = "purchase",
    source: str = "shopify",
    **ids: Any,
) -> dict[str, Any]:
    """An event with items (product_id, category, quantity) on 2025-03-<day>."""
    props: dict[str, Any] = {
        "items": [
            {"product_id": p, "name": p.title(), "category": c, "price": 10.0, "quantity": q}
            for p, c, q in items
        ]
    }
    if type in ("purchase", "refund"):
        props |= {"order_id": event_id, "total": total, "currency": "GBP"}
    return {
        "event_id": event_id,
        "source": source,
        "type": type,
        "occurred_at": f"2025-03-{day:02d}T12:00:00Z",
        "identifiers": ids or {"email": "maya.patel@orchard-mail.com"},
        "traits": {"first_name": "Maya", "last_name": "Patel"},
        "properties": props,
    }


async def _maya(rt, brand) -> str:
    await ingest(
        rt,
        brand,
        [
            order("o1", 1, 40.0, [("tea", "pantry", 2), ("mug", "kitchen", 1)]),
            order("v1", 2, 0, [("kettle", "kitchen", 1)], type="product_view", source="web"),
            order(
                "o2",
                11,
                60.0,
                [("tea", "pantry", 1)],
                email="maya.patel@orchard-mail.com",
                phone="07700 900123",
            ),
            order("v2", 12, 0, [("teapot", "kitchen", 1)], type="product_view", source="web"),
            order("o3", 21, 20.0, [("biscuits", "pantry", 2)], source="pos"),
            {
                **order("r1", 22, 0, []),
                "type": "refund",
                "properties": {"order_id": "o3", "total": 5.0},
            },
        ],
    )
    return str(
        await rt.pool.fetchval(
            "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
        )
    )


async def test_the_360_has_aggregates_affinities_and_masked_identifiers(rt, client, brand):
    pid = await _maya(rt, brand)
    resp = await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))
    assert resp.status_code == 200, resp.text
    d = resp.json()["data"]
    assert d["id"] == pid and d["name"] == "maya patel"
    assert d["orders"]["count"] == 3
    assert d["orders"]["total_spent"] == 120.0
    assert d["orders"]["refunds"] == 5.0
    assert d["orders"]["net_spent"] == 115.0
    assert d["orders"]["average_order_value"] == 40.0
    assert d["orders"]["average_days_between_orders"] == 10.0
    assert sorted(d["channels"]) == ["pos", "shopify", "web"]
    assert d["first_seen"].startswith("2025-03-01") and d["last_seen"].startswith("2025-03-22")
    cats = [c["category"] for c in d["affinity"]["categories"]]
    assert cats == ["pantry", "kitchen"]
    assert d["affinity"]["products"][0]["product_id"] == "tea"
    assert [p["product_id"] for p in d["last_viewed"]] == ["teapot", "kettle"]
    assert [p["product_id"] for p in d["last_bought"]] == ["biscuits", "tea", "mug"]
    kinds = {i["kind"]: i["value"] for i in d["identifiers"]}
    assert kinds == {"email": "m***@orchard-mail.com", "phone": "+44 ***** **123"}
    assert "maya.patel@" not in resp.text and "7700900123" not in resp.text
    assert d["predictions"] == [] and d["segment"] is None and d["recommendations"] == []
    assert d["predictions_available"] is False
    assert d["journey"] is None and d["household"] is None and d["merges"] == []


async def test_predictions_journey_and_segment_appear_when_ml_has_written_them(rt, client, brand):
    pid = await _maya(rt, brand)
    mv = await rt.pool.fetchval(
        "INSERT INTO model_versions (brand_id, kind, version, status) "
        "VALUES ($1, 'churn', 3, 'active') RETURNING id",
        brand.id,
    )
    await rt.pool.execute(
        "INSERT INTO predictions (brand_id, profile_id, kind, model_version_id, as_of, value, band,"
        " details) VALUES ($1, $2::uuid, 'churn', $3, now(), 0.71, 'High',"
        ' \'{"drivers": [{"feature": "recency_days", "contribution": 0.3}]}\'),'
        " ($1, $2::uuid, 'segment', NULL, now(), NULL, 'At Risk', '{}'),"
        " ($1, $2::uuid, 'recommendations', NULL, now(), NULL, NULL,"
        ' \'{"items": [{"product_id": "teapot", "reason": "often bought with tea"}]}\')',
        brand.id,
        pid,
        mv,
    )
    await rt.pool.execute(
        "INSERT INTO journeys (brand_id, profile_id, stage) VALUES ($1, $2::uuid, 'repeat')",
        brand.id,
        pid,
    )
    # ML writes predictions, then drops the cached 360 (docs/customer360.md)
    from identity.service import invalidate

    await invalidate(rt, brand.id, [__import__("uuid").UUID(pid)])
    d = (await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))).json()["data"]
    churn = d["predictions"][0]
    assert churn["kind"] == "churn" and churn["band"] == "High" and churn["model"]["version"] == 3
    assert churn["details"]["drivers"][0]["feature"] == "recency_days"
    assert d["segment"]["name"] == "At Risk"
    assert d["recommendations"][0]["product_id"] == "teapot"
    assert d["journey"]["stage"] == "repeat"


async def test_full_values_need_pii_read_and_an_explicit_ask_and_are_audited(rt, client, brand):
    pid = await _maya(rt, brand)
    url = f"/v1/profiles/{pid}?include_pii=true"
    assert (await client.get(url, headers=brand.auth("read"))).status_code == 403
    plain = await client.get(f"/v1/profiles/{pid}", headers=brand.auth("pii"))
    assert "maya.patel@" not in plain.text
    resp = await client.get(url, headers={**brand.auth("pii"), "X-Request-ID": "req-pii-1"})
    assert resp.status_code == 200
    d = resp.json()["data"]
    values = {i["kind"]: i["value"] for i in d["identifiers"]}
    assert values == {"email": "maya.patel@orchard-mail.com", "phone": "+447700900123"}
    assert d["traits"]["first_name"] == "Maya"
    row = await rt.pool.fetchrow(
        "SELECT actor, action, subject, request_id FROM audit_log WHERE brand_id = $1", brand.id
    )
    assert row["action"] == "pii.read" and row["subject"] == pid
    assert row["request_id"] == "req-pii-1" and row["actor"].startswith("key:")


async def test_no_stale_read_after_a_write(rt, client, brand):
    pid = await _maya(rt, brand)
    first = (await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))).json()["data"]
    assert await rt.redis.exists(profile360.cache_key(brand.id, __import__("uuid").UUID(pid)))
    await ingest(rt, brand, [order("o4", 25, 30.0, [("jam", "pantry", 1)])])
    second = (await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))).json()["data"]
    assert first["orders"]["count"] == 3 and second["orders"]["count"] == 4
    assert second["last_bought"][0]["product_id"] == "jam"


async def test_a_fill_never_overwrites_another_readers_placeholder_or_a_write(rt, brand):
    pid = await _maya(rt, brand)
    from uuid import UUID

    key = profile360.cache_key(brand.id, UUID(pid))
    # Another reader is filling: this one answers from Postgres and leaves the key alone.
    await rt.redis.set(key, b"\x00fill:other", px=5000)
    body = await profile360.get(rt, brand.id, UUID(pid))
    assert body.startswith(b'{"id"')
    assert await rt.redis.get(key) == b"\x00fill:other"
    # The writer's delete removed it; the next reader caches.
    await rt.redis.delete(key)
    await profile360.get(rt, brand.id, UUID(pid))
    assert (await rt.redis.get(key)).startswith(b'{"id"')


async def _merged_pair(rt, brand) -> tuple[str, str]:
    await ingest(
        rt,
        brand,
        [
            ev("a1", first="Noor", last="Haddad", source="shopify", email="noor@haddad-mail.com"),
            ev("b1", first="Noor", source="pos", phone="07700 900432", loyalty_id="NH-1"),
        ],
        batch=1,
    )
    await ingest(
        rt,
        brand,
        [
            ev(
                "link",
                first="Noor",
                source="whatsapp",
                type="message_in",
                whatsapp="whatsapp:+447700900432",
                email="noor@haddad-mail.com",
            )
        ],
    )
    row = await rt.pool.fetchrow(
        "SELECT survivor_id, merged_ids[1] AS loser FROM identity_merge_log WHERE brand_id = $1",
        brand.id,
    )
    return str(row["survivor_id"]), str(row["loser"])


async def test_a_merged_id_redirects_to_the_survivor_with_308(rt, client, brand):
    survivor, loser = await _merged_pair(rt, brand)
    for suffix in ("", "/events", "/merges"):
        resp = await client.get(f"/v1/profiles/{loser}{suffix}?limit=5", headers=brand.auth("read"))
        assert resp.status_code == 308, resp.text
        assert resp.json() == {"data": {"merged_into": survivor}}
        assert resp.headers["location"] == f"/v1/profiles/{survivor}{suffix}?limit=5"
    d = (await client.get(f"/v1/profiles/{survivor}", headers=brand.auth("read"))).json()["data"]
    assert d["merged_profiles"] == [loser]
    assert d["merges"][0]["merged_ids"] == [loser]
    merges = await client.get(f"/v1/profiles/{survivor}/merges", headers=brand.auth("read"))
    assert merges.json()["data"][0]["survivor_id"] == survivor


async def test_unknown_and_foreign_ids_are_404_with_the_standard_body(
    rt, client, brand, other_brand
):
    pid = await _maya(rt, brand)
    for url in (f"/v1/profiles/{pid}", f"/v1/profiles/{pid}/events", f"/v1/profiles/{pid}/merges"):
        resp = await client.get(url, headers=other_brand.auth("read"))
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"
    missing = "0190f3a2-0000-7000-8000-000000000000"
    assert (
        await client.get(f"/v1/profiles/{missing}", headers=brand.auth("read"))
    ).status_code == 404


async def test_fuzzy_name_search_finds_a_typo(rt, client, brand):
    people = [
        ("Jonathan", "Whitfield"),
        ("Siobhan", "O'Connell"),
        ("Priya", "Raman"),
        ("Jonas", "Weber"),
    ]
    await ingest(
        rt,
        brand,
        [
            ev(f"n{i}", first=f, last=last, email=f"{f.lower()}{i}@name-mail.com")
            for i, (f, last) in enumerate(people)
        ],
    )
    resp = await client.get(
        "/v1/profiles", params={"q": "Jonathon Whitfeld"}, headers=brand.auth("read")
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data[0]["name"] == "jonathan whitfield" and data[0]["relevance"] > 0.3
    resp = await client.get(
        "/v1/profiles", params={"q": "siobhan oconel"}, headers=brand.auth("read")
    )
    assert resp.json()["data"][0]["name"] == "siobhan oconnell"


async def test_lookup_by_phone_in_another_format_and_by_email_in_any_case(rt, client, brand):
    pid = await _maya(rt, brand)
    auth = brand.auth("read")
    for params in (
        {"phone": "+44 7700 900123"},
        {"phone": "(07700) 900-123"},
        {"email": "  Maya.Patel@Orchard-Mail.com "},
    ):
        resp = await client.get("/v1/profiles/lookup", params=params, headers=auth)
        assert resp.status_code == 200, (params, resp.text)
        assert resp.json()["data"]["id"] == pid
    assert (
        await client.get("/v1/profiles/lookup", params={"email": "no@one-mail.com"}, headers=auth)
    ).status_code == 404
    both = await client.get(
        "/v1/profiles/lookup",
        params={"email": "a@b-mail.com", "phone": "07700900123"},
        headers=auth,
    )
    assert both.status_code == 422
    bad = await client.get("/v1/profiles/lookup", params={"phone": "12"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("phone")
    # the list's email filter is the same exact match
    listed = await client.get(
        "/v1/profiles", params={"email": "MAYA.PATEL@orchard-mail.com"}, headers=auth
    )
    assert [p["id"] for p in listed.json()["data"]] == [pid]


async def test_list_filters_sorting_and_keyset_pages(rt, client, brand):
    events = []
    for i in range(7):
        events.append(
            {
                **ev(f"s{i}", first=f"Buyer{i}", email=f"buyer{i}@list-mail.com", t=i * 24),
                "source": "pos" if i % 2 else "shopify",
                "properties": {"order_id": f"s{i}", "total": 10.0 * (i + 1)},
            }
        )
    await ingest(rt, brand, events)
    auth = brand.auth("read")
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "total_spent", "order": "desc", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/profiles", params=params, headers=auth)).json()
        seen += [p["total_spent"] for p in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == [70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0]
    names = await client.get("/v1/profiles", params={"sort": "name", "limit": 2}, headers=auth)
    assert [p["name"] for p in names.json()["data"]] == ["buyer0", "buyer1"]
    pos = await client.get("/v1/profiles", params={"channel": "pos"}, headers=auth)
    assert len(pos.json()["data"]) == 3
    since = await client.get(
        "/v1/profiles", params={"last_seen_since": "2025-01-05T00:00:00Z"}, headers=auth
    )
    assert len(since.json()["data"]) == 3
    ids = {
        r["name_norm"]: r["id"]
        for r in await rt.pool.fetch(
            "SELECT id, name_norm FROM profiles WHERE brand_id = $1", brand.id
        )
    }
    await rt.pool.execute(
        "INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band) "
        "SELECT $1, u.id, u.kind, now(), u.value, u.band "
        "FROM unnest($2::uuid[], $3::text[], $4::float8[], $5::text[]) AS u(id, kind, value, band)",
        brand.id,
        [ids["buyer1"], ids["buyer2"], ids["buyer3"], ids["buyer3"], ids["buyer4"]],
        ["churn", "churn", "ltv", "segment", "ltv"],
        [0.9, 0.2, 500.0, None, 50.0],
        ["High", "Low", None, "Champions", None],
    )
    for params, want in (
        ({"churn_band": "high"}, ["buyer1"]),
        ({"segment": "Champions"}, ["buyer3"]),
        ({"ltv_min": 100}, ["buyer3"]),
        ({"ltv_min": 10, "ltv_max": 100}, ["buyer4"]),
    ):
        got = await client.get("/v1/profiles", params=params, headers=auth)
        assert [p["name"] for p in got.json()["data"]] == want, params
    bad = await client.get("/v1/profiles", params={"cursor": "nope"}, headers=auth)
    assert bad.status_code == 422


async def test_timeline_pages_and_opens_message_text_only_for_pii(rt, client, brand):
    msgs = [
        {
            **ev(
                f"m{i}",
                first="Lena",
                source="whatsapp",
                type="message_in",
                t=i,
                phone="07700900777",
            ),
            "properties": {"text": f"hello number {i}"},
        }
        for i in range(5)
    ]
    await ingest(rt, brand, msgs)
    pid = await rt.pool.fetchval("SELECT id FROM profiles WHERE brand_id = $1", brand.id)
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get(
            f"/v1/profiles/{pid}/events", params=params, headers=brand.auth("read")
        )
        body = resp.json()
        assert all("content" not in e and e["has_content"] for e in body["data"])
        seen += [e["event_id"] for e in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    assert "hello number" not in resp.text
    resp = await client.get(
        f"/v1/profiles/{pid}/events", params={"include_pii": "true"}, headers=brand.auth("pii")
    )
    assert resp.json()["data"][0]["content"] == {"text": "hello number 4"}
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE brand_id = $1 AND action = 'pii.read'", brand.id
        )
        == 1
    )


async def test_recompute_repairs_drift_and_reports_it_per_field(rt, client, brand):
    pid = await _maya(rt, brand)
    await ingest(rt, brand, [ev("z1", first="Omar", email="omar@drift-mail.com")])
    await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))  # cached
    clean = await recompute_brand(rt, brand.id)
    assert clean.profiles_checked == 2 and clean.profiles_fixed == 0
    await rt.pool.execute(
        "UPDATE profiles SET order_count = order_count + 5, total_spent = 0, channels = '{}' "
        "WHERE brand_id = $1 AND id = $2::uuid",
        brand.id,
        pid,
    )
    dry = await recompute_brand(rt, brand.id, dry_run=True)
    assert dry.profiles_fixed == 1
    assert await rt.pool.fetchval("SELECT total_spent FROM profiles WHERE id = $1::uuid", pid) == 0
    report = await recompute_brand(rt, brand.id, batch=1)
    assert report.as_dict() == {
        "profiles_checked": 2,
        "profiles_fixed": 1,
        "fields": {"order_count": 1, "total_spent": 1, "channels": 1},
        "dry_run": False,
    }
    d = (await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))).json()["data"]
    assert d["orders"]["count"] == 3 and d["orders"]["total_spent"] == 120.0
    assert (await recompute_brand(rt, brand.id)).profiles_fixed == 0


async def test_cbrain_recompute_prints_what_it_fixed(rt, brand, settings):
    from tests.app.test_cli import _cbrain

    pid = await _maya(rt, brand)
    await rt.pool.execute(
        "UPDATE profiles SET event_count = 1 WHERE brand_id = $1 AND id = $2::uuid", brand.id, pid
    )
    out = _cbrain(["recompute", "--brand", brand.slug], settings)
    assert out.returncode == 0, out.stderr
    assert f"{brand.slug}: checked 1 profiles, fixed 1 (event_count 1)" in out.stdout


async def test_fuzzy_search_pages_by_relevance_without_repeats(rt, client, brand):
    names = ["Aria Blackwood", "Arya Blackwood", "Aira Blackwood", "Ari Blackwood", "Aria Blackwod"]
    await ingest(
        rt,
        brand,
        [
            ev(f"f{i}", first=n.split()[0], last=n.split()[1], email=f"f{i}@fuzzy-mail.com")
            for i, n in enumerate(names)
        ],
    )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "aria blackwood", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/profiles", params=params, headers=brand.auth("read"))).json()
        seen += [p["name"] for p in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen[0] == "aria blackwood" and sorted(seen) == sorted(n.lower() for n in names)
