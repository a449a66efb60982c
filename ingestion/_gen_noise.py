"""How real data goes wrong: typos, nicknames, phone formats, postcode and address variants.

Each function takes the true value and returns what a person, a till or a CRM might write.
Typos keep the first letter: people rarely mistype it, and blocking on it stays realistic.
"""

from __future__ import annotations

import unicodedata

from ingestion._gen_data import DOMAIN_TYPOS, STREET_TYPES, nicknames
from ingestion._gen_rand import Rand

_NICKNAMES = nicknames()
_VOWELS = "aeiou"
_KEY_NEIGHBOURS = {
    "a": "sq",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "y": "tu",
}


def typo(word: str, rand: Rand) -> str:
    """One slip of the keyboard: swapped, dropped, doubled or neighbouring letter."""
    if len(word) < 3:
        return word + word[-1:]
    i = 1 + rand.below(len(word) - 2)
    kind = rand.below(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    ch = word[i]
    low = ch.lower()
    options = _KEY_NEIGHBOURS.get(low) or _VOWELS
    new = rand.pick(options)
    return word[:i] + (new.upper() if ch.isupper() else new) + word[i + 1 :]


def nickname(first: str, rand: Rand) -> str | None:
    """A short form of the first name (Jon for John, Kate for Katherine), if it has one."""
    shorts = _NICKNAMES.get(first)
    return rand.pick(shorts) if shorts else None


def ascii_fold(text: str) -> str:
    """Zoë -> Zoe: what keyboards, tills and old systems make of accents."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def name_variant(first: str, rand: Rand) -> str:
    """The first name as written on some other record: nickname when there is one, the name
    without its accents, else a typo."""
    if not first.isascii() and rand.chance(0.6):
        return ascii_fold(first)
    nick = nickname(first, rand)
    if nick and rand.chance(0.6):
        return nick
    return typo(first, rand)


def email_typo(email: str, rand: Rand) -> str:
    """A mistyped address: a known domain slip, or a slip in the local part."""
    local, _, domain = email.partition("@")
    slips = DOMAIN_TYPOS.get(domain)
    if slips and rand.chance(0.6):
        return f"{local}@{rand.pick(slips)}"
    if "." in local and rand.chance(0.4):
        return f"{local.replace('.', '', 1)}@{domain}"
    return f"{typo(local, rand)}@{domain}"


def _groups(rest: str) -> tuple[str, ...]:
    if len(rest) == 8:
        return rest[:4], rest[4:]
    if len(rest) == 7:
        return rest[:3], rest[3:]
    return rest[:3], rest[3:]


PHONE_STYLES = 8


def format_phone(e164: str, area_len: int, style: int) -> str:
    """A GB number the way people type it. `area_len` is the national area code length (4 for
    mobiles: 7700). Every style parses back to the same number with region GB."""
    national = e164[3:]
    area, rest = national[:area_len], national[area_len:]
    parts = _groups(rest)
    spaced = " ".join(parts) if len(rest) != 6 else rest
    if style == 0:
        return e164
    if style == 1:
        return "0" + national
    if style == 2:
        return f"0{area} {spaced}"
    if style == 3:
        return f"+44 {area} {spaced}"
    if style == 4:
        return f"(0){area}-{'-'.join(parts)}"
    if style == 5:
        return f"0044 {area} {spaced}"
    if style == 6:
        return "44" + national
    return f"+44 (0){area} {spaced}"


def postcode_variant(postcode: str, rand: Rand) -> str:
    """sw1a1aa, SW1A1AA or the canonical SW1A 1AA."""
    k = rand.below(5)
    if k == 0:
        return postcode.replace(" ", "")
    if k == 1:
        return postcode.lower()
    return postcode


def street_variant(line1: str, rand: Rand) -> str:
    """Abbreviate the street type (Road -> Rd) or slip a letter, as CRMs and labels do."""
    for full, short in STREET_TYPES:
        token = f" {full}"
        if line1.endswith(token) or f"{token}," in line1:
            if rand.chance(0.7):
                return line1.replace(token, f" {short}", 1)
            break
    words = line1.split(" ")
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    words[longest] = typo(words[longest], rand)
    return " ".join(words)
