"""Who is calling: the brand and whether it may see PII.

Over HTTP both come from the bearer token (the brand's API key, turned into an AccessToken by
`auth.ApiKeyVerifier`); over stdio from the brand fixed on the command line. Tools never take
the brand as an argument, so a model cannot be talked into reading another brand's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver.exceptions import ToolError

PII_SCOPE = "pii:read"


@dataclass(frozen=True, slots=True)
class Caller:
    brand_id: UUID
    pii: bool
    actor: str  # for the audit log: "mcp:key:<id>" or "mcp:stdio"


class CallerScope:
    """Resolves the caller of the current request.

    `brand_id` fixes the brand (stdio, in-process); without it the request must carry a
    verified access token, whose client_id is the brand id.
    """

    def __init__(self, brand_id: UUID | None = None, *, allow_pii: bool = False) -> None:
        self.brand_id = brand_id
        self.allow_pii = allow_pii

    @property
    def fixed(self) -> bool:
        return self.brand_id is not None

    def current(self) -> Caller:
        if self.brand_id is not None:
            return Caller(self.brand_id, self.allow_pii, "mcp:stdio")
        token = get_access_token()
        if token is None:
            # Only reachable if the server was mounted without its auth middleware.
            raise ToolError("not authenticated: send 'Authorization: Bearer <API key>'")
        try:
            brand_id = UUID(token.client_id)
        except ValueError:
            raise ToolError("the access token does not name a brand") from None
        key_id = (token.claims or {}).get("key_id", "?")
        return Caller(brand_id, PII_SCOPE in token.scopes, f"mcp:key:{key_id}")
