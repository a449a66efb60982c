"""Normalize identifiers and traits before anything is matched.

Every identifier becomes a `Normalized`: the comparable value (or None), whether it is valid,
why not, and whether it is a known placeholder. Invalid values and placeholders are kept on
the raw event for display but are never matched on (ARCHITECTURE.md, "Identity resolution").
Keyed hashing of the normalized value happens later, in the service; nothing here stores PII.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from identity._names import normalize_name, normalize_name_part, soundex, split_full_name
from identity._traits import (
    country_code,
    normalize_address,
    normalize_city,
    normalize_postcode,
    parse_dob,
    postcode_district,
)

if TYPE_CHECKING:
    from core.events import Identifiers

__all__ = [
    "DEFAULT_BLOCKLIST",
    "MEDIUM",
    "STRONG",
    "WEAK",
    "Normalized",
    "country_code",
    "external_id",
    "identifiers_of",
    "is_placeholder",
    "normalize_address",
    "normalize_city",
    "normalize_email",
    "normalize_id",
    "normalize_name",
    "normalize_name_part",
    "normalize_phone",
    "normalize_postcode",
    "parse_dob",
    "postcode_district",
    "soundex",
    "split_full_name",
    "strength",
]

STRONG = frozenset({"email", "phone", "external"})
MEDIUM = frozenset({"loyalty_id"})
WEAK = frozenset({"device_id", "cookie_id"})
ID_KINDS = ("loyalty_id", "device_id", "cookie_id")
Strength = Literal["strong", "medium", "weak"]
MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Normalized:
    """One identifier after normalization.

    `value` is the comparable form (E.164 phone, lower-cased email, "shopify:123") or None
    when the input could not be read; `valid` is False with a short `reason` for bad input;
    `placeholder` marks junk such as test@test.com. Only `matchable` values may link people.
    """

    kind: str
    value: str | None
    valid: bool
    reason: str | None = None
    placeholder: bool = False

    @property
    def matchable(self) -> bool:
        """Valid, not a placeholder: safe to hash and match on."""
        return self.valid and not self.placeholder and self.value is not None


def strength(kind: str) -> Strength:
    """Strength of an identifier kind: email/phone/whatsapp/external > loyalty > device/cookie."""
    kind = "phone" if kind == "whatsapp" else kind
    if kind in STRONG:
        return "strong"
    if kind in MEDIUM:
        return "medium"
    if kind in WEAK:
        return "weak"
    raise ValueError(f"unknown identifier kind: {kind!r}")


# Placeholders seen in real customer files. Patterns are matched against the normalized value
# with shell wildcards; structural rules (repeated or sequential digits) live in code below.
DEFAULT_BLOCKLIST: Mapping[str, tuple[str, ...]] = {
    "email": (
        "test@test.com", "test@example.com", "na@na.com", "none@none.com", "no@no.com",
        "a@a.com", "abc@abc.com", "x@x.com", "xx@xx.com", "xxx@xxx.com", "email@email.com",
        "no@email.com", "noemail@*", "no.email@*", "no-email@*", "no_email@*", "nomail@*",
        "no-mail@*", "noreply@*", "no-reply@*", "no_reply@*", "donotreply@*", "do-not-reply@*",
        "none@*", "null@*", "unknown@*", "n/a@*", "na@*", "nobody@*", "declined@*",
        "refused@*", "notprovided@*", "not.provided@*", "noaddress@*", "dummy@*", "fake@*",
        "*@example.com", "*@example.org", "*@example.net", "*@*.example", "*@*.invalid",
        "*@*.test", "*@*.localhost", "*@test.com", "*@noemail.com", "*@none.com",
        "*@nomail.com", "*@mailinator.invalid",
    ),
    "phone": (
        "+440000000000", "+441234567890", "+447000000000", "+447123456789", "+12345678900",
        "+10000000000", "+15555555555",
    ),
    "loyalty_id": ("0", "NONE", "NULL", "NA", "N/A", "UNKNOWN", "TEST", "-"),
    "device_id": (
        "00000000-0000-0000-0000-000000000000", "0", "null", "undefined", "unknown", "none",
    ),
    "cookie_id": ("0", "null", "undefined", "unknown", "none", "-"),
    "external": ("*:0", "*:-1", "*:null", "*:none", "*:guest", "*:undefined"),
}  # fmt: skip

_SEQUENCES = ("01234567890", "12345678901", "9876543210")


@lru_cache(maxsize=256)
def _compiled(kind: str, extra: tuple[str, ...]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    patterns = (*DEFAULT_BLOCKLIST.get(kind, ()), *extra)
    # Identifier kinds that are case-insensitive compare in lower case.
    fold = kind in ("email", "device_id", "cookie_id", "external")
    exact = {p.lower() if fold else p for p in patterns if not any(c in p for c in "*?[")}
    wild = [fnmatch.translate(p.lower() if fold else p) for p in patterns if p not in exact]
    regex = re.compile("|".join(wild)) if wild else None
    return frozenset(exact), regex


def _placeholder_digits(digits: str) -> bool:
    if len(digits) >= 6 and len(set(digits)) == 1:
        return True
    # A long run of one digit at the end ("07000 000000") or a dialling sequence.
    tail = len(digits) - len(digits.rstrip(digits[-1])) if digits else 0
    return tail >= 7 or (len(digits) >= 8 and any(digits in s or s in digits for s in _SEQUENCES))


def is_placeholder(kind: str, normalized: str | None, extra_blocklist: Iterable[str] = ()) -> bool:
    """True when a normalized value is a known placeholder (test@test.com, 0000000000, ...).

    `extra_blocklist` adds a brand's own patterns (shell wildcards, e.g. the store's phone).
    """
    if not normalized:
        return False
    kind = "phone" if kind == "whatsapp" else kind
    exact, regex = _compiled(kind, tuple(extra_blocklist))
    probe = normalized.lower() if kind in ("email", "device_id", "cookie_id", "external") else normalized
    if probe in exact or (regex is not None and regex.match(probe)):
        return True
    if kind == "phone":
        national = _national_digits(normalized)
        return _placeholder_digits(national)
    if kind == "email":
        local = probe.split("@", 1)[0]
        return len(local) >= 3 and len(set(local)) == 1  # aaa@, xxxx@
    if kind in ID_KINDS or kind == "external":
        raw = probe.split(":", 1)[-1].replace("-", "")
        return len(raw) >= 3 and len(set(raw)) == 1
    return False


@lru_cache(maxsize=1024)
def _country_prefix_len(e164: str) -> int:
    for size in (1, 2, 3):
        if int(e164[1 : 1 + size] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return size
    return 0


def _national_digits(e164: str) -> str:
    if not e164.startswith("+"):
        return e164
    return e164[1 + _country_prefix_len(e164[:4]) :]


# --- email --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"^(?P<local>[^\s@\"(),:;<>\[\]\\]{1,64})@"
    r"(?P<domain>(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+"
    r"(?:[a-z\u00a1-\uffff]{2,63}|xn--[a-z0-9-]{1,59}))$"
)
_WHITESPACE = re.compile(r"\s")
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Providers that deliver "user+tag@" to "user@": the tag is dropped only for these.
PLUS_TAG_PROVIDERS = frozenset(
    {
        "gmail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com", "live.co.uk",
        "msn.com", "icloud.com", "me.com", "mac.com", "fastmail.com", "fastmail.fm",
        "protonmail.com", "proton.me", "pm.me", "yandex.com", "yandex.ru", "zoho.com",
    }
)  # fmt: skip


def _email_invalid(reason: str) -> Normalized:
    return Normalized("email", None, False, reason)


def normalize_email(
    value: str | None, *, provider_rules: bool = False, blocklist: Iterable[str] = ()
) -> Normalized:
    """Trim and lower-case an email; flag it invalid (missing @, spaces, bad domain...).

    With `provider_rules` (a per-brand option), Gmail/Googlemail dots and "+tags" are removed
    and googlemail.com becomes gmail.com; "+tags" are dropped only for providers known to
    ignore them, never for arbitrary domains where "a+b@" may be a different mailbox.
    """
    if value is None:
        return _email_invalid("empty")
    text = value.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:].strip()
    if not text:
        return _email_invalid("empty")
    if len(text) > 254:
        return _email_invalid("too_long")
    if _WHITESPACE.search(text):
        return _email_invalid("whitespace")
    at = text.count("@")
    if at != 1:
        return _email_invalid("missing_at" if at == 0 else "multiple_at")
    m = _EMAIL.match(text)
    if m is None:
        local = text.split("@", 1)[0]
        return _email_invalid("bad_local" if not local or len(local) > 64 else "bad_domain")
    local, domain = m.group("local"), m.group("domain")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return _email_invalid("bad_local")
    if provider_rules:
        if domain in GMAIL_DOMAINS:
            domain = "gmail.com"
            local = local.split("+", 1)[0].replace(".", "")
        elif domain in PLUS_TAG_PROVIDERS:
            local = local.split("+", 1)[0]
        if not local:
            return _email_invalid("bad_local")
        text = f"{local}@{domain}"
    return Normalized("email", text, True, None, is_placeholder("email", text, blocklist))


# --- phone --------------------------------------------------------------------------------

_CHANNEL_PREFIX = re.compile(r"^\s*(?:whatsapp|tel|sms)\s*:\s*", re.IGNORECASE)
_LENGTH_REASONS = {
    ValidationResult.TOO_SHORT: "too_short",
    ValidationResult.TOO_LONG: "too_long",
    ValidationResult.INVALID_LENGTH: "invalid_length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local_only",
    ValidationResult.INVALID_COUNTRY_CODE: "invalid_country_code",
}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}


@lru_cache(maxsize=262144)
def _phone_e164(text: str, region: str) -> tuple[str | None, str | None]:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, _PARSE_REASONS.get(exc.error_type, "not_a_number")
    # "Possible" (right length for the country), not "valid" (allocated range): the metadata
    # lags new allocations, and a well-formed number identifies whoever typed it consistently.
    # Junk that is well-formed is caught by the placeholder rules and shared-value detection.
    result = phonenumbers.is_possible_number_with_reason(number)
    if result != ValidationResult.IS_POSSIBLE:
        return None, _LENGTH_REASONS.get(result, "invalid_length")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def normalize_phone(
    value: str | None, *, region: str = "GB", blocklist: Iterable[str] = ()
) -> Normalized:
    """Phone number to E.164 with `phonenumbers`, read in the brand's default `region`.

    Accepts "whatsapp:+44...", "tel:", "0044...", "(0)7700-900-123", "+44 (0)..." and
    extensions (dropped: the extension does not identify a person). A WhatsApp address
    therefore has the same person-key as the phone. Unreadable numbers are flagged invalid.
    """
    if value is None:
        return Normalized("phone", None, False, "empty")
    text = _CHANNEL_PREFIX.sub("", value.strip()) if ":" in value else value.strip()
    if not text:
        return Normalized("phone", None, False, "empty")
    if len(text) > 64:
        return Normalized("phone", None, False, "too_long")
    e164, reason = _phone_e164(text, region.upper())
    if e164 is None:
        return Normalized("phone", None, False, reason)
    return Normalized("phone", e164, True, None, is_placeholder("phone", e164, blocklist))


# --- other identifiers --------------------------------------------------------------------

_ID_SEPARATORS = re.compile(r"[\s\-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_id(kind: str, value: str | None, *, blocklist: Iterable[str] = ()) -> Normalized:
    """loyalty_id / device_id / cookie_id: trimmed; loyalty ids upper-cased without spaces or
    dashes ("ab-123 45" -> "AB12345"), device and cookie ids kept as sent (case matters)."""
    if kind not in ID_KINDS:
        raise ValueError(f"normalize_id: unknown identifier kind {kind!r}")
    text = (value or "").strip()
    if kind == "loyalty_id":
        text = _ID_SEPARATORS.sub("", text).upper()
    if not text:
        return Normalized(kind, None, False, "empty")
    if len(text) > MAX_ID_LENGTH:
        return Normalized(kind, None, False, "too_long")
    if _CONTROL.search(text):
        return Normalized(kind, None, False, "control_characters")
    return Normalized(kind, text, True, None, is_placeholder(kind, text, blocklist))


def external_id(source: str, value: str | None, *, blocklist: Iterable[str] = ()) -> Normalized:
    """A platform's customer id, namespaced by platform: ("Shopify", " 123") -> "shopify:123".

    Ids of different platforms never compare equal; "0" (WooCommerce's guest) is a placeholder.
    """
    src = (source or "").strip().lower()
    text = (value or "").strip()
    if not src or ":" in src or _CONTROL.search(src):
        return Normalized("external", None, False, "bad_source")
    if not text:
        return Normalized("external", None, False, "empty")
    if len(text) > MAX_ID_LENGTH or _CONTROL.search(text):
        return Normalized("external", None, False, "too_long" if len(text) > 200 else "control")
    key = f"{src}:{text}"
    return Normalized("external", key, True, None, is_placeholder("external", key, blocklist))


def identifiers_of(
    event_identifiers: Identifiers,
    *,
    region: str = "GB",
    provider_rules: bool = False,
    blocklist: Iterable[str] = (),
) -> list[Normalized]:
    """Every identifier of a canonical event, normalized, invalid ones included (flagged).

    `whatsapp` becomes kind "phone" (one person-key with the phone); `external_ids` become
    kind "external" with value "source:id". Exact duplicates are listed once. `blocklist`
    holds the brand's extra placeholder patterns, applied to every kind.
    """
    ids = event_identifiers
    extra = tuple(blocklist)
    found: list[Normalized] = []
    if ids.email is not None:
        found.append(normalize_email(ids.email, provider_rules=provider_rules, blocklist=extra))
    for raw in (ids.phone, ids.whatsapp):
        if raw is not None:
            found.append(normalize_phone(raw, region=region, blocklist=extra))
    for kind in ID_KINDS:
        raw = getattr(ids, kind)
        if raw is not None:
            found.append(normalize_id(kind, raw, blocklist=extra))
    for source, raw in sorted(ids.external_ids.items()):
        found.append(external_id(source, raw, blocklist=extra))
    seen: set[Normalized] = set()
    unique = []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique
