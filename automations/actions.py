"""Outbound actions: WhatsApp (Twilio REST), email (SMTP), a signed brand webhook, Slack.

Each send carries the run's idempotency key where the protocol has a place for it, and every
failure is classified before anyone retries it:

- `TransientSendError`: the provider certainly did not take the message (connection refused,
  HTTP 429/5xx, SMTP 4xx). Retried here with jittered backoff (tenacity), then the run is
  rescheduled.
- `AmbiguousSendError`: the request went out and no answer came back (read timeout, dropped
  connection mid-transaction). Only a channel whose receiver de-duplicates on our key (the
  webhook, `Idempotency-Key`) retries it; WhatsApp, email and Slack stop there and the run is
  recorded `unknown`: at most once beats twice for a message to a customer.
- `PermanentSendError`: refused (HTTP 4xx, SMTP 5xx, no credentials); never retried.

Tag updates are not here: they are a database write, done in the transaction that records
the run (docs/automations.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import aiohttp
import aiosmtplib
import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from automations.config import AutomationSettings
from core.errors import CBrainError

# Channels whose receiver de-duplicates on our key, so an ambiguous failure may be retried.
IDEMPOTENT_CHANNELS = frozenset({"webhook", "tag"})
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# Context values that identify a person: they are sent, never stored in a run's record.
PII_FIELDS = frozenset({"first_name"})


class SendError(CBrainError):
    code = "send_failed"
    status = 502


class TransientSendError(SendError):
    retryable = True


class AmbiguousSendError(SendError):
    code = "send_outcome_unknown"


class PermanentSendError(SendError):
    code = "send_refused"


@dataclass
class Outgoing:
    """One message ready to go. `to` is the clear address (never stored); `record` is what the
    run keeps: the payload with personal values left as placeholders and the address masked."""

    channel: str
    key: str
    to: str
    payload: dict[str, Any]
    record: dict[str, Any]
    credentials: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendResult:
    provider_message_id: str | None
    attempts: int
    details: dict[str, Any] = field(default_factory=dict)


def render(
    template: str | None, context: dict[str, Any], *, keep: frozenset[str] = frozenset()
) -> str | None:
    """`{name}` placeholders filled from `context` (unknown ones become empty); names in
    `keep` stay as written. No attribute access or format specs, so a template cannot reach
    into objects."""
    if not template:
        return template

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in keep:
            return m.group(0)
        value = context.get(name)
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """X-CBrain-Signature value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
    The timestamp is signed so a receiver can refuse replays (we suggest 5 minutes)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def message_id(key: str, sender: str) -> str:
    """A Message-ID derived from the run's key: the same run always yields the same id, so a
    receiving system that de-duplicates on Message-ID drops a repeat."""
    domain = parseaddr(sender)[1].partition("@")[2] or "cbrain.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class Outbound:
    """The runner's outbound clients (one HTTP pool, one Twilio HTTP client), closed with it."""

    def __init__(self, settings: AutomationSettings, core_settings: Any) -> None:
        self.settings = settings
        self.twilio_base = (settings.twilio_api_base or core_settings.twilio_api_base).rstrip("/")
        self.slack_base = settings.slack_api_base or core_settings.slack_api_base
        self._http = httpx.AsyncClient(timeout=settings.send_timeout_s, follow_redirects=False)
        self._twilio_http: Any = None

    async def close(self) -> None:
        await self._http.aclose()
        if self._twilio_http is not None:
            await self._twilio_http.close()

    async def send(self, out: Outgoing) -> SendResult:
        """Send with retries on what is safe to retry; raises the last classified error."""
        senders: dict[str, Callable[[Outgoing], Awaitable[tuple[str | None, dict]]]] = {
            "whatsapp": self._whatsapp,
            "email": self._email,
            "webhook": self._webhook,
            "slack": self._slack,
        }
        sender = senders[out.channel]
        idempotent = out.channel in IDEMPOTENT_CHANNELS

        def retry_ok(exc: BaseException) -> bool:
            return isinstance(exc, TransientSendError) or (
                idempotent and isinstance(exc, AmbiguousSendError)
            )

        wait = self.settings.send_backoff_s
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.settings.send_attempts)),
            wait=wait_exponential(multiplier=wait, max=wait * 16) + wait_random(0, wait),
            retry=retry_if_exception(retry_ok),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                provider_id, details = await sender(out)
                return SendResult(provider_id, attempt.retry_state.attempt_number, details)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- WhatsApp via Twilio ----------------------------------------------------------------

    async def _whatsapp(self, out: Outgoing) -> tuple[str | None, dict]:
        from twilio.base.exceptions import TwilioRestException
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        sid, token = out.credentials.get("account_sid"), out.credentials.get("auth_token")
        if not sid or not token:
            raise PermanentSendError("no Twilio account SID / auth token for this brand")
        if self._twilio_http is None:
            self._twilio_http = AsyncTwilioHttpClient(timeout=self.settings.send_timeout_s)
        client = Client(sid, token, http_client=self._twilio_http)
        client.api.base_url = self.twilio_base
        p = out.payload
        kwargs: dict[str, Any] = {"to": out.to, "from_": p["from"]}
        if p.get("content_sid"):
            kwargs["content_sid"] = p["content_sid"]
            kwargs["content_variables"] = orjson.dumps(p.get("content_variables") or {}).decode()
        if p.get("body"):
            kwargs["body"] = p["body"]
        try:
            msg = await client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            status = int(exc.status or 0)
            text = f"twilio HTTP {status}: {exc.code or ''} {str(exc.msg)[:200]}".strip()
            if status == 429 or status >= 500:
                raise TransientSendError(text) from None
            raise PermanentSendError(text) from None
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise TransientSendError(f"twilio unreachable: {type(exc).__name__}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AmbiguousSendError(f"twilio: no answer ({type(exc).__name__})") from None
        return msg.sid, {"status": msg.status}

    # -- email via SMTP ---------------------------------------------------------------------

    async def _email(self, out: Outgoing) -> tuple[str | None, dict]:
        s = self.settings
        p = out.payload
        sender = p.get("from") or s.smtp_from
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = out.to
        msg["Subject"] = p["subject"]
        msg["Message-ID"] = message_id(out.key, sender)
        msg["X-CBrain-Run"] = hashlib.sha256(out.key.encode()).hexdigest()[:32]
        msg.set_content(p["body"])
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.send_timeout_s,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
        )
        try:
            await smtp.connect()
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                await smtp.login(s.smtp_username, password)
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_refusal(exc) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Nothing was handed over before the transaction: safe to retry.
            raise TransientSendError(f"smtp connect failed: {type(exc).__name__}") from None
        try:
            _errors, reply = await smtp.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [getattr(r, "code", 550) for r in exc.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                raise TransientSendError("smtp recipient deferred") from None
            raise PermanentSendError("smtp recipient refused") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_refusal(exc) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise AmbiguousSendError(f"smtp: no answer to DATA ({type(exc).__name__})") from None
        finally:
            # Best effort: the outcome is already decided by send_message.
            with contextlib.suppress(Exception):
                await smtp.quit()
        return msg["Message-ID"], {"smtp_reply": str(reply)[:200]}

    # -- signed webhook ---------------------------------------------------------------------

    async def _webhook(self, out: Outgoing) -> tuple[str | None, dict]:
        body = orjson.dumps(out.payload["body"])
        ts = int(out.payload["timestamp"])
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CustomerBrain-Automations/1",
            "Idempotency-Key": out.key,
            "X-CBrain-Event": "automation.run",
            "X-CBrain-Signature": sign_webhook(out.credentials["secret"], ts, body),
        }
        try:
            resp = await self._http.post(out.to, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientSendError(f"webhook unreachable: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise AmbiguousSendError(f"webhook: no answer ({type(exc).__name__})") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientSendError(f"webhook answered HTTP {resp.status_code}")
        if resp.status_code >= 300:
            raise PermanentSendError(f"webhook answered HTTP {resp.status_code}")
        provider_id = None
        try:
            data = resp.json()
            if isinstance(data, dict) and data.get("id") is not None:
                provider_id = str(data["id"])[:200]
        except ValueError:
            pass
        return provider_id or f"webhook:{resp.status_code}", {"http_status": resp.status_code}

    # -- Slack ------------------------------------------------------------------------------

    async def _slack(self, out: Outgoing) -> tuple[str | None, dict]:
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web.async_client import AsyncWebClient

        token = out.credentials.get("token")
        if not token:
            raise PermanentSendError("no Slack bot token (SLACK_BOT_TOKEN)")
        client = AsyncWebClient(
            token=token,
            base_url=self.slack_base,
            timeout=int(self.settings.send_timeout_s),
        )
        try:
            resp = await client.chat_postMessage(
                channel=out.payload["channel"],
                text=out.payload["text"],
                metadata={"event_type": "cbrain_automation_run", "event_payload": {"key": out.key}},
            )
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", 0) or 0
            error = (exc.response.data or {}).get("error", "") if exc.response else ""
            if status == 429 or status >= 500 or error in ("ratelimited", "internal_error"):
                raise TransientSendError(f"slack: {error or status}") from None
            raise PermanentSendError(f"slack: {error or status}") from None
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise TransientSendError(f"slack unreachable: {type(exc).__name__}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AmbiguousSendError(f"slack: no answer ({type(exc).__name__})") from None
        return f"{resp.get('channel')}:{resp.get('ts')}", {}


def _smtp_refusal(exc: aiosmtplib.SMTPResponseException) -> SendError:
    text = f"smtp {exc.code}: {str(exc.message)[:200]}"
    return TransientSendError(text) if 400 <= exc.code < 500 else PermanentSendError(text)
