"""A small Gorgias REST client: Basic auth (API user email and key), a shared request budget
per account, and 429 / Retry-After honoured.

Gorgias limits API-key integrations to 40 requests per 20 s (a leaky bucket per account). The
budget is kept in Redis (GCRA: one slot every window/limit seconds, bursts up to the limit), so
every process serving the brand draws from the same bucket and we wait our turn instead of
collecting 429s. A 429 that arrives anyway is retried after its Retry-After; a Retry-After
longer than the caller is willing to wait raises `GorgiasBusy` so the delivery is retried later.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis

from core.errors import CBrainError, ValidationFailed
from core.logging import get_logger
from core.redis import brand_key

_log = get_logger("cbrain.gorgias")

# KEYS[1] = bucket; ARGV = interval ms, burst. Reserves the next slot and returns how long
# the caller must wait for it (0 = now). The theoretical arrival time lives in the key.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * interval
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return wait
"""
RETRIES = 4


class GorgiasError(CBrainError):
    code = "gorgias_error"
    status = 502


class GorgiasBusy(GorgiasError):
    """Rate limited for longer than we wait inline: retry the delivery later."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def account_base_url(domain: str | None, base_url: str | None, allowed: str | None) -> str:
    """The API base of an account: https://<domain>.gorgias.com, or an explicit base URL that
    must be a gorgias.com host over https or the operator's configured GORGIAS_BASE_URL (no
    fetching of arbitrary URLs: API7 SSRF)."""
    if base_url:
        url = base_url.rstrip("/")
        parts = urlsplit(url)
        on_gorgias = parts.scheme == "https" and (parts.hostname or "").endswith(".gorgias.com")
        if not on_gorgias and (not allowed or url != allowed.rstrip("/")):
            raise ValidationFailed(
                "the Gorgias base URL must be https://<account>.gorgias.com (or GORGIAS_BASE_URL)"
            )
        return url
    if not domain:
        raise ValidationFailed("give the Gorgias account domain or base URL")
    sub = domain.strip().lower().removeprefix("https://").split(".")[0]
    if not sub.replace("-", "").isalnum():
        raise ValidationFailed(
            "the Gorgias domain is the account name, e.g. 'acme' for acme.gorgias.com"
        )
    return f"https://{sub}.gorgias.com"


class RateBudget:
    """The per-account request budget, shared through Redis."""

    def __init__(self, redis: aioredis.Redis, limit: int, window_s: float) -> None:
        self.redis = redis
        self.interval_ms = max(1, int(window_s * 1000 / max(1, limit)))
        self.burst = max(1, limit)
        self._script = redis.register_script(_GCRA)

    async def take(self, brand_id: str) -> float:
        """Reserve one request; sleeps until it may be sent. Returns the seconds waited."""
        key = brand_key(brand_id, "gorgias", "budget")
        try:
            wait_ms = int(await self._script(keys=[key], args=[self.interval_ms, self.burst]))
        except Exception as exc:  # Redis down: Gorgias' own 429s still protect the account
            _log.warning("gorgias.budget_unavailable", error=type(exc).__name__)
            return 0.0
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
        return wait_ms / 1000


class GorgiasClient:
    """One account's API. Use as an async context manager."""

    def __init__(
        self,
        *,
        brand_id: str,
        base_url: str,
        email: str,
        api_key: str,
        budget: RateBudget,
        timeout_s: float = 15.0,
        max_retry_after_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.brand_id = brand_id
        self.budget = budget
        self.max_retry_after_s = max_retry_after_s
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=(email, api_key),
            timeout=timeout_s,
            headers={"Accept": "application/json", "User-Agent": "customer-brain/0.1"},
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> GorgiasClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in range(RETRIES + 1):
            await self.budget.take(self.brand_id)
            try:
                resp = await self._http.request(method, path, **kw)
            except httpx.TimeoutException as exc:
                # A POST that timed out may have been applied: the caller's dedupe decides.
                if method != "GET" or attempt == RETRIES:
                    raise GorgiasError(f"gorgias {method} {path}: timeout", retryable=True) from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise GorgiasError(
                        f"gorgias unreachable: {type(exc).__name__}", retryable=True
                    ) from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            if resp.status_code == 429:
                wait = _retry_after(resp.headers.get("retry-after"))
                _log.info(
                    "gorgias.rate_limited",
                    brand=self.brand_id,
                    retry_after=wait,
                    usage=resp.headers.get("x-gorgias-account-api-call-limit"),
                )
                if wait > self.max_retry_after_s or attempt == RETRIES:
                    raise GorgiasBusy("gorgias rate limit", retry_after=wait)
                await asyncio.sleep(wait)
                continue
            if resp.status_code >= 500 and attempt < RETRIES and method == "GET":
                await asyncio.sleep(_backoff(attempt))
                continue
            if resp.status_code >= 400:
                raise GorgiasError(
                    f"gorgias {method} {path}: HTTP {resp.status_code}",
                    retryable=resp.status_code >= 500,
                    details={"status": resp.status_code},
                )
            return resp.json() if resp.content else {}
        raise GorgiasError("gorgias: retries exhausted", retryable=True)  # pragma: no cover

    async def ticket(self, ticket_id: int) -> dict[str, Any]:
        return await self._request("GET", f"/api/tickets/{ticket_id}")

    async def messages(self, ticket_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The ticket's latest messages, oldest first."""
        data = await self._request(
            "GET",
            f"/api/tickets/{ticket_id}/messages",
            params={"limit": limit, "order_by": "created_datetime:desc"},
        )
        items = data.get("data") if isinstance(data, dict) else data
        items = [m for m in items or [] if isinstance(m, dict)]
        return sorted(items, key=lambda m: (str(m.get("created_datetime") or ""), m.get("id") or 0))

    async def customer_tickets(self, customer_id: int, limit: int = 10) -> list[dict[str, Any]]:
        data = await self._request(
            "GET", "/api/tickets", params={"customer_id": customer_id, "limit": limit}
        )
        items = data.get("data") if isinstance(data, dict) else data
        return [t for t in items or [] if isinstance(t, dict)]

    async def post_message(self, ticket_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"/api/tickets/{ticket_id}/messages", json=body)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


def _backoff(attempt: int) -> float:
    return min(8.0, 0.25 * 2**attempt) * (0.5 + random.random())
