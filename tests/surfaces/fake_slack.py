"""A fake Slack Web API at the HTTP level: auth.test, chat.postMessage and a response_url
endpoint. It records every call (method, token, body) and checks the bot token."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request

from tests.automations.fakes import ThreadServer


@dataclass
class SlackWorld:
    # bot token -> (team_id, team name, bot user id, bot id)
    tokens: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["method"] == method]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if raw.startswith(b"{"):
        return orjson.loads(raw)
    return dict(await request.form())


def slack_api(world: SlackWorld) -> FastAPI:
    app = FastAPI()

    def record(method: str, request: Request, body: dict[str, Any]) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or body.get("token")
        with world.lock:
            world.calls.append({"method": method, "token": token, "body": body})
        return token

    @app.post("/api/auth.test")
    async def auth_test(request: Request) -> Any:
        token = record("auth.test", request, await _body(request))
        if token not in world.tokens:
            return {"ok": False, "error": "invalid_auth"}
        team_id, team, user_id, bot_id = world.tokens[token]
        return {
            "ok": True,
            "team_id": team_id,
            "team": team,
            "user_id": user_id,
            "bot_id": bot_id,
            "url": f"https://{team.lower()}.slack.com/",
        }

    @app.post("/api/chat.postMessage")
    async def post_message(request: Request) -> Any:
        body = await _body(request)
        token = record("chat.postMessage", request, body)
        if token not in world.tokens:
            return {"ok": False, "error": "invalid_auth"}
        return {
            "ok": True,
            "channel": body.get("channel"),
            "ts": f"{time.time():.6f}",
            "message": {"text": body.get("text")},
        }

    @app.post("/response/{hook}")
    async def response_url(hook: str, request: Request) -> Any:
        body = await _body(request)
        with world.lock:
            world.calls.append({"method": "response_url", "hook": hook, "body": body})
        return {"ok": True}

    return app


class FakeSlack:
    def __init__(self) -> None:
        self.world = SlackWorld()
        self.server = ThreadServer(slack_api(self.world)).start()

    @property
    def api_base(self) -> str:
        return self.server.url + "/api/"

    def response_url(self, hook: str) -> str:
        return f"{self.server.url}/response/{hook}"

    def stop(self) -> None:
        self.server.stop()
