"""Fixtures for the Slack and Gorgias surfaces: fake Slack and Gorgias APIs (HTTP servers in
threads), the app configured to talk to them, and the generated MCP dataset (brand A, with
predictions) as the data the real assistant answers from (offline mode: no Anthropic key)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from pydantic import SecretStr

from assistant import surfaces_repo
from core import brands
from tests.mcp_server.conftest import Dataset, dataset  # noqa: F401 (the session fixture)
from tests.surfaces.fake_gorgias import FakeGorgias, GorgiasWorld
from tests.surfaces.fake_slack import FakeSlack

SIGNING_SECRET = "slack-app-signing-secret-0123456789"
_ids = itertools.count(int(time.time()) % 100_000 * 1000)


def sign(body: bytes, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature over the raw body."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def next_id() -> int:
    return next(_ids)


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlack]:
    fs = FakeSlack()
    yield fs
    fs.stop()


@pytest.fixture(scope="session")
def fake_gorgias() -> Iterator[FakeGorgias]:
    fg = FakeGorgias()
    yield fg
    fg.stop()


@pytest.fixture
async def surface_app(rt: Any, fake_slack: FakeSlack, fake_gorgias: FakeGorgias) -> Any:
    from app.main import create_app
    from assistant.routes import surfaces_of

    assert rt.settings.anthropic_api_key is None  # the real agent, in offline mode
    settings = rt.settings.model_copy(
        update={
            "slack_api_base": fake_slack.api_base,
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "gorgias_base_url": fake_gorgias.url,
            # The shared budget is tested on its own; here it must not slow the tests down.
            "gorgias_rate_limit": 10_000,
            "gorgias_max_retry_after_s": 5.0,
        }
    )
    app = create_app(settings, runtime=dataclasses.replace(rt, settings=settings))
    yield app
    if getattr(app.state, "assistant_surfaces", None) is not None:
        await surfaces_of(app).aclose()


@pytest.fixture
async def sclient(surface_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=surface_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# ---------------------------------------------------------------------------------- Slack


@dataclass
class Workspace:
    team_id: str
    token: str
    bot_user_id: str
    brand_id: UUID


@pytest.fixture
async def workspace(rt: Any, dataset: Dataset, fake_slack: FakeSlack) -> Workspace:  # noqa: F811
    """A Slack workspace connected to brand A (app-wide signing secret)."""
    team_id = "T" + secrets.token_hex(5).upper()
    token = "xoxb-" + secrets.token_hex(12)
    ws = Workspace(team_id, token, "U" + secrets.token_hex(4).upper(), dataset.a.id)
    fake_slack.world.tokens[token] = (team_id, "Acme", ws.bot_user_id, "B" + team_id[1:])
    await surfaces_repo.upsert_workspace(
        rt.pool,
        rt.keyring,
        dataset.a.id,
        team_id=team_id,
        team_name="Acme",
        bot_user_id=ws.bot_user_id,
        bot_id="B" + team_id[1:],
        bot_token=token,
        signing_secret=None,
    )
    return ws


# -------------------------------------------------------------------------------- Gorgias


@dataclass
class Customer:
    profile_id: UUID
    email: str
    orders: int
    revenue: float
    last_order_day: str
    churn_band: str
    churn_probability: float
    ltv: float
    segment: str


@dataclass
class Helpdesk:
    """Brand A connected to the fake Gorgias account, and what tests need to drive it."""

    slug: str
    brand_id: UUID
    token: str
    world: GorgiasWorld
    customer: Customer
    other: Customer

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"X-Webhook-Token": self.token if token is None else token}


async def _customers(rt: Any, brand_id: UUID, n: int) -> list[Customer]:
    rows = await rt.pool.fetch(
        """SELECT p.id, p.order_count, p.total_spent::float8 AS spent, p.last_order_at,
                  pi.value_enc, c.band, c.value AS p_churn, l.value AS ltv, s.band AS segment
           FROM profiles p
           JOIN profile_identifiers pi ON pi.brand_id = p.brand_id AND pi.profile_id = p.id
                AND pi.kind = 'email' AND pi.status = 'active'
           JOIN predictions c ON c.brand_id = p.brand_id AND c.profile_id = p.id AND c.kind = 'churn'
           JOIN predictions l ON l.brand_id = p.brand_id AND l.profile_id = p.id AND l.kind = 'ltv'
           JOIN predictions s ON s.brand_id = p.brand_id AND s.profile_id = p.id
                AND s.kind = 'segment'
           WHERE p.brand_id = $1 AND p.merged_into IS NULL AND p.order_count >= 2
           ORDER BY c.value DESC, p.id LIMIT $2""",
        brand_id,
        n,
    )
    crypto = rt.keyring.for_brand(str(brand_id))
    return [
        Customer(
            profile_id=r["id"],
            email=crypto.decrypt_str(r["value_enc"]),
            orders=r["order_count"],
            revenue=r["spent"],
            last_order_day=r["last_order_at"].date().isoformat(),
            churn_band=r["band"],
            churn_probability=r["p_churn"],
            ltv=r["ltv"],
            segment=r["segment"],
        )
        for r in rows
    ]


@pytest.fixture
async def helpdesk(rt: Any, dataset: Dataset, fake_gorgias: FakeGorgias) -> Helpdesk:  # noqa: F811
    world = fake_gorgias.world
    token = secrets.token_urlsafe(24)
    await surfaces_repo.upsert_gorgias(
        rt.pool,
        rt.keyring,
        dataset.a.id,
        base_url=fake_gorgias.url,
        api_email=world.email,
        api_key=world.api_key,
    )
    async with rt.pool.acquire() as conn:
        await brands.add_secret(conn, rt.keyring, dataset.a.id, "gorgias", token, replace=True)
    world.rate_limit_next = 0
    customer, other = await _customers(rt, dataset.a.id, 2)
    return Helpdesk(dataset.a.slug, dataset.a.id, token, world, customer, other)


def ticket(
    tid: int,
    email: str,
    *,
    status: str = "open",
    spam: bool = False,
    tags: tuple[str, ...] = (),
    channel: str = "email",
    subject: str = "Where is my order?",
    phone: str | None = None,
) -> dict[str, Any]:
    channels = [{"type": "email", "address": email}] if email else []
    if phone:
        channels.append({"type": "phone", "address": phone})
    return {
        "id": tid,
        "status": status,
        "spam": spam,
        "channel": channel,
        "via": channel,
        "subject": subject,
        "tags": [{"id": i + 1, "name": t} for i, t in enumerate(tags)],
        "customer": {
            "id": tid + 7,
            "email": email,
            "name": "Ticket Customer",
            "channels": channels,
        },
    }


def message(
    mid: int,
    text: str,
    *,
    channel: str = "email",
    from_agent: bool = False,
    via: str | None = None,
    subject: str | None = None,
    sender: str = "customer@example.com",
    public: bool = True,
    minute: int = 0,
) -> dict[str, Any]:
    return {
        "id": mid,
        "channel": channel,
        "via": via or channel,
        "from_agent": from_agent,
        "public": public,
        "subject": subject,
        "body_text": text,
        "stripped_text": text,
        "sender": {"email": sender},
        "source": {"type": channel, "from": {"address": sender}},
        "created_datetime": f"2026-01-01T10:{minute:02d}:00+00:00",
    }


def webhook_body(ticket_id: int, **extra: Any) -> bytes:
    return orjson.dumps({"ticket_id": str(ticket_id), "event": "ticket-message-created", **extra})
