"""Journeys: the stage rules on hand-made facts, and `update_journeys` on hand-made profiles
(history appended only when the stage changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ml._journey_rules import (
    JourneyConfig,
    action_of,
    milestone_of,
    parts_of,
    score_of,
    stage_of,
)
from ml.journeys import update_journeys
from tests.conftest import make_brand
from tests.identity.streaming_helpers import ingest

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CFG = JourneyConfig()


def facts(**over):
    base = {
        "order_count": 0,
        "total_spent": 0.0,
        "first_order_at": None,
        "last_order_at": None,
        "last_seen": NOW - timedelta(days=1),
        "channels": ["web"],
        "consent": {},
        "kinds": ["email"],
        "churn": None,
        "churn_band": None,
        "ltv_band": None,
        "ltv_details": None,
        "segment": None,
        "recs": None,
        "active_days90": 3,
        "views30": 0,
        "carts30": 0,
        "last_cart_at": None,
    }
    return {**base, **over}


def days(n):
    return NOW - timedelta(days=n)


def test_stage_rules_on_hand_made_people():
    cases = {
        "awareness": facts(views30=1),
        "consideration": facts(views30=4),
        "first_purchase": facts(order_count=1, first_order_at=days(10), last_order_at=days(10)),
        "retention": facts(order_count=2, first_order_at=days(60), last_order_at=days(20)),
        "advocacy": facts(
            order_count=6, first_order_at=days(300), last_order_at=days(15), segment="Champions"
        ),
        "at_risk": facts(
            order_count=3,
            first_order_at=days(200),
            last_order_at=days(40),
            churn=0.8,
            churn_band="High",
        ),
        "lapsed": facts(order_count=2, first_order_at=days(700), last_order_at=days(400)),
    }
    for expected, f in cases.items():
        stage, why = stage_of(f, NOW, CFG)
        assert stage == expected, (expected, stage, why)
        assert why
    # Without predictions, a long silence against the person's own rhythm is at risk.
    weekly = facts(order_count=5, first_order_at=days(130), last_order_at=days(100))
    assert stage_of(weekly, NOW, CFG)[0] == "at_risk"
    # Cart activity makes a prospect a considerer.
    assert stage_of(facts(carts30=1), NOW, CFG)[0] == "consideration"
    # A brand can move the thresholds.
    strict = JourneyConfig.of({"journeys": {"lapsed_days": 30}})
    assert stage_of(cases["retention"], NOW, strict)[0] == "retention"
    assert (
        stage_of(
            facts(order_count=2, last_order_at=days(45), first_order_at=days(90)), NOW, strict
        )[0]
        == "lapsed"
    )


def test_score_parts_milestone_and_action():
    f = facts(
        order_count=4,
        total_spent=900.0,
        first_order_at=days(120),
        last_order_at=days(27),
        last_seen=days(2),
        channels=["web", "pos", "whatsapp"],
        kinds=["email", "phone"],
        churn=0.1,
        churn_band="Low",
        ltv_band="D9",
        active_days90=12,
        recs={"items": [{"product_id": "p9", "name": "Merino scarf"}]},
    )
    parts = parts_of(f, NOW, [10.0 * i for i in range(1, 20)])
    assert set(parts) == {"engagement_frequency", "purchase_value", "channel_diversity", "recency"}
    assert all(0 <= v <= 100 for v in parts.values())
    assert parts["channel_diversity"] == 75 and parts["purchase_value"] == 92  # (95 + D9) / 2
    assert 0 <= score_of(parts) <= 100 and score_of(parts) > 60
    stage, why = stage_of(f, NOW, CFG)
    assert stage == "advocacy"
    milestone, reason = milestone_of(stage, f, parts, NOW)
    assert milestone == "likely to buy within 7 days" and "every 31 days" in reason
    action = action_of(stage, why, milestone, f)
    assert action["action"] == "referral_invite" and action["channel"] == "whatsapp"
    upsell = {**f, "last_order_at": days(5)}
    assert milestone_of("retention", upsell, parts, NOW)[0] == "ready for upsell"
    risky = facts(
        order_count=3,
        last_order_at=days(50),
        first_order_at=days(200),
        churn=0.9,
        churn_band="High",
        recs=f["recs"],
    )
    m, _ = milestone_of("at_risk", risky, parts, NOW)
    assert m == "at risk of churn"
    act = action_of("at_risk", "churn risk High (90%)", m, risky)
    assert act["action"] == "win_back_offer" and "churn risk High" in act["reason"]
    assert act["channel"] == "email"  # no phone on record
    stopped = {**f, "consent": {"whatsapp_consent": False}}
    assert action_of("retention", "", None, stopped)["channel"] == "email"
    lead = facts(
        views30=5, ltv_details={"expected_next_order": (NOW + timedelta(days=3)).date().isoformat()}
    )
    assert (
        milestone_of("consideration", lead, parts_of(lead, NOW, []), NOW)[0]
        == "likely to buy within 7 days"
    )


def _ev(event_id, at, type="purchase", **ids):
    props = {"order_id": event_id, "total": 30.0, "currency": "GBP"} if type == "purchase" else {}
    return {
        "event_id": event_id,
        "source": "shopify" if type == "purchase" else "web",
        "type": type,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "identifiers": ids,
        "traits": {"first_name": event_id.split("-")[0].title()},
        "properties": props,
    }


async def _pid(rt, b, event_id):
    return await rt.pool.fetchval(
        "SELECT profile_id FROM events WHERE brand_id = $1 AND event_id = $2", b.id, event_id
    )


async def test_update_journeys_stores_stages_and_appends_history_on_change(rt):
    b = await make_brand(rt, "jr")
    now = datetime.now(UTC)
    ago = lambda d: now - timedelta(days=d)  # noqa: E731
    await ingest(
        rt,
        b,
        [
            _ev("vera-1", ago(2), "product_view", email="vera@example-shop.co.uk"),
            _ev("cal-1", ago(3), "cart_add", email="cal@example-shop.co.uk"),
            _ev("fay-1", ago(10), email="fay@example-shop.co.uk"),
            _ev("rita-1", ago(80), email="rita@example-shop.co.uk"),
            _ev("rita-2", ago(40), email="rita@example-shop.co.uk"),
            _ev("rita-3", ago(10), email="rita@example-shop.co.uk"),
            _ev("lou-1", ago(500), email="lou@example-shop.co.uk"),
        ],
    )
    ids = {name: await _pid(rt, b, f"{name}-1") for name in ("vera", "cal", "fay", "rita", "lou")}
    result = await update_journeys(rt, b.id, now=now)
    assert result.profiles == 5 and result.written == 5
    rows = {
        r["profile_id"]: r
        for r in await rt.pool.fetch("SELECT * FROM journeys WHERE brand_id = $1", b.id)
    }
    stages = {name: rows[pid]["stage"] for name, pid in ids.items()}
    assert stages == {
        "vera": "awareness",
        "cal": "consideration",
        "fay": "first_purchase",
        "rita": "retention",
        "lou": "lapsed",
    }
    fay = rows[ids["fay"]]
    assert [h["stage"] for h in fay["history"]] == ["first_purchase"]
    assert fay["history"][0]["from"] is None
    assert 0 <= fay["score"] <= 100 and set(fay["parts"]) >= {"recency", "purchase_value"}
    assert fay["next_milestone"] == "second purchase"
    assert fay["next_action"]["action"] == "second_purchase_nudge"
    assert fay["next_action"]["channel"] == "email"

    # Nothing changed: nothing written, history untouched.
    again = await update_journeys(rt, b.id, now=now)
    assert again.written == 0 and again.changed == []

    # Rita's churn model turns High: at risk, history appended once (a second pass adds nothing).
    await rt.pool.execute(
        "INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band) "
        "VALUES ($1, $2, 'churn', now(), 0.81, 'High')",
        b.id,
        ids["rita"],
    )
    changed = await update_journeys(rt, b.id, [ids["rita"], ids["fay"]], now=now)
    assert changed.changed == [(ids["rita"], "retention", "at_risk")]
    await update_journeys(rt, b.id, [ids["rita"]], now=now)
    rita = await rt.pool.fetchrow(
        "SELECT stage, history, next_milestone, next_action, stage_since FROM journeys "
        "WHERE brand_id = $1 AND profile_id = $2",
        b.id,
        ids["rita"],
    )
    assert rita["stage"] == "at_risk" and rita["next_milestone"] == "at risk of churn"
    assert [(h["from"], h["stage"]) for h in rita["history"]] == [
        (None, "retention"),
        ("retention", "at_risk"),
    ]
    assert "churn risk High (81%)" in rita["history"][-1]["reason"]
    assert rita["next_action"]["action"] == "win_back_offer"
    assert rita["stage_since"] == now

    # Fay buys again: first purchase -> retention.
    await ingest(rt, b, [_ev("fay-2", now - timedelta(hours=1), email="fay@example-shop.co.uk")])
    later = await update_journeys(rt, b.id, [ids["fay"]], now=now)
    assert later.changed == [(ids["fay"], "first_purchase", "retention")]
