"""Our MCP tools, reached in-process through the MCP SDK's `Client`: the same server, schemas
and errors that Claude Desktop sees, built for the context's brand and PII scope.

Every call goes through `Policy` first and is recorded as a `ToolCall` (refused ones too).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

import orjson
from mcp import Client
from mcp.server.mcpserver import MCPServer

from assistant.policy import Policy
from assistant.safety import digits_of, wrap_tool_payload
from assistant.types import AskContext, ToolCall
from core.runtime import Runtime

MAX_RESULT_CHARS = 24_000  # what one tool result may put into the model's context


class ToolBridge:
    """`async with ToolBridge(ctx, server) as tools:` then `await tools.call(name, args)`;
    `server` is our MCP server for the context's brand and PII scope (`ServerCache.get`)."""

    def __init__(self, ctx: AskContext, server: MCPServer) -> None:
        self.ctx = ctx
        self._client = Client(server)
        self.tools: dict[str, Any] = {}
        self.policy: Policy | None = None
        self.calls: list[ToolCall] = []
        # Emails / phones of the pinned customer, in clear (PII scope only): the output
        # filter lets these through and no others.
        self.pinned_contacts: list[str] = []

    async def __aenter__(self) -> ToolBridge:
        await self._client.__aenter__()
        try:
            listed = (await self._client.list_tools()).tools
            self.tools = {t.name: t for t in listed}
            self.policy = Policy(self.ctx, {t.name: t.input_schema for t in listed})
            if self.ctx.customer_ref:
                await self._pin(self.ctx.customer_ref)
        except BaseException:
            await self._client.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.__aexit__(*exc)

    async def _pin(self, ref: str) -> None:
        """Resolve the context's customer once, server-side (not a model-visible call)."""
        assert self.policy is not None
        by = "auto"
        try:
            UUID(ref)
            by = "profile_id"
        except ValueError:
            pass
        res = await self._client.call_tool("lookup_customer", {"query": ref, "by": by})
        data = res.structured_content or {}
        customers = data.get("customers") or []
        if res.is_error or len(customers) != 1:
            return  # not found: the policy keeps refusing customer tools
        me = customers[0]
        values = [i["value"] for i in me.get("identifiers", []) if i.get("value")]
        self.policy.pin(me["customer_ref"], values)
        if self.ctx.allow_pii:
            self.pinned_contacts = [v for v in values if "*" not in v]
            if by == "auto" and ("@" in ref or len(digits_of(ref)) >= 7):
                self.pinned_contacts.append(ref)

    @property
    def allowed(self) -> list[str]:
        assert self.policy is not None
        return sorted(self.policy.tools)

    def anthropic_tools(self) -> list[dict[str, Any]]:
        """The allowed tools as Anthropic tool definitions; the last one carries the cache
        breakpoint so the whole (stable) tool list is cached."""
        out: list[dict[str, Any]] = []
        for name in self.allowed:
            t = self.tools[name]
            out.append(
                {
                    "name": t.name,
                    "description": (t.description or t.title or t.name)[:4000],
                    "input_schema": t.input_schema,
                }
            )
        if out:
            out[-1]["cache_control"] = {"type": "ephemeral"}
        return out

    async def call(self, name: str, arguments: Any) -> tuple[ToolCall, str]:
        """Run one tool under the policy; the record and the text the model should see."""
        assert self.policy is not None
        started = time.perf_counter()
        decision = self.policy.check(name, arguments)
        raw_args = arguments if isinstance(arguments, dict) else {"_": arguments}
        if not decision.allowed:
            call = ToolCall(
                name=name,
                arguments=dict(raw_args),
                duration_ms=0.0,
                is_error=True,
                error=f"refused: {decision.reason}",
                refused=True,
            )
            self.calls.append(call)
            return call, f"Refused: {decision.reason}"
        try:
            res = await self._client.call_tool(name, decision.arguments)
        except Exception as exc:  # a transport or protocol failure, not a tool error
            call = ToolCall(
                name=name,
                arguments=decision.arguments,
                duration_ms=_ms(started),
                is_error=True,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            self.calls.append(call)
            return call, f"Error: the tool {name} failed to run"
        text = " ".join(getattr(c, "text", "") for c in res.content or []).strip()
        call = ToolCall(
            name=name,
            arguments=decision.arguments,
            duration_ms=_ms(started),
            is_error=bool(res.is_error),
            structured=res.structured_content,
            error=text[:500] if res.is_error else None,
        )
        self.calls.append(call)
        if res.is_error:
            return call, text or f"Error executing tool {name}"
        payload: Any = wrap_tool_payload(res.structured_content) if res.structured_content else text
        body = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        if decision.notes:
            body = "(" + "; ".join(decision.notes) + ")\n" + body
        if len(body) > MAX_RESULT_CHARS:
            body = body[:MAX_RESULT_CHARS] + "\n[result truncated]"
        return call, body


def build_server(rt: Runtime, brand_id: UUID, allow_pii: bool) -> MCPServer:
    """Our MCP server fixed to one brand and PII scope (what `cbrain mcp --brand` serves)."""
    from mcp_server.server import build_server as build

    return build(lambda: rt, brand_id=brand_id, allow_pii=allow_pii)


class ServerCache:
    """Built servers by (brand, PII scope). Building one registers every tool (pydantic
    schema generation, ~0.2 s), and a server holds no per-session state, so an assistant
    reuses them; each question still gets its own client session."""

    def __init__(self, rt: Runtime, size: int = 64) -> None:
        self.rt = rt
        self.size = size
        self._servers: OrderedDict[tuple[UUID, bool], MCPServer] = OrderedDict()

    def get(self, brand_id: UUID, allow_pii: bool) -> MCPServer:
        key = (brand_id, allow_pii)
        server = self._servers.pop(key, None) or build_server(self.rt, brand_id, allow_pii)
        self._servers[key] = server
        while len(self._servers) > self.size:
            self._servers.popitem(last=False)
        return server


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
