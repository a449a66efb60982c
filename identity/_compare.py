"""Comparison levels for a pair of records or profiles (private; re-exported by `scoring`).

Each comparison turns two entities into one level name ("exact", "jw92", "agree", ...) or
None when either side lacks the data. The bulk engine (`_bulk_compare`) computes the same
levels with arrays; `tests/identity/test_batch.py` checks the two agree pair by pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.fuzz import token_set_ratio

from identity._names import nickname_match
from identity._traits import address_numbers, postcode_district
from identity.normalize import Normalized

JW_HIGH = 0.92
JW_LOW = 0.80
CLOSE_NAMES = frozenset({"exact", "jw92"})
ADDRESS_SIMILAR = 0.85
# Address levels at which two records are at one home. Members of one household share a
# surname and often a landline or an email, so once the pair is known to share a home those
# fields are scored with household-conditional m/u (the `_household` levels).
HOUSEHOLD_LEVELS = frozenset({"full", "street"})
# What household members share. Agreement on such a value that several people carry
# (freq >= 2) is itself evidence of one household (the value is a family's).
HOUSEHOLD_SHARED = ("phone", "email")
HOUSEHOLD = "_household"
SHARED = "agree_shared"
IDENTIFIER_COMPARISONS = ("email", "phone", "external", "loyalty_id", "device_id", "cookie_id")


@dataclass(frozen=True)
class Entity:
    """A record or a profile with normalized fields (see `identity.normalize`).

    `identifiers` may hold several values of one kind (a profile's emails). Names are
    outputs of `normalize_name_part`, `address` of `normalize_address`, `postcode` of
    `normalize_postcode`, `city` of `normalize_city`.
    """

    identifiers: tuple[Normalized, ...] = ()
    first_name: str = ""
    last_name: str = ""
    dob: date | None = None
    address: str = ""
    postcode: str | None = None
    city: str = ""


@dataclass(frozen=True)
class PairFeatures:
    """Comparison levels of one pair: comparison name -> level (None: data missing).

    `freq` gives, for an agreeing identifier, how many distinct entities carry that value
    (1 = only this person); the model down-weights agreement on widely shared values.
    """

    levels: Mapping[str, str | None]
    freq: Mapping[str, int] = field(default_factory=dict)


@lru_cache(maxsize=1 << 20)
def name_level(a: str, b: str, *, first: bool) -> str | None:
    """exact / nickname (first names) / jw92 / jw80 / initial (first names) / other."""
    if not a or not b:
        return None
    if b < a:
        a, b = b, a  # one answer whichever record comes first
    if a == b:
        return "exact"
    if first and nickname_match(a, b):
        return "nickname"
    ta, tb = a.split(), b.split()
    # "mary ann" / "mary" (a middle name); double-barrelled "smith jones" / "smith".
    partial = ta[0] == tb[0] if first else set(ta) <= set(tb) or set(tb) <= set(ta)
    if partial:
        return "jw92"
    if first and (len(a) == 1 or len(b) == 1):
        return "initial" if a[0] == b[0] else "other"
    sim = JaroWinkler.similarity(a, b)
    if sim >= JW_HIGH:
        return "jw92"
    if sim >= JW_LOW:
        return "jw80"
    # Jaro-Winkler misses one-key slips in short names ("Mia" / "Mai", "Ian" / "In"); one
    # edit is no evidence either way ("Ana" / "Ava" are two names), but it is not "other".
    if OSA.distance(a, b, score_cutoff=1) <= 1:
        return "jw80"
    return "other"


def names_swapped(f1: str, l1: str, f2: str, l2: str) -> bool:
    """Same tokens, first and last fields swapped or split differently ("Lee Wong" / "Wong Lee")."""
    if not (f1 and l1 and f2 and l2) or (f1 == f2 and l1 == l2):
        return False
    return sorted(f"{f1} {l1}".split()) == sorted(f"{f2} {l2}".split())


def name_levels(f1: str, l1: str, f2: str, l2: str) -> tuple[str | None, str | None]:
    """(first, last) levels of two name pairs, allowing for first and last names written the
    other way round: exactly ("Lee Wong" / "Wong Lee"), with a typo or an initial ("Thomas
    Ella" / "E. Thomas"), or with one record holding a single name ("Webb Jessica" /
    "Jessica")."""
    if (f2, l2) < (f1, l1):
        f1, l1, f2, l2 = f2, l2, f1, l1  # symmetric: the row order must not matter
    if names_swapped(f1, l1, f2, l2):
        return "exact", "exact"
    first = name_level(f1, f2, first=True)
    last = name_level(l1, l2, first=False)
    if first != "other":
        return first, last
    # Crossed comparisons are tried only when the crossed names start with the same letter:
    # cheap to test in bulk, and a swap plus a first-letter typo is not worth the cost.
    if l1 and l2:
        # Either record may be the swapped one: whichever crossed pair is the surname must be
        # close, the other must be compatible first names.
        for surname, given in (((f1, l2), (l1, f2)), ((l1, f2), (f1, l2))):
            if surname[0][0] != surname[1][0]:
                continue
            crossed_last = name_level(*surname, first=False)
            if crossed_last in CLOSE_NAMES:
                crossed_first = name_level(*given, first=True)
                if crossed_first != "other":
                    return crossed_first, crossed_last
    elif l1 or l2:
        single, other_last = (f1, l2) if l2 else (f2, l1)
        if single[0] == other_last[0]:
            crossed_first = name_level(single, other_last, first=True)
            if crossed_first != "other":
                return crossed_first, None
    return first, last


def same_person_names(f1: str, l1: str, f2: str, l2: str) -> bool:
    """Could these two (first, last) name pairs belong to one person? False only when both
    first names are known and incompatible (not equal, a nickname, a typo, an initial, or
    the same name with the fields swapped, see `name_levels`)."""
    if not f1 or not f2:
        return True
    return name_levels(f1, l1, f2, l2)[0] != "other"


def dob_level(a: date | None, b: date | None) -> str | None:
    """exact / close (two of year, month, day equal, or day and month transposed) / other."""
    if a is None or b is None:
        return None
    if a == b:
        return "exact"
    same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    if same == 2 or (a.year == b.year and (a.month, a.day) == (b.day, b.month)):
        # One mistyped part, or a US/UK day-month mix-up.
        return "close"
    return "other"


def street_similar(a: str, b: str) -> bool:
    """Two normalized street lines name the same home: numbers agree, tokens mostly agree."""
    if a == b:
        return True
    na, nb = address_numbers(a), address_numbers(b)
    if na and nb and na != nb:
        return False
    return token_set_ratio(a, b) >= ADDRESS_SIMILAR * 100


def address_level(a: Entity, b: Entity) -> str | None:
    """One hierarchy for address, postcode and city, because they are not independent:

    - full: same street line, postcodes equal or one missing, cities compatible;
    - postcode: same postcode, a street line missing;
    - street: same street line and city but different postcodes (a mistyped postcode);
    - area: same postcode district or city (or same postcode, different street lines);
    - other: comparable data that shares nothing.
    """
    has_street = bool(a.address and b.address)
    same_street = has_street and street_similar(a.address, b.address)
    both_pc = bool(a.postcode and b.postcode)
    same_pc = both_pc and a.postcode == b.postcode
    same_district = _same_district(a.postcode, b.postcode)
    same_city = bool(a.city and a.city == b.city)
    if same_street and (not (a.city and b.city) or same_city or same_district):
        return "full" if same_pc or not both_pc else "street"
    if same_pc and not has_street:
        return "postcode"
    if same_pc or same_district or same_city:
        return "area"
    if both_pc or has_street or (a.city and b.city):
        return "other"
    return None


def _same_district(a: str | None, b: str | None) -> bool:
    da, db = postcode_district(a), postcode_district(b)
    return bool(da and da == db)


def _values(entity: Entity, kind: str) -> dict[str, str]:
    """Matchable values of one kind; for externals, value -> source (to spot conflicts)."""
    return {
        n.value: n.value.split(":", 1)[0]
        for n in entity.identifiers
        if n.kind == kind and n.matchable and n.value is not None
    }


def identifier_level(
    a: Entity, b: Entity, kind: str, freq: Mapping[tuple[str, str], int] | None = None
) -> tuple[str | None, int]:
    """agree / disagree / None for one identifier kind, and the agreeing value's frequency.

    External ids only disagree within one platform: a Shopify id and a WooCommerce id say
    nothing about each other.
    """
    va, vb = _values(a, kind), _values(b, kind)
    if not va or not vb:
        return None, 1
    common = va.keys() & vb.keys()
    if common:
        counts = [freq.get((kind, v), 1) if freq else 1 for v in common]
        return "agree", max(1, min(counts))
    if kind == "external" and not set(va.values()) & set(vb.values()):
        return None, 1
    return "disagree", 1


def compare(
    a: Entity, b: Entity, *, freq: Mapping[tuple[str, str], int] | None = None
) -> PairFeatures:
    """Comparison levels of two entities, ready for `ScoringModel.score`.

    `freq[(kind, value)]` is the number of distinct entities carrying an identifier value.
    Household handling (see `scoring`): agreement on an email or phone that several people
    carry (freq >= 2) is "agree_shared" -- evidence of one household, like a shared street
    line -- and once one piece of household evidence is counted, further shared values and
    the surname are scored with household-conditional m/u (the `_household` levels).
    """
    levels: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    address = address_level(a, b)
    home = address in HOUSEHOLD_LEVELS
    found = {kind: identifier_level(a, b, kind, freq) for kind in IDENTIFIER_COMPARISONS}
    shared = [
        kind
        for kind in HOUSEHOLD_SHARED  # phone first: a landline is the usual family value
        if found[kind][0] == "agree" and found[kind][1] >= 2
    ]
    for kind, (level, count) in found.items():
        if kind in shared:
            # The first shared value is the household evidence, unless the address already
            # gave it; any further one only repeats it.
            level = SHARED if not home and kind == shared[0] else "agree" + HOUSEHOLD
        levels[kind] = level
        if level is not None and level.startswith("agree"):
            counts[kind] = count
    first, last = name_levels(a.first_name, a.last_name, b.first_name, b.last_name)
    if last is not None and (home or shared):
        last = ("other" if last == "other" else "fuzzy" if last != "exact" else "exact") + HOUSEHOLD
    levels.update(first_name=first, last_name=last, dob=dob_level(a.dob, b.dob), address=address)
    return PairFeatures(levels, counts)
