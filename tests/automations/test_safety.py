"""Safety: STOP, quiet hours, dry run, frequency caps, cooldown, opt-in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from automations import safety
from integrations.twilio import map_inbound
from tests.automations.conftest import (
    base_time,
    create,
    event,
    runs,
    send,
    sending_brand,
    tick,
)

INTENT = {"type": "product_intent", "min_views": 2, "window_hours": 24}
WA = {"type": "whatsapp", "body": "Hi {first_name}"}


async def _views(rt, b, t0, tag="v", **kw):
    await send(
        rt,
        b,
        event(f"{tag}1", t0 - timedelta(minutes=20), "product_view", **kw),
        event(f"{tag}2", t0 - timedelta(minutes=10), "product_view", **kw),
    )


async def test_whatsapp_stop_is_honoured(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(rt, sbrand, {"name": "wa", "trigger": INTENT, "action": WA})
    stop = map_inbound(
        {
            "MessageSid": "SMstop1",
            "From": "whatsapp:+447700900123",
            "To": "whatsapp:+14155238886",
            "Body": "STOP",
        },
        t0 - timedelta(hours=1),
    )
    await send(rt, sbrand, stop.model_dump(mode="json", exclude_none=True))
    await _views(rt, sbrand, t0)
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "skipped"
    assert "whatsapp opted out" in run["error"]
    assert fakes.twilio.requests == []


async def test_stop_does_not_stop_email(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {
            "name": "mail",
            "trigger": INTENT,
            "action": {"type": "email", "subject": "Hi", "body": "Hello"},
        },
    )
    await send(
        rt,
        sbrand,
        event(
            "id1",
            t0 - timedelta(hours=2),
            "identify",
            email="ada@example-shop.co.uk",
            traits={"whatsapp_consent": False},
        ),
    )
    await _views(rt, sbrand, t0)
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent", run["error"]
    assert len(fakes.smtp.accepted) == 1


async def test_quiet_hours_defer_in_the_customers_time_zone(rt, sbrand, fakes, auto_settings):
    t0 = base_time()  # 12:00 UTC = 21:00 in Tokyo: inside 21:00-08:00
    await create(rt, sbrand, {"name": "wa", "trigger": INTENT, "action": WA})
    await _views(rt, sbrand, t0, traits={"timezone": "Asia/Tokyo"})
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand)
    resume = t0 + timedelta(hours=11)  # 08:00 Tokyo
    assert run["status"] == "scheduled" and run["due_at"] == resume
    assert run["details"]["deferred"]["timezone"] == "Asia/Tokyo"
    assert fakes.twilio.requests == []
    await tick(rt, sbrand, resume - timedelta(minutes=1), auto_settings)
    assert fakes.twilio.requests == []
    await tick(rt, sbrand, resume + timedelta(minutes=1), auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent" and len(fakes.twilio.accepted) == 1


def test_quiet_until_wraps_midnight_and_uses_the_brand_zone_as_fallback():
    p = safety.Policy(quiet_start=time(21), quiet_end=time(8), timezone="Europe/London")
    london = safety.zone(None, p.timezone)
    assert london == ZoneInfo("Europe/London")
    assert safety.zone("Not/AZone", "Europe/London") == london
    winter_night = datetime(2025, 1, 10, 22, 30, tzinfo=UTC)  # 22:30 GMT
    assert safety.quiet_until(winter_night, london, p) == datetime(2025, 1, 11, 8, tzinfo=UTC)
    early = datetime(2025, 1, 10, 6, 0, tzinfo=UTC)
    assert safety.quiet_until(early, london, p) == datetime(2025, 1, 10, 8, tzinfo=UTC)
    assert safety.quiet_until(datetime(2025, 1, 10, 12, tzinfo=UTC), london, p) is None
    summer = datetime(2025, 7, 10, 20, 30, tzinfo=UTC)  # 21:30 BST
    assert safety.quiet_until(summer, london, p) == datetime(2025, 7, 11, 7, tzinfo=UTC)
    off = safety.Policy(quiet_start=None, quiet_end=None)
    assert safety.quiet_until(winter_night, london, off) is None


async def test_dry_run_records_without_sending(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    a = await create(rt, sbrand, {"name": "wa", "trigger": INTENT, "action": WA, "dry_run": True})
    await _views(rt, sbrand, t0)
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand, a.id)
    assert run["status"] == "dry_run" and run["dry_run"] is True
    assert run["provider_message_id"] is None
    would = run["details"]["would_send"]
    assert would["body"] == "Hi {first_name}" and would["from"] == "whatsapp:+14155238886"
    assert "900123" not in would["to"] and would["to"].endswith("123")
    assert fakes.twilio.requests == []


async def test_frequency_cap_across_automations(rt, fakes, auto_settings):
    b = await sending_brand(rt, fakes, cap_per_day=1, cap_per_week=3)
    t0 = base_time()
    for name in ("wa one", "wa two", "wa three"):
        await create(rt, b, {"name": name, "trigger": INTENT, "action": WA})
    await _views(rt, b, t0)
    await tick(rt, b, t0, auto_settings)
    statuses = sorted(r["status"] for r in await runs(rt, b))
    assert statuses == ["sent", "skipped", "skipped"]
    assert len(fakes.twilio.accepted) == 1
    skipped = [r for r in await runs(rt, b) if r["status"] == "skipped"]
    assert all("frequency cap" in r["error"] for r in skipped)


async def test_one_run_per_automation_per_person_per_cooldown(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(rt, sbrand, {"name": "wa", "trigger": {**INTENT, "window_hours": 1}, "action": WA})
    await _views(rt, sbrand, t0, tag="a")
    await tick(rt, sbrand, t0, auto_settings)
    # Two hours later: a new window with new views; the cooldown (24 h) holds.
    t1 = t0 + timedelta(hours=2)
    await _views(rt, sbrand, t1, tag="b")
    await tick(rt, sbrand, t1, auto_settings)
    assert len(fakes.twilio.accepted) == 1
    assert [r["status"] for r in await runs(rt, sbrand)] == ["sent"]
    # A day later it may run again.
    t2 = t0 + timedelta(hours=26)
    await _views(rt, sbrand, t2, tag="c")
    await tick(rt, sbrand, t2, auto_settings)
    assert len(fakes.twilio.accepted) == 2


async def test_require_opt_in(rt, fakes, auto_settings):
    b = await sending_brand(rt, fakes, require_opt_in=True)
    t0 = base_time()
    await create(rt, b, {"name": "wa", "trigger": INTENT, "action": WA})
    await _views(rt, b, t0, tag="n", phone="+447700900124")
    await _views(rt, b, t0, tag="y", phone="+447700900125", traits={"whatsapp_consent": True})
    await tick(rt, b, t0, auto_settings)
    statuses = sorted(r["status"] for r in await runs(rt, b))
    assert statuses == ["sent", "skipped"]
    assert [m["To"] for m in fakes.twilio.accepted] == ["whatsapp:+447700900125"]
