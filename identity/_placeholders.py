"""Placeholder values (test@test.com, 0000000000, ...) and their blocklist (private).

Re-exported by `identity.normalize`: `DEFAULT_BLOCKLIST`, `is_placeholder`,
`placeholder_check`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

ID_KINDS = ("loyalty_id", "device_id", "cookie_id")

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


_FOLDED_KINDS = frozenset({"email", "device_id", "cookie_id", "external"})
_WILDCARDS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class _Rules:
    """A kind's blocklist split into set lookups (fast) and one regex for the rest."""

    exact: frozenset[str]
    locals: frozenset[str]
    domains: frozenset[str]
    suffixes: tuple[str, ...]
    regex: re.Pattern[str] | None


@lru_cache(maxsize=256)
def _compiled(kind: str, extra: tuple[str, ...]) -> _Rules:
    exact, locals_, domains, suffixes, wild = set(), set(), set(), [], []
    for raw in (*DEFAULT_BLOCKLIST.get(kind, ()), *extra):
        pattern = raw.lower() if kind in _FOLDED_KINDS else raw
        local, at, domain = pattern.partition("@")
        if not _WILDCARDS.search(pattern):
            exact.add(pattern)
        elif kind == "email" and at and domain == "*" and not _WILDCARDS.search(local):
            locals_.add(local)
        elif kind == "email" and at and local == "*" and not _WILDCARDS.search(domain):
            domains.add(domain)
        elif (
            kind == "email"
            and local == "*"
            and domain.startswith("*.")
            and not _WILDCARDS.search(domain[2:])
        ):
            suffixes.append(domain[1:])
        else:
            wild.append(fnmatch.translate(pattern))
    regex = re.compile("|".join(wild)) if wild else None
    return _Rules(frozenset(exact), frozenset(locals_), frozenset(domains), tuple(suffixes), regex)


_REPEATED_TAIL = re.compile(r"(\d)\1{6,}$")


def _placeholder_digits(digits: str) -> bool:
    if len(digits) >= 6 and digits == digits[0] * len(digits):
        return True
    # A long run of one digit at the end ("07000 000000") or a dialling sequence.
    if _REPEATED_TAIL.search(digits):
        return True
    return len(digits) >= 9 and any(digits in s or s in digits for s in _SEQUENCES)


def placeholder_check(kind: str, extra_blocklist: Iterable[str] = ()) -> Callable[[str], bool]:
    """`is_placeholder` for one kind with its rules compiled once (for bulk use)."""
    kind = "phone" if kind == "whatsapp" else kind
    rules = _compiled(kind, tuple(extra_blocklist))
    exact, regex = rules.exact, rules.regex
    folded = kind in _FOLDED_KINDS

    def check(normalized: str) -> bool:
        if not normalized:
            return False
        probe = normalized.lower() if folded else normalized
        if probe in exact or (regex is not None and regex.match(probe)):
            return True
        if kind == "email":
            local, _, domain = probe.rpartition("@")
            if local in rules.locals or domain in rules.domains or domain.endswith(rules.suffixes):
                return True
            return len(local) >= 3 and local == local[0] * len(local)  # aaa@, xxxx@
        if kind == "phone":
            return _placeholder_digits(_national_digits(normalized))
        if kind in ID_KINDS or kind == "external":
            raw = probe.split(":", 1)[-1].replace("-", "")
            return len(raw) >= 3 and raw == raw[0] * len(raw)
        return False

    return check


def is_placeholder(kind: str, normalized: str | None, extra_blocklist: Iterable[str] = ()) -> bool:
    """True when a normalized value is a known placeholder (test@test.com, 0000000000, ...).

    `extra_blocklist` adds a brand's own patterns (shell wildcards, e.g. the store's phone).
    """
    if not normalized:
        return False
    return _checker(kind, tuple(extra_blocklist))(normalized)


@lru_cache(maxsize=256)
def _checker(kind: str, extra: tuple[str, ...]) -> Callable[[str], bool]:
    return placeholder_check(kind, extra)


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
