"""Per-value helpers of the bulk normalizer (private to `identity`): factorizing columns,
mapping a normalizer over distinct values, and the clean-ups that merge spelling variants
without changing any normalizer's answer (`tests/identity/test_normalize.py` checks that)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers

from identity.normalize import (
    country_code,
    email_value,
    external_id,
    normalize_id,
    normalize_postcode,
    parse_dob,
    phone_value,
    placeholder_check,
)

_PHONE_SHAPE = re.compile(r"^\+?[0-9( ][0-9 \-.()]*$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -.()")


def codes_of(values: Iterable[Any] | np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factorize: (int64 codes, distinct values); None, NaN and "" are missing (-1)."""
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    codes, uniques = pd.factorize(np.asarray(arr, dtype=object), use_na_sentinel=True)
    codes = codes.astype(np.int64)
    uniques = np.asarray(uniques, dtype=object)
    blank = np.flatnonzero(uniques == "")
    if blank.size:
        k = int(blank[0])
        codes[codes == k] = -1
        codes[codes > k] -= 1
        uniques = np.delete(uniques, k)
    return codes, uniques


def _map_distinct(
    raw: np.ndarray, fn: Callable[[str], Any], clean: Callable[[str], str] | None = None
) -> tuple[np.ndarray, list[Any]]:
    """fn once per distinct (cleaned) raw value: (per-row index into results or -1, results)."""
    raw_codes, uniques = codes_of(raw)
    if clean is None:
        return raw_codes, [fn(u) for u in uniques]
    cleaned = [clean(u) for u in uniques]
    index: dict[str, int] = {}
    order = np.array([index.setdefault(c, len(index)) for c in cleaned] + [-1], dtype=np.int64)
    return order[raw_codes], [fn(c) for c in index]


def _with_region(
    raw: np.ndarray, regions: np.ndarray, clean: Callable[[str], str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Distinct (cleaned raw value, region) pairs as "value\x00region" keys, and each row's
    index into them (-1 for a blank value). Built from codes, not per row."""
    raw_codes, texts = codes_of(raw)
    if clean is not None:
        # Variants that clean to one text are normalized once.
        text_codes, texts = codes_of([clean(u) for u in texts])
        raw_codes = np.append(text_codes, -1)[raw_codes]
    region_codes, region_names = codes_of(regions)
    width = len(region_names)
    combo = np.where(raw_codes >= 0, raw_codes * width + region_codes, -1)
    combo_codes, combos = pd.factorize(combo)
    present = combos >= 0
    keys = [f"{texts[c // width]}\x00{region_names[c % width]}" for c in combos[present]]
    renumber = np.full(len(combos), -1, dtype=np.int64)
    renumber[present] = np.arange(int(present.sum()))
    return renumber[combo_codes], keys


def _local(results: list[Any], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row codes, vocabulary) from per-distinct results, None or "" meaning missing."""
    codes, vocab = codes_of(np.array([*results, None], dtype=object))
    return codes[rows], vocab


def _email_clean(text: str) -> str:
    return text.strip().lower()  # normalize_email starts exactly so


def _phone_clean(text: str) -> str:
    # Punctuation never changes what phonenumbers reads from a digits-only number.
    text = text.strip()
    return text.translate(_PHONE_PUNCTUATION) if _PHONE_SHAPE.match(text) else text


def _identifier_status(kind: str, param: Any) -> Callable[[str], tuple[str | None, int]]:
    check = placeholder_check(kind)
    seen: dict[str, bool] = {}

    def placeholder(value: str) -> bool:
        # Spelling variants of one number or address meet again here: check each once.
        hit = seen.get(value)
        if hit is None:
            hit = seen[value] = check(value)
        return hit

    def run(raw: str) -> tuple[str | None, int]:
        if kind == "email":
            value = email_value(raw, bool(param))[0]
        elif kind == "phone":
            text, region = raw.rsplit("\x00", 1)
            value = phone_value(text, region, cache=False)[0]
        elif kind == "external":
            value = external_id(str(param), raw).value
        else:
            value = normalize_id(kind, raw).value
        if value is None:
            return None, 1
        return (None, 2) if placeholder(value) else (value, 0)

    return run


def _dob_number(text: str) -> int:
    d = parse_dob(text)
    return d.year * 10000 + d.month * 100 + d.day if d else 0


def _postcode(item: str) -> str | None:
    value, _, country = item.rpartition("\x00")
    return normalize_postcode(value, country)


def _postcode_clean(text: str) -> str:
    # normalize_postcode upper-cases and drops spaces itself: merge those variants first.
    return text.upper().replace(" ", "") if text.isascii() else text


def _address_clean(text: str) -> str:
    return " ".join(text.lower().split()) if text.isascii() else text


def _fill(primary: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    if primary is None:
        return fallback
    return np.where(np.array([bool(p.strip()) for p in primary]), primary, fallback)


def _street_line(col: dict[str, np.ndarray]) -> np.ndarray | None:
    if "street_number" in col and "address" in col:
        both = zip(col["street_number"], col["address"], strict=True)
        return np.array([f"{a} {b}".strip() for a, b in both], dtype=object)
    return col.get("address", col.get("street_number"))


def _source(column: str) -> str:
    return column.strip().lower().replace(":", "_") or "external"


def _regions(country: np.ndarray | None, default: str, n: int) -> np.ndarray:
    """Per-row region for phones and postcodes: the row's country when phonenumbers knows
    it, else the brand's default region."""
    default = default.upper()
    if country is None:
        return np.full(n, default, dtype=object)
    codes, uniques = codes_of(country)
    known = phonenumbers.SUPPORTED_REGIONS
    regions = [cc if (cc := country_code(u)) in known else default for u in uniques] + [default]
    return np.array(regions, dtype=object)[codes]
