"""The Slack surface: a slack-bolt AsyncApp behind FastAPI at /slack/events.

One URL takes events (app mentions, direct messages) and slash commands (`/churn-check`,
`/segment-info`, `/forecast`, `/ask`). Many workspaces share the app; each is connected to
one brand (`cbrain slack connect`) with its bot token, so the brand is decided by the
verified workspace id, never by anything in a message.

Signatures are verified before Bolt sees the request, with the workspace's own signing secret
(a brand that runs its own Slack app) or the app-wide SLACK_SIGNING_SECRET (one app installed
in many workspaces); Bolt's built-in check is switched off because it knows only one secret.
The same `slack_sdk` SignatureVerifier does the work: v0 HMAC-SHA256 over the raw body and a
300 s replay window.

Slack resends an event that was not acknowledged within 3 s (`X-Slack-Retry-Num`); events are
deduplicated on `event_id` with a brand-scoped Redis key before any listener runs. Events are
acknowledged at once and answered in the background; slash commands ack with a short text and
the answer arrives from a lazy listener through `response_url`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import Request
from fastapi.responses import Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from assistant import surfaces_repo as repo
from assistant.blocks import render
from assistant.types import Answer, AskContext
from core.errors import Unauthorized
from core.logging import get_logger
from core.redis import brand_key
from core.runtime import Runtime
from core.settings import Settings

Ask = Callable[[str, AskContext], Awaitable[Answer]]

_log = get_logger("cbrain.slack")
EVENT_DEDUPE_TTL_S = 3600  # Slack's last retry comes about 5 minutes after the first try
NOT_CONNECTED = (
    "This Slack workspace is not connected to Customer Brain yet. An admin can connect it "
    "with `cbrain slack connect <brand> --bot-token …`."
)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_SPECIAL = re.compile(r"<!(?:here|channel|everyone)(?:\|[^>]*)?>")
_LABELLED = re.compile(r"<(?:mailto:|tel:|https?://|#)[^|>]*\|([^>]*)>")
_BARE = re.compile(r"<(?:mailto:|tel:)([^|>]+)>")

COMMANDS: dict[str, str] = {
    "/churn-check": "Churn check",
    "/segment-info": "Segment info",
    "/forecast": "Forecast",
    "/ask": "Customer Brain",
}
USAGE = {
    "/churn-check": "Usage: `/churn-check <email, phone or customer_ref>`",
    "/segment-info": "Usage: `/segment-info <segment name>` (empty for all segments)",
    "/forecast": "Usage: `/forecast <metric> <period>`, e.g. `/forecast revenue next 30 days`",
    "/ask": "Usage: `/ask <question about your customers>`",
}


def plain_text(text: str) -> str:
    """Slack's markup unwrapped: mentions and @here removed, mailto/tel/links to their label."""
    text = _MENTION.sub("", text)
    text = _SPECIAL.sub("", text)
    text = _LABELLED.sub(lambda m: m.group(1), text)
    text = _BARE.sub(lambda m: m.group(1), text)
    return re.sub(r"\s+", " ", text).strip()


def command_question(command: str, arg: str) -> str | None:
    """The question a slash command asks the assistant; None when the argument is missing."""
    arg = plain_text(arg)
    if command == "/churn-check":
        return f"What is the churn risk of customer {arg}, and what should we do?" if arg else None
    if command == "/segment-info":
        if not arg:
            return "Give me an overview of our customer segments: size, value and churn risk."
        return f"Tell me about the {arg} segment: how many customers, their value and churn risk."
    if command == "/forecast":
        metric, _, period = arg.partition(" ")
        return f"Forecast {metric or 'revenue'} for {period.strip() or 'the next 30 days'}."
    if command == "/ask":
        return arg or None
    return None


def team_of(body: bytes, content_type: str) -> str | None:
    """The workspace a request claims to come from (checked by its signature afterwards)."""
    try:
        if "application/json" in content_type:
            data = orjson.loads(body)
            return data.get("team_id") if isinstance(data, dict) else None
        form = parse_qs(body.decode(), keep_blank_values=True)
        if "payload" in form:  # interactivity
            payload = orjson.loads(form["payload"][0])
            team = payload.get("team") or {}
            return team.get("id") or (payload.get("user") or {}).get("team_id")
        teams = form.get("team_id") or []
        return teams[0] if teams else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def _is_url_verification(body: bytes) -> bool:
    return body.startswith(b"{") and b'"url_verification"' in body


class SlackSurface:
    """The Bolt app and its listeners for every connected workspace."""

    def __init__(self, rt: Runtime, settings: Settings, ask: Ask) -> None:
        self.rt = rt
        self.settings = settings
        self._ask = ask
        # Bolt injects arguments by parameter name (and counts `self` of a bound method as
        # one), so it gets plain functions that delegate.

        async def authorize(enterprise_id: str | None, team_id: str | None, context: Any) -> Any:
            return await self._authorize(enterprise_id, team_id, context)

        async def dedupe(body: dict, context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
            return await self._dedupe(body, context, next)

        async def on_mention(event: dict, context: Any, say: Any) -> None:
            await self._on_mention(event, context, say)

        async def on_message(event: dict, context: Any, say: Any) -> None:
            await self._on_message(event, context, say)

        async def ack_command(ack: Any, command: dict) -> None:
            await self._ack_command(ack, command)

        async def run_command(command: dict, context: Any, respond: Any) -> None:
            await self._run_command(command, context, respond)

        self.bolt = AsyncApp(
            name="customer-brain",
            client=AsyncWebClient(base_url=settings.slack_api_base, timeout=10),
            authorize=authorize,
            request_verification_enabled=False,
            user_facing_authorize_error_message=NOT_CONNECTED,
        )
        self.handler = AsyncSlackRequestHandler(self.bolt)
        self.bolt.middleware(dedupe)
        self.bolt.event("app_mention")(on_mention)
        self.bolt.event("message")(on_message)
        for name in COMMANDS:
            self.bolt.command(name)(ack=ack_command, lazy=[run_command])

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        team_id = team_of(body, request.headers.get("content-type", ""))
        workspace = (
            await repo.workspace(self.rt.pool, self.rt.keyring, team_id) if team_id else None
        )
        await self._verify(request, body, team_id, workspace)
        return await self.handler.handle(request, {"cbrain_workspace": workspace})

    async def _verify(
        self, request: Request, body: bytes, team_id: str | None, ws: repo.Workspace | None
    ) -> None:
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not timestamp or not signature:
            raise Unauthorized("missing Slack signature headers")
        secrets: list[str] = []
        if ws is not None and ws.signing_secret:
            secrets.append(ws.signing_secret)
        if self.settings.slack_signing_secret is not None:
            secrets.append(self.settings.slack_signing_secret.get_secret_value())
        if team_id is None and _is_url_verification(body):
            # Setting the Request URL of a brand's own app: the challenge names no workspace.
            secrets += await repo.workspace_signing_secrets(self.rt.pool, self.rt.keyring)
        for secret in secrets:
            if SignatureVerifier(secret).is_valid(body, timestamp, signature):
                return
        raise Unauthorized("Slack signature could not be verified")

    # -- Bolt middleware -------------------------------------------------------------------

    async def _authorize(self, enterprise_id: str | None, team_id: str | None, context: Any) -> Any:
        ws: repo.Workspace | None = context.get("cbrain_workspace")
        if ws is None or ws.team_id != team_id:
            return None
        context["cbrain_brand_id"] = ws.brand_id
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=ws.team_id,
            team=ws.team_name or None,
            bot_user_id=ws.bot_user_id,
            bot_id=ws.bot_id or None,
            bot_token=ws.bot_token,
        )

    async def _dedupe(self, body: dict, context: Any, proceed: Callable[[], Awaitable[Any]]) -> Any:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        brand_id = context.get("cbrain_brand_id")
        if event_id and brand_id:
            key = brand_key(str(brand_id), "slack", "event", str(event_id)[:100])
            try:
                fresh = await self.rt.redis.set(key, b"1", nx=True, ex=EVENT_DEDUPE_TTL_S)
            except Exception as exc:  # Redis down: answering twice beats not answering
                _log.warning("slack.dedupe_unavailable", error=type(exc).__name__)
                fresh = True
            if not fresh:
                _log.info("slack.retry_ignored", brand=str(brand_id), event_id=event_id)
                return BoltResponse(status=200, body="")
        return await proceed()

    # -- listeners -------------------------------------------------------------------------

    async def _answer(self, question: str, ctx: AskContext) -> Answer:
        try:
            return await self._ask(question, ctx)
        except Exception as exc:
            _log.exception("slack.ask_failed", brand=str(ctx.brand_id), error=type(exc).__name__)
            return Answer(
                text="Sorry, I could not answer that just now. Please try again in a minute.",
                stop_reason="error",
            )

    async def _on_mention(self, event: dict, context: Any, say: Any) -> None:
        thread_ts = event.get("thread_ts") or event["ts"]
        question = plain_text(event.get("text") or "")
        if not question:
            await say(
                text="Ask me about your customers, e.g. “which VIPs are at risk?”",
                thread_ts=thread_ts,
            )
            return
        ctx = AskContext(
            brand_id=context["cbrain_brand_id"],
            surface="slack",
            conversation_id=f"slack:{context.team_id}:{event['channel']}:{thread_ts}",
        )
        blocks, text = render(await self._answer(question, ctx))
        await say(text=text, blocks=blocks, thread_ts=thread_ts)

    async def _on_message(self, event: dict, context: Any, say: Any) -> None:
        # Direct messages only; edits, joins and other bots' (and our own) posts are ignored.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        question = plain_text(event.get("text") or "")
        if not question:
            return
        thread_ts = event.get("thread_ts")
        conversation = f"slack:{context.team_id}:{event['channel']}"
        ctx = AskContext(
            brand_id=context["cbrain_brand_id"],
            surface="slack",
            conversation_id=f"{conversation}:{thread_ts}" if thread_ts else conversation,
        )
        blocks, text = render(await self._answer(question, ctx))
        await say(text=text, blocks=blocks, thread_ts=thread_ts)

    async def _ack_command(self, ack: Any, command: dict) -> None:
        name = command.get("command", "")
        question = command_question(name, command.get("text") or "")
        if question is None:
            await ack(text=USAGE.get(name, "Unknown command"), response_type="ephemeral")
            return
        arg = plain_text(command.get("text") or "")
        await ack(
            text=f"{COMMANDS[name]}: working on it{f' ({arg[:80]})' if arg else ''}…",
            response_type="ephemeral",
        )

    async def _run_command(self, command: dict, context: Any, respond: Any) -> None:
        name = command.get("command", "")
        question = command_question(name, command.get("text") or "")
        if question is None:
            return
        ctx = AskContext(brand_id=context["cbrain_brand_id"], surface="slack")
        answer = await self._answer(question, ctx)
        arg = plain_text(command.get("text") or "")
        title = f"{COMMANDS[name]}: {arg}" if arg and name != "/ask" else COMMANDS[name]
        blocks, text = render(answer, title=title)
        await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
