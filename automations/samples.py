"""The demo's two sample automations, installed enabled and in dry run (nothing is sent; runs
record what would have been):

1. Cart abandonment on WhatsApp: a cart or checkout with no purchase within an hour gets a
   WhatsApp template reminder.
2. Win-back email for high-value at-risk customers: churn probability crossing 0.66 (High),
   for people with at least 200 of lifetime spend, gets a personal email.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from automations import service
from automations.models import AutomationSpec

SAMPLES: list[dict[str, Any]] = [
    {
        "name": "Cart abandonment (WhatsApp)",
        "description": "Reminds people who added to cart or started checkout and did not buy "
        "within an hour. WhatsApp template with the cart's items.",
        "trigger": {"type": "cart_abandoned", "window_minutes": 60, "max_age_hours": 48},
        "conditions": [],
        "action": {
            "type": "whatsapp",
            # A placeholder Content SID: set the brand's approved template before going live.
            "content_sid": "HX" + "0" * 32,
            "variables": {"1": "{first_name}", "2": "{cart_items}"},
            "body": "Hi {first_name}, you left {cart_items} in your basket. Reply STOP to opt out.",
            "from": "whatsapp:+14155238886",
        },
        "settings": {"cooldown_hours": 24, "quiet_hours": True},
        "enabled": True,
        "dry_run": True,
    },
    {
        "name": "Win-back email for high-value at-risk customers",
        "description": "Churn risk crossing High for customers with 200+ lifetime spend: a "
        "personal email with a recommendation.",
        "trigger": {"type": "churn_threshold", "threshold": 0.66, "include_existing": True},
        "conditions": [{"field": "total_spent", "op": ">=", "value": 200}],
        "action": {
            "type": "email",
            "subject": "{first_name}, we saved something for you",
            "body": "Hi {first_name},\n\nIt has been a while. As one of our best customers, "
            "here is 15% off your next order. You might like {recommendation}.\n\n"
            "{brand_name}",
        },
        "settings": {"cooldown_hours": 24 * 30, "quiet_hours": True},
        "enabled": True,
        "dry_run": True,
    },
]


async def install_samples(rt: Any, brand_id: UUID) -> list[UUID]:
    """Create the sample automations for a brand if it does not have them (by name); returns
    their ids. Safe to call on every `cbrain demo`."""
    ids = []
    async with rt.pool.acquire() as conn:
        for sample in SAMPLES:
            found = await service.by_name(conn, brand_id, sample["name"])
            if found is None:
                found, _ = await service.create(
                    conn, rt.keyring, brand_id, AutomationSpec.model_validate(sample)
                )
            ids.append(found.id)
    return ids
