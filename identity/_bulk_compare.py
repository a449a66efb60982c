"""Vectorised comparison levels and match weights for candidate pairs (private).

Computes, for arrays of pairs, exactly the levels `identity._compare.compare` gives one pair
at a time: equality tests run on integer codes; fuzzy tests (Jaro-Winkler on names, token
ratio on streets) run once per distinct pair of values, names through the scalar
`name_level` itself and streets through rapidfuzz's `cpdist` (C++, multi-threaded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz.fuzz import token_set_ratio
from rapidfuzz.process import cpdist

from identity._blocking import row_key
from identity._bulk_normalize import Prepared, codes_of
from identity._compare import (
    ADDRESS_SIMILAR,
    HOUSEHOLD,
    HOUSEHOLD_LEVELS,
    HOUSEHOLD_SHARED,
    SHARED,
    name_level,
    name_levels,
)
from identity.scoring import ScoringModel

ID_COMPARISONS = {
    "email": "email",
    "phone": "phone",
    "loyalty_id": "loyalty_id",
    "external": "external",
}


@dataclass
class PairLevels:
    """Level names per comparison as small ints into `names[comparison]`; -1 = missing."""

    codes: dict[str, np.ndarray]
    names: dict[str, tuple[str, ...]]
    freq: dict[str, np.ndarray]
    conflict: np.ndarray


def _pick(n: int, choices: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """First matching condition wins (like a SQL CASE), -1 when none does."""
    out = np.full(n, -1, dtype=np.int8)
    undecided = np.ones(n, dtype=bool)
    for cond, value in choices:
        hit = cond & undecided
        out[hit] = value
        undecided &= ~cond
    return out


def _pairwise_unique(a: np.ndarray, b: np.ndarray, fn, width: int) -> np.ndarray:
    """fn(unique (a, b) code pairs) broadcast back to rows; pairs are unordered."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    inverse, uniq = pd.factorize(lo.astype(np.int64) * width + hi)
    return fn(uniq // width, uniq % width)[inverse]


NAME_LEVELS = ("exact", "nickname", "jw92", "jw80", "initial", "other")


def _name_levels(prep: Prepared, a: np.ndarray, b: np.ndarray, *, first: bool) -> np.ndarray:
    n = a.size
    out = np.full(n, -1, dtype=np.int8)
    both = (a >= 0) & (b >= 0)
    out[both & (a == b)] = 0
    fuzzy = both & (a != b)
    if fuzzy.any():
        names = prep.names
        index = {name: i for i, name in enumerate(NAME_LEVELS)}

        def levels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return np.array(
                [index[str(name_level(names[i], names[j], first=first))] for i, j in zip(x, y, strict=True)],
                dtype=np.int8,
            )  # fmt: skip

        out[fuzzy] = _pairwise_unique(a[fuzzy], b[fuzzy], levels, len(names) + 1)
    return out


def _dob_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ya, ma, da = a // 10000, a // 100 % 100, a % 100
    yb, mb, db = b // 10000, b // 100 % 100, b % 100
    same = (ya == yb).astype(int) + (ma == mb) + (da == db)
    swapped = (ya == yb) & (ma == db) & (da == mb)
    both = (a > 0) & (b > 0)
    return _pick(a.size, [(~both, -1), (a == b, 0), ((same == 2) | swapped, 1), (both, 2)])


def _same_street(prep: Prepared, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a >= 0) & (b >= 0)
    na, nb = prep.street_numbers[a], prep.street_numbers[b]  # code -1 reads the last: none
    numbers_ok = (na < 0) | (nb < 0) | (na == nb)
    out = both & (a == b)
    fuzzy = both & (a != b) & numbers_ok
    if fuzzy.any():
        streets = prep.streets

        def similar(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            scores = cpdist(streets[x], streets[y], scorer=token_set_ratio, workers=-1)
            return scores >= ADDRESS_SIMILAR * 100

        out[fuzzy] = _pairwise_unique(a[fuzzy], b[fuzzy], similar, len(streets) + 1)
    return out


def _crossed(
    prep: Prepared,
    fa: np.ndarray,
    la: np.ndarray,
    fb: np.ndarray,
    lb: np.ndarray,
    last: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) levels in NAME_LEVELS numbering for pairs whose first names disagree:
    `name_levels` (swapped fields) where the crossed names share an initial, else as is."""
    index = {name: i for i, name in enumerate(NAME_LEVELS)}
    first = np.full(fa.size, index["other"], dtype=np.int8)
    last = last.copy()
    initial = np.append(codes_of([s[0] for s in prep.names])[0], -2)  # -1 (no name) -> -2
    gate = ((initial[fa] == initial[lb]) & (lb >= 0)) | ((initial[la] == initial[fb]) & (la >= 0))
    rows = np.flatnonzero(gate)
    if rows.size:
        sub = [fa[rows], la[rows], fb[rows], lb[rows]]
        key_codes, uniq = pd.factorize(row_key(*sub))
        vocab = np.append(prep.names, "")  # code -1 reads ""
        firsts = key_codes_first(key_codes, len(uniq))
        text = [vocab[c[firsts]] for c in sub]
        out = np.empty((len(uniq), 2), dtype=np.int8)
        for i, names in enumerate(zip(*text, strict=True)):
            levels = name_levels(*names)
            out[i] = (index.get(str(levels[0]), -1), index.get(str(levels[1]), -1))
        first[rows], last[rows] = out[key_codes, 0], out[key_codes, 1]
    return first, last


def key_codes_first(key_codes: np.ndarray, n: int) -> np.ndarray:
    """For each of `n` distinct keys, the index of its first row."""
    first = np.full(n, -1, dtype=np.int64)
    first[key_codes[::-1]] = np.arange(key_codes.size)[::-1]
    return first


ADDRESS_LEVELS = ("full", "postcode", "street", "area", "other")


def _address_levels(prep: Prepared, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    pa, pb = prep.postcode[left], prep.postcode[right]
    sa, sb = prep.street[left], prep.street[right]
    ca, cb = prep.city[left], prep.city[right]
    da, db = prep.district[left], prep.district[right]
    has_street = (sa >= 0) & (sb >= 0)
    same_street = _same_street(prep, sa, sb)
    both_pc = (pa >= 0) & (pb >= 0)
    same_pc = both_pc & (pa == pb)
    same_district = (da >= 0) & (da == db)
    same_city = (ca >= 0) & (ca == cb)
    home = same_street & ((ca < 0) | (cb < 0) | same_city | same_district)
    return _pick(
        left.size,
        [
            (home & (same_pc | ~both_pc), 0),
            (home, 2),
            (same_pc & ~has_street, 1),
            (same_pc | same_district | same_city, 3),
            (both_pc | has_street | ((ca >= 0) & (cb >= 0)), 4),
        ],
    )


def pair_levels(
    prep: Prepared, left: np.ndarray, right: np.ndarray, freq: dict[str, np.ndarray]
) -> PairLevels:
    """Comparison levels of every candidate pair (same rules as `_compare.compare`)."""
    n = left.size
    codes: dict[str, np.ndarray] = {}
    names: dict[str, tuple[str, ...]] = {}
    freqs: dict[str, np.ndarray] = {}
    address = _address_levels(prep, left, right)
    home = np.isin(address, [ADDRESS_LEVELS.index(x) for x in HOUSEHOLD_LEVELS])
    codes["address"], names["address"] = address, ADDRESS_LEVELS
    conflict = np.zeros(n, dtype=bool)
    # Agreement on a value several people carry: the first such (phone before email) is the
    # household evidence unless the address already is; see `_compare.compare`.
    shared: dict[str, np.ndarray] = {}
    first_signal: dict[str, np.ndarray] = {}
    household = home.copy()
    for kind in HOUSEHOLD_SHARED:
        if kind in prep.ids:
            ids = prep.ids[kind]
            shared[kind] = (ids[left] >= 0) & (ids[left] == ids[right]) & (freq[kind][left] >= 2)
            first_signal[kind] = shared[kind] & ~household
            household |= shared[kind]
    for kind, ids in prep.ids.items():
        a, b = ids[left], ids[right]
        both = (a >= 0) & (b >= 0)
        agree = both & (a == b)
        if kind == "external" and prep.ext_source is not None:
            both &= prep.ext_source[left] == prep.ext_source[right]
            conflict |= both & ~agree
        level = _pick(n, [(agree, 0), (both, 1)])
        if kind in shared:
            level[first_signal[kind]] = 2
            level[shared[kind] & ~first_signal[kind]] = 3
            names[kind] = ("agree", "disagree", SHARED, "agree" + HOUSEHOLD)
        else:
            names[kind] = ("agree", "disagree")
        codes[kind] = level
        freqs[kind] = np.where(agree, freq[kind][left], 1) if kind in freq else np.ones(n)
    fa, fb, la, lb = prep.first[left], prep.first[right], prep.last[left], prep.last[right]
    first = _name_levels(prep, fa, fb, first=True)
    last = _name_levels(prep, la, lb, first=False)
    ta, tb = prep.name_tokens[left], prep.name_tokens[right]
    swapped = (
        (fa >= 0) & (fb >= 0) & (la >= 0) & (lb >= 0) & (ta == tb) & ~((fa == fb) & (la == lb))
    )
    first[swapped] = 0
    last[swapped] = 0
    # First names that disagree may be fields written the other way round: those few pairs
    # go through the scalar `name_levels`, once per distinct combination of names.
    other = np.flatnonzero(first == NAME_LEVELS.index("other"))
    if other.size:
        first[other], last[other] = _crossed(
            prep, fa[other], la[other], fb[other], lb[other], last[other]
        )
    # Last names: plain levels in last-name order, or the household-conditional pair at home.
    to_plain = np.array([0, -1, 1, 2, -1, 3], dtype=np.int8)
    other_code = NAME_LEVELS.index("other")
    last = np.select(
        [last < 0, household & (last == 0), household & (last == other_code), household],
        [np.int8(-1), np.int8(4), np.int8(6), np.int8(5)],
        default=to_plain[last.clip(0)],
    ).astype(np.int8)
    codes["first_name"], names["first_name"] = first, NAME_LEVELS
    codes["last_name"], names["last_name"] = last, (
        "exact", "jw92", "jw80", "other", "exact_household", "fuzzy_household", "other_household",
    )  # fmt: skip
    dob = _dob_levels(prep.dob[left], prep.dob[right])
    codes["dob"], names["dob"] = dob, ("exact", "close", "other")
    conflict |= dob == 2
    return PairLevels(codes, names, freqs, conflict)


def match_weights(model: ScoringModel, levels: PairLevels) -> np.ndarray:
    """Total match weight (bits, prior included) of every pair, frequency-adjusted."""
    n = levels.conflict.size
    total = np.full(n, model.prior_weight)
    for comp_name, codes in levels.codes.items():
        comp = model.comparison(comp_name)
        table = np.array([comp.level(name).weight for name in levels.names[comp_name]] + [0.0])
        w = table[codes]
        if comp.frequency_adjusted and comp_name in levels.freq:
            agree = [i for i, nm in enumerate(levels.names[comp_name]) if nm.startswith("agree")]
            f = levels.freq[comp_name]
            adjusted = np.maximum(0.0, w - np.log2(np.maximum(f, 1)))
            w = np.where(np.isin(codes, agree) & (f > 1), adjusted, w)
        total += w
    return total
