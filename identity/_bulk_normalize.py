"""Column-wise normalization of a customer file into integer codes (private to `identity`).

Every normalizer runs once per distinct raw value, never per row: a file of a million rows
has far fewer distinct first names, cities or dates. The expensive ones (emails, phones,
addresses) are spread over worker processes when the file is large. The per-value functions
are exactly those of `identity.normalize`, so bulk and single-event resolution agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context

import numpy as np
import pandas as pd
import phonenumbers

from identity._names import soundex
from identity._traits import address_numbers
from identity.normalize import (
    country_code,
    external_id,
    normalize_address,
    normalize_city,
    normalize_email,
    normalize_id,
    normalize_name_part,
    normalize_phone,
    normalize_postcode,
    parse_dob,
    postcode_district,
    split_full_name,
)

# Below this many distinct values a worker pool costs more than it saves.
PARALLEL_MIN_VALUES = 40_000
OK, INVALID, PLACEHOLDER = 0, 1, 2


@dataclass
class Prepared:
    """A customer file as codes: -1 means missing (or invalid, or a placeholder)."""

    n: int
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    ext_source: np.ndarray | None = None
    names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    first: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    last: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    name_tokens: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    first_sx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    last_sx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    first_initial: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    last3: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    dob: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    streets: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    street: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    street_numbers: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    postcode: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    district: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    city: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    invalid: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)


def _codes(values: Sequence[object] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pandas.factorize with None/"" as missing (-1)."""
    arr = pd.array(values, dtype="string") if not isinstance(values, pd.Series) else values
    ser = pd.Series(arr).replace("", None)
    codes, uniques = pd.factorize(ser, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _identifier_chunk(kind: str, params: tuple, values: list[str]) -> list[tuple[str | None, int]]:
    """Normalize distinct raw values of one kind (runs in a worker): (value, status)."""
    out = []
    for raw in values:
        if kind == "email":
            n = normalize_email(raw, provider_rules=params[0])
        elif kind == "phone":
            n = normalize_phone(raw, region=params[0])
        elif kind == "external":
            n = external_id(params[0], raw)
        else:
            n = normalize_id(kind, raw)
        status = OK if n.matchable else INVALID if not n.valid else PLACEHOLDER
        out.append((n.value if status == OK else None, status))
    return out


def _address_chunk(values: list[str]) -> list[str]:
    return [normalize_address(v) for v in values]


class _Mapper:
    """Applies a per-value function to distinct values, in worker processes when worth it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Mapper:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map(self, fn: Callable[[list[str]], list], values: list[str]) -> list:
        if self.workers <= 1 or len(values) < PARALLEL_MIN_VALUES:
            return fn(values)
        if self._pool is None:
            # fork: workers start instantly and share the loaded modules; nothing they touch
            # holds locks (pure functions over strings).
            ctx = get_context("fork") if "fork" in _start_methods() else None
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        size = -(-len(values) // (self.workers * 4))
        chunks = [values[i : i + size] for i in range(0, len(values), size)]
        out: list = []
        for part in self._pool.map(fn, chunks):
            out.extend(part)
        return out


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def _region_of(country: pd.Series, default: str) -> np.ndarray:
    """Per-row ISO region from a country column, else the brand's default region."""
    codes, uniques = _codes(country)
    default = default.upper()
    known = phonenumbers.SUPPORTED_REGIONS
    regions = [cc if (cc := country_code(u)) in known else default for u in uniques] + [default]
    return np.array(regions, dtype=object)[codes]


def _normalize_identifier(
    mapper: _Mapper, kind: str, raw: pd.Series, params: tuple, prep: Prepared
) -> np.ndarray:
    """Codes of matchable normalized values of one identifier column.

    Phones arrive as "raw\x00region" so each is read in its row's country.
    """
    raw_codes, uniques = _codes(raw)
    values = np.empty(len(uniques) + 1, dtype=object)
    status = np.zeros(len(uniques) + 1, dtype=np.int8)
    groups: dict[tuple, tuple[list[int], list[str]]] = {}
    for i, item in enumerate(uniques):
        if kind == "phone":
            text, _, region = item.rpartition("\x00")
            key: tuple = (region,)
        else:
            text, key = item, params
        members, texts = groups.setdefault(key, ([], []))
        members.append(i)
        texts.append(text)
    for key, (members, texts) in groups.items():
        result = mapper.map(partial(_identifier_chunk, kind, key), texts)
        for i, (v, st) in zip(members, result, strict=True):
            values[i], status[i] = v, st
    row_status = status[raw_codes]
    present = raw_codes >= 0
    prep.invalid[kind] = int(((row_status == INVALID) & present).sum())
    prep.placeholders[kind] = int(((row_status == PLACEHOLDER) & present).sum())
    return _codes(values[raw_codes])[0]


def _map_small(raw: pd.Series, fn: Callable[[str], object]) -> np.ndarray:
    """fn over distinct values, broadcast back to rows (missing -> None)."""
    codes, uniques = _codes(raw)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return mapped[codes]


def prepare(
    df: pd.DataFrame,
    columns: dict[str, list[str]],
    *,
    region: str,
    provider_rules: bool,
    workers: int | None = None,
) -> Prepared:
    """Normalize the mapped columns of `df` (field -> column names) into a `Prepared`."""
    n = len(df)
    prep = Prepared(n)
    workers = max(1, min(os.cpu_count() or 1, 4) if workers is None else workers)
    col = {f: df[cs[0]].astype("string").fillna("") for f, cs in columns.items() if cs}
    regions = (
        _region_of(col["country"], region)
        if "country" in col
        else np.full(n, region.upper(), dtype=object)
    )
    with _Mapper(workers) as mapper:
        if "email" in col:
            prep.ids["email"] = _normalize_identifier(
                mapper, "email", col["email"], (provider_rules,), prep
            )
        if "phone" in col:
            phone = col["phone"]
            keyed = phone.where(phone.str.strip() == "", phone + "\x00" + regions)
            prep.ids["phone"] = _normalize_identifier(mapper, "phone", keyed, (), prep)
        if "loyalty_id" in col:
            prep.ids["loyalty_id"] = _normalize_identifier(
                mapper, "loyalty_id", col["loyalty_id"], (), prep
            )
        if "external_id" in col:
            source = columns["external_id"][0].strip().lower().replace(":", "_") or "external"
            prep.ids["external"] = _normalize_identifier(
                mapper, "external", col["external_id"], (source,), prep
            )
            prep.ext_source = np.where(prep.ids["external"] >= 0, 0, -1)
        _names(prep, col)
        if "dob" in col:
            dob = _map_small(col["dob"], parse_dob)
            prep.dob = np.array([d.year * 10000 + d.month * 100 + d.day if d else 0 for d in dob])
        else:
            prep.dob = np.zeros(n, dtype=np.int64)
        _places(prep, col, regions, mapper)
    return prep


def _names(prep: Prepared, col: dict[str, pd.Series]) -> None:
    n = prep.n
    empty = pd.Series([""] * n, dtype="string")
    first, last = col.get("first_name", empty), col.get("last_name", empty)
    if "full_name" in col:
        split = _map_small(col["full_name"], split_full_name)
        f_full = pd.Series([s[0] if s else "" for s in split], dtype="string")
        l_full = pd.Series([s[1] if s else "" for s in split], dtype="string")
        first = first.where(first.str.strip() != "", f_full.to_numpy())
        last = last.where(last.str.strip() != "", l_full.to_numpy())
    f_norm = _map_small(first, normalize_name_part)
    l_norm = _map_small(last, normalize_name_part)
    # One vocabulary for first and last names, so swapped fields compare by code.
    codes, names = _codes(np.concatenate([f_norm, l_norm]))
    prep.names = names
    prep.first, prep.last = codes[:n], codes[n:]
    tokens = np.array(
        [" ".join(sorted(f"{a or ''} {b or ''}".split())) for a, b in zip(f_norm, l_norm, strict=True)],
        dtype=object,
    )
    prep.name_tokens = _codes(tokens)[0]
    sx = np.array([soundex(s) for s in names] + [""], dtype=object)
    sx_codes = _codes(sx)[0]
    prep.first_sx, prep.last_sx = sx_codes[prep.first], sx_codes[prep.last]
    initials = np.array([s[0] for s in names] + [""], dtype=object)
    prep.first_initial = _codes(initials[prep.first])[0]
    last3 = np.array([s[:3] for s in names] + [""], dtype=object)
    prep.last3 = _codes(last3[prep.last])[0]


def _places(
    prep: Prepared,
    col: dict[str, pd.Series],
    regions: np.ndarray,
    mapper: _Mapper,
) -> None:
    n = prep.n
    if "address" in col or "street_number" in col:
        parts = [col[f] for f in ("street_number", "address") if f in col]
        line = parts[0] if len(parts) == 1 else (parts[0] + " " + parts[1]).str.strip()
        codes, uniques = _codes(line)
        normalized = np.array(mapper.map(_address_chunk, list(uniques)) + [""], dtype=object)
        prep.street, prep.streets = _codes(normalized[codes])
        numbers = np.array([" ".join(sorted(address_numbers(s))) for s in prep.streets] + [""])
        prep.street_numbers = _codes(numbers[prep.street])[0]
    else:
        prep.street = np.full(n, -1, dtype=np.int64)
        prep.street_numbers = np.full(n, -1, dtype=np.int64)
    if "postcode" in col:
        raw = col["postcode"]
        keyed = raw.where(raw.str.strip() == "", raw + "\x00" + regions)
        pcs = _map_small(keyed, _postcode_with_region)
        prep.postcode = _codes(pcs)[0]
        prep.district = _codes(np.array([postcode_district(p) for p in pcs], dtype=object))[0]
    else:
        prep.postcode = np.full(n, -1, dtype=np.int64)
        prep.district = np.full(n, -1, dtype=np.int64)
    prep.city = _codes(_map_small(col["city"], normalize_city))[0] if "city" in col else np.full(n, -1)


def _postcode_with_region(item: str) -> str | None:
    value, _, country = item.rpartition("\x00")
    return normalize_postcode(value, country)
