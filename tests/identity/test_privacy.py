"""Data-subject requests (RELIABILITY S6, S7): erase leaves nothing behind in any brand table
or in Redis and suppresses the person's identifiers; export returns everything, decrypted."""

from __future__ import annotations

import statistics
import uuid
from typing import Any

import orjson

from core.events import CanonicalEvent
from core.streams import DEAD
from identity import privacy
from ingestion import service
from ingestion.processing import mark_dead, process_batch
from tests.helpers import shopify_sig, table_text


def _events(i: int) -> list[dict[str, Any]]:
    """Three events of person i; every tenth person starts as two profiles that then merge."""
    email, phone, name = f"gone{i}@erase-mail.com", f"07700 9{i:05d}", {"first_name": f"Person{i}"}
    at = f"2025-02-{1 + i % 27:02d}T10:00:00Z"

    def one(n: int, type: str, source: str, ids: dict, props: dict) -> dict[str, Any]:
        return {
            "event_id": f"gone-{i}-{n}",
            "source": source,
            "type": type,
            "occurred_at": at,
            "identifiers": ids,
            "traits": {**name, "last_name": "Erasable"},
            "properties": props,
        }

    buy = {
        "order_id": f"gone-o{i}",
        "total": 25.0,
        "items": [{"product_id": "soap", "category": "bath"}],
    }
    if i % 10 == 0:
        return [
            one(1, "purchase", "shopify", {"email": email}, buy),
            one(2, "store_visit", "pos", {"phone": phone, "loyalty_id": f"GONE-{i}"}, {}),
            one(
                3,
                "message_in",
                "whatsapp",
                {"whatsapp": f"whatsapp:{phone}", "email": email},
                {"text": f"hi from {email}"},
            ),
        ]
    return [
        one(1, "purchase", "shopify", {"email": email, "phone": phone}, buy),
        one(2, "message_in", "whatsapp", {"whatsapp": phone}, {"text": f"call me on {phone}"}),
        one(
            3,
            "product_view",
            "web",
            {"email": email, "cookie_id": f"ck-gone-{i}"},
            {"items": [{"product_id": "soap"}]},
        ),
    ]


async def _ingest_announced(rt: Any, brand: Any, events: list[dict[str, Any]]) -> list[int]:
    """Through the inbox AND the stream (so stream entries exist to be scrubbed)."""
    chunk = [
        (j, CanonicalEvent.model_validate({**e, "brand": brand.slug})) for j, e in enumerate(events)
    ]
    res = await service.accept(rt, brand.id, chunk)
    ids = [r.raw_id for r in res if r.raw_id]
    if ids:
        await process_batch(rt, brand.brand, ids)
    return ids


async def _stream_text(rt: Any, brand_id: Any) -> dict[str, list[dict[str, str]]]:
    out = {}
    async for key in rt.redis.scan_iter(match=f"cb:{{{brand_id}}}:*"):
        if await rt.redis.type(key) == b"stream":
            entries = await rt.redis.xrange(key)
            out[key.decode()] = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
    return out


async def test_erasing_100_people_leaves_no_row_or_key_and_suppresses_them(rt, client, brand):
    people = {i: _events(i) for i in range(100)}
    for i in range(0, 100, 10):  # the merging people, one event per transaction
        for e in people[i]:
            await _ingest_announced(rt, brand, [e])
    await _ingest_announced(rt, brand, [e for i in people if i % 10 for e in people[i]])
    # a bystander with the same shape of history
    keep_events = orjson.loads(
        orjson.dumps(_events(7))
        .replace(b"gone", b"kept")
        .replace(b"erase-mail", b"stay-mail")
        .replace(b"900007", b"901999")
    )
    await _ingest_announced(rt, brand, keep_events)
    # a dead letter naming person 5: only its sealed payload knows who it is
    dead = [{**_events(5)[0], "event_id": "gone-dead-5"}]
    res = await service.accept(
        rt, brand.id, [(0, CanonicalEvent.model_validate({**dead[0], "brand": brand.slug}))]
    )
    await mark_dead(rt, brand.id, [res[0].raw_id], "poison for the test")

    bid = brand.id
    pid_of = {}
    for i in people:
        pid_of[i] = await rt.pool.fetchval(
            "SELECT e.profile_id FROM events e WHERE e.brand_id = $1 AND e.event_id = $2",
            bid,
            f"gone-{i}-1",
        )
    keeper = await rt.pool.fetchval(
        "SELECT profile_id FROM events WHERE brand_id = $1 AND event_id = 'kept-7-1'", bid
    )
    assert len(set(pid_of.values())) == 100 and keeper not in pid_of.values()
    all_pids = [
        r["id"]
        for r in await rt.pool.fetch(
            "SELECT id FROM profiles WHERE brand_id = $1 AND id <> $2", bid, keeper
        )
    ]
    assert len(all_pids) == 110  # 10 merged-away profiles
    merged_away = await rt.pool.fetch(
        "SELECT id, merged_into FROM profiles WHERE brand_id = $1 AND merged_into IS NOT NULL", bid
    )
    assert len(merged_away) == 10
    hashes = [
        bytes(r["hash"]).hex()
        for r in await rt.pool.fetch(
            "SELECT hash FROM profile_identifiers WHERE brand_id = $1 AND profile_id <> $2",
            bid,
            keeper,
        )
    ]
    raw_ids = [
        r["id"]
        for r in await rt.pool.fetch(
            "SELECT id FROM raw_events WHERE brand_id = $1 AND event_id LIKE 'gone-%'", bid
        )
    ]
    assert len(raw_ids) == 301
    # what other packages keep per profile
    await rt.pool.execute(
        "INSERT INTO profile_embeddings (brand_id, profile_id, embedding) "
        "SELECT brand_id, id, array_fill(0.5::real, ARRAY[32])::vector FROM profiles "
        "WHERE brand_id = $1",
        bid,
    )
    for sql in {
        "features": "INSERT INTO features (brand_id, profile_id, as_of, values) SELECT $1, id, current_date, '{\"r\": 1}' FROM profiles WHERE brand_id = $1",
        "predictions": "INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band) SELECT $1, id, 'churn', now(), 0.5, 'medium' FROM profiles WHERE brand_id = $1 AND merged_into IS NULL",
        "journeys": "INSERT INTO journeys (brand_id, profile_id, stage) SELECT $1, id, 'new' FROM profiles WHERE brand_id = $1 AND merged_into IS NULL",
        "conversations": "INSERT INTO conversations (brand_id, surface, thread_key, profile_id) SELECT $1, 'slack', id::text, id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL",
        "automation_runs": "INSERT INTO automation_runs (brand_id, automation_id, profile_id, idempotency_key) SELECT $1, uuidv7(), id, id::text FROM profiles WHERE brand_id = $1 AND merged_into IS NULL",
    }.values():
        await rt.pool.execute(sql, bid)
    await rt.pool.execute(
        "INSERT INTO merge_review_queue (brand_id, profile_ids, pair_key, score, reason) VALUES ($1, $2, 'k', 0.5, 'test')",
        bid,
        [pid_of[1], pid_of[2]],
    )
    hh = [uuid.uuid4(), uuid.uuid4()]
    for h, kind in zip(hh, ("address", "phone"), strict=True):
        await rt.pool.execute(
            "INSERT INTO households (brand_id, id, link_kind, link_hash) VALUES ($1, $2, $3, $4)",
            bid,
            h,
            kind,
            h.bytes,
        )
    await rt.pool.execute(
        "UPDATE profiles SET household_id = $2 WHERE brand_id = $1 AND id = $3",
        bid,
        hh[0],
        pid_of[1],
    )
    await rt.pool.execute(
        "UPDATE profiles SET household_id = $2 WHERE brand_id = $1 AND id = ANY($3::uuid[])",
        bid,
        hh[1],
        [pid_of[2], keeper],
    )
    for i in people:  # cached 360s, and audited PII reads
        assert (
            await client.get(f"/v1/profiles/{pid_of[i]}", headers=brand.auth("read"))
        ).status_code == 200
    for i in range(3):
        await client.get(f"/v1/profiles/{pid_of[i]}?include_pii=true", headers=brand.auth("pii"))
    # an earlier export of person 3 is a copy of their data
    r = await client.post(
        "/v1/privacy/export", json={"email": "gone3@erase-mail.com"}, headers=brand.auth("admin")
    )
    assert r.status_code == 202
    await privacy.process_pending(rt, bid)

    for i in people:
        if i % 10 == 0:
            loser = next(
                str(m["id"])
                for m in merged_away
                if m["merged_into"] == pid_of[i] or m["id"] == pid_of[i]
            )
            body: dict[str, Any] = {"profile_id": loser}  # an old id: the survivor goes too
        elif i % 3 == 0:
            body = {"phone": f"+44 7700 9{i:05d}"}
        else:
            body = {"email": f"GONE{i}@erase-mail.com"}
        resp = await client.post("/v1/privacy/delete", json=body, headers=brand.auth("admin"))
        assert resp.status_code == 202, resp.text
        assert resp.headers["location"] == f"/v1/privacy/jobs/{resp.json()['data']['id']}"
    outcomes = await privacy.process_pending(rt, bid, limit=200)
    assert [o.status for o in outcomes] == ["done"] * 100
    durations = sorted(o.seconds for o in outcomes)
    print(
        f"\nS7 delete job: p50 {statistics.median(durations) * 1000:.1f} ms, p95 {durations[94] * 1000:.1f} ms"
    )
    job = (
        await client.get(f"/v1/privacy/jobs/{outcomes[0].id}", headers=brand.auth("admin"))
    ).json()["data"]
    assert job["status"] == "done" and job["summary"]["deleted"]["events"] >= 3

    # Postgres: every table that has brand_id
    tables = [
        r["table_name"]
        for r in await rt.pool.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'brand_id' ORDER BY table_name"
        )
    ]
    assert {"events", "raw_events", "profiles", "predictions", "suppressions", "audit_log"} <= set(
        tables
    )
    gone = {str(p) for p in all_pids}
    for table in tables:
        text = await table_text(rt, bid, table)
        assert not [p for p in gone if p in text], table
        assert "gone-" not in text and "erase-mail" not in text, table
        if table not in (
            "suppressions",
            "deletion_requests",
        ):  # keyed hashes are kept there by design
            assert not [h for h in hashes if h in text], table
    left = await rt.pool.fetchval(
        "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND id = ANY($2::bigint[])",
        bid,
        [*raw_ids, res[0].raw_id],
    )
    assert left == 0
    assert await rt.pool.fetchval("SELECT count(*) FROM households WHERE brand_id = $1", bid) == 1
    assert (
        await rt.pool.fetchval("SELECT count(*) FROM suppressions WHERE brand_id = $1", bid) >= 300
    )
    export = await rt.pool.fetchrow(
        "SELECT result_enc, summary FROM deletion_requests WHERE brand_id = $1 AND kind = 'export'",
        bid,
    )
    assert export["result_enc"] is None and export["summary"]["result_erased"] is True
    # Redis: key names and every stream entry
    raw_set = {str(x) for x in [*raw_ids, res[0].raw_id]}
    async for key in rt.redis.scan_iter(match=f"cb:{{{bid}}}:*"):
        assert not [p for p in gone if p in key.decode()]
    streams = await _stream_text(rt, bid)
    assert any(k.endswith(DEAD) for k in streams)
    for key, entries in streams.items():
        for f in entries:
            assert not raw_set & set(f.get("ids", "").split(",")), key
            assert not [p for p in gone if p in orjson.dumps(f).decode()], key
    # the bystander is untouched
    kept = await client.get(f"/v1/profiles/{keeper}", headers=brand.auth("read"))
    assert kept.status_code == 200 and kept.json()["data"]["event_count"] == 3
    assert kept.json()["data"]["household"]["members"] == 1
    # and a later event naming a deleted person is dropped
    later = {
        **_events(4)[0],
        "event_id": "after-erasure",
        "identifiers": {"email": "gone4@erase-mail.com"},
    }
    [raw] = await _ingest_announced(rt, brand, [later])
    assert (
        await rt.pool.fetchval(
            "SELECT status FROM raw_events WHERE brand_id = $1 AND id = $2", bid, raw
        )
        == "suppressed"
    )
    assert await rt.pool.fetchval("SELECT count(*) FROM profiles WHERE brand_id = $1", bid) == 1
    # its inbox row (sealed, naming them) goes on the runner's next pass, stream entry too
    await privacy.process_pending(rt, bid)
    assert not await rt.pool.fetchval(
        "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND id = $2", bid, raw
    )
    for key, entries in (await _stream_text(rt, bid)).items():
        assert not [f for f in entries if str(raw) in f.get("ids", "").split(",")], key


async def test_export_returns_everything_held_decrypted(rt, client, brand):
    await _ingest_announced(rt, brand, _events(1))
    resp = await client.post(
        "/v1/privacy/export", json={"phone": "07700900001"}, headers=brand.auth("admin")
    )
    job_id = resp.json()["data"]["id"]
    pending = (await client.get(f"/v1/privacy/jobs/{job_id}", headers=brand.auth("admin"))).json()[
        "data"
    ]
    assert pending["status"] == "pending" and "result" not in pending
    [outcome] = await privacy.process_pending(rt, brand.id)
    assert outcome.status == "done"
    got = (await client.get(f"/v1/privacy/jobs/{job_id}", headers=brand.auth("admin"))).json()[
        "data"
    ]
    result = got["result"]
    values = {i["kind"]: i["value"] for i in result["identifiers"]}
    assert values["email"] == "gone1@erase-mail.com" and values["phone"] == "+447700900001"
    assert result["profiles"][0]["traits"]["first_name"] == "Person1"
    assert len(result["events"]) == 3
    texts = [e["content"] for e in result["events"] if e["content"]]
    assert texts == [{"text": "call me on 07700 900001"}]
    assert all(e["as_received"]["event_id"] == e["event_id"] for e in result["events"])
    assert got["summary"] == {
        "identifier_kinds": ["phone"],
        "profiles": 1,
        "events": 3,
        "identifiers": 3,
    }
    # the sealed result is never readable in the row, and reading it is audited
    assert "gone1" not in await table_text(rt, brand.id, "deletion_requests")
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE brand_id = $1 AND action = 'pii.read' AND subject = $2",
            brand.id,
            job_id,
        )
        == 1
    )
    assert (
        await client.get(f"/v1/privacy/jobs/{job_id}", headers=brand.auth("pii"))
    ).status_code == 403
    listed = (await client.get("/v1/privacy/jobs", headers=brand.auth("admin"))).json()
    assert [j["id"] for j in listed["data"]] == [job_id] and "result" not in listed["data"][0]


async def test_shopify_customers_redact_is_carried_out_by_the_runner(rt, client, brand):
    secret = "shpss_privacy_test_secret_0000001"
    async with rt.pool.acquire() as conn:
        from core import brands

        await brands.add_secret(conn, rt.keyring, brand.id, "shopify", secret)
    await _ingest_announced(
        rt,
        brand,
        [
            {
                **_events(9)[0],
                "identifiers": {
                    "email": "arya@braavos-mail.com",
                    "external_ids": {"shopify": "191167"},
                },
            }
        ],
    )
    body = orjson.dumps(
        {
            "shop_id": 954889,
            "shop_domain": "winterfell.myshopify.com",
            "customer": {"id": 191167, "email": "arya@braavos-mail.com", "phone": "+447700900555"},
            "orders_to_redact": [299938],
        }
    )
    headers = {
        "X-Shopify-Hmac-Sha256": shopify_sig(body, secret),
        "X-Shopify-Topic": "customers/redact",
        "X-Shopify-Webhook-Id": "redact-1",
        "X-Shopify-Shop-Domain": "winterfell.myshopify.com",
        "X-Shopify-Triggered-At": "2030-01-01T00:00:00Z",
        "Content-Type": "application/json",
    }
    resp = await client.post(f"/webhooks/shopify/{brand.slug}", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    [outcome] = await privacy.process_pending(rt, brand.id)
    assert outcome.status == "done" and outcome.summary["deleted"]["profiles"] == 1
    assert (
        await rt.pool.fetchval("SELECT count(*) FROM profiles WHERE brand_id = $1", brand.id) == 0
    )
    kinds = await rt.pool.fetch(
        "SELECT kind FROM suppressions WHERE brand_id = $1 ORDER BY kind", brand.id
    )
    assert [k["kind"] for k in kinds] == ["email", "external", "phone"]


async def test_bad_privacy_requests_are_refused_with_the_field_named(client, brand):
    auth = brand.auth("admin")
    for body, field in (
        ({}, "body"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b-mail.com", "tenant_id": "x"}, "tenant_id"),
        ({"profile_id": "nope"}, "profile_id"),
    ):
        resp = await client.post("/v1/privacy/delete", json=body, headers=auth)
        assert resp.status_code == 422, (body, resp.text)
        assert field in resp.text
    assert (
        await client.post(
            "/v1/privacy/delete", json={"email": "a@b-mail.com"}, headers=brand.auth("read")
        )
    ).status_code == 403


async def test_no_plaintext_email_or_phone_at_rest_in_redis_or_logs(rt, client, brand, capfd):
    """S6: after ingesting through the API, reading 360s and timelines, nothing outside sealed
    columns holds an email or a phone number in any of its forms."""
    from ingestion.worker import drain

    events = []
    for i in range(20):
        for n, e in enumerate(_events(i)):
            events.append({**e, "event_id": f"pii-{i}-{n}"})
    resp = await client.post(
        "/v1/events/batch", json={"events": events}, headers=brand.auth("ingest")
    )
    assert resp.status_code == 200
    await drain(rt, brand.id)
    pids = [
        r["id"]
        for r in await rt.pool.fetch(
            "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
        )
    ]
    for pid in pids:
        await client.get(f"/v1/profiles/{pid}", headers=brand.auth("read"))
        await client.get(f"/v1/profiles/{pid}/events", headers=brand.auth("read"))
    await client.get(
        "/v1/profiles/lookup", params={"email": "gone1@erase-mail.com"}, headers=brand.auth("read")
    )
    needles = []
    for i in range(20):
        needles += [
            f"gone{i}@erase-mail.com",
            f"gone{i}@",
            f"07700 9{i:05d}",
            f"+4477009{i:05d}",
            f"77009{i:05d}",
        ]
    tables = [
        r["table_name"]
        for r in await rt.pool.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'brand_id'"
        )
    ]
    hits = []
    for table in tables:
        text = await table_text(rt, brand.id, table)
        hits += [(table, n) for n in needles if n in text]
    async for key in rt.redis.scan_iter(match=f"cb:{{{brand.id}}}:*"):
        kind = await rt.redis.type(key)
        blob = key.decode()
        if kind == b"string":
            blob += (await rt.redis.get(key) or b"").decode(errors="replace")
        elif kind == b"stream":
            blob += orjson.dumps(
                [
                    {k.decode(): v.decode() for k, v in f.items()}
                    for _, f in await rt.redis.xrange(key)
                ]
            ).decode()
        hits += [("redis", n) for n in needles if n in blob]
    logs = capfd.readouterr()
    hits += [("logs", n) for n in needles if n in logs.out + logs.err]
    assert hits == []
    print(f"\nS6 plaintext PII hits: {len(hits)} over {len(tables)} tables, Redis and logs")


async def test_cbrain_privacy_export_run_and_status(rt, brand, settings, tmp_path):
    from tests.app.test_cli import _cbrain

    await _ingest_announced(rt, brand, _events(2))
    out = _cbrain(
        ["privacy", "export", "--brand", brand.slug, "--email", "gone2@erase-mail.com"], settings
    )
    assert out.returncode == 0, out.stderr
    job = out.stdout.split()[-1]
    ran = _cbrain(["privacy", "run", "--brand", brand.slug], settings)
    assert ran.returncode == 0 and f"{job}\texport\tdone" in ran.stdout
    dest = tmp_path / "export.json"
    status = _cbrain(
        ["privacy", "status", job, "--brand", brand.slug, "--out", str(dest)], settings
    )
    assert status.returncode == 0, status.stderr
    values = {i["kind"]: i["value"] for i in orjson.loads(dest.read_bytes())["identifiers"]}
    assert values["email"] == "gone2@erase-mail.com"
    out = _cbrain(["privacy", "delete", "--brand", brand.slug, "--phone", "07700900002"], settings)
    assert out.returncode == 0
    assert "done" in _cbrain(["privacy", "run", "--brand", brand.slug], settings).stdout
    assert not await rt.pool.fetchval("SELECT count(*) FROM profiles WHERE brand_id = $1", brand.id)


async def test_a_per_profile_table_added_later_is_erased_and_exported_too(rt, client, brand):
    """Erasure finds per-profile tables in the catalog: a package adding one is covered."""
    await rt.pool.execute(
        "CREATE TABLE privacy_probe (brand_id uuid NOT NULL, profile_id uuid NOT NULL, note text)"
    )
    try:
        await _ingest_announced(rt, brand, _events(3))
        pid = await rt.pool.fetchval("SELECT id FROM profiles WHERE brand_id = $1", brand.id)
        await rt.pool.execute(
            "INSERT INTO privacy_probe VALUES ($1, $2, 'likes tea')", brand.id, pid
        )
        auth = brand.auth("admin")
        body = {"email": "gone3@erase-mail.com"}
        await client.post("/v1/privacy/export", json=body, headers=auth)
        [export] = await privacy.process_pending(rt, brand.id)
        job = (await client.get(f"/v1/privacy/jobs/{export.id}", headers=auth)).json()["data"]
        assert job["result"]["privacy_probe"][0]["note"] == "likes tea"
        await client.post("/v1/privacy/delete", json=body, headers=auth)
        [delete] = await privacy.process_pending(rt, brand.id)
        assert delete.summary["deleted"]["privacy_probe"] == 1
        assert not await rt.pool.fetchval("SELECT count(*) FROM privacy_probe")
        # the earlier export was a copy of their data: it went with them
        job = (await client.get(f"/v1/privacy/jobs/{export.id}", headers=auth)).json()["data"]
        assert "result" not in job and job["summary"]["result_erased"] is True
    finally:
        await rt.pool.execute("DROP TABLE privacy_probe")
