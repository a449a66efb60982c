"""A fake Gorgias REST API at the HTTP level: tickets and their messages in memory, Basic auth
checked, 429 + Retry-After on demand, and every request recorded (time, method, path, body).
Posting a message appends it to the ticket, as Gorgias does, so a re-fetch sees our notes."""

from __future__ import annotations

import base64
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.automations.fakes import ThreadServer


@dataclass
class GorgiasWorld:
    email: str = "bot@shop.example"
    api_key: str = "gorgias-key-0123456789"
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    rate_limit_next: int = 0
    retry_after: str = "1"
    ids: Any = field(default_factory=lambda: itertools.count(900_000))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r["body"]
                for r in self.requests
                if r["method"] == "POST"
                and r["path"] == f"/api/tickets/{ticket_id}/messages"
                and r["status"] == 201
            ]

    def posted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST" and r["status"] == 201]

    def add_ticket(self, ticket: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        with self.lock:
            self.tickets[ticket["id"]] = ticket
            self.messages[ticket["id"]] = [{"ticket_id": ticket["id"], **m} for m in messages]


def gorgias_api(world: GorgiasWorld) -> FastAPI:
    app = FastAPI()

    def gate(request: Request, body: Any = None, record: dict | None = None) -> JSONResponse | None:
        expected = "Basic " + base64.b64encode(f"{world.email}:{world.api_key}".encode()).decode()
        status = 200
        response = None
        with world.lock:
            if request.headers.get("authorization") != expected:
                status = 401
                response = JSONResponse({"error": {"msg": "Unauthorized"}}, 401)
            elif world.rate_limit_next > 0:
                world.rate_limit_next -= 1
                status = 429
                response = JSONResponse(
                    {"error": {"msg": "Too many requests"}},
                    429,
                    headers={
                        "Retry-After": world.retry_after,
                        "X-Gorgias-Account-Api-Call-Limit": "40/40",
                    },
                )
            entry = {
                "at": time.monotonic(),
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "body": body,
                "status": status,
            }
            world.requests.append(entry)
            if record is not None:
                record["entry"] = entry
        return response

    @app.get("/api/account")
    async def account(request: Request) -> Any:
        return gate(request) or {"domain": "shop"}

    @app.get("/api/tickets/{ticket_id}")
    async def ticket(ticket_id: int, request: Request) -> Any:
        if (denied := gate(request)) is not None:
            return denied
        found = world.tickets.get(ticket_id)
        return found if found else JSONResponse({"error": {"msg": "not found"}}, 404)

    @app.get("/api/tickets/{ticket_id}/messages")
    async def messages(ticket_id: int, request: Request) -> Any:
        if (denied := gate(request)) is not None:
            return denied
        with world.lock:
            items = list(reversed(world.messages.get(ticket_id, [])))  # newest first
        return {"data": items, "meta": {"next_cursor": None}}

    @app.get("/api/tickets")
    async def tickets(request: Request) -> Any:
        if (denied := gate(request)) is not None:
            return denied
        cid = request.query_params.get("customer_id")
        with world.lock:
            found = [
                t for t in world.tickets.values() if str((t.get("customer") or {}).get("id")) == cid
            ]
        return {"data": found, "meta": {"next_cursor": None}}

    @app.post("/api/tickets/{ticket_id}/messages")
    async def create(ticket_id: int, request: Request) -> Any:
        body = await request.json()
        rec: dict[str, Any] = {}
        if (denied := gate(request, body, rec)) is not None:
            return denied
        with world.lock:
            msg = {
                **body,
                "id": next(world.ids),
                "ticket_id": ticket_id,
                "created_datetime": "2099-01-01T00:00:00+00:00",
            }
            world.messages.setdefault(ticket_id, []).append(msg)
            rec["entry"]["status"] = 201
        return JSONResponse(msg, 201)

    return app


class FakeGorgias:
    def __init__(self) -> None:
        self.world = GorgiasWorld()
        self.server = ThreadServer(gorgias_api(self.world)).start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
