"""HTTP entry points of the assistant's surfaces, included by app/main.py:

    POST /slack/events                      Slack events, slash commands (signed by Slack)
    POST /integrations/gorgias/webhook      Gorgias HTTP integration (brand + secret token)

The surfaces and the agent they share are built on first use (or by the app's lifespan) and
closed with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from assistant.gorgias_app import GorgiasSurface
from assistant.slack_app import SlackSurface
from assistant.types import Answer, AskContext
from core.runtime import Runtime
from core.web import read_body

router = APIRouter(tags=["assistant"])
SLACK_BODY_LIMIT = 1024 * 1024


class Surfaces:
    """Slack and Gorgias over one agent."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self._assistant: Any = None
        self.slack = SlackSurface(rt, self.settings, self.ask)
        self.gorgias = GorgiasSurface(rt, self.settings, self.ask)

    @property
    def assistant(self) -> Any:
        if self._assistant is None:
            from assistant.agent import Assistant

            self._assistant = Assistant(self.rt, settings=self.settings)
        return self._assistant

    async def ask(self, question: str, ctx: AskContext) -> Answer:
        return await self.assistant.ask(question, ctx)

    async def aclose(self) -> None:
        await self.gorgias.aclose()
        if self._assistant is not None:
            await self._assistant.aclose()


def surfaces_of(app: Any) -> Surfaces:
    found = getattr(app.state, "assistant_surfaces", None)
    if found is None:
        found = Surfaces(app.state.rt)
        app.state.assistant_surfaces = found
    return found


@router.post("/slack/events", include_in_schema=False)
async def slack_events(request: Request) -> Response:
    """Events API, slash commands and interactivity: one Request URL for the Slack app."""
    # The limit holds for chunked bodies too; Starlette then serves the read body to Bolt.
    request._body = await read_body(request, SLACK_BODY_LIMIT)
    return await surfaces_of(request.app).slack.handle(request)


@router.post("/integrations/gorgias/webhook", status_code=202)
async def gorgias_webhook(request: Request) -> Response:
    """Gorgias HTTP integration: `?brand=<slug>`, header `X-Webhook-Token`, body
    `{"ticket_id": "{{ticket.id}}"}`. Answers 202 at once; the internal note follows."""
    return await surfaces_of(request.app).gorgias.webhook(request)


def include(app: FastAPI) -> None:
    app.include_router(router)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the Gorgias sweeper for the app's lifetime; close the surfaces and agent after."""
    surfaces = surfaces_of(app)
    sweeper = asyncio.create_task(surfaces.gorgias.run_sweeper())
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await surfaces.aclose()
        app.state.assistant_surfaces = None
