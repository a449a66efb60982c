"""The Slack surface end to end: signed requests -> Bolt -> the real assistant (offline
planner) on real data -> the fake Slack Web API / response_url receives Block Kit."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from assistant import surfaces_repo
from assistant.blocks import MAX_BLOCKS, render
from assistant.slack_app import NOT_CONNECTED, command_question, plain_text
from assistant.types import Answer
from tests.helpers import wait_for
from tests.surfaces.conftest import SIGNING_SECRET, Workspace, next_id, sign
from tests.surfaces.fake_slack import FakeSlack

URL = "/slack/events"


def event_payload(team_id: str, bot_user_id: str, event: dict[str, Any], event_id: str) -> bytes:
    return orjson.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "api_app_id": "A0CBRAIN",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team_id, "user_id": bot_user_id, "is_bot": True}],
        }
    )


async def send_event(
    client: Any,
    ws: Workspace,
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    team_id: str | None = None,
    headers: dict[str, str] | None = None,
    secret: str = SIGNING_SECRET,
) -> Any:
    body = event_payload(team_id or ws.team_id, ws.bot_user_id, event, event_id or f"Ev{next_id()}")
    return await client.post(
        URL,
        content=body,
        headers={"Content-Type": "application/json", **sign(body, secret), **(headers or {})},
    )


async def send_command(
    client: Any, fake: FakeSlack, team_id: str, command: str, text: str, hook: str
) -> Any:
    body = urlencode(
        {
            "token": "legacy",
            "team_id": team_id,
            "team_domain": "acme",
            "channel_id": "C0SLASH",
            "channel_name": "analytics",
            "user_id": "U0ANALYST",
            "user_name": "ana",
            "command": command,
            "text": text,
            "api_app_id": "A0CBRAIN",
            "response_url": fake.response_url(hook),
            "trigger_id": "1.2.3",
        }
    ).encode()
    return await client.post(
        URL,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
    )


def mention(
    ws: Workspace, text: str, *, channel: str = "C0GENERAL", thread_ts: str | None = None
) -> dict:
    ev = {
        "type": "app_mention",
        "user": "U0ANALYST",
        "text": f"<@{ws.bot_user_id}> {text}",
        "ts": f"{time.time():.6f}",
        "channel": channel,
        "event_ts": f"{time.time():.6f}",
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def posts(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [c for c in fake.world.of("chat.postMessage") if c["body"].get("channel") == channel]


async def replies(fake: FakeSlack, channel: str, n: int = 1) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        found = posts(fake, channel)
        return found if len(found) >= n else None

    return await wait_for(enough, timeout=30)


async def responses(fake: FakeSlack, hook: str) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        calls = [c for c in fake.world.of("response_url") if c["hook"] == hook]
        return calls or None

    return await wait_for(found, timeout=30)


def block_types(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in blocks]


def all_text(blocks: list[dict[str, Any]]) -> str:
    return orjson.dumps(blocks).decode()


async def test_mention_is_answered_in_its_thread_with_block_kit(sclient, fake_slack, workspace):
    ws = workspace
    channel = f"C{next_id()}"
    ev = mention(ws, "which VIP customers are at risk?", channel=channel)
    resp = await send_event(sclient, ws, ev)
    assert resp.status_code == 200
    (reply,) = await replies(fake_slack, channel)
    body = reply["body"]
    assert reply["token"] == ws.token  # the workspace's own bot token
    assert body["thread_ts"] == ev["ts"]  # a new thread under the mention
    blocks = body["blocks"]
    assert 1 < len(blocks) <= MAX_BLOCKS
    assert blocks[0]["type"] == "section" and blocks[0]["text"]["type"] == "mrkdwn"
    assert block_types(blocks)[-2:] == ["divider", "context"]
    context = " ".join(e["text"] for e in blocks[-1]["elements"])
    assert "Sources: churn_risk" in context
    assert "Offline mode" in context
    assert body["text"] and "at risk" in body["text"].lower()
    # The answer rests on real data: the table names real customers of brand A (masked refs).
    assert "```" in all_text(blocks)


async def test_mention_inside_a_thread_replies_in_that_thread(sclient, fake_slack, workspace):
    channel = f"C{next_id()}"
    ev = mention(
        workspace,
        "forecast revenue for the next 4 weeks",
        channel=channel,
        thread_ts="1700000000.000100",
    )
    assert (await send_event(sclient, workspace, ev)).status_code == 200
    (reply,) = await replies(fake_slack, channel)
    assert reply["body"]["thread_ts"] == "1700000000.000100"
    assert "forecast_metrics" in all_text(reply["body"]["blocks"])


async def test_direct_message_is_answered_and_bot_posts_are_ignored(sclient, fake_slack, workspace):
    ws = workspace
    dm = f"D{next_id()}"
    base = {"type": "message", "channel": dm, "channel_type": "im", "user": "U0ANALYST"}
    # Our own / another bot's post and an edit: ignored.
    await send_event(sclient, ws, {**base, "text": "bot says hi", "bot_id": "B0OTHER", "ts": "1.1"})
    await send_event(sclient, ws, {**base, "subtype": "message_changed", "text": "x", "ts": "1.2"})
    ev = {**base, "text": "how many customers are in each segment?", "ts": f"{time.time():.6f}"}
    assert (await send_event(sclient, ws, ev)).status_code == 200
    (reply,) = await replies(fake_slack, dm)
    assert reply["body"].get("thread_ts") is None  # a DM is answered in the conversation
    assert "segment" in reply["body"]["text"].lower()
    # A second question proves the earlier ignored events produced nothing.
    ev2 = {**base, "text": "what are our top products?", "ts": f"{time.time():.6f}"}
    await send_event(sclient, ws, ev2)
    assert len(await replies(fake_slack, dm, 2)) == 2


@pytest.mark.parametrize(
    ("command", "text", "title", "tool"),
    [
        ("/churn-check", "{email}", "Churn check: {email}", "churn_risk"),
        ("/segment-info", "Champions", "Segment info: Champions", "segment"),
        ("/forecast", "revenue next 8 weeks", "Forecast: revenue next 8 weeks", "forecast_metrics"),
        ("/ask", "which products sell best?", "Customer Brain", "analyze_products"),
    ],
)
async def test_slash_commands_ack_then_respond_with_blocks(
    rt, sclient, fake_slack, workspace, dataset, command, text, title, tool
):
    email = await _an_email(rt, dataset.a.id)
    text, title = text.format(email=email), title.format(email=email)
    hook = f"h{next_id()}"
    started = time.monotonic()
    resp = await send_command(sclient, fake_slack, workspace.team_id, command, text, hook)
    assert resp.status_code == 200
    assert time.monotonic() - started < 3  # Slack's ack deadline
    ack = resp.json()
    assert ack["response_type"] == "ephemeral" and "working on it" in ack["text"]
    (call,) = await responses(fake_slack, hook)
    body = call["body"]
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": title, "emoji": True},
    }
    assert body["response_type"] == "ephemeral" and body["text"].startswith(title)
    assert tool in all_text(body["blocks"][-1:])  # the sources line names the tool used
    assert len(body["blocks"]) <= MAX_BLOCKS


async def test_slash_command_without_argument_gets_usage_and_no_work(
    sclient, fake_slack, workspace
):
    hook = f"h{next_id()}"
    resp = await send_command(sclient, fake_slack, workspace.team_id, "/churn-check", "", hook)
    assert resp.status_code == 200 and resp.json()["text"].startswith("Usage: `/churn-check")
    # A later command is answered; the first never was.
    hook2 = f"h{next_id()}"
    await send_command(sclient, fake_slack, workspace.team_id, "/ask", "top products?", hook2)
    await responses(fake_slack, hook2)
    assert [c for c in fake_slack.world.of("response_url") if c["hook"] == hook] == []


async def test_slack_retry_of_the_same_event_is_answered_once(sclient, fake_slack, workspace):
    channel = f"C{next_id()}"
    ev = mention(workspace, "which VIP customers are at risk?", channel=channel)
    event_id = f"Ev{next_id()}"
    assert (await send_event(sclient, workspace, ev, event_id=event_id)).status_code == 200
    await replies(fake_slack, channel)
    for n in (1, 2):
        retry = await send_event(
            sclient,
            workspace,
            ev,
            event_id=event_id,
            headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"},
        )
        assert retry.status_code == 200
    # A different event after the retries is answered, and the retries were not.
    other = mention(workspace, "top products?", channel=channel)
    await send_event(sclient, workspace, other)
    found = await replies(fake_slack, channel, 2)
    assert [r["body"]["thread_ts"] for r in found] == [ev["ts"], other["ts"]]


@pytest.mark.parametrize(
    "tamper",
    ["bad signature", "stale timestamp", "missing headers", "body changed", "other secret"],
)
async def test_bad_signature_is_refused(sclient, fake_slack, workspace, tamper):
    body = event_payload(
        workspace.team_id,
        workspace.bot_user_id,
        mention(workspace, "hello", channel="C0SIG"),
        f"Ev{next_id()}",
    )
    headers = {"Content-Type": "application/json", **sign(body)}
    if tamper == "bad signature":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif tamper == "stale timestamp":
        headers.update(sign(body, ts=int(time.time()) - 301))
    elif tamper == "missing headers":
        headers = {"Content-Type": "application/json"}
    elif tamper == "body changed":
        body = body.replace(b"hello", b"HELLO")
    else:
        headers.update(sign(body, "another-apps-signing-secret"))
    resp = await sclient.post(URL, content=body, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"


async def test_an_oversized_body_is_refused_even_when_chunked(sclient, workspace):
    from assistant.routes import SLACK_BODY_LIMIT

    body = b'{"type": "event_callback", "pad": "' + b"x" * SLACK_BODY_LIMIT + b'"}'

    async def chunked():  # no Content-Length: only reading the stream can tell
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    headers = {"Content-Type": "application/json", **sign(body)}
    resp = await sclient.post(URL, content=chunked(), headers=headers)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


async def test_unknown_workspace_gets_no_answer(sclient, fake_slack, workspace):
    stranger = "T" + secrets.token_hex(5).upper()
    channel = f"C{next_id()}"
    resp = await send_event(
        sclient, workspace, mention(workspace, "at risk?", channel=channel), team_id=stranger
    )
    assert resp.status_code == 200  # acknowledged, so Slack does not retry
    hook = f"h{next_id()}"
    await send_command(sclient, fake_slack, stranger, "/ask", "top products?", hook)
    (call,) = await responses(fake_slack, hook)
    assert call["body"]["text"] == NOT_CONNECTED
    # The connected workspace still works, and nothing was posted for the stranger.
    await send_event(sclient, workspace, mention(workspace, "top products?", channel=channel))
    assert len(await replies(fake_slack, channel)) == 1


async def test_workspace_with_its_own_signing_secret(rt, sclient, fake_slack, workspace):
    own = "brand-own-slack-app-secret-987654"
    await surfaces_repo.upsert_workspace(
        rt.pool,
        rt.keyring,
        workspace.brand_id,
        team_id=workspace.team_id,
        team_name="Acme",
        bot_user_id=workspace.bot_user_id,
        bot_id="B0",
        bot_token=workspace.token,
        signing_secret=own,
    )
    channel = f"C{next_id()}"
    ev = mention(workspace, "top products?", channel=channel)
    assert (await send_event(sclient, workspace, ev, secret=own)).status_code == 200
    await replies(fake_slack, channel)
    # Its URL verification names no workspace: the brand's own secret is found anyway.
    body = orjson.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    resp = await sclient.post(
        URL, content=body, headers={"Content-Type": "application/json", **sign(body, own)}
    )
    assert resp.status_code == 200 and resp.json() == {"challenge": "c-123"}


async def test_url_verification_with_the_app_secret(sclient):
    body = orjson.dumps({"token": "x", "challenge": "abc", "type": "url_verification"})
    resp = await sclient.post(
        URL, content=body, headers={"Content-Type": "application/json", **sign(body)}
    )
    assert resp.status_code == 200 and resp.json() == {"challenge": "abc"}


async def _an_email(rt: Any, brand_id: Any) -> str:
    row = await rt.pool.fetchrow(
        """SELECT pi.value_enc FROM profile_identifiers pi
           JOIN predictions c ON c.brand_id = pi.brand_id AND c.profile_id = pi.profile_id
                AND c.kind = 'churn'
           WHERE pi.brand_id = $1 AND pi.kind = 'email' AND pi.status = 'active'
           ORDER BY c.value DESC LIMIT 1""",
        brand_id,
    )
    return rt.keyring.for_brand(str(brand_id)).decrypt_str(row["value_enc"])


# ------------------------------------------------------------------------ pure helpers


def test_plain_text_unwraps_slack_markup():
    raw = "<@U123> is <mailto:ann@x.co|ann@x.co> at risk? <!channel> see <#C1|general> <tel:+4477|+44 77>"
    assert plain_text(raw) == "is ann@x.co at risk? see general +44 77"


def test_command_questions():
    assert command_question("/churn-check", "") is None
    assert command_question("/ask", "  ") is None
    assert command_question("/forecast", "") == "Forecast revenue for the next 30 days."
    assert "Champions segment" in command_question("/segment-info", "Champions")


def test_blocks_respect_slack_limits_and_escape_markup():
    answer = Answer(
        text="<!channel> **Top** customers & more\n\n" + ("word " * 1500),
        sources=[f"tool_{i}(x): y" for i in range(12)],
        tables=[
            {"title": f"T{i}", "columns": ["a", "b", "c"], "rows": [[1, 2.5, "x" * 60]] * 30}
            for i in range(60)
        ],
        offline=True,
    )
    blocks, text = render(answer, title="T" * 200)
    assert len(blocks) == MAX_BLOCKS
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) == 150
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
    assert "&lt;!channel&gt;" in blocks[1]["text"]["text"] and "*Top*" in blocks[1]["text"]["text"]
    assert "<!channel>" not in orjson.dumps(blocks).decode() and "<!channel>" not in text
    assert blocks[-1]["type"] == "context" and "(+4 more)" in blocks[-1]["elements"][0]["text"]
    assert any("left out" in b.get("text", {}).get("text", "") for b in blocks)
    kv = render(
        Answer(
            text="x",
            tables=[
                {"title": "Facts", "columns": ["k", "v"], "rows": [["Orders", 4], ["LTV", 120.5]]}
            ],
        )
    )[0]
    assert kv[1]["fields"] == [
        {"type": "mrkdwn", "text": "*Orders*\n4"},
        {"type": "mrkdwn", "text": "*LTV*\n120.50"},
    ]


# -------------------------------------------------------------------------------- CLI


def _cbrain(args: list[str], settings: Any, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CBRAIN_HOME": str(settings.home),
        "CBRAIN_ENV": "test",
        "CBRAIN_PEPPER": settings.pepper.get_secret_value(),
        "CBRAIN_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_connects_a_workspace_after_auth_test(rt, settings, fake_slack, brand):
    team = "T" + secrets.token_hex(5).upper()
    token = "xoxb-" + secrets.token_hex(10)
    fake_slack.world.tokens[token] = (team, "Cli Co", "U0CLIBOT", "B0CLI")
    env = {"SLACK_API_BASE": fake_slack.api_base}
    wrong = _cbrain(
        ["slack", "connect", brand.slug, "--bot-token", token, "--team-id", "T0THER"],
        settings,
        **env,
    )
    assert wrong.returncode == 1 and team in wrong.stderr
    bad = _cbrain(["slack", "connect", brand.slug, "--bot-token", "xoxb-nope"], settings, **env)
    assert bad.returncode == 1 and "invalid_auth" in bad.stderr
    ok = _cbrain(["slack", "connect", brand.slug, "--bot-token", token], settings, **env)
    assert ok.returncode == 0, ok.stderr
    ws = await surfaces_repo.workspace(rt.pool, rt.keyring, team)
    assert (ws.brand_id, ws.bot_user_id, ws.bot_token, ws.signing_secret) == (
        brand.id,
        "U0CLIBOT",
        token,
        None,
    )
    raw = await rt.pool.fetchval(
        "SELECT bot_token_enc FROM slack_workspaces WHERE team_id = $1", team
    )
    assert token.encode() not in raw  # sealed at rest
    listed = _cbrain(["slack", "list", brand.slug], settings)
    assert team in listed.stdout and token not in listed.stdout


async def test_cli_connects_gorgias_and_the_printed_token_works(rt, settings, fake_gorgias, brand):
    world = fake_gorgias.world
    env = {"GORGIAS_BASE_URL": fake_gorgias.url}
    refused = _cbrain(
        [
            "gorgias",
            "connect",
            brand.slug,
            "--base-url",
            "http://169.254.169.254",
            "--email",
            world.email,
            "--api-key",
            world.api_key,
        ],
        settings,
        **env,
    )
    assert refused.returncode == 1 and "gorgias.com" in refused.stderr
    out = _cbrain(
        [
            "gorgias",
            "connect",
            brand.slug,
            "--base-url",
            fake_gorgias.url,
            "--email",
            world.email,
            "--api-key",
            world.api_key,
        ],
        settings,
        **env,
    )
    assert out.returncode == 0, out.stderr
    assert f"/integrations/gorgias/webhook?brand={brand.slug}" in out.stdout
    token = out.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    account = await surfaces_repo.gorgias_account(rt.pool, rt.keyring, brand.id)
    assert (account.base_url, account.api_email, account.api_key) == (
        fake_gorgias.url,
        world.email,
        world.api_key,
    )
    from core import brands

    assert await brands.secrets_for(rt.pool, rt.keyring, brand.id, "gorgias") == [token]
