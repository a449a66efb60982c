"""Normalize identifiers and traits before anything is matched.

Every identifier becomes a `Normalized`: the comparable value (or None), whether it is valid,
why not, and whether it is a known placeholder. Invalid values and placeholders are kept on
the raw event for display but are never matched on (ARCHITECTURE.md, "Identity resolution").
Keyed hashing of the normalized value happens later, in the service; nothing here stores PII.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from identity._domains import correct_domain
from identity._names import normalize_name, normalize_name_part, soundex, split_full_name
from identity._phonefast import fast_e164
from identity._placeholders import (
    DEFAULT_BLOCKLIST,
    ID_KINDS,
    _country_prefix_len,
    is_placeholder,
    placeholder_check,
)
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
    "placeholder_check",
    "postcode_district",
    "soundex",
    "split_full_name",
    "strength",
]

STRONG = frozenset({"email", "phone", "external"})
MEDIUM = frozenset({"loyalty_id"})
WEAK = frozenset({"device_id", "cookie_id"})
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


def email_value(text: str, provider_rules: bool = False) -> tuple[str | None, str | None]:
    """(normalized email, None) or (None, reason): `normalize_email` without the wrapper.

    The bulk engine calls this once per distinct value; `text` need not be trimmed.
    """
    text = text.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:].strip()
    if not text:
        return None, "empty"
    if len(text) > 254:
        return None, "too_long"
    if _WHITESPACE.search(text):
        return None, "whitespace"
    at = text.count("@")
    if at != 1:
        return None, "missing_at" if at == 0 else "multiple_at"
    m = _EMAIL.match(text)
    if m is None:
        local = text.split("@", 1)[0]
        return None, "bad_local" if not local or len(local) > 64 else "bad_domain"
    local, domain = m.group("local"), m.group("domain")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None, "bad_local"
    fixed = correct_domain(domain)
    if fixed != domain:
        domain = fixed
        text = f"{local}@{domain}"
    if provider_rules:
        if domain in GMAIL_DOMAINS:
            domain = "gmail.com"
            local = local.split("+", 1)[0].replace(".", "")
        elif domain in PLUS_TAG_PROVIDERS:
            local = local.split("+", 1)[0]
        if not local:
            return None, "bad_local"
        text = f"{local}@{domain}"
    return text, None


def normalize_email(
    value: str | None, *, provider_rules: bool = False, blocklist: Iterable[str] = ()
) -> Normalized:
    """Trim and lower-case an email; flag it invalid (missing @, spaces, bad domain...).

    With `provider_rules` (a per-brand option), Gmail/Googlemail dots and "+tags" are removed
    and googlemail.com becomes gmail.com; "+tags" are dropped only for providers known to
    ignore them, never for arbitrary domains where "a+b@" may be a different mailbox.
    """
    if value is None:
        return Normalized("email", None, False, "empty")
    text, reason = email_value(value, provider_rules)
    if text is None:
        return Normalized("email", None, False, reason)
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


def _phone_e164_once(text: str, region: str) -> tuple[str | None, str | None]:
    fast = fast_e164(text, region)
    return fast if fast is not None else _phone_e164_slow(text, region)


def _phone_e164_raw(text: str, region: str) -> tuple[str | None, str | None]:
    result = _phone_e164_once(text, region)
    # phonenumbers strips a national prefix again from "+44 0...": parse such results until
    # they stop changing, so normalizing a normalized number is a no-op.
    for _ in range(3):
        value = result[0]
        if value is None or value[1 + _country_prefix_len(value[:4])] != "0":
            break
        again = _phone_e164_once(value, region)
        if again == result:
            break
        result = again
    return result


# Events repeat the same few numbers; bulk runs call the uncached function (all distinct).
_phone_e164 = lru_cache(maxsize=65536)(_phone_e164_raw)


# A trailing extension marker, with or without its digits ("... ext.", "... x 12").
_TRAILING_EXTENSION = re.compile(r"[ ,]*(?:ext\.?|extn\.?|extension|x)[ .:#]*[0-9]{0,7}\s*$", re.I)
_LETTER = re.compile(r"[^\W\d_]")


def _phone_e164_slow(text: str, region: str) -> tuple[str | None, str | None]:
    """The reference path: `phonenumbers.parse` and its possibility check.

    Letters are refused, but for a trailing extension marker: phonenumbers would read them as
    a vanity number ("0000000000 ext." became +91...398, E-X-T on a keypad), which no
    customer means when typing into a phone field, and which does not normalize idempotently.
    """
    if _LETTER.search(text):
        text = _TRAILING_EXTENSION.sub("", text)
        if _LETTER.search(text):
            return None, "not_a_number"
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


def phone_value(
    text: str, region: str = "GB", *, cache: bool = True
) -> tuple[str | None, str | None]:
    """(E.164, None) or (None, reason): `normalize_phone` without the wrapper."""
    if ":" in text:
        text = _CHANNEL_PREFIX.sub("", text)
    text = text.strip()
    if not text:
        return None, "empty"
    if len(text) > 64:
        return None, "too_long"
    return (_phone_e164 if cache else _phone_e164_raw)(text, region.upper())


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
    e164, reason = phone_value(value, region)
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
