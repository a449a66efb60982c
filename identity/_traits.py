"""Address, postcode, city, country and date-of-birth normalization (private to `identity`)."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache

from identity._names import fold

# Street words reduced to one spelling so "12 High Street" == "12 high st".
_STREET_WORDS = {
    "street": "st", "str": "st", "road": "rd", "avenue": "ave", "av": "ave", "lane": "ln",
    "drive": "dr", "close": "cl", "court": "ct", "crt": "ct", "place": "pl", "crescent": "cres",
    "terrace": "ter", "terr": "ter", "gardens": "gdns", "garden": "gdn", "square": "sq",
    "grove": "gr", "park": "pk", "mews": "mws", "way": "wy", "boulevard": "blvd", "highway": "hwy",
    "parkway": "pkwy", "north": "n", "south": "s", "east": "e", "west": "w", "apartment": "flat",
    "apt": "flat", "unit": "flat", "suite": "ste", "building": "bldg", "house": "ho",
    "saint": "st", "mount": "mt", "upper": "upr", "lower": "lwr",
}  # fmt: skip
_ADDRESS_NOISE = re.compile(r"[^\w]+|_")
_NUMBER_WORD = re.compile(r"^(\d+)(st|nd|rd|th)?$")


@lru_cache(maxsize=262144)
def _normalize_address_line(value: str) -> str:
    text = _ADDRESS_NOISE.sub(" ", fold(value).replace("'", ""))
    out: list[str] = []
    for token in text.split():
        if token in ("no", "number") and not out:
            continue  # "No. 12 High St"
        m = _NUMBER_WORD.match(token)
        out.append(m.group(1) if m and m.group(2) is None else _STREET_WORDS.get(token, token))
    return " ".join(out)


def normalize_address(
    line1: str | None, line2: str | None = None, *, street_number: str | None = None
) -> str:
    """One comparable street line: folded, punctuation removed, street words abbreviated.

    `normalize_address("Flat 2, 10 High Street")` -> `"flat 2 10 high st"`; an empty result
    means "no address".
    """
    parts = [p for p in (street_number, line1, line2) if p and p.strip()]
    return _normalize_address_line(" ".join(parts)) if parts else ""


def address_numbers(normalized: str) -> frozenset[str]:
    """The numbers in a normalized street line (house and flat numbers): they must agree."""
    return frozenset(t for t in normalized.split() if t.isdigit())


_COUNTRIES = {
    "gb": "GB", "uk": "GB", "united kingdom": "GB", "great britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "britain": "GB",
    "us": "US", "usa": "US", "united states": "US", "united states of america": "US",
    "america": "US", "ie": "IE", "ireland": "IE", "republic of ireland": "IE", "ca": "CA",
    "canada": "CA", "au": "AU", "australia": "AU", "fr": "FR", "france": "FR", "de": "DE",
    "germany": "DE", "deutschland": "DE", "es": "ES", "spain": "ES", "espana": "ES", "it": "IT",
    "italy": "IT", "italia": "IT", "nl": "NL", "netherlands": "NL", "nz": "NZ",
    "new zealand": "NZ", "in": "IN", "india": "IN",
}  # fmt: skip


@lru_cache(maxsize=4096)
def country_code(value: str | None) -> str | None:
    """ISO 3166 alpha-2 code for a country name or code ("United Kingdom" -> "GB")."""
    if not value:
        return None
    text = " ".join(_ADDRESS_NOISE.sub(" ", fold(value)).split())
    if text in _COUNTRIES:
        return _COUNTRIES[text]
    return text.upper() if len(text) == 2 and text.isalpha() else None


_GB_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})$")
_CA_POSTCODE = re.compile(r"^([A-Z]\d[A-Z])(\d[A-Z]\d)$")
_US_ZIP = re.compile(r"^(\d{5})(?:\d{4})?$")
_POSTCODE_NOISE = re.compile(r"[^0-9A-Z]")


@lru_cache(maxsize=262144)
def normalize_postcode(value: str | None, country: str | None = "GB") -> str | None:
    """Postcode in the country's canonical form ("sw1a1aa" -> "SW1A 1AA", ZIP+4 -> ZIP).

    Unrecognised shapes keep their upper-cased letters and digits, so two copies of the same
    odd value still compare equal; None when nothing is left.
    """
    if not value:
        return None
    text = _POSTCODE_NOISE.sub("", fold(value).upper())
    if not text:
        return None
    cc = country_code(country) or "GB"
    if cc == "GB":
        m = _GB_POSTCODE.match(text)
        return f"{m.group(1)} {m.group(2)}" if m else text
    if cc == "CA":
        m = _CA_POSTCODE.match(text)
        return f"{m.group(1)} {m.group(2)}" if m else text
    if cc == "US":
        m = _US_ZIP.match(text)
        return m.group(1) if m else text
    return text


def postcode_district(postcode: str | None) -> str | None:
    """The coarse area of a normalized postcode: GB/CA outward code, first 3 ZIP digits."""
    if not postcode:
        return None
    if " " in postcode:
        return postcode.split(" ", 1)[0]
    if len(postcode) == 5 and postcode.isdigit():
        return postcode[:3]
    return None


@lru_cache(maxsize=65536)
def normalize_city(value: str | None) -> str:
    """City for comparison: folded, punctuation removed, "St." == "Saint"."""
    if not value:
        return ""
    tokens = _ADDRESS_NOISE.sub(" ", fold(value).replace("'", "")).split()
    return " ".join("saint" if t == "st" else t for t in tokens)


# Values systems write when nobody knows the birthday: never evidence for a match.
PLACEHOLDER_DOBS = frozenset(
    {date(1900, 1, 1), date(1901, 1, 1), date(1899, 12, 31), date(1970, 1, 1)}
)
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_DOB_NUMERIC = re.compile(r"^(\d{1,4})[-/. ](\d{1,2})[-/. ](\d{1,4})(?:[ T].*)?$")
_DOB_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DOB_WORDS = re.compile(r"[a-z]+|\d+")


def _year(text: str, today: date) -> int:
    year = int(text)
    if len(text) <= 2:
        # Two-digit years: the most recent past century.
        year += 2000 if 2000 + year <= today.year else 1900
    return year


def _valid(year: int, month: int, day: int, today: date) -> date | None:
    try:
        d = date(year, month, day)
    except ValueError:
        return None
    if d.year < 1900 or d > today or d in PLACEHOLDER_DOBS:
        return None
    return d


@lru_cache(maxsize=131072)
def _parse_dob_text(text: str, dayfirst: bool, today: date) -> date | None:
    m = _DOB_COMPACT.match(text)
    if m:
        return _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = _DOB_NUMERIC.match(text)
    if m:
        a, b, c = m.groups()
        if len(a) == 4:  # ISO order, year first
            return _valid(int(a), int(b), int(c), today)
        year = _year(c, today)
        first, second = int(a), int(b)
        if dayfirst and first <= 31 and second <= 12:
            return _valid(year, second, first, today)
        if second <= 31 and first <= 12:
            return _valid(year, first, second, today)
        return _valid(year, second, first, today)
    # "7 March 1985", "March 7, 1985", "07-Mar-85"
    tokens = _DOB_WORDS.findall(text.lower())
    months = [_MONTHS.get(t[:4]) or _MONTHS.get(t[:3]) for t in tokens if t.isalpha()]
    numbers = [t for t in tokens if t.isdigit()]
    found = [mo for mo in months if mo is not None]
    if len(found) == 1 and len(numbers) == 2:
        if len(numbers[0]) == 4 or int(numbers[0]) > 31:
            year_text, day_text = numbers
        else:
            day_text, year_text = numbers
        return _valid(_year(year_text, today), found[0], int(day_text), today)
    return None


def parse_dob(value: object, *, dayfirst: bool = True) -> date | None:
    """Date of birth from ISO, day-first or month-first numeric, compact or worded forms.

    Ambiguous numeric dates are read day-first (the GB default) unless `dayfirst=False`;
    impossible, future, pre-1900 and placeholder dates (1900-01-01, 1970-01-01) give None.
    """
    today = date.today()
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return _valid(value.year, value.month, value.day, today)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 40:
        return None
    return _parse_dob_text(text, dayfirst, today)
