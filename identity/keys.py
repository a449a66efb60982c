"""Match keys: normalized identifiers turned into keyed hashes (the only thing ever matched
on), with a sealed copy of the value for authorized display and data-subject export."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.crypto import BrandCrypto
from core.events import Identifiers
from identity.normalize import Normalized, identifiers_of, strength

STRENGTH_RANK = {"strong": 3, "medium": 2, "weak": 1}
# Order of kinds when choosing which profile an event belongs to first.
KIND_PRIORITY = {
    "email": 0,
    "external": 1,
    "phone": 2,
    "loyalty_id": 3,
    "device_id": 4,
    "cookie_id": 5,
}


@dataclass(frozen=True, slots=True)
class IdKey:
    kind: str
    value: str | None
    hash: bytes
    rank: int  # 3 strong, 2 medium, 1 weak
    usable: bool  # valid and not a placeholder
    placeholder: bool
    ref: tuple[str, bytes]  # (kind, hash): the identity of the key, looked up constantly

    @property
    def lock_key(self) -> str:
        return f"{self.kind}:{self.hash.hex()}"

    def masked(self) -> str:
        return mask(self.kind, self.value or "")


def mask(kind: str, value: str) -> str:
    """`j***@gmail.com`, `+44 ***** **123`, `sh***23`: enough to recognise, not to use."""
    if not value:
        return ""
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "phone" and value.startswith("+"):
        digits = value[1:]
        cc = 1 if digits[:1] in ("1", "7") else 2 if len(digits) > 10 else 1
        return f"+{digits[:cc]} ***** **{digits[-3:]}"
    if len(value) <= 4:
        return "*" * len(value)
    return f"{value[:2]}***{value[-2:]}"


def name_norm(traits: Mapping[str, Any]) -> str:
    """The normalized "first last" kept in clear for trigram search."""
    from identity._names import normalize_name_part

    parts = (
        normalize_name_part(traits.get("first_name")),
        normalize_name_part(traits.get("last_name")),
    )
    return " ".join(x for x in parts if x)


class _Ids:
    """Attribute view of a stored (already validated) identifiers dict: pydantic's
    model_construct costs ~40 us an event on the hot path, this costs nothing."""

    __slots__ = (
        "cookie_id",
        "device_id",
        "email",
        "external_ids",
        "loyalty_id",
        "phone",
        "whatsapp",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.email = data.get("email")
        self.phone = data.get("phone")
        self.whatsapp = data.get("whatsapp")
        self.loyalty_id = data.get("loyalty_id")
        self.device_id = data.get("device_id")
        self.cookie_id = data.get("cookie_id")
        self.external_ids = data.get("external_ids") or {}


def _as_identifiers(ids: Identifiers | Mapping[str, Any]) -> Any:
    if isinstance(ids, Identifiers):
        return ids
    return _Ids(ids or {})


def identifier_keys(
    crypto: BrandCrypto,
    ids: Identifiers | Mapping[str, Any],
    *,
    region: str = "GB",
    provider_rules: bool = False,
    blocklist: Iterable[str] = (),
) -> list[IdKey]:
    """Every valid identifier of an event as a keyed hash; invalid ones are left out (they stay
    on the raw event, flagged); placeholders are kept but marked unusable.

    A person's events repeat the same identifiers (a session's cookie and device, the email
    once signed in), so results are memoised per brand and identifier set: a stream worker
    skips normalizing and hashing for most events. The memo lives in process memory only,
    like the decrypted payloads it derives from, and is dropped wholesale when full.
    """
    view = _as_identifiers(ids)
    blocked = tuple(blocklist)
    memo_key: tuple[Any, ...] | None = (
        crypto.brand_id,
        region,
        provider_rules,
        blocked,
        view.email,
        view.phone,
        view.whatsapp,
        view.loyalty_id,
        view.device_id,
        view.cookie_id,
        tuple(sorted((str(k), str(v)) for k, v in (view.external_ids or {}).items())),
    )
    hit = None
    try:
        hit = _MEMO.get(memo_key) if memo_key is not None else None
    except TypeError:  # an unhashable value (not from a validated event): no memo
        memo_key = None
    if hit is not None:
        return list(hit)
    out = []
    for n in identifiers_of(view, region=region, provider_rules=provider_rules, blocklist=blocked):
        if not n.valid or n.value is None:
            continue
        out.append(_key(crypto, n))
    if memo_key is not None:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[memo_key] = tuple(out)
    return out


_MEMO: dict[tuple[Any, ...], tuple[IdKey, ...]] = {}
_MEMO_MAX = 50_000


def _key(crypto: BrandCrypto, n: Normalized) -> IdKey:
    assert n.value is not None
    digest = crypto.blind_index(n.kind, n.value)
    return IdKey(
        kind=n.kind,
        value=n.value,
        hash=digest,
        rank=_RANK[n.kind],
        usable=n.matchable,
        placeholder=n.placeholder,
        ref=(n.kind, digest),
    )


_RANK = {
    k: STRENGTH_RANK[strength(k)]
    for k in ("email", "phone", "external", "loyalty_id", "device_id", "cookie_id")
}
