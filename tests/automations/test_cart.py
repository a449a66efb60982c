"""Cart abandonment: a delayed check kept in Postgres, against a fake Twilio."""

from __future__ import annotations

from datetime import timedelta

from automations.scheduler import AutomationRunner
from tests.automations.conftest import base_time, create, event, profile_of, runs, send, tick

CART = {
    "name": "Cart reminder",
    "trigger": {"type": "cart_abandoned", "window_minutes": 30, "max_age_hours": 48},
    "action": {
        "type": "whatsapp",
        "content_sid": "HX" + "a" * 32,
        "variables": {"1": "{first_name}", "2": "{cart_items}"},
    },
}


async def test_fires_once_after_the_window(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    a = await create(rt, sbrand, CART)
    await send(rt, sbrand, event("c1", t0 - timedelta(minutes=10)))
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "scheduled"
    assert run["due_at"] == t0 + timedelta(minutes=20)
    assert fakes.twilio.requests == []

    await tick(rt, sbrand, t0 + timedelta(minutes=19), auto_settings)
    assert fakes.twilio.requests == []

    await tick(rt, sbrand, t0 + timedelta(minutes=21), auto_settings)
    [run] = await runs(rt, sbrand, a.id)
    assert run["status"] == "sent", run["error"]
    [msg] = fakes.twilio.accepted
    assert msg["To"] == "whatsapp:+447700900123"
    assert msg["From"] == "whatsapp:+14155238886"
    assert msg["ContentSid"] == "HX" + "a" * 32
    assert '"1": "Ada"' in msg["ContentVariables"] or '"1":"Ada"' in msg["ContentVariables"]
    assert "Linen shirt" in msg["ContentVariables"]
    assert run["provider_message_id"] == msg["sid"]
    assert "cart activity" in run["trigger_reason"]
    # The record keeps the masked number and the template, not the name.
    assert "Ada" not in str(run["details"]) and "900123" not in str(run["details"])

    # More passes, later: nothing more is sent for this cart.
    await send(rt, sbrand, event("c1b", t0 + timedelta(minutes=25), "product_view"))
    await tick(rt, sbrand, t0 + timedelta(minutes=40), auto_settings)
    await tick(rt, sbrand, t0 + timedelta(hours=2), auto_settings)
    assert len(fakes.twilio.accepted) == 1
    assert len(await runs(rt, sbrand)) == 1


async def test_not_at_all_if_the_purchase_arrives(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(rt, sbrand, CART)
    await send(rt, sbrand, event("c2", t0 - timedelta(minutes=10), "checkout_start"))
    await tick(rt, sbrand, t0, auto_settings)
    assert [r["status"] for r in await runs(rt, sbrand)] == ["scheduled"]
    await send(rt, sbrand, event("o2", t0 + timedelta(minutes=5), "purchase"))
    await tick(rt, sbrand, t0 + timedelta(minutes=45), auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "cancelled"
    assert "purchase" in run["error"]
    assert fakes.twilio.requests == []


async def test_purchase_seen_only_at_due_time_still_cancels(rt, sbrand, fakes, auto_settings):
    """The purchase's stream entry is never read (as if lost); the check at due time finds it."""
    t0 = base_time()
    await create(rt, sbrand, CART)
    await send(rt, sbrand, event("c3", t0 - timedelta(minutes=10)))
    await tick(rt, sbrand, t0, auto_settings)
    await send(rt, sbrand, event("o3", t0 + timedelta(minutes=1), "purchase"))
    runner = AutomationRunner(rt, auto_settings, clock=lambda: t0 + timedelta(minutes=45))
    try:
        assert await runner.execute_due(sbrand.brand) == 1  # straight to the due rows
    finally:
        await runner.close()
    [run] = await runs(rt, sbrand)
    assert run["status"] == "cancelled" and fakes.twilio.requests == []


async def test_more_cart_activity_moves_the_reminder_back(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(rt, sbrand, CART)
    await send(rt, sbrand, event("c4", t0 - timedelta(minutes=10)))
    await tick(rt, sbrand, t0, auto_settings)
    await send(rt, sbrand, event("c4b", t0 + timedelta(minutes=15)))
    await tick(rt, sbrand, t0 + timedelta(minutes=16), auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "scheduled" and run["due_at"] == t0 + timedelta(minutes=45)
    await tick(rt, sbrand, t0 + timedelta(minutes=30), auto_settings)
    assert fakes.twilio.requests == []
    await tick(rt, sbrand, t0 + timedelta(minutes=46), auto_settings)
    assert len(fakes.twilio.accepted) == 1


async def test_a_restart_during_the_window_still_fires(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(rt, sbrand, CART)
    await send(rt, sbrand, event("c5", t0 - timedelta(minutes=10)))
    first = AutomationRunner(rt, auto_settings, clock=lambda: t0, name="runner-before")
    try:
        await first.read_streams(
            block_ms=None, only=sbrand.id
        )  # matched and acknowledged: the entry is gone
        assert await first.execute_due(sbrand.brand) == 0
    finally:
        await first.close()
    del first  # the process "dies" inside the window; only Postgres remembers

    second = AutomationRunner(
        rt, auto_settings, clock=lambda: t0 + timedelta(minutes=31), name="runner-after"
    )
    try:
        assert (
            await second.read_streams(block_ms=None, only=sbrand.id) is False
        )  # nothing left in the stream
        assert await second.execute_due(sbrand.brand) == 1
    finally:
        await second.close()
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent"
    assert len(fakes.twilio.accepted) == 1
    pid = await profile_of(rt, sbrand, "c5")
    assert run["profile_id"] == pid


async def test_the_running_loop_sends_from_the_stream(rt, fakes, auto_settings):
    """`run()` as `cbrain serve` runs it: stream in, due row out, no clock tricks."""
    import asyncio
    from datetime import UTC, datetime

    from tests.automations.conftest import sending_brand
    from tests.helpers import wait_for

    b = await sending_brand(rt, fakes, quiet_hours=None)
    await create(rt, b, CART)
    fast = auto_settings.model_copy(update={"poll_s": 0.1, "sweep_s": 3600})
    runner = AutomationRunner(rt, fast, brand_ids={b.id})
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await send(rt, b, event("c9", datetime.now(UTC) - timedelta(hours=1)))

        async def sent():
            return [r for r in await runs(rt, b) if r["status"] == "sent"]

        [run] = await wait_for(sent, timeout=30)
        assert [m["sid"] for m in fakes.twilio.accepted] == [run["provider_message_id"]]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
