"""Outbound sends against the fakes: retries never duplicate, each channel's wire format, and
what happens to a run whose worker stopped between sending and recording."""

from __future__ import annotations

import email
import hashlib
import hmac
from datetime import timedelta

import orjson

from automations.scheduler import AutomationRunner
from tests.automations.conftest import (
    base_time,
    create,
    event,
    profile_of,
    runs,
    send,
    tick,
)

INTENT = {"type": "product_intent", "min_views": 2, "window_hours": 24}


async def _viewer(rt, b, t0, tag="v", **kw):
    await send(
        rt,
        b,
        event(f"{tag}1", t0 - timedelta(minutes=20), "product_view", **kw),
        event(f"{tag}2", t0 - timedelta(minutes=10), "product_view", **kw),
    )
    return await profile_of(rt, b, f"{tag}1")


async def test_twilio_500_is_retried_and_sent_once(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {
            "name": "intent wa",
            "trigger": INTENT,
            "action": {
                "type": "whatsapp",
                "body": "Hi {first_name}, still thinking about {product}?",
            },
        },
    )
    await _viewer(rt, sbrand, t0)
    fakes.twilio.fail_next = 1
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent", run["error"]
    assert len(fakes.twilio.requests) == 2  # the 500, then the retry
    [msg] = fakes.twilio.accepted
    assert msg["Body"] == "Hi Ada, still thinking about Linen shirt?"
    assert run["details"]["send_attempts"] == 2
    assert run["details"]["sent"]["body"] == "Hi {first_name}, still thinking about Linen shirt?"


async def test_twilio_failing_every_try_reschedules_then_fails(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {"name": "intent wa", "trigger": INTENT, "action": {"type": "whatsapp", "body": "Hi"}},
    )
    await _viewer(rt, sbrand, t0)
    fakes.twilio.fail_next = 100
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "scheduled" and run["due_at"] == t0 + timedelta(seconds=60)
    assert len(fakes.twilio.requests) == 3  # send_attempts within one execution
    assert "HTTP 500" in run["error"]
    at = t0
    for _ in range(6):
        at += timedelta(hours=1)
        await tick(rt, sbrand, at, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "failed" and "gave up after 5 attempts" in run["error"]
    assert fakes.twilio.accepted == []


async def test_twilio_4xx_is_not_retried(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {"name": "intent wa", "trigger": INTENT, "action": {"type": "whatsapp", "body": "Hi"}},
    )
    await _viewer(rt, sbrand, t0)
    fakes.twilio.fail_next, fakes.twilio.fail_status = 1, 400
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "failed" and "HTTP 400" in run["error"]
    assert len(fakes.twilio.requests) == 1


async def test_webhook_is_signed_and_a_retry_carries_the_same_key(rt, fakes, auto_settings):
    from tests.automations.conftest import sending_brand

    b = await sending_brand(rt, fakes)
    t0 = base_time()
    secret = "s3cret-for-the-brand-hook"
    await create(
        rt,
        b,
        {
            "name": "hook",
            "trigger": INTENT,
            "action": {"type": "webhook", "url": fakes.webhook_url, "secret": secret},
        },
    )
    pid = await _viewer(rt, b, t0)
    fakes.webhook.fail_next = 1
    await tick(rt, b, t0, auto_settings)
    [run] = await runs(rt, b)
    assert run["status"] == "sent", run["error"]
    first, second = fakes.webhook.requests
    key = run["idempotency_key"]
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"] == key
    [got] = fakes.webhook.accepted
    sig = dict(p.split("=", 1) for p in got["headers"]["x-cbrain-signature"].split(","))
    mac = hmac.new(secret.encode(), f"{sig['t']}.".encode() + got["body"], hashlib.sha256)
    assert hmac.compare_digest(mac.hexdigest(), sig["v1"])
    body = orjson.loads(got["body"])
    assert body["profile"]["id"] == str(pid) and body["trigger"]["type"] == "product_intent"
    assert run["provider_message_id"] == "evt_1"
    assert "Ada" not in got["body"].decode()  # no personal data in the payload


async def test_email_over_smtp_with_a_4xx_retry(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {
            "name": "intent mail",
            "trigger": INTENT,
            "action": {
                "type": "email",
                "subject": "{first_name}, still looking?",
                "body": "The {product} is waiting.",
            },
        },
    )
    await _viewer(rt, sbrand, t0, email="ada@example-shop.co.uk")
    fakes.smtp.fail_next = 1
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent", run["error"]
    assert len(fakes.smtp.requests) == 2
    [mail] = fakes.smtp.accepted
    assert mail["to"] == ["ada@example-shop.co.uk"]
    msg = email.message_from_bytes(mail["data"])
    assert msg["Subject"] == "Ada, still looking?"
    assert "The Linen shirt is waiting." in msg.get_payload()
    assert msg["Message-ID"] == run["provider_message_id"]
    assert run["details"]["sent"]["to"] != "ada@example-shop.co.uk"  # masked in the record


async def test_slack_and_tag_actions(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {
            "name": "slack",
            "trigger": INTENT,
            "action": {
                "type": "slack",
                "channel": "#sales",
                "text": "Hot lead: {product} ({trigger_reason})",
            },
        },
    )
    await create(
        rt,
        sbrand,
        {
            "name": "tag",
            "trigger": INTENT,
            "action": {"type": "tag", "add": ["hot-lead"], "remove": ["cold"]},
        },
    )
    pid = await _viewer(rt, sbrand, t0)
    await tick(rt, sbrand, t0, auto_settings)
    assert sorted(r["status"] for r in await runs(rt, sbrand)) == ["sent", "sent"]
    [post] = fakes.slack.accepted
    assert post["auth"] == "Bearer xoxb-test-token"
    assert post["body"]["channel"] == "#sales" and "Linen shirt" in post["body"]["text"]
    tags = await rt.pool.fetchval(
        "SELECT tags FROM profiles WHERE brand_id = $1 AND id = $2", sbrand.id, pid
    )
    assert tags == ["hot-lead"]


async def test_worker_stopped_mid_send_never_resends_whatsapp(rt, sbrand, fakes, auto_settings):
    """A run left `sending` past the lease may have been delivered: WhatsApp is not sent
    again (recorded `unknown`); a webhook, whose receiver de-duplicates on the key, is."""
    t0 = base_time()
    wa = await create(
        rt, sbrand, {"name": "wa", "trigger": INTENT, "action": {"type": "whatsapp", "body": "Hi"}}
    )
    hook = await create(
        rt,
        sbrand,
        {
            "name": "hook",
            "trigger": INTENT,
            "action": {"type": "webhook", "url": fakes.webhook_url},
        },
    )
    await _viewer(rt, sbrand, t0)
    runner = AutomationRunner(rt, auto_settings, clock=lambda: t0)
    try:
        await runner.read_streams(block_ms=None, only=sbrand.id)
    finally:
        await runner.close()
    # Simulate the crash: both runs claimed and marked sending, then the process vanished.
    await rt.pool.execute(
        "UPDATE automation_runs SET status = 'sending', claimed_at = $2, decided_at = $2 "
        "WHERE brand_id = $1",
        sbrand.id,
        t0,
    )
    await tick(rt, sbrand, t0 + timedelta(minutes=10), auto_settings)  # past the lease (5 min)
    by = {r["automation_id"]: r for r in await runs(rt, sbrand)}
    assert by[wa.id]["status"] == "unknown" and "not resent" in by[wa.id]["error"]
    assert fakes.twilio.requests == []
    assert by[hook.id]["status"] == "sent"
    [delivery] = fakes.webhook.accepted
    assert delivery["headers"]["idempotency-key"] == by[hook.id]["idempotency_key"]
