from tests.identity.streaming_helpers import ev, ingest, live_profiles, partition

STATE = {
    "profiles": "SELECT id, merged_into, name_norm, traits_enc, city, country, event_count, order_count, "
    "total_spent, refund_total, first_seen, last_seen, first_order_at, last_order_at, "
    "channels, profile_strength, household_id, consent, tags FROM profiles "
    "WHERE brand_id = $1 ORDER BY id",
    "identifiers": "SELECT kind, hash, profile_id, value_enc, masked, status, namespace, claims "
    "FROM profile_identifiers WHERE brand_id = $1 ORDER BY kind, hash",
    "events": "SELECT id, profile_id FROM events WHERE brand_id = $1 ORDER BY id",
    "links": "SELECT kind, hash, profile_id FROM identifier_links WHERE brand_id = $1 ORDER BY 1, 2, 3",
}


async def _state(rt, brand_id):
    return {k: [tuple(r) for r in await rt.pool.fetch(q, brand_id)] for k, q in STATE.items()}


async def _assert_directory_mirrors_live_profiles(rt, brand_id):
    """profile_directory (sql/0010, kept by triggers) holds exactly the live profiles."""
    live = await rt.pool.fetch(
        "SELECT id, name_norm, created_at FROM profiles WHERE brand_id = $1 "
        "AND merged_into IS NULL ORDER BY id",
        brand_id,
    )
    listed = await rt.pool.fetch(
        "SELECT profile_id, name_norm, created_at FROM profile_directory WHERE brand_id = $1 "
        "ORDER BY profile_id",
        brand_id,
    )
    assert live and [tuple(r) for r in listed] == [tuple(r) for r in live]


async def test_unmerge_restores_the_snapshot_exactly_and_reresolves_later_events(rt, client, brand):
    await ingest(
        rt,
        brand,
        [
            ev("a1", first="Noor", last="Haddad", source="shopify", email="noor@haddad-mail.com"),
            ev(
                "a2", first="Noor", source="shopify", email="noor@haddad-mail.com", cookie_id="ck-9"
            ),
            ev("b1", first="Noor", source="pos", phone="07700 900432", loyalty_id="NH-1"),
            ev("b2", first="Noor", source="pos", phone="07700 900432"),
        ],
        batch=1,
    )
    before = await _state(rt, brand.id)
    assert await live_profiles(rt, brand.id) == 2
    await _assert_directory_mirrors_live_profiles(rt, brand.id)
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
    assert await live_profiles(rt, brand.id) == 1
    await _assert_directory_mirrors_live_profiles(rt, brand.id)
    # after the merge: an event only the POS side's loyalty card knows, and one on the email
    await ingest(
        rt,
        brand,
        [
            ev("later-pos", first="Noor", source="pos", loyalty_id="NH-1"),
            ev("later-web", first="Noor", source="shopify", email="noor@haddad-mail.com"),
        ],
    )
    merge_id = await rt.pool.fetchval(
        "SELECT id FROM identity_merge_log WHERE brand_id = $1", brand.id
    )
    resp = await client.post(f"/v1/merges/{merge_id}/rollback", headers=brand.auth("admin"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["reresolved_events"] >= 1
    parts = await partition(rt, brand.id)
    assert frozenset({"b1", "b2", "later-pos"}) in parts
    assert any({"a1", "a2", "later-web"} <= p for p in parts)
    after = await _state(rt, brand.id)
    await _assert_directory_mirrors_live_profiles(rt, brand.id)
    # every row that existed before the merge is back exactly as it was
    old_ids = {r[0] for r in before["events"]}
    ev_after = {r[0]: r for r in after["events"] if r[0] in old_ids}
    assert sorted(ev_after.values()) == before["events"]
    for key in ("profiles", "identifiers"):
        kept = {r[0] if key == "profiles" else r[:2] for r in before[key]}
        restored = [r for r in after[key] if (r[0] if key == "profiles" else r[:2]) in kept]
        # aggregates of the restored profiles include the later events: compare the rest
        strip = (lambda r: r[:6] + r[15:]) if key == "profiles" else (lambda r: r)
        assert [strip(r) for r in restored] == [strip(r) for r in before[key]]
    again = await client.post(f"/v1/merges/{merge_id}/rollback", headers=brand.auth("admin"))
    assert again.status_code == 409
    # the rolled-back pair is never merged automatically again on the same evidence
    await ingest(
        rt,
        brand,
        [
            ev(
                "link-2",
                first="Noor",
                source="whatsapp",
                type="message_in",
                whatsapp="whatsapp:+447700900432",
                email="noor@haddad-mail.com",
            )
        ],
    )
    assert await live_profiles(rt, brand.id) == 2


REVIEW_ALL = {
    "default_region": "GB",
    "identity": {"auto_merge_threshold": 0.99999999, "review_threshold": 0.01},
}


async def test_review_queue_approve_and_reject(rt, client, other_brand):
    from tests.conftest import make_brand

    brand = await make_brand(rt, "rev", REVIEW_ALL)
    await ingest(
        rt,
        brand,
        [
            ev("x1", first="Sam", last="Reed", email="sam@reed-mail.com"),
            ev("x2", first="Samantha", last="Cole", phone="07700 900876"),
        ],
        batch=1,
    )
    await ingest(rt, brand, [ev("x3", first="Sam", email="sam@reed-mail.com", phone="07700900876")])
    page = (await client.get("/v1/reviews", headers=brand.auth("read"))).json()
    assert len(page["data"]) == 1
    item = page["data"][0]
    assert len(item["profiles"]) == 2 and item["contributions"]["prior"] < 0
    assert all(
        "@" not in i["masked"] or "***" in i["masked"]
        for p in item["profiles"]
        for i in p["identifiers"]
    )
    # another brand's key sees nothing and cannot act
    assert (await client.get("/v1/reviews", headers=other_brand.auth("read"))).json()["data"] == []
    bad = await client.get("/v1/reviews?cursor=x", headers=brand.auth("read"))
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]
    assert (
        await client.post(f"/v1/reviews/{item['id']}/approve", headers=other_brand.auth("admin"))
    ).status_code == 404
    assert (
        await client.post(f"/v1/reviews/{item['id']}/approve", headers=brand.auth("read"))
    ).status_code == 403
    resp = await client.post(f"/v1/reviews/{item['id']}/approve", headers=brand.auth("admin"))
    assert resp.status_code == 200 and resp.json()["data"]["status"] == "approved"
    assert await live_profiles(rt, brand.id) == 1
    assert (
        await client.post(f"/v1/reviews/{item['id']}/reject", headers=brand.auth("admin"))
    ).status_code == 409


async def test_rejected_pairs_are_not_proposed_again_without_new_evidence(rt, client):
    from tests.conftest import make_brand

    brand = await make_brand(rt, "rej", REVIEW_ALL)
    await ingest(
        rt,
        brand,
        [
            ev("y1", first="Ali", last="Khan", email="ali@khan-mail.com"),
            ev("y2", first="Alia", last="Kahn", phone="07700 900654"),
        ],
        batch=1,
    )
    await ingest(rt, brand, [ev("y3", first="Ali", email="ali@khan-mail.com", phone="07700900654")])
    items = (await client.get("/v1/reviews", headers=brand.auth("read"))).json()["data"]
    assert len(items) == 1
    resp = await client.post(f"/v1/reviews/{items[0]['id']}/reject", headers=brand.auth("admin"))
    assert resp.json()["data"]["status"] == "rejected"
    await ingest(rt, brand, [ev("y4", first="Ali", email="ali@khan-mail.com", phone="07700900654")])
    assert (await client.get("/v1/reviews", headers=brand.auth("read"))).json()["data"] == []
    rejected = (await client.get("/v1/reviews?status=rejected", headers=brand.auth("read"))).json()[
        "data"
    ]
    assert len(rejected) == 1
    assert await live_profiles(rt, brand.id) == 2
    # new evidence (another identifier linking the two) proposes the pair again
    await ingest(
        rt,
        brand,
        [ev("y5", first="Ali", email="ali@khan-mail.com", phone="07700900654", loyalty_id="AK-77")],
    )
    assert len((await client.get("/v1/reviews", headers=brand.auth("read"))).json()["data"]) == 1


async def test_review_answers_refit_the_weights(rt, client):
    from core import brands
    from identity.fit import fit_brand
    from identity.service import IdentityConfig
    from tests.conftest import make_brand

    brand = await make_brand(rt, "fit", REVIEW_ALL)
    people = [
        ("Ivy", "Moss", "Ivy", "Moss"),
        ("Kai", "Lund", "Kai", "Lund"),
        ("Rua", "Bell", "Rua", "Bell"),
        ("Tom", "Reid", "Tom", "Reid"),
        ("Ada", "Park", "Ada", "Cruz"),
        ("Bo", "Hale", "Bo", "Ford"),
    ]
    for i, (f1, l1, f2, l2) in enumerate(people):
        await ingest(
            rt,
            brand,
            [
                ev(f"f{i}a", first=f1, last=l1, email=f"p{i}@fit-mail.com"),
                ev(f"f{i}b", first=f2, last=l2, phone=f"07700 9004{i:02d}"),
            ],
            batch=1,
        )
        await ingest(
            rt, brand, [ev(f"f{i}c", first=f1, email=f"p{i}@fit-mail.com", phone=f"0770090040{i}")]
        )
    items = (await client.get("/v1/reviews?limit=50", headers=brand.auth("read"))).json()["data"]
    assert len(items) == 6
    for item in items:
        names = {p["name"] for p in item["profiles"]}
        verb = "approve" if len(names) == 1 else "reject"
        resp = await client.post(f"/v1/reviews/{item['id']}/{verb}", headers=brand.auth("admin"))
        assert resp.status_code == 200
    async with rt.pool.acquire() as conn:
        b = await brands.get_brand_by_id(conn, brand.id)
        report = await fit_brand(conn, brand.id, IdentityConfig.of(b).model, apply=True)
        stored = (await brands.get_brand_by_id(conn, brand.id)).settings["identity"]
    assert report.labels == 6 and report.positives == 4
    assert set(report.before) == {"log_loss", "auto_merge_precision", "auto_merge_recall"}
    assert report.applied == ("model" in stored)
    if report.applied:
        assert report.after["log_loss"] <= report.before["log_loss"]


async def test_cbrain_unmerge_rolls_back_and_refuses_a_second_time(rt, settings, brand):
    from tests.app.test_cli import _cbrain

    await ingest(
        rt,
        brand,
        [
            ev("c1", first="Ines", source="shopify", email="ines@cli-mail.com"),
            ev("c2", first="Ines", source="pos", phone="07700 900777", loyalty_id="IC-1"),
        ],
        batch=1,
    )
    await ingest(
        rt,
        brand,
        [ev("c3", first="Ines", source="whatsapp", type="message_in",
            whatsapp="whatsapp:+447700900777", email="ines@cli-mail.com")],
    )  # fmt: skip
    assert await live_profiles(rt, brand.id) == 1
    merge_id = await rt.pool.fetchval(
        "SELECT id FROM identity_merge_log WHERE brand_id = $1", brand.id
    )
    out = _cbrain(["unmerge", str(merge_id), "--brand", brand.slug], settings)
    assert out.returncode == 0, out.stderr
    assert "restored" in out.stdout
    assert await live_profiles(rt, brand.id) == 2
    again = _cbrain(["unmerge", str(merge_id), "--brand", brand.slug], settings)
    assert again.returncode != 0
