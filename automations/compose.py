"""Building one run's message: the template context, the recipient, the provider payload.

Personal values (the address, the first name) are read here, used for the send, and never
written to the run's record: the record keeps the masked address and the template with
personal placeholders left unfilled.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from automations import repo
from automations.actions import PII_FIELDS, Outgoing, PermanentSendError, render
from automations.config import AutomationSettings
from automations.models import Automation
from core import brands
from core.brands import Brand
from core.crypto import BrandCrypto


class Unreachable(Exception):
    """The person cannot be reached on this channel (no address on record)."""


@dataclass
class Person:
    """What composing needs about the person beyond the facts: sealed traits opened."""

    traits: dict[str, Any]

    @property
    def timezone(self) -> str | None:
        tz = self.traits.get("timezone")
        return str(tz) if tz else None


async def person(conn: Any, crypto: BrandCrypto, brand_id: UUID, profile_id: UUID) -> Person:
    sealed = await conn.fetchval(repo.TRAITS, brand_id, profile_id)
    traits = orjson.loads(crypto.decrypt(sealed)) if sealed else {}
    return Person(traits if isinstance(traits, dict) else {})


async def context(
    conn: Any,
    brand: Brand,
    automation: Automation,
    run: dict[str, Any],
    live_id: UUID,
    facts: dict[str, Any],
    who: Person,
) -> dict[str, Any]:
    """Template values: `{first_name}`, `{brand_name}`, `{cart_items}`, `{cart_total}`,
    `{product}`, `{recommendation}`, `{segment}`, `{journey_stage}`, `{total_spent}`, ..."""
    ctx: dict[str, Any] = {
        "brand_name": brand.name,
        "profile_id": str(live_id),
        "first_name": who.traits.get("first_name") or "there",
        "trigger_reason": run["trigger_reason"],
        "total_spent": f"{float(facts.get('total_spent') or 0):.2f}",
        "order_count": facts.get("order_count"),
        "segment": facts.get("segment"),
        "journey_stage": (facts.get("journey_stage") or "").replace("_", " ") or None,
        "churn": None if facts.get("churn") is None else f"{facts['churn']:.0%}",
    }
    details = run.get("details") or {}
    if automation.trigger_type == "cart_abandoned" and details.get("anchor_at"):
        anchor = datetime.fromisoformat(details["anchor_at"])
        names: list[str] = []
        total = None
        currency = None
        for e in await conn.fetch(repo.CART_EVENTS, brand.id, live_id, anchor):
            for item in e["items"] or []:
                name = item.get("name") or item.get("product_id") or item.get("sku")
                if name and name not in names:
                    names.append(str(name))
            if e["total"] is not None:
                total, currency = float(e["total"]), e["currency"]
        ctx["cart_items"] = ", ".join(names[:5])
        ctx["cart_total"] = f"{total:.2f} {currency or ''}".strip() if total is not None else ""
    if automation.trigger_type == "product_intent":
        ctx["product"] = details.get("item_name") or details.get("item_key")
    recs = await conn.fetchval(repo.RECOMMENDATIONS, brand.id, live_id)
    items = (recs or {}).get("items") or []
    if items:
        ctx["recommendation"] = items[0].get("name") or items[0].get("product_id")
    return ctx


async def outgoing(
    conn: Any,
    keyring: Any,
    settings: AutomationSettings,
    brand: Brand,
    automation: Automation,
    run: dict[str, Any],
    live_id: UUID,
    facts: dict[str, Any],
    ctx: dict[str, Any],
    now: datetime,
) -> Outgoing:
    """The message for this run. Raises `Unreachable` (no address: the run is skipped) or
    `PermanentSendError` (the brand's configuration is missing something: failed)."""
    a = automation.action
    crypto = keyring.for_brand(str(brand.id))
    key = run["idempotency_key"]
    cfg = (brand.settings or {}).get("automations") or {}
    channel = a["type"]
    if channel == "whatsapp":
        number, masked = await _contact(conn, crypto, brand.id, live_id, "phone")
        sender = (
            a.get("from") or cfg.get("whatsapp_from") or brand.settings.get("twilio_whatsapp_from")
        )
        if not sender:
            raise PermanentSendError(
                "no WhatsApp sender: set the action's 'from' or brand settings automations.whatsapp_from"
            )
        sender = sender if str(sender).startswith("whatsapp:") else f"whatsapp:{sender}"
        variables = {k: render(v, ctx) for k, v in (a.get("variables") or {}).items()}
        payload = {
            "from": sender,
            "content_sid": a.get("content_sid"),
            "content_variables": variables,
            "body": render(a.get("body"), ctx),
        }
        record = {
            **payload,
            "to": masked,
            "content_variables": {
                k: render(v, ctx, keep=PII_FIELDS) for k, v in (a.get("variables") or {}).items()
            },
            "body": render(a.get("body"), ctx, keep=PII_FIELDS),
        }
        secrets = await brands.secrets_for(conn, keyring, brand.id, "twilio")
        token = (
            secrets[0]
            if secrets
            else (
                settings.twilio_auth_token.get_secret_value()
                if settings.twilio_auth_token
                else None
            )
        )
        creds = {
            "account_sid": brand.settings.get("twilio_account_sid") or settings.twilio_account_sid,
            "auth_token": token,
        }
        return Outgoing("whatsapp", key, f"whatsapp:{number}", payload, record, creds)
    if channel == "email":
        address, masked = await _contact(conn, crypto, brand.id, live_id, "email")
        payload = {
            "from": a.get("from") or cfg.get("email_from"),
            "subject": render(a["subject"], ctx),
            "body": render(a["body"], ctx),
        }
        record = {
            **payload,
            "to": masked,
            "subject": render(a["subject"], ctx, keep=PII_FIELDS),
            "body": render(a["body"], ctx, keep=PII_FIELDS),
        }
        return Outgoing("email", key, address, payload, record)
    if channel == "webhook":
        body = {
            "id": key,
            "type": "automation.run",
            "run_id": str(run["id"]),
            "automation": {"id": str(automation.id), "name": automation.name},
            "trigger": {"type": automation.trigger_type, "reason": run["trigger_reason"]},
            "profile": {
                "id": str(live_id),
                **{
                    k: facts.get(k)
                    for k in (
                        "total_spent",
                        "order_count",
                        "churn",
                        "churn_band",
                        "ltv",
                        "segment",
                        "journey_stage",
                        "tags",
                    )
                },
            },
            "details": run.get("details") or {},
            "occurred_at": now.isoformat(),
        }
        secret = crypto.decrypt_str(base64.b64decode(a["secret_sealed"]))
        payload = {"body": body, "timestamp": int(now.timestamp())}
        record = {"url": a["url"], "body": body}
        return Outgoing("webhook", key, a["url"], payload, record, {"secret": secret})
    if channel == "slack":
        payload = {"channel": a["channel"], "text": render(a["text"], ctx)}
        record = {"channel": a["channel"], "text": render(a["text"], ctx, keep=PII_FIELDS)}
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        return Outgoing("slack", key, a["channel"], payload, record, {"token": token})
    if channel == "tag":
        payload = {"add": a.get("add") or [], "remove": a.get("remove") or []}
        return Outgoing("tag", key, str(live_id), payload, dict(payload))
    raise PermanentSendError(f"unknown action type {channel!r}")


async def _contact(
    conn: asyncpg.Connection, crypto: BrandCrypto, brand_id: UUID, profile_id: UUID, kind: str
) -> tuple[str, str]:
    rows = await conn.fetch(repo.CONTACTS, brand_id, profile_id, [kind])
    if not rows:
        label = "WhatsApp/phone number" if kind == "phone" else "email address"
        raise Unreachable(f"no {label} on record")
    return crypto.decrypt_str(rows[0]["value_enc"]), rows[0]["masked"]
