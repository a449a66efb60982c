"""Sign-in with an API key, server-side sessions in Redis, CSRF tokens.

The key is checked once, at sign-in, and never stored: the session holds the key's id, and
the key's brand and scopes are re-read (the app's KeyCache, 30 s) so a revoked key ends its
sessions within that time. The cookie is `<brand id>.<random id>` (HttpOnly, SameSite=Lax,
Secure over https, path /dashboard); Redis stores the session under a keyed hash of the
random id (HMAC with the brand's key from the pepper), so a Redis dump holds no usable
session id. Every POST carries the session's CSRF token (the sign-in form uses a
double-submit cookie, there being no session yet), compared in constant time, and a
cross-origin `Origin` is refused.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import orjson
from fastapi import Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from core.brands import KeyCache, Principal
from core.crypto import constant_time_equals
from core.errors import Forbidden, Unavailable
from core.redis import brand_key
from dashboard.web import PREFIX, SignInRequired

COOKIE = "cb_dash"
PRE_CSRF_COOKIE = "cb_dash_csrf"
IDLE_S = 8 * 3600  # a session unused this long ends
MAX_AGE_S = 24 * 3600  # and none outlives this, used or not


@dataclass
class DashSession:
    """A signed-in browser: who (the key's principal) and its CSRF token."""

    sid: str
    principal: Principal
    brand_name: str
    csrf: str
    created: float
    flash: list[dict[str, str]] = field(default_factory=list)

    def can(self, scope: str) -> bool:
        return self.principal.has(scope)


def _redis_key(rt: Any, brand_id: str, sid: str) -> str:
    digest = rt.keyring.for_brand(brand_id).blind_index("dashboard_session", sid).hex()
    return brand_key(brand_id, "dash", "session", digest)


def _parse_cookie(value: str | None) -> tuple[str, str] | None:
    if not value or "." not in value:
        return None
    brand, _, sid = value.partition(".")
    try:
        UUID(brand)
    except ValueError:
        return None
    if not 20 <= len(sid) <= 100:
        return None
    return brand, sid


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request),
    )


async def _principal(request: Request, brand_id: UUID, key_id: UUID) -> tuple[Principal, str]:
    cache: KeyCache = request.app.state.key_cache
    found = await cache.by_id(request.app.state.rt.pool, brand_id, key_id)
    if found is None:
        raise SignInRequired("the API key of this session was revoked")
    return found


async def start_session(request: Request, principal: Principal) -> str:
    """A new session (a new id on every sign-in: no fixation); returns the cookie value."""
    rt = request.app.state.rt
    sid = secrets.token_urlsafe(32)
    brand = str(principal.brand_id)
    doc = {
        "key_id": str(principal.key_id),
        "csrf": secrets.token_urlsafe(32),
        "created": time.time(),
    }
    try:
        await rt.redis.set(_redis_key(rt, brand, sid), orjson.dumps(doc), ex=IDLE_S)
    except (RedisError, OSError) as exc:
        raise Unavailable("sessions are unavailable (Redis is down); try again shortly") from exc
    return f"{brand}.{sid}"


async def load_session(request: Request) -> DashSession | None:
    parsed = _parse_cookie(request.cookies.get(COOKIE))
    if parsed is None:
        return None
    brand, sid = parsed
    rt = request.app.state.rt
    key = _redis_key(rt, brand, sid)
    try:
        async with rt.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.expire(key, IDLE_S)
            raw, _ = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise Unavailable("sessions are unavailable (Redis is down); try again shortly") from exc
    if raw is None:
        return None
    doc = orjson.loads(raw)
    if time.time() - float(doc["created"]) > MAX_AGE_S:
        await end_session(request, f"{brand}.{sid}")
        return None
    principal, name = await _principal(request, UUID(brand), UUID(doc["key_id"]))
    session = DashSession(sid, principal, name, doc["csrf"], float(doc["created"]))
    session.flash = doc.get("flash", [])
    if session.flash:
        doc.pop("flash")
        await rt.redis.set(key, orjson.dumps(doc), ex=IDLE_S)
    return session


async def end_session(request: Request, cookie: str | None) -> None:
    parsed = _parse_cookie(cookie)
    if parsed is None:
        return
    rt = request.app.state.rt
    try:
        await rt.redis.delete(_redis_key(rt, *parsed))
    except (RedisError, OSError) as exc:
        raise Unavailable("sessions are unavailable (Redis is down); try again shortly") from exc


async def flash(request: Request, kind: str, text: str) -> None:
    """A message shown once, on the next page the session loads."""
    session: DashSession = request.state.dash
    rt = request.app.state.rt
    key = _redis_key(rt, str(session.principal.brand_id), session.sid)
    raw = await rt.redis.get(key)
    if raw is None:
        return
    doc = orjson.loads(raw)
    doc.setdefault("flash", []).append({"kind": kind, "text": text})
    await rt.redis.set(key, orjson.dumps(doc), ex=IDLE_S)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        # Browsers send Origin on every cross-site POST; SameSite=Lax already withholds the
        # cookie from those. A missing Origin is a same-site or non-browser client.
        return origin is None
    mine = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(request.app.state.rt.settings.public_base_url)
    mine.add(f"{public.scheme}://{public.netloc}")
    return origin in mine


async def check_csrf(request: Request, expected: str) -> None:
    if not _same_origin(request):
        raise Forbidden("cross-origin form posts are refused")
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not expected or not constant_time_equals(token, expected):
        raise Forbidden("the form's security token is missing or expired: reload the page")


def page(scope: str = "read") -> Any:
    """Dependency for a GET page: a signed-in session whose key holds `scope`."""

    async def dependency(request: Request) -> DashSession:
        session = await load_session(request)
        if session is None:
            raise SignInRequired("sign in")
        request.state.dash = session
        request.state.flash = session.flash
        request.scope["brand_slug"] = session.principal.brand_slug
        if not session.can(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope needed for this page")
        return session

    dependency.__name__ = f"dashboard_{scope.replace(':', '_')}"
    return dependency


def action(scope: str | None) -> Any:
    """Dependency for a POST: signed in, holding `scope` (None: any key), with a valid CSRF
    token."""

    async def dependency(request: Request) -> DashSession:
        session = await load_session(request)
        if session is None:
            raise SignInRequired("sign in")
        request.state.dash = session
        request.scope["brand_slug"] = session.principal.brand_slug
        # The token first: a forged post learns nothing, not even whether the scope is held.
        await check_csrf(request, session.csrf)
        if scope is not None and not session.can(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope needed for this action")
        return session

    dependency.__name__ = f"dashboard_action_{(scope or 'any').replace(':', '_')}"
    return dependency
