"""Fixtures for the automation tests: the fakes (started once), automation settings pointing
at them, and a brand ready to send (Twilio account, sender number, quiet hours known)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from automations import service
from automations.config import AutomationSettings
from automations.models import Automation, AutomationSpec
from automations.scheduler import evaluate_once
from core import brands
from tests.automations.fakes import Fakes, FakeSet
from tests.conftest import TestBrand, make_brand
from tests.identity.streaming_helpers import ingest


@pytest.fixture(scope="session")
def fake_set() -> Iterator[FakeSet]:
    fs = FakeSet()
    yield fs
    fs.stop()


@pytest.fixture
def fakes(fake_set: FakeSet) -> Iterator[Fakes]:
    fake_set.fakes.reset()
    yield fake_set.fakes
    fake_set.fakes.reset()


@pytest.fixture
def auto_settings(fakes: Fakes) -> AutomationSettings:
    return AutomationSettings(
        smtp_host="127.0.0.1",
        smtp_port=fakes.smtp_port,
        smtp_security="none",
        smtp_from="Shop <hello@shop.example>",
        twilio_api_base=fakes.twilio_url,
        slack_api_base=fakes.slack_url,
        slack_bot_token="xoxb-test-token",
        send_timeout_s=5,
        send_attempts=3,
        send_backoff_s=0.01,
        run_backoff_s=60,
    )


def base_time() -> datetime:
    """A recent noon UTC: daytime in London, so quiet hours are not in the way unless a test
    wants them; in the past, so events at it are ordinary history."""
    now = datetime.now(UTC)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    return noon if noon < now - timedelta(minutes=5) else noon - timedelta(days=1)


async def sending_brand(rt: Any, fakes: Fakes, **automation_policy: Any) -> TestBrand:
    policy = {"timezone": "Europe/London", "whatsapp_from": "+14155238886", **automation_policy}
    b = await make_brand(
        rt,
        "auto",
        {"default_region": "GB", "twilio_account_sid": fakes.account_sid, "automations": policy},
    )
    async with rt.pool.acquire() as conn:
        await brands.add_secret(conn, rt.keyring, b.id, "twilio", fakes.auth_token)
    return b


@pytest.fixture
async def sbrand(rt: Any, fakes: Fakes) -> TestBrand:
    return await sending_brand(rt, fakes)


def event(
    event_id: str,
    at: datetime,
    type: str = "cart_add",
    *,
    phone: str | None = "+447700900123",
    email: str | None = None,
    first: str = "Ada",
    traits: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ids = {k: v for k, v in (("phone", phone), ("email", email)) if v}
    props = properties
    if props is None:
        item = {"product_id": "sku-1", "name": "Linen shirt", "category": "shirts", "price": 45.0}
        props = {"items": [item]}
        if type == "purchase":
            props = {"order_id": event_id, "total": 45.0, "currency": "GBP", "items": [item]}
    return {
        "event_id": event_id,
        "source": "web" if type != "purchase" else "shopify",
        "type": type,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "identifiers": ids,
        "traits": {"first_name": first, **(traits or {})},
        "properties": props,
    }


async def send(rt: Any, b: TestBrand, *events: dict[str, Any]) -> None:
    await ingest(rt, b, list(events))


async def profile_of(rt: Any, b: TestBrand, event_id: str) -> UUID:
    pid = await rt.pool.fetchval(
        "SELECT coalesce(p.merged_into, p.id) FROM events e JOIN profiles p "
        "ON p.brand_id = e.brand_id AND p.id = e.profile_id "
        "WHERE e.brand_id = $1 AND e.event_id = $2",
        b.id,
        event_id,
    )
    assert pid is not None
    return pid


async def create(rt: Any, b: TestBrand, spec: dict[str, Any]) -> Automation:
    body = {"enabled": True, "dry_run": False, **spec}
    async with rt.pool.acquire() as conn:
        automation, _ = await service.create(
            conn, rt.keyring, b.id, AutomationSpec.model_validate(body)
        )
    return automation


async def runs(rt: Any, b: TestBrand, automation_id: UUID | None = None) -> list[dict[str, Any]]:
    rows = await rt.pool.fetch(
        "SELECT * FROM automation_runs WHERE brand_id = $1 "
        "AND ($2::uuid IS NULL OR automation_id = $2) ORDER BY created_at, id",
        b.id,
        automation_id,
    )
    return [dict(r) for r in rows]


async def tick(rt: Any, b: TestBrand, now: datetime, settings: AutomationSettings) -> dict:
    """One runner pass for the brand at `now`, with a fresh runner (as after a restart)."""
    return await evaluate_once(rt, b.id, now=now, settings=settings)


async def set_prediction(
    rt: Any, b: TestBrand, pid: UUID, kind: str, value: float | None, band: str | None
) -> None:
    """Write a prediction row the way ML does (docs/predictions-contract.md)."""
    await rt.pool.execute(
        "INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band, details) "
        "VALUES ($1, $2, $3, now(), $4, $5, '{}'::jsonb) "
        "ON CONFLICT (brand_id, profile_id, kind) DO UPDATE SET value = $4, band = $5, "
        "as_of = now(), created_at = now()",
        b.id,
        pid,
        kind,
        value,
        band,
    )
