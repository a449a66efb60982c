"""Bearer tokens for MCP over HTTP are the brand's ordinary API keys.

A key becomes an `AccessToken` whose client_id is the brand id and whose scopes are the key's
(an admin key implies read and pii:read). The SDK's middleware answers 401 with
`WWW-Authenticate: Bearer` when the verifier returns None, and 403 when `read` is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.auth.provider import AccessToken

from core.brands import KeyCache
from core.runtime import Runtime

READ_SCOPE = "read"
_MAX_TOKEN = 512


class ApiKeyVerifier:
    """`TokenVerifier` over `api_keys` (hashed), cached briefly like the REST API's keys."""

    def __init__(self, rt_provider: Callable[[], Runtime], cache: KeyCache | None = None) -> None:
        self._rt = rt_provider
        self._cache = cache or KeyCache()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or len(token) > _MAX_TOKEN:
            return None
        principal = await self._cache.principal(self._rt().pool, token.strip())
        if principal is None:
            return None
        scopes = set(principal.scopes)
        if "admin" in scopes:
            scopes |= {READ_SCOPE, "pii:read"}
        return AccessToken(
            token=token,
            client_id=str(principal.brand_id),
            scopes=sorted(scopes),
            claims={"key_id": str(principal.key_id), "brand": principal.brand_slug},
        )
