"""The journey rules (private to `ml`): stage, score parts, next milestone and next best action
from one person's facts. Pure functions, so every rule can be tested on hand-made facts.

Facts (one dict per person, built by `ml.journeys`): order_count, total_spent,
first_order_at, last_order_at, last_seen, channels, consent, kinds (identifier kinds),
churn, churn_band, ltv, ltv_band, ltv_details, segment, recs, n90 (events in 90 days),
active_days90, views30, carts30, last_cart_at.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

STAGES = (
    "awareness",
    "consideration",
    "first_purchase",
    "retention",
    "advocacy",
    "at_risk",
    "lapsed",
)
WEIGHTS = {
    "engagement_frequency": 0.30,
    "purchase_value": 0.30,
    "channel_diversity": 0.15,
    "recency": 0.25,
}
_AT_RISK_SEGMENTS = frozenset({"At Risk", "Can't Lose Them", "About to Sleep"})
_LAPSED_SEGMENTS = frozenset({"Lost", "Hibernating"})
_LOYAL_SEGMENTS = frozenset({"Champions", "Loyal"})


@dataclass(frozen=True)
class JourneyConfig:
    """Thresholds; a brand overrides any of them in `brands.settings["journeys"]`."""

    lapsed_days: int = 365
    at_risk_days: int = 120
    advocacy_orders: int = 4
    consideration_views: int = 3
    active_days: int = 60

    @classmethod
    def of(cls, settings: dict[str, Any] | None) -> JourneyConfig:
        raw = (settings or {}).get("journeys") or {}
        known = {k: int(v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _days(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else max(0.0, (now - at).total_seconds() / 86400)


def usual_gap(f: dict[str, Any]) -> float | None:
    """Days between orders: the LTV model's estimate, else the person's own average."""
    gap = (f.get("ltv_details") or {}).get("avg_days_between_orders")
    if gap:
        return float(gap)
    n = f.get("order_count") or 0
    if n >= 2 and f.get("first_order_at") and f.get("last_order_at"):
        return max(
            1.0, (f["last_order_at"] - f["first_order_at"]).total_seconds() / 86400 / (n - 1)
        )
    return None


def stage_of(f: dict[str, Any], now: datetime, cfg: JourneyConfig) -> tuple[str, str]:
    """(stage, why). Predictions lead when present (churn band, RFM segment); behaviour alone
    decides otherwise, so a brand without trained models still gets stages."""
    orders = f.get("order_count") or 0
    if orders == 0:
        if (f.get("carts30") or 0) > 0:
            return "consideration", "added to cart in the last 30 days, no order yet"
        if (f.get("views30") or 0) >= cfg.consideration_views:
            return (
                "consideration",
                f"{f['views30']} product views in the last 30 days, no order yet",
            )
        return "awareness", "known to the brand, no purchase intent shown yet"
    since = _days(now, f.get("last_order_at")) or 0.0
    churn, band, seg = f.get("churn"), f.get("churn_band"), f.get("segment")
    if since > cfg.lapsed_days:
        return "lapsed", f"no order for {since:.0f} days (lapsed after {cfg.lapsed_days})"
    if seg in _LAPSED_SEGMENTS:
        return "lapsed", f"RFM segment {seg}"
    if band == "High" or (churn is not None and churn > 0.66):
        return (
            "at_risk",
            f"churn risk {band or 'High'} ({churn:.0%})"
            if churn is not None
            else "churn risk High",
        )
    if seg in _AT_RISK_SEGMENTS:
        return "at_risk", f"RFM segment {seg}"
    if churn is None:
        gap = usual_gap(f)
        limit = cfg.at_risk_days if gap is None else min(cfg.at_risk_days, max(45.0, 2.5 * gap))
        if since > limit:
            return "at_risk", f"no order for {since:.0f} days (usually every {gap or limit:.0f})"
    if orders >= cfg.advocacy_orders and (
        seg in _LOYAL_SEGMENTS or band == "Low" or (churn is None and since <= cfg.active_days)
    ):
        return "advocacy", f"{orders} orders and still buying" + (f" ({seg})" if seg else "")
    if orders == 1:
        return "first_purchase", "one order so far"
    return "retention", f"{orders} orders, last {since:.0f} days ago"


def percentile(value: float, cuts: list[float]) -> int:
    """0-100 position of `value` among the brand's buyers (cuts at 5 % steps)."""
    if not cuts:
        return 50
    return round(100 * bisect_right(cuts, value) / (len(cuts) + 1))


def parts_of(f: dict[str, Any], now: datetime, spend_cuts: list[float]) -> dict[str, int]:
    """The four parts of the journey score, each 0-100."""
    active = f.get("active_days90") or 0
    engagement = min(100, round(100 * math.log1p(active) / math.log1p(30)))
    value = 0
    if (f.get("order_count") or 0) > 0:
        value = percentile(float(f.get("total_spent") or 0), spend_cuts)
        band = f.get("ltv_band") or ""
        if band.startswith("D") and band[1:].isdigit():
            value = round((value + 10 * int(band[1:])) / 2)
    diversity = min(100, 25 * len(set(f.get("channels") or [])))
    idle = _days(now, f.get("last_seen"))
    recency = 0 if idle is None else round(100 * 0.5 ** (idle / 30))
    return {
        "engagement_frequency": engagement,
        "purchase_value": value,
        "channel_diversity": diversity,
        "recency": recency,
    }


def score_of(parts: dict[str, int]) -> int:
    return max(0, min(100, round(sum(WEIGHTS[k] * v for k, v in parts.items()))))


def _likely_soon(f: dict[str, Any], now: datetime) -> str | None:
    nxt = (f.get("ltv_details") or {}).get("expected_next_order")
    if nxt:
        try:
            when = datetime.fromisoformat(str(nxt))
            when = when if when.tzinfo else when.replace(tzinfo=now.tzinfo)
            if now - timedelta(days=3) <= when <= now + timedelta(days=7):
                return f"next order expected around {when:%Y-%m-%d}"
        except ValueError:
            pass
    cart = f.get("last_cart_at")
    last_order = f.get("last_order_at")
    if cart and now - cart <= timedelta(days=3) and (last_order is None or last_order < cart):
        return "cart activity in the last 3 days without an order"
    gap = usual_gap(f)
    since = _days(now, last_order)
    if (
        gap
        and since is not None
        and (f.get("order_count") or 0) >= 2
        and gap - 7 <= since <= gap + 3
    ):
        return f"usually orders every {gap:.0f} days; last order {since:.0f} days ago"
    return None


def milestone_of(
    stage: str, f: dict[str, Any], parts: dict[str, int], now: datetime
) -> tuple[str | None, str | None]:
    """(next milestone, why)."""
    if stage == "at_risk" or f.get("churn_band") == "High":
        return "at risk of churn", None
    soon = _likely_soon(f, now)
    if soon and stage not in ("lapsed", "awareness"):
        return "likely to buy within 7 days", soon
    if stage in ("retention", "advocacy") and f.get("churn_band") in (None, "Low"):
        band = f.get("ltv_band") or ""
        if band in ("D8", "D9", "D10") or parts["purchase_value"] >= 70:
            return (
                "ready for upsell",
                f"high value ({band or str(parts['purchase_value']) + 'th percentile'}) and low churn risk",
            )
    return {
        "awareness": ("consideration", None),
        "consideration": ("first purchase", None),
        "first_purchase": ("second purchase", None),
        "lapsed": ("win-back", None),
    }.get(stage, (None, None))


def best_channel(f: dict[str, Any]) -> str | None:
    """WhatsApp where the person uses it and has not opted out, else email, else none."""
    kinds = set(f.get("kinds") or [])
    consent = f.get("consent") or {}
    if (
        "phone" in kinds
        and consent.get("whatsapp_consent") is not False
        and "whatsapp" in (f.get("channels") or [])
    ):
        return "whatsapp"
    if "email" in kinds and consent.get("email_consent") is not False:
        return "email"
    if "phone" in kinds and consent.get("whatsapp_consent") is not False:
        return "whatsapp"
    return None


def action_of(stage: str, why: str, milestone: str | None, f: dict[str, Any]) -> dict[str, Any]:
    """The next best action, with its reason and the channel to use."""
    items = (f.get("recs") or {}).get("items") or []
    product = (items[0].get("name") or items[0].get("product_id")) if items else None
    rec = f" (suggest {product})" if product else ""
    if stage == "at_risk":
        action, reason = "win_back_offer", f"{why}; reach out before they lapse"
    elif stage == "lapsed":
        action, reason = "reactivation_campaign", f"{why}; a strong incentive or a 'we miss you'"
    elif stage == "consideration":
        if (f.get("carts30") or 0) > 0:
            action, reason = "cart_reminder", f"{why}; remind them what they left{rec}"
        else:
            action, reason = "recommend_products", f"{why}; show what they looked at{rec}"
    elif stage == "first_purchase":
        action, reason = "second_purchase_nudge", f"{why}; the second order makes a customer{rec}"
    elif stage == "advocacy":
        action, reason = "referral_invite", f"{why}; ask for a review or a referral"
    elif milestone == "ready for upsell":
        action, reason = "upsell", f"high value and low churn risk{rec}"
    elif milestone == "likely to buy within 7 days":
        action, reason = "replenishment_reminder", f"likely to buy within 7 days{rec}"
    elif stage == "retention":
        action, reason = "keep_engaged", f"{why}; keep them buying{rec}"
    else:
        action, reason = "welcome_offer", f"{why}; a first-order incentive"
    out: dict[str, Any] = {"action": action, "reason": reason, "channel": best_channel(f)}
    if product:
        out["product"] = product
    return out
