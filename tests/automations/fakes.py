"""Local fakes of the outside systems automations talk to, at the wire level: Twilio's
Messages API, Slack's chat.postMessage and a brand's webhook receiver (FastAPI apps served by
uvicorn in a thread on 127.0.0.1), and an SMTP server (aiosmtpd). Each records what it got
and can be told to fail the next N requests."""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn in a daemon thread; `url` once started."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Recorder:
    """What a fake received, and how many of the next requests it should fail."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.accepted.clear()
            self.fail_next = 0
            self.fail_status = 500

    def take_failure(self) -> bool:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False


def twilio_app(rec: Recorder, account_sid: str, auth_token: str) -> FastAPI:
    app = FastAPI()

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def create_message(sid: str, request: Request) -> Any:
        auth = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        form = dict(await request.form())
        rec.requests.append({"sid": sid, "form": form})
        if sid != account_sid or auth != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if rec.take_failure():
            return JSONResponse(
                {"code": 20500, "message": "Internal Server Error", "status": rec.fail_status},
                rec.fail_status,
            )
        msid = "SM" + secrets.token_hex(16)
        rec.accepted.append({"sid": msid, **form})
        return JSONResponse(
            {
                "sid": msid,
                "account_sid": sid,
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msid}.json",
            },
            201,
        )

    return app


def webhook_app(rec: Recorder) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Any:
        body = await request.body()
        entry = {"headers": dict(request.headers), "body": body}
        rec.requests.append(entry)
        if rec.take_failure():
            return JSONResponse({"error": "try later"}, rec.fail_status)
        key = request.headers.get("idempotency-key")
        # A good receiver: a key it has seen is acknowledged, not processed again.
        if any(a["headers"].get("idempotency-key") == key for a in rec.accepted):
            return JSONResponse({"id": "dup", "duplicate": True}, 200)
        rec.accepted.append(entry)
        return JSONResponse({"id": f"evt_{len(rec.accepted)}"}, 200)

    return app


def slack_app(rec: Recorder) -> FastAPI:
    app = FastAPI()

    @app.post("/api/chat.postMessage")
    async def post_message(request: Request) -> Any:
        raw = await request.body()
        import orjson

        body = orjson.loads(raw) if raw.startswith(b"{") else dict(await request.form())
        entry = {"auth": request.headers.get("authorization"), "body": body}
        rec.requests.append(entry)
        if rec.take_failure():
            return JSONResponse({"ok": False, "error": "internal_error"}, rec.fail_status)
        rec.accepted.append(entry)
        return {"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}"}

    return app


class SmtpHandler:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        entry = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.content,
        }
        self.rec.requests.append(entry)
        if self.rec.take_failure():
            return "451 4.3.0 Temporary failure, try again"
        self.rec.accepted.append(entry)
        return f"250 2.0.0 Ok: queued as Q{len(self.rec.accepted)}"


@dataclass
class Fakes:
    twilio: Recorder
    webhook: Recorder
    slack: Recorder
    smtp: Recorder
    twilio_url: str
    webhook_url: str
    slack_url: str
    smtp_port: int
    account_sid: str
    auth_token: str

    def reset(self) -> None:
        for r in (self.twilio, self.webhook, self.slack, self.smtp):
            r.reset()


class FakeSet:
    """Start every fake; `stop()` them all."""

    def __init__(self) -> None:
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        recs = [Recorder() for _ in range(4)]
        self.servers = [
            ThreadServer(twilio_app(recs[0], self.account_sid, self.auth_token)).start(),
            ThreadServer(webhook_app(recs[1])).start(),
            ThreadServer(slack_app(recs[2])).start(),
        ]
        self.smtp_port = free_port()
        self.controller = Controller(
            SmtpHandler(recs[3]), hostname="127.0.0.1", port=self.smtp_port
        )
        self.controller.start()
        self.fakes = Fakes(
            twilio=recs[0],
            webhook=recs[1],
            slack=recs[2],
            smtp=recs[3],
            twilio_url=self.servers[0].url,
            webhook_url=self.servers[1].url + "/hook",
            slack_url=self.servers[2].url + "/api/",
            smtp_port=self.smtp_port,
            account_sid=self.account_sid,
            auth_token=self.auth_token,
        )

    def stop(self) -> None:
        self.controller.stop()
        for s in self.servers:
            s.stop()
