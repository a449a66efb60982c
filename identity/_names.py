"""Person-name normalization, nicknames and a phonetic key (private to `identity`)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Honorifics dropped from the front of a name, generational suffixes and degrees from the end.
# The first set is never a name; the others ("Lord", "Dean"...) can be, so they are dropped
# only when another word remains.
HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "mstr", "messrs"})
TITLES = HONORIFICS | frozenset(
    {"prof", "professor", "sir", "dame", "rev", "revd", "fr", "lord", "lady", "madam", "mme"}
    | {"mlle", "herr", "frau"}
)
SUFFIXES = frozenset({"jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq", "dds"})

# Apostrophes vanish ("O'Brien" -> "obrien"); every other non-letter/digit becomes a space.
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w]+|_")
_SPACES = re.compile(r"\s+")


def fold(value: str) -> str:
    """Casefold and strip accents (NFKD, combining marks dropped); other scripts are kept."""
    if value.isascii():
        return value.lower()
    # NFKD before casefolding too: compatibility forms ("𝕬", "Ｊ") decompose to capitals.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", value).casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def normalize_name_part(value: str | None) -> str:
    """One name field (first or last): folded, punctuation and titles/suffixes removed."""
    if not value:
        return ""
    text = _APOSTROPHES.sub("", fold(value))
    tokens = [t for t in _NON_WORD.sub(" ", text).split() if not t.isdigit()]
    while tokens and (tokens[0] in HONORIFICS or (len(tokens) > 1 and tokens[0] in TITLES)):
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1] in SUFFIXES:
        tokens.pop()
    return " ".join(tokens)


def normalize_name(first: str | None, last: str | None = None) -> str:
    """Full name for comparison: casefolded, accents stripped, titles and punctuation removed.

    `normalize_name("Dr. José", "O'Brien-Smith")` -> `"jose obrien smith"`.
    """
    parts = (normalize_name_part(first), normalize_name_part(last))
    return " ".join(p for p in parts if p)


def split_full_name(value: str | None) -> tuple[str, str]:
    """Split a display name into (first, last): "Smith, John" and "John Smith" both work."""
    if not value or not value.strip():
        return "", ""
    if "," in value:
        last, _, first = value.partition(",")
        return first.strip(), last.strip()
    tokens = value.split()
    # Titles would otherwise be taken for the first name.
    while len(tokens) > 1 and _NON_WORD.sub("", fold(tokens[0])) in TITLES:
        tokens.pop(0)
    if len(tokens) == 1:
        return tokens[0], ""
    return " ".join(tokens[:-1]), tokens[-1]


_NICKNAME_GROUPS = (
    "robert bob bobby rob robbie bert",
    "albert al bert bertie",
    "william bill billy will willie liam",
    "elizabeth liz lizzie beth betty eliza libby lisa",
    "catherine katherine kathryn kate katie kathy cathy kat",
    "james jim jimmy jamie",
    "michael mike mick mikey mickey",
    "david dave davy",
    "thomas tom tommy",
    "christopher chris kit",
    "daniel dan danny",
    "samuel sam sammy",
    "samantha sam sammy",
    "alexander alex alec sandy",
    "alexandra alex lexi sandra",
    "benjamin ben benny",
    "nicholas nick nicky",
    "matthew matt matty",
    "anthony tony",
    "steven stephen steve stevie",
    "joseph joe joey",
    "andrew andy drew",
    "patricia pat patty trish",
    "patrick pat paddy",
    "jennifer jen jenny",
    "susan sue susie",
    "margaret maggie meg peggy",
    "rebecca becky becca",
    "richard rick ricky dick rich",
    "edward ed eddie ted ned",
    "charles charlie chuck chas",
    "henry harry hal hank",
    "harry haz hal",
    "harold harry hal",
    "jonathan jon jonny john",
    "john johnny jon",
    "victoria vicky tori",
    "deborah debbie deb",
    "jessica jess jessie",
    "timothy tim timmy",
    "peter pete",
    "gregory greg",
    "kenneth ken kenny",
    "ronald ron ronnie",
    "donald don donnie",
    "frederick fred freddie",
    "gerald gerry jerry",
    "lawrence laurence larry",
    "philip phillip phil",
    "raymond ray",
    "zachary zach zack",
    "abigail abby abbie",
    "amanda mandy",
    "christine chris chrissy tina",
    "christina chris tina",
    "dorothy dot dotty",
    "eleanor ellie nell",
    "helen nell",
    "isabella bella izzy isabel",
    "josephine jo josie",
    "judith judy",
    "kimberly kim",
    "megan meg",
    "natalie nat",
    "pamela pam",
    "penelope penny",
    "sarah sally sadie",
    "stephanie steph",
    "theresa teresa terri tess",
    "valerie val",
    "wendy gwendolyn",
)


def _nickname_index() -> dict[str, frozenset[int]]:
    index: dict[str, set[int]] = {}
    for gid, group in enumerate(_NICKNAME_GROUPS):
        for name in group.split():
            index.setdefault(name, set()).add(gid)
    return {name: frozenset(ids) for name, ids in index.items()}


NICKNAMES = _nickname_index()


def canonical_first(name: str) -> str:
    """The formal form of a known nickname ("bob" -> "robert"); other names unchanged."""
    head = name.split(" ", 1)[0] if name else ""
    groups = NICKNAMES.get(head)
    return _NICKNAME_GROUPS[min(groups)].split(" ", 1)[0] if groups else head


def nickname_match(a: str, b: str) -> bool:
    """True when two folded first names are known variants of one name (Bob / Robert)."""
    ga = NICKNAMES.get(a.split(" ", 1)[0]) if a else None
    gb = NICKNAMES.get(b.split(" ", 1)[0]) if b else None
    return bool(ga and gb and ga & gb)


_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


@lru_cache(maxsize=65536)
def soundex(value: str) -> str:
    """American Soundex of a folded name ("" when it has no ASCII letter).

    A deliberately simple phonetic key: blocking needs something that survives common typos
    (Smith / Smyth, Jon / John), not linguistic accuracy.
    """
    letters = [ch for ch in value if "a" <= ch <= "z"]
    if not letters:
        return ""
    first = letters[0]
    out = [first.upper()]
    last = _SOUNDEX_CODES.get(first, "")
    for ch in letters[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "hw":
            # h and w do not separate two equal codes; vowels do.
            last = code
    return "".join(out).ljust(4, "0")
