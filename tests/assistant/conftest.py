"""Fixtures for the assistant: the MCP tests' generated, predicted dataset (reused), a fake
Messages API, and assistants online (pointed at the fake) and offline (no key)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr

from assistant.agent import Assistant
from tests.assistant.fake_anthropic import FakeAnthropic
from tests.mcp_server.conftest import dataset  # noqa: F401  (session fixture, reused)


@dataclass
class Person:
    id: UUID
    email: str | None
    phone: str | None

    @property
    def ref(self) -> str:
        return str(self.id)


async def people(rt: Any, brand_id: UUID, n: int = 3) -> list[Person]:
    """Live buyers of a brand with an email (and a phone when they have one), in clear."""
    rows = await rt.pool.fetch(
        """SELECT p.id,
                  (SELECT value_enc FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                     AND i.profile_id = p.id AND i.kind = 'email' AND i.status = 'active'
                     LIMIT 1) AS email,
                  (SELECT value_enc FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                     AND i.profile_id = p.id AND i.kind = 'phone' AND i.status = 'active'
                     LIMIT 1) AS phone
           FROM profiles p
           WHERE p.brand_id = $1 AND p.merged_into IS NULL AND p.order_count >= 2
             AND p.event_count < 200
             AND EXISTS (SELECT 1 FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                         AND i.profile_id = p.id AND i.kind = 'email' AND i.status = 'active')
           ORDER BY (SELECT count(*) FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                     AND i.profile_id = p.id AND i.kind = 'phone') DESC, p.order_count DESC, p.id
           LIMIT $2""",
        brand_id,
        n,
    )
    crypto = rt.keyring.for_brand(str(brand_id))
    return [
        Person(
            r["id"],
            crypto.decrypt_str(r["email"]) if r["email"] else None,
            crypto.decrypt_str(r["phone"]) if r["phone"] else None,
        )
        for r in rows
    ]


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def online_settings(rt: Any, fake: FakeAnthropic, **budget: Any) -> Any:
    return rt.settings.model_copy(
        update={
            "anthropic_api_key": SecretStr(fake.api_key),
            "anthropic_base_url": fake.url,
            "assistant_max_retries": 2,
            "assistant_request_timeout_s": 10.0,
            **budget,
        }
    )


@pytest.fixture
async def claude(rt: Any, fake: FakeAnthropic) -> AsyncIterator[Assistant]:
    """An assistant talking to the fake Messages API (script it with `fake.play`)."""
    fake.play()
    async with Assistant(rt, settings=online_settings(rt, fake)) as a:
        yield a


@pytest.fixture
async def offline(rt: Any) -> AsyncIterator[Assistant]:
    async with Assistant(
        rt, settings=rt.settings.model_copy(update={"anthropic_api_key": None})
    ) as a:
        assert not a.online
        yield a


@pytest.fixture
async def victims(rt: Any, dataset: Any) -> list[Person]:  # noqa: F811
    """Three customers of brand A: [0] is the one tickets are about, [1:] are others."""
    found = await people(rt, dataset.a.id, 3)
    assert len(found) == 3
    return found
