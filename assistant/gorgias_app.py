"""The Gorgias surface: a draft reply and an agent briefing as an internal note on tickets.

    POST /integrations/gorgias/webhook?brand=<slug>     X-Webhook-Token: <brand's secret>
    {"ticket_id": "{{ticket.id}}", "event": "ticket-message-created"}

The brand comes from the URL and is proven by the token (constant-time compare against the
brand's current and previous `gorgias` secrets); a wrong brand or token gives the same 401.
The body is only a pointer: the ticket and its messages are re-fetched from the Gorgias API
and every decision is made from that data.

Durability: the webhook records an inbox row (`assistant_deliveries`, 'ticket:<id>') before
answering 202, and the work runs in a background task. A row left pending by a crash or a
long rate limit is picked up by the sweeper. Each customer message is claimed
('message:<ticket>:<message>') before the note is posted, and a note already on the ticket
(its footer names the message) counts as done, so redeliveries and concurrent deliveries
post one note per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.responses import Response
from mcp.server.mcpserver.exceptions import ToolError

from assistant import gorgias_rules as rules
from assistant import surfaces_repo as repo
from assistant.gorgias_client import GorgiasBusy, GorgiasClient, GorgiasError, RateBudget
from assistant.gorgias_note import briefing, compose
from assistant.safety import filter_output
from assistant.types import Answer, AskContext
from core import brands
from core.crypto import constant_time_equals
from core.errors import CBrainError, Conflict, NotFound, Unauthorized, ValidationFailed
from core.logging import get_logger
from core.runtime import Runtime
from core.settings import Settings
from core.web import JSONBody, parse_json, read_body

Ask = Callable[[str, AskContext], Awaitable[Answer]]
_log = get_logger("cbrain.gorgias")
SURFACE = "gorgias"
BODY_LIMIT = 64 * 1024
MAX_ATTEMPTS = 5
SWEEP_AFTER_S = 120.0
SWEEP_EVERY_S = 60.0
# A message claim older than this belongs to a run that died; another run may take it.
CLAIM_STALE_S = 600.0
CONCURRENCY = 8
KEEP_FINISHED_S = 30 * 86400.0


@dataclass
class Outcome:
    status: str  # done | skipped
    detail: dict[str, Any] = field(default_factory=dict)


def _ticket_id(value: Any, name: str) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationFailed(
            f"{name} must be a ticket/message id (an integer)",
            details=[{"field": name, "message": "not an integer"}],
        ) from None
    if not 0 < n < 2**53:
        raise ValidationFailed(
            f"{name} out of range", details=[{"field": name, "message": "range"}]
        )
    return n


def question_for(target: rules.Target) -> str:
    lo, hi = rules.STYLES[target.style]
    return (
        f"Draft a reply to the customer's latest message on this {target.source} support "
        f"ticket, in {target.style} style: {lo}-{hi} sentences, warm and specific, ready for an "
        "agent to review. Use what we know about this customer; do not promise refunds, "
        "discounts or dates that our data does not support."
    )


class GorgiasSurface:
    def __init__(self, rt: Runtime, settings: Settings, ask: Ask) -> None:
        self.rt = rt
        self.settings = settings
        self._ask = ask
        self.budget = RateBudget(
            rt.redis, settings.gorgias_rate_limit, settings.gorgias_rate_window_s
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sem = asyncio.Semaphore(CONCURRENCY)

    # -- webhook ---------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        slug = request.query_params.get("brand") or request.headers.get("x-cbrain-brand") or ""
        token = request.headers.get("x-webhook-token") or ""
        body = await read_body(request, BODY_LIMIT)
        brand = await self._authenticate(slug.strip(), token.strip())
        payload = parse_json(body)
        if not isinstance(payload, dict) or "ticket_id" not in payload:
            raise ValidationFailed(
                "body must be a JSON object with ticket_id",
                details=[{"field": "ticket_id", "message": "required"}],
            )
        ticket_id = _ticket_id(payload["ticket_id"], "ticket_id")
        raw_mid = payload.get("message_id")
        message_id = _ticket_id(raw_mid, "message_id") if raw_mid not in (None, "") else None
        if await repo.gorgias_account(self.rt.pool, self.rt.keyring, brand.id) is None:
            raise Conflict(
                "no Gorgias account is connected for this brand (cbrain gorgias connect)"
            )
        detail = {
            "ticket_id": ticket_id,
            "message_id": message_id,
            "event": str(payload.get("event") or "")[:60],
        }
        gen = await repo.arm(self.rt.pool, brand.id, SURFACE, f"ticket:{ticket_id}", detail)
        self.spawn(self.process(brand.id, ticket_id, message_id, gen))
        return JSONBody({"data": {"status": "accepted", "ticket_id": ticket_id}}, status_code=202)

    async def _authenticate(self, slug: str, token: str) -> brands.Brand:
        if not slug or not token:
            raise Unauthorized("missing brand or X-Webhook-Token")
        try:
            async with self.rt.pool.acquire() as conn:
                brand = await brands.get_brand(conn, slug)
                secrets = await brands.secrets_for(conn, self.rt.keyring, brand.id, SURFACE)
        except NotFound:
            secrets = []
        ok = False
        for secret in secrets:  # every candidate compared: timing says nothing about which
            ok |= constant_time_equals(token, secret)
        if not ok:
            raise Unauthorized("webhook token could not be verified")
        return brand

    # -- background work -------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        async def run() -> Any:
            async with self._sem:
                return await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, within_s: float = 30.0) -> None:
        """Wait for the background work in flight (tests; graceful shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within_s)

    async def aclose(self) -> None:
        await self.drain(10.0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def process(
        self, brand_id: UUID, ticket_id: int, message_id: int | None, gen: int
    ) -> Outcome | None:
        """Handle one inbox row at generation `gen`; None when a newer webhook superseded it."""
        key = f"ticket:{ticket_id}"
        pool = self.rt.pool
        if await repo.start(pool, brand_id, SURFACE, key, gen) is None:
            return None
        try:
            outcome = await self.handle_ticket(brand_id, ticket_id, message_id)
        except GorgiasBusy as exc:
            await repo.retry_later(
                pool, brand_id, SURFACE, key, gen, f"rate limited ({exc.retry_after:.0f}s)"
            )
            return None
        except Exception as exc:
            retryable = not isinstance(exc, CBrainError) or exc.retryable
            _log.warning(
                "gorgias.ticket_failed",
                brand=str(brand_id),
                ticket=ticket_id,
                error=type(exc).__name__,
                retryable=retryable,
            )
            message = exc.message if isinstance(exc, CBrainError) else type(exc).__name__
            if retryable:
                await repo.retry_later(pool, brand_id, SURFACE, key, gen, message)
            else:
                await repo.finish(pool, brand_id, SURFACE, key, gen, "failed", None, message[:500])
            return None
        await repo.finish(pool, brand_id, SURFACE, key, gen, outcome.status, outcome.detail)
        _log.info(
            "gorgias.ticket_handled",
            brand=str(brand_id),
            ticket=ticket_id,
            status=outcome.status,
            **{k: v for k, v in outcome.detail.items() if k != "customer_ref"},
        )
        return outcome

    def client(self, account: repo.GorgiasAccount) -> GorgiasClient:
        return GorgiasClient(
            brand_id=str(account.brand_id),
            base_url=account.base_url,
            email=account.api_email,
            api_key=account.api_key,
            budget=self.budget,
            timeout_s=self.settings.gorgias_timeout_s,
            max_retry_after_s=self.settings.gorgias_max_retry_after_s,
        )

    async def handle_ticket(
        self, brand_id: UUID, ticket_id: int, message_id: int | None = None
    ) -> Outcome:
        """Fetch, triage and (at most once per message) post the note."""
        account = await repo.gorgias_account(self.rt.pool, self.rt.keyring, brand_id)
        if account is None:
            return Outcome("skipped", {"reason": "no Gorgias account"})
        async with self.client(account) as gc:
            ticket = await gc.ticket(ticket_id)
            messages = await gc.messages(ticket_id)
            decision = rules.triage(ticket, messages, message_id)
            if isinstance(decision, rules.Skip):
                return Outcome("skipped", {"reason": decision.reason})
            mid = decision.message_id
            mkey = f"message:{ticket_id}:{mid}"
            base = {"message_id": mid, "source": decision.source, "style": decision.style}
            if mid in rules.noted_messages(messages):
                await repo.release(
                    self.rt.pool, brand_id, SURFACE, mkey, "done", {"found_on_ticket": True}
                )
                return Outcome("done", {**base, "duplicate": True})
            claimed = await repo.claim(
                self.rt.pool, brand_id, SURFACE, mkey, {"ticket_id": ticket_id}, CLAIM_STALE_S
            )
            if not claimed:
                held = await repo.delivery(self.rt.pool, brand_id, SURFACE, mkey)
                if held is not None and held["status"] == "processing":
                    # Another run is drafting this message. Calling the ticket done here would
                    # lose the message if that run then fails: stay pending, come back later.
                    raise CBrainError("message in progress in another run", retryable=True)
                return Outcome("done", {**base, "duplicate": True})
            try:
                detail = await self._draft_and_post(brand_id, account, gc, ticket, decision)
            except BaseException as exc:
                await repo.release(
                    self.rt.pool, brand_id, SURFACE, mkey, "failed", None, type(exc).__name__
                )
                raise
            await repo.release(self.rt.pool, brand_id, SURFACE, mkey, "done", detail)
            return Outcome("done", {**base, **detail})

    async def _draft_and_post(
        self,
        brand_id: UUID,
        account: repo.GorgiasAccount,
        gc: GorgiasClient,
        ticket: dict[str, Any],
        target: rules.Target,
    ) -> dict[str, Any]:
        ticket_id = int(ticket.get("id") or target.message.get("ticket_id") or 0)
        emails, phones = rules.customer_contacts(ticket, target.message)
        customer, matched_by = await self.lookup(brand_id, emails, phones)
        other_open = await self._other_open(gc, ticket)
        ctx = AskContext(
            brand_id=brand_id,
            surface="gorgias",
            conversation_id=f"gorgias:{ticket_id}",
            customer_ref=customer.customer_ref if customer else None,
            untrusted=target.texts,
            style=target.style,
        )
        answer = await self._ask(question_for(target), ctx)
        if answer.stop_reason in ("error", "timeout") and not rules.has_draft(answer.text):
            # No draft worth an agent's time: retry later rather than post an apology.
            raise CBrainError(f"assistant gave no draft ({answer.stop_reason})", retryable=True)
        # Defence in depth: the agent filters its output; the note allows only this
        # customer's own contact details.
        safe = filter_output(answer.text, allowed_contacts=[*emails, *phones]).text
        draft = rules.limit_sentences(rules.draft_of(safe), target.style)
        brief = briefing(
            customer,
            matched_by=matched_by,
            subject=str(ticket.get("subject") or ""),
            other_open=other_open,
        )
        note = compose(
            message_id=target.message_id,
            style=target.style,
            source=target.source,
            draft=draft,
            brief=brief,
            answer=answer,
        )
        posted = await gc.post_message(ticket_id, note.payload(account.api_email))
        return {
            "note_id": posted.get("id") if isinstance(posted, dict) else None,
            "customer_ref": customer.customer_ref if customer else None,
            "offline": answer.offline,
            "forced": target.forced,
        }

    async def lookup(
        self, brand_id: UUID, emails: list[str], phones: list[str]
    ) -> tuple[Any | None, str | None]:
        """The ticket customer's Customer 360 summary, found server-side by exact email, then
        phone (the same lookup and summary as the lookup_customer tool, PII withheld)."""
        from mcp_server.deps import Deps
        from mcp_server.scope import CallerScope
        from mcp_server.tools.customers import summarize

        deps = Deps(lambda: self.rt, CallerScope(brand_id, allow_pii=False))
        caller = deps.caller()
        async with self.rt.pool.acquire() as conn:
            for kind, values in (("email", emails), ("phone", phones)):
                for value in values[:3]:
                    try:
                        ids, how, _ = await deps.find(conn, caller, value, kind, 1)
                    except ToolError:
                        continue
                    if len(ids) == 1:
                        return await summarize(deps, conn, caller, ids[0], how), how
        return None, None

    async def _other_open(self, gc: GorgiasClient, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        customer = rules.obj(ticket, "customer")
        cid = customer.get("id")
        if not isinstance(cid, int):
            return []
        try:
            tickets = await gc.customer_tickets(cid)
        except GorgiasError:
            return []  # the briefing is still useful without them
        return [
            t
            for t in tickets
            if t.get("id") != ticket.get("id")
            and str(t.get("status") or "").lower() == "open"
            and not t.get("spam")
        ]

    # -- sweeper ---------------------------------------------------------------------------

    async def sweep_once(self, older_than_s: float = SWEEP_AFTER_S) -> int:
        """Restart inbox rows left pending (crash, long rate limit); returns how many."""
        started = 0
        for brand_id in await repo.gorgias_brands(self.rt.pool):
            await repo.give_up(self.rt.pool, brand_id, SURFACE, MAX_ATTEMPTS)
            await repo.purge(self.rt.pool, brand_id, SURFACE, KEEP_FINISHED_S)
            for row in await repo.stale(self.rt.pool, brand_id, SURFACE, older_than_s):
                if not row["delivery_key"].startswith("ticket:"):
                    continue
                d = row["detail"] or {}
                self.spawn(
                    self.process(
                        brand_id, int(d["ticket_id"]), d.get("message_id"), row["generation"]
                    )
                )
                started += 1
        return started

    async def run_sweeper(self, every_s: float = SWEEP_EVERY_S) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sweep_once()
            except Exception as exc:
                _log.warning("gorgias.sweep_failed", error=type(exc).__name__)
