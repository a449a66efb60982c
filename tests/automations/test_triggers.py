"""State triggers on predictions and journeys, product intent and conditions. Dry runs: what
is under test is which runs get queued, and why."""

from __future__ import annotations

from datetime import timedelta

from automations import conditions
from automations.models import Condition
from tests.automations.conftest import (
    base_time,
    create,
    event,
    profile_of,
    runs,
    send,
    set_prediction,
    tick,
)

WA = {"type": "whatsapp", "body": "Hi"}
NO_COOLDOWN = {"cooldown_hours": 0, "quiet_hours": False}


async def _person(rt, b, tag, t0, phone="+447700900123"):
    await send(rt, b, event(tag, t0 - timedelta(days=3), "purchase", phone=phone))
    return await profile_of(rt, b, tag)


async def test_churn_threshold_fires_once_per_crossing(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    pid = await _person(rt, sbrand, "p1", t0)
    await set_prediction(rt, sbrand, pid, "churn", 0.50, "Medium")
    a = await create(
        rt,
        sbrand,
        {
            "name": "churn",
            "trigger": {"type": "churn_threshold", "threshold": 0.66},
            "action": WA,
            "dry_run": True,
            "settings": NO_COOLDOWN,
        },
    )
    steps = [0.70, 0.72, 0.64, 0.50, 0.80, 0.90]  # 0.64 is inside the hysteresis band
    fired = []
    for i, p in enumerate(steps):
        await set_prediction(rt, sbrand, pid, "churn", p, "High" if p > 0.66 else "Medium")
        await tick(rt, sbrand, t0 + timedelta(minutes=i), auto_settings)
        fired.append(len(await runs(rt, sbrand, a.id)))
    assert fired == [1, 1, 1, 1, 2, 2]
    assert [r["status"] for r in await runs(rt, sbrand, a.id)] == ["dry_run", "dry_run"]
    assert "crossed 0.66" in (await runs(rt, sbrand, a.id))[0]["trigger_reason"]


async def test_enabling_arms_existing_states_unless_include_existing(
    rt, sbrand, fakes, auto_settings
):
    t0 = base_time()
    already = await _person(rt, sbrand, "p1", t0, phone="+447700900131")
    await set_prediction(rt, sbrand, already, "churn", 0.9, "High")
    armed = await create(
        rt,
        sbrand,
        {"name": "armed", "trigger": {"type": "churn_threshold"}, "action": WA, "dry_run": True},
    )
    everyone = await create(
        rt,
        sbrand,
        {
            "name": "everyone",
            "trigger": {"type": "churn_threshold", "include_existing": True},
            "action": WA,
            "dry_run": True,
        },
    )
    newcomer = await _person(rt, sbrand, "p2", t0, phone="+447700900132")
    await set_prediction(rt, sbrand, newcomer, "churn", 0.8, "High")
    await tick(rt, sbrand, t0, auto_settings)
    assert {r["profile_id"] for r in await runs(rt, sbrand, armed.id)} == {newcomer}
    assert {r["profile_id"] for r in await runs(rt, sbrand, everyone.id)} == {already, newcomer}


async def test_segment_entered_and_left(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    pid = await _person(rt, sbrand, "p1", t0)
    await set_prediction(rt, sbrand, pid, "segment", None, "Loyal")
    entered = await create(
        rt,
        sbrand,
        {
            "name": "in",
            "trigger": {"type": "segment_changed", "segment": "At Risk"},
            "action": WA,
            "dry_run": True,
            "settings": NO_COOLDOWN,
        },
    )
    left = await create(
        rt,
        sbrand,
        {
            "name": "out",
            "trigger": {"type": "segment_changed", "segment": "At Risk", "change": "left"},
            "action": WA,
            "dry_run": True,
            "settings": NO_COOLDOWN,
        },
    )
    for i, seg in enumerate(["At Risk", "At Risk", "Champions"]):
        await set_prediction(rt, sbrand, pid, "segment", None, seg)
        await tick(rt, sbrand, t0 + timedelta(minutes=i), auto_settings)
    [r_in] = await runs(rt, sbrand, entered.id)
    [r_out] = await runs(rt, sbrand, left.id)
    assert r_in["trigger_reason"] == "entered segment At Risk (from Loyal)"
    assert r_out["trigger_reason"] == "left segment At Risk (now Champions)"


async def test_ltv_milestone_once(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    await create(
        rt,
        sbrand,
        {
            "name": "100 club",
            "trigger": {"type": "ltv_milestone", "amount": 100},
            "action": {"type": "tag", "add": ["100-club"]},
        },
    )
    for i in range(4):  # 45 each: 45, 90, 135, 180
        await send(rt, sbrand, event(f"o{i}", t0 - timedelta(days=10 - i), "purchase"))
        await tick(rt, sbrand, t0 + timedelta(minutes=i), auto_settings)
    [run] = await runs(rt, sbrand)
    assert run["status"] == "sent" and "lifetime spend 135.00 reached 100" in run["trigger_reason"]


async def test_journey_stage_changed(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    a = await create(
        rt,
        sbrand,
        {
            "name": "second order",
            "trigger": {
                "type": "journey_stage_changed",
                "from": "first_purchase",
                "to": "retention",
            },
            "action": WA,
            "dry_run": True,
        },
    )
    await send(rt, sbrand, event("o1", t0 - timedelta(days=20), "purchase"))
    await tick(rt, sbrand, t0, auto_settings)
    assert await runs(rt, sbrand, a.id) == []  # first_purchase: not the change asked for
    await send(rt, sbrand, event("o2", t0 - timedelta(days=1), "purchase"))
    await tick(rt, sbrand, t0 + timedelta(minutes=1), auto_settings)
    [run] = await runs(rt, sbrand, a.id)
    assert run["trigger_reason"] == "journey stage first_purchase -> retention"


async def test_category_intent_and_conditions(rt, sbrand, fakes, auto_settings):
    t0 = base_time()
    a = await create(
        rt,
        sbrand,
        {
            "name": "shirts",
            "trigger": {
                "type": "product_intent",
                "per": "category",
                "category": "shirts",
                "min_views": 3,
                "window_hours": 6,
            },
            "conditions": [{"field": "order_count", "op": ">=", "value": 1}],
            "action": WA,
            "dry_run": True,
        },
    )
    views = [
        event(f"v{i}", t0 - timedelta(minutes=10 * (i + 1)), "product_view", phone="+447700900141")
        for i in range(3)
    ]
    buyer_views = [
        event(f"w{i}", t0 - timedelta(minutes=10 * (i + 1)), "product_view", phone="+447700900142")
        for i in range(3)
    ]
    old = [
        event(f"x{i}", t0 - timedelta(hours=7 + i), "product_view", phone="+447700900143")
        for i in range(3)
    ]
    await send(
        rt,
        sbrand,
        *views,
        *buyer_views,
        *old,
        event("o1", t0 - timedelta(days=5), "purchase", phone="+447700900142"),
    )
    await tick(rt, sbrand, t0, auto_settings)
    [run] = await runs(rt, sbrand, a.id)
    assert run["profile_id"] == await profile_of(rt, sbrand, "w0")
    assert run["trigger_reason"] == "3 views of category shirts within 6 h"


def test_conditions():
    f = {"total_spent": 250.0, "tags": ["vip"], "country": "GB", "churn": None, "segment": "Loyal"}
    ok = conditions.check_condition
    assert ok(Condition(field="total_spent", op=">=", value=200), f)
    assert not ok(Condition(field="total_spent", op="<", value=200), f)
    assert ok(Condition(field="tags", op="contains", value="vip"), f)
    assert ok(Condition(field="country", op="in", value=["GB", "IE"]), f)
    assert not ok(Condition(field="churn", op=">", value=0.5), f)  # missing fails comparisons
    assert ok(Condition(field="churn", op="missing"), f)
    assert ok(Condition(field="segment", op="!=", value="Lost"), f)
