"""What the API and the CLI share: create, read, change and dry-test automations.

Functions take a connection and the brand; the caller's scope commits (a request, a CLI
command). Switching an automation on arms its state trigger in the same transaction.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from automations import compose, conditions, repo, safety, triggers
from automations.executor import automation_of
from automations.models import Automation, AutomationPatch, AutomationSpec
from core import brands
from core.errors import Conflict, NotFound, ValidationFailed


def _cursor(row: Any) -> str | None:
    return None if row is None else f"{row['created_at'].isoformat()}|{row['id']}"


def _parse_cursor(cursor: str | None) -> tuple[datetime | None, UUID | None]:
    if not cursor:
        return None, None
    try:
        at, _, rid = cursor.partition("|")
        return datetime.fromisoformat(at), UUID(rid)
    except ValueError:
        raise ValidationFailed(
            "cursor: not a cursor from this list",
            details=[{"field": "cursor", "message": "invalid"}],
        ) from None


async def create(
    conn: asyncpg.Connection, keyring: Any, brand_id: UUID, spec: AutomationSpec
) -> tuple[Automation, str | None]:
    """Store a new automation; a webhook secret is sealed, and when none was given one is
    generated and returned (the only time it is ever shown)."""
    action = spec.action.model_dump(mode="json", by_alias=True, exclude_none=True)
    shown = None
    if action["type"] == "webhook":
        secret = action.pop("secret", None)
        if secret is None:
            secret = shown = secrets.token_urlsafe(32)
        sealed = keyring.for_brand(str(brand_id)).encrypt(secret)
        action["secret_sealed"] = base64.b64encode(sealed).decode()
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                repo.INSERT_AUTOMATION,
                brand_id,
                spec.name,
                spec.description,
                spec.trigger.model_dump(mode="json", by_alias=True),
                [c.model_dump(mode="json") for c in spec.conditions],
                action,
                spec.enabled,
                spec.dry_run,
                spec.settings.model_dump(mode="json"),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an automation named {spec.name!r} already exists") from None
        automation = automation_of(row)
        if automation.enabled:
            await triggers.arm(conn, brand_id, automation)
    return automation, shown


async def get(conn: Any, brand_id: UUID, automation_id: UUID) -> Automation:
    row = await conn.fetchrow(repo.GET_AUTOMATION, brand_id, automation_id)
    if row is None:
        raise NotFound("no such automation")
    return automation_of(row)


async def by_name(conn: Any, brand_id: UUID, name: str) -> Automation | None:
    row = await conn.fetchrow(repo.GET_AUTOMATION_BY_NAME, brand_id, name)
    return None if row is None else automation_of(row)


async def list_page(conn: Any, brand_id: UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    at, rid = _parse_cursor(cursor)
    rows = await conn.fetch(repo.LIST_AUTOMATIONS, brand_id, at, rid, limit + 1)
    page = rows[:limit]
    nxt = _cursor(page[-1]) if len(rows) > limit else None
    return {
        "data": [automation_of(r).public() for r in page],
        "pagination": {"limit": limit, "next_cursor": nxt},
    }


async def update(
    conn: asyncpg.Connection, brand_id: UUID, automation_id: UUID, patch: AutomationPatch
) -> Automation:
    """Change an automation; switching it on (again) arms its state trigger."""
    async with conn.transaction():
        before = await get(conn, brand_id, automation_id)
        try:
            row = await conn.fetchrow(
                repo.UPDATE_AUTOMATION,
                brand_id,
                automation_id,
                patch.name,
                patch.description,
                None
                if patch.conditions is None
                else [c.model_dump(mode="json") for c in patch.conditions],
                None if patch.settings is None else patch.settings.model_dump(mode="json"),
                patch.enabled,
                patch.dry_run,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an automation named {patch.name!r} already exists") from None
        after = automation_of(row)
        if after.enabled and not before.enabled:
            await triggers.arm(conn, brand_id, after)
    return after


async def runs_page(
    conn: Any,
    brand_id: UUID,
    automation_id: UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    await get(conn, brand_id, automation_id)
    at, rid = _parse_cursor(cursor)
    rows = await conn.fetch(repo.LIST_RUNS, brand_id, automation_id, status, at, rid, limit + 1)
    page = rows[:limit]
    nxt = _cursor(page[-1]) if len(rows) > limit else None
    return {"data": [dict(r) for r in page], "pagination": {"limit": limit, "next_cursor": nxt}}


async def dry_test(
    conn: Any, keyring: Any, settings: Any, brand_id: UUID, automation_id: UUID, profile_id: UUID
) -> dict[str, Any]:
    """Evaluate an automation for one person now, writing nothing: would the trigger fire,
    do the conditions hold, what would safety say, and the message that would go out."""
    automation = await get(conn, brand_id, automation_id)
    brand = await brands.get_brand_by_id(conn, brand_id)
    live = (await repo.live_ids(conn, brand_id, [profile_id])).get(profile_id)
    if live is None:
        raise NotFound("no such profile")
    now = datetime.now(UTC)
    m = await triggers.match(conn, brand_id, [automation], [live], now)
    fire = next((f for f in m.fires if f.profile_id == live), None)
    fact_row = await conn.fetchrow(repo.PROFILE_FACTS, brand_id, [live])
    facts = conditions.facts_of(fact_row, now) if fact_row else {}
    policy = safety.Policy.of(brand.settings, automation)
    who = await compose.person(conn, keyring.for_brand(str(brand_id)), brand_id, live)
    out: dict[str, Any] = {
        "automation_id": str(automation.id),
        "profile_id": str(live),
        "trigger": {
            "fires": fire is not None,
            "reason": fire.reason if fire else m.held.get((automation.id, live)),
            "due_at": fire.due_at.isoformat() if fire else None,
        },
        "conditions": {"failed": conditions.failed_conditions(automation, facts)},
        "safety": {},
        "dry_run": automation.dry_run,
    }
    if safety.customer_facing(automation):
        tz = safety.zone(who.timezone, policy.timezone)
        resume = safety.quiet_until(now, tz, policy)
        out["safety"] = {
            "consent": safety.consent_block(automation.channel, facts.get("consent"), policy),
            "quiet_hours_until": resume.isoformat() if resume else None,
            "timezone": str(tz),
        }
    run = {
        "id": UUID(int=0),
        "idempotency_key": "test",
        "trigger_reason": fire.reason if fire else "test",
        "details": fire.details if fire else {},
    }
    ctx = await compose.context(conn, brand, automation, run, live, facts, who)
    try:
        msg = await compose.outgoing(
            conn, keyring, settings, brand, automation, run, live, facts, ctx, now
        )
        out["would_send"] = msg.record
    except (compose.Unreachable, Exception) as exc:  # the preview explains, never fails
        out["would_send"] = None
        out["not_sendable"] = getattr(exc, "message", None) or str(exc)
    return out
