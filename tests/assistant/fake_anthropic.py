"""A local fake of Anthropic's Messages API (POST /v1/messages) at the HTTP level.

It checks the key (anthropic 2.x sends `Authorization: Bearer`; `x-api-key` is accepted
too), records every request body, and plays a script of turns: a message (tool_use,
end_turn, max_tokens, pause_turn, refusal, ...), an HTTP error (e.g. 529 with
retry-after-ms), or a function of the request (for a "model" that reacts to what it reads).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.automations.fakes import ThreadServer

Turn = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
_ids = itertools.count(1)


def message(
    stop_reason: str, *blocks: dict[str, Any], usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {"kind": "message", "stop_reason": stop_reason, "content": list(blocks), "usage": usage}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": args}


def end_turn(t: str) -> dict[str, Any]:
    return message("end_turn", text(t))


def calls(*uses: tuple[str, dict[str, Any]], say: str | None = None) -> dict[str, Any]:
    blocks = ([text(say)] if say else []) + [tool_use(n, a) for n, a in uses]
    return message("tool_use", *blocks)


def error(status: int, kind: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "error", "status": status, "type": kind, "headers": headers or {}}


@dataclass
class FakeAnthropic:
    api_key: str = "sk-ant-test-0123456789"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: list[Turn] = field(default_factory=list)
    default: Turn | None = None
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.post("/v1/messages")
        async def messages(request: Request) -> Any:
            auth = request.headers.get("authorization", "")
            key = request.headers.get("x-api-key", "")
            if auth != f"Bearer {self.api_key}" and key != self.api_key:
                return JSONResponse(_err("authentication_error", "invalid x-api-key"), 401)
            body = await request.json()
            with self.lock:
                self.requests.append(body)
                self.headers.append({k.lower(): v for k, v in request.headers.items()})
                turn = self.script.pop(0) if self.script else self.default
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if turn is None:
                turn = end_turn("(script exhausted)")
            if callable(turn):
                turn = turn(body)
            if turn["kind"] == "error":
                return JSONResponse(
                    _err(turn["type"], "fake error"), turn["status"], headers=turn["headers"]
                )
            usage = turn.get("usage") or {
                "input_tokens": len(str(body)) // 4,
                "output_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            }
            return JSONResponse(
                {
                    "id": f"msg_{next(_ids):05d}",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "stop_reason": turn["stop_reason"],
                    "stop_sequence": None,
                    "usage": usage,
                    "content": turn["content"],
                }
            )

        self.server = ThreadServer(app)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeAnthropic:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def play(self, *turns: Turn, default: Turn | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self.headers.clear()
            self.script = list(turns)
            self.default = default
            self.delay_s = 0.0


def _err(kind: str, msg: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": msg}}


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of a request."""
    last = body["messages"][-1]
    if last["role"] != "user" or isinstance(last["content"], str):
        return []
    return [b for b in last["content"] if b.get("type") == "tool_result"]


def all_text(body: dict[str, Any]) -> str:
    """Everything the model was shown in a request (system, messages, tool results)."""
    parts = [b.get("text", "") for b in body.get("system") or [] if isinstance(b, dict)]
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, str):
            parts.append(content)
            continue
        for b in content:
            if b.get("type") == "text":
                parts.append(b["text"])
            elif b.get("type") == "tool_result":
                c = b.get("content")
                parts.append(c if isinstance(c, str) else str(c))
    return "\n".join(parts)
