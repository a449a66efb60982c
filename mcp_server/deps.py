"""What every tool needs: the runtime, the caller, the brand, and turning customer
references into people (masked, or in clear for callers with pii:read)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from mcp.server.mcpserver.exceptions import ToolError

from core import brands
from core.brands import Brand
from core.crypto import BrandCrypto
from core.runtime import Runtime
from identity.keys import identifier_keys, name_norm
from identity.service import IdentityConfig
from mcp_server import repo
from mcp_server.models import CustomerRef, customer_text
from mcp_server.scope import Caller, CallerScope

BRAND_TTL_S = 60.0
_PHONEISH = re.compile(r"^\+?[\d\s().\-]{7,20}$")
_EXTERNAL = re.compile(r"^([a-z][a-z0-9_-]{1,30}):(\S{1,100})$")
LOOKUP_KINDS = ("auto", "email", "phone", "loyalty_id", "external_id", "profile_id", "name")


class Deps:
    """Shared by the tool modules of one server instance."""

    def __init__(self, rt_provider: Callable[[], Runtime], scope: CallerScope) -> None:
        self._rt = rt_provider
        self.scope = scope
        self._brands: dict[UUID, tuple[float, Brand, IdentityConfig]] = {}

    @property
    def rt(self) -> Runtime:
        return self._rt()

    def caller(self) -> Caller:
        return self.scope.current()

    async def brand(self, brand_id: UUID) -> tuple[Brand, IdentityConfig]:
        """The brand and its identity options (region, email rules), cached for a minute."""
        hit = self._brands.get(brand_id)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1], hit[2]
        async with self.rt.pool.acquire() as conn:
            try:
                brand = await brands.get_brand_by_id(conn, brand_id)
            except Exception:
                raise ToolError("the brand of this API key no longer exists") from None
        self._brands[brand_id] = (now + BRAND_TTL_S, brand, IdentityConfig.of(brand))
        return brand, self._brands[brand_id][2]

    def crypto(self, brand_id: UUID) -> BrandCrypto:
        return self.rt.keyring.for_brand(str(brand_id))

    async def find(
        self, conn: Any, caller: Caller, query: str, by: str = "auto", limit: int = 5
    ) -> tuple[list[UUID], str, list[str]]:
        """Profiles matching `query`: (live ids, how it matched, notes). Exact for identifiers
        and ids, best trigram matches for names."""
        q = query.strip()
        if not q:
            raise ToolError("empty query: give an email, phone, loyalty id, name or customer_ref")
        if len(q) > 200:
            raise ToolError("query too long (200 characters at most)")
        notes: list[str] = []
        for kind in _candidate_kinds(q) if by == "auto" else [by]:
            if kind == "profile_id":
                try:
                    pid = UUID(q)
                except ValueError:
                    raise ToolError(f"{q!r} is not a customer_ref (a UUID)") from None
                live = await repo.live_id(conn, caller.brand_id, pid)
                if live is not None:
                    return [live], "customer_ref", notes
                continue
            if kind == "name":
                norm = name_norm({"first_name": q})
                if not norm:
                    continue
                ids = await repo.by_name(conn, caller.brand_id, norm, limit)
                if ids:
                    return ids, "name", notes
                continue
            found = await self._by_identifier(conn, caller, kind, q, notes)
            if found is not None:
                return [found], kind, notes
        return [], "", notes

    async def _by_identifier(
        self, conn: Any, caller: Caller, kind: str, q: str, notes: list[str]
    ) -> UUID | None:
        _, cfg = await self.brand(caller.brand_id)
        if kind == "external_id":
            m = _EXTERNAL.match(q)
            if not m:
                raise ToolError("an external id is written source:id, e.g. shopify:7302378440013")
            ids: dict[str, Any] = {"external_ids": {m.group(1): m.group(2)}}
        else:
            ids = {kind: q}
        keys = identifier_keys(
            self.crypto(caller.brand_id),
            ids,
            region=cfg.region,
            provider_rules=cfg.provider_rules,
            blocklist=cfg.blocklist,
        )
        for key in keys:
            row = await repo.owner_of(conn, caller.brand_id, key.kind, key.hash)
            if row is None:
                continue
            if row["status"] == "shared":
                notes.append(
                    f"this {key.kind} is shared by several people (e.g. a household or a shop "
                    "phone): the match may not be the person you mean"
                )
            return row["profile_id"]
        return None

    async def one(self, conn: Any, caller: Caller, customer: str) -> UUID:
        """Exactly one customer from a customer_ref or an exact identifier, or a ToolError."""
        ids, _, _ = await self.find(conn, caller, customer, "auto", 2)
        if not ids:
            raise ToolError(
                f"no customer found for {_shown(customer)}; use lookup_customer to search by "
                "name, or check the email / phone / customer_ref"
            )
        if len(ids) > 1:
            raise ToolError(
                f"{_shown(customer)} matches several customers; call lookup_customer and pass "
                "the customer_ref you mean"
            )
        return ids[0]

    async def refs(self, conn: Any, caller: Caller, ids: list[UUID]) -> dict[UUID, CustomerRef]:
        """Customer references for a list: masked contact, or contact and name with PII."""
        ids = list(dict.fromkeys(ids))[:500]
        out = {pid: CustomerRef(customer_ref=str(pid)) for pid in ids}
        if not ids:
            return out
        crypto = self.crypto(caller.brand_id)
        for r in await repo.contacts(conn, caller.brand_id, ids):
            ref = out[r["profile_id"]]
            ref.contact = crypto.decrypt_str(r["value_enc"]) if caller.pii else r["masked"]
        if caller.pii:
            for r in await repo.traits(conn, caller.brand_id, ids):
                out[r["id"]].name = customer_text(display_name(crypto, r["traits_enc"]))
            await self.audit_pii(conn, caller, ids, "list")
        return out

    async def audit_pii(self, conn: Any, caller: Caller, ids: list[UUID], what: str) -> None:
        """Who saw which customer's personal data, through which tool."""
        await repo.audit(
            conn,
            caller.brand_id,
            caller.actor,
            "mcp.pii_read",
            [str(i) for i in ids],
            {"via": what},
        )


def display_name(crypto: BrandCrypto, traits_enc: bytes | None) -> str | None:
    if not traits_enc:
        return None
    traits = orjson.loads(crypto.decrypt(traits_enc))
    name = " ".join(str(traits.get(k) or "").strip() for k in ("first_name", "last_name"))
    return name.strip() or None


def _candidate_kinds(q: str) -> list[str]:
    try:
        UUID(q)
        return ["profile_id"]
    except ValueError:
        pass
    if "@" in q:
        return ["email"]
    if _EXTERNAL.match(q):
        return ["external_id"]
    if _PHONEISH.match(q) and sum(c.isdigit() for c in q) >= 7:
        return ["phone", "loyalty_id"]
    if " " not in q and any(c.isdigit() for c in q):
        return ["loyalty_id", "name"]
    return ["name"]


def _shown(value: str) -> str:
    """Echo a query back without repeating a full identifier into the transcript."""
    v = value.strip()
    return repr(v if len(v) <= 6 else v[:3] + "…" + v[-2:])
