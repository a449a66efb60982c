"""The assistant: Claude in a tool-use loop over our MCP tools, or the offline planner.

    async with Assistant(rt) as assistant:
        answer = await assistant.ask("which VIP customers are at risk?", AskContext(brand_id, "cli"))

One question = one in-process MCP session built for the context's brand and PII scope, a
manual loop (so every turn is audited, budgeted and timed), and an output filter before the
answer leaves. Every stop reason is handled; budgets (turns, tokens, seconds) end the loop
with the best answer available rather than an exception. Surfaces always get an `Answer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from assistant import offline, prompts, render
from assistant.memory import Memory
from assistant.safety import filter_output
from assistant.tools_bridge import ServerCache, ToolBridge
from assistant.types import Answer, AskContext, ToolCall
from core.runtime import Runtime

log = logging.getLogger(__name__)
MAX_QUESTION = 4000


class Assistant:
    def __init__(self, rt: Runtime, *, settings: Any = None, anthropic_client: Any = None) -> None:
        self.rt = rt
        self.settings = settings or rt.settings
        s = self.settings
        self._own_client = False
        if anthropic_client is None and s.anthropic_api_key is not None:
            key = s.anthropic_api_key.get_secret_value().strip()
            if key:
                import anthropic

                anthropic_client = anthropic.AsyncAnthropic(
                    api_key=key,
                    base_url=s.anthropic_base_url,
                    max_retries=s.assistant_max_retries,
                    timeout=s.assistant_request_timeout_s,
                )
                self._own_client = True
        self.client = anthropic_client
        self.servers = ServerCache(rt)
        self.memory = Memory(
            rt.redis, ttl_s=s.assistant_memory_ttl_s, max_turns=s.assistant_memory_turns
        )

    @property
    def online(self) -> bool:
        """True when answers come from Claude; False in offline (planner) mode."""
        return self.client is not None

    async def __aenter__(self) -> Assistant:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client and self.client is not None:
            await self.client.close()

    async def ask(self, question: str, ctx: AskContext) -> Answer:
        """Answer one question in its context. Never raises for model or tool trouble."""
        started = time.perf_counter()
        question = question.strip()[:MAX_QUESTION]
        bridge: ToolBridge | None = None
        try:
            async with asyncio.timeout(self.settings.assistant_timeout_s):
                history = await self.memory.history(ctx.brand_id, ctx.conversation_id)
                server = self.servers.get(ctx.brand_id, ctx.allow_pii)
                async with ToolBridge(ctx, server) as bridge:
                    if self.online:
                        answer = await self._claude(question, ctx, bridge, history)
                    else:
                        answer = await offline.answer(question, ctx, bridge)
        except TimeoutError:
            answer = Answer(
                text="I ran out of time before finishing; try a narrower question."
                + _partial(bridge.calls if bridge else []),
                stop_reason="timeout",
                offline=not self.online,
            )
        except Exception:
            log.exception("assistant failed", extra={"brand": str(ctx.brand_id)})
            answer = Answer(
                text="Something went wrong while answering; the error was logged.",
                stop_reason="error",
                offline=not self.online,
            )
        if bridge is not None:
            answer.tool_calls = list(bridge.calls)
        answer = self._finish(answer, ctx, bridge)
        if answer.stop_reason not in ("error", "timeout"):
            await self.memory.remember(ctx.brand_id, ctx.conversation_id, question, answer.text)
        log.info(
            "assistant answered",
            extra={
                "brand": str(ctx.brand_id),
                "surface": ctx.surface,
                "offline": answer.offline,
                "stop_reason": answer.stop_reason,
                "tools": [c.name for c in answer.tool_calls],
                "refused": sum(c.refused for c in answer.tool_calls),
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return answer

    # ------------------------------------------------------------------------ the loop

    async def _claude(
        self, question: str, ctx: AskContext, bridge: ToolBridge, history: list[Any]
    ) -> Answer:
        import anthropic

        s = self.settings
        assert bridge.policy is not None
        tools = bridge.anthropic_tools()
        system = prompts.system_blocks(ctx, pinned_ref=bridge.policy.pinned_ref)
        messages: list[dict[str, Any]] = []
        for turn in history:
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer})
        messages.append({"role": "user", "content": prompts.user_message(question, ctx)})
        used = 0
        turns = 0
        last_text = ""
        force_final = False
        while True:
            turns += 1
            kwargs: dict[str, Any] = {
                "model": s.assistant_model,
                "max_tokens": s.assistant_max_tokens,
                "system": system,
                "messages": messages,
            }
            if tools:
                kwargs["tools"] = tools
                if force_final:
                    kwargs["tool_choice"] = {"type": "none"}
            try:
                resp = await self.client.messages.create(**kwargs)
            except anthropic.APIError as exc:
                # Claude unreachable / overloaded after the SDK's retries, or misconfigured:
                # answer from the same tools offline rather than not at all.
                why = _api_error(exc)
                log.warning("anthropic call failed: %s", why)
                fallback = await offline.answer(
                    question, ctx, bridge, why=f"Claude unavailable: {why}"
                )
                fallback.stop_reason = "error"
                return fallback
            usage = resp.usage
            used += (usage.input_tokens or 0) + (usage.output_tokens or 0)
            used += getattr(usage, "cache_creation_input_tokens", 0) or 0
            content = [_block(b) for b in resp.content]
            if content:
                messages.append({"role": "assistant", "content": content})
            text = "".join(b.text for b in resp.content if b.type == "text").strip()
            reason = resp.stop_reason
            if reason == "tool_use":
                last_text = text or last_text
                results = []
                for b in resp.content:
                    if b.type != "tool_use":
                        continue
                    call, body = await bridge.call(b.name, b.input)
                    results.append(
                        {
                            "type": "tool_result",
                            "tool_use_id": b.id,
                            "content": body,
                            "is_error": call.is_error,
                        }
                    )
                messages.append({"role": "user", "content": results})
                _cache_tail(messages)
                if used >= s.assistant_token_budget:
                    return Answer(
                        text=(last_text + "\n\n" if last_text else "")
                        + "(Stopped early: the token budget for one question was reached.)"
                        + _partial(bridge.calls),
                        stop_reason="budget",
                    )
                if force_final:  # the model ignored tool_choice none
                    return Answer(text=last_text + _partial(bridge.calls), stop_reason="budget")
                if turns >= s.assistant_max_turns:
                    force_final = True  # one last turn, tools off, to write the answer
                continue
            if reason == "pause_turn":
                if turns >= s.assistant_max_turns + 1:
                    return Answer(text=text or last_text, stop_reason="budget")
                continue  # re-send as is: the server resumes the paused turn
            if reason in ("end_turn", "stop_sequence", None):
                final = text or last_text or "I have no answer to that."
                return Answer(text=final, stop_reason="budget" if force_final else "end_turn")
            if reason == "max_tokens":
                return Answer(
                    text=(text or last_text)
                    + "\n\n(Answer truncated: it reached the output length limit.)",
                    stop_reason="max_tokens",
                )
            if reason == "refusal":
                return Answer(
                    text="I can't help with that request.",
                    stop_reason="refusal",
                )
            if reason == "model_context_window_exceeded":
                return Answer(
                    text=(text or last_text)
                    + "\n\n(Stopped: the conversation no longer fits the model's context; "
                    "start a new thread.)" + _partial(bridge.calls),
                    stop_reason="context_window",
                )
            return Answer(text=text or last_text, stop_reason=str(reason))

    # ---------------------------------------------------------------------- the output

    def _finish(self, answer: Answer, ctx: AskContext, bridge: ToolBridge | None) -> Answer:
        """Filter what leaves; attach sources and tables from the calls that ran."""
        allowed = bridge.pinned_contacts if bridge else []
        allow_all = ctx.allow_pii and not ctx.customer_ref

        def safe(text: str) -> str:
            return filter_output(text, allowed_contacts=allowed, allow_all_contacts=allow_all).text

        answer.text = safe(answer.text)
        sources = [render.source_line(c) for c in answer.tool_calls]
        answer.sources = [safe(x) for x in sources if x]
        tables = [render.table(c) for c in answer.tool_calls]
        answer.tables = [
            {**t, "rows": [[safe(str(cell)) for cell in row] for row in t["rows"]]}
            for t in tables
            if t
        ]
        return answer


def _block(b: Any) -> dict[str, Any]:
    """A response content block as request JSON (tool_use blocks kept verbatim)."""
    if b.type == "text":
        return {"type": "text", "text": b.text}
    if b.type == "tool_use":
        return {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
    return b.model_dump(exclude_none=True)


def _cache_tail(messages: list[dict[str, Any]]) -> None:
    """Move the conversation's cache breakpoint to the newest tool results, so each turn of
    the loop reads the previous turns from the cache. One breakpoint in the messages (plus
    the system prompt's and the tools') stays under the API's limit of four."""
    for m in messages:
        if isinstance(m["content"], list):
            for block in m["content"]:
                if isinstance(block, dict):
                    block.pop("cache_control", None)
    last = messages[-1]["content"]
    if isinstance(last, list) and last:
        last[-1]["cache_control"] = {"type": "ephemeral"}


def _partial(calls: list[ToolCall]) -> str:
    """What the tools found so far, rendered, for answers cut short."""
    done = [c for c in calls if not c.is_error and c.structured][-3:]
    if not done:
        return ""
    return "\n\nWhat I found so far:\n" + "\n\n".join(render.describe(c) for c in done)


def _api_error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    kind = body.get("error", {}).get("type") if isinstance(body, dict) else None
    return " ".join(str(x) for x in (status, kind or type(exc).__name__) if x)
