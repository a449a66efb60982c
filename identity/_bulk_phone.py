"""Vectorised phone normalization for bulk runs (private to `identity`).

The common case of a customer file -- digits, maybe a "+", in the brand's own country --
goes through pyarrow compute kernels (RE2) that repeat `_phonefast.fast_e164` step by step:
international prefix, country code, national prefix (with phonenumbers' viability test),
length verdicts, then the placeholder rules. Everything else (other countries, letters,
extensions, regions with national-prefix transform rules or a non-literal international
prefix, results whose national number starts with 0) goes to the scalar path.
`tests/identity/test_normalize.py` checks both paths agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from identity._phonefast import _BY_CODE, _MAX_NSN, _meta
from identity._placeholders import _SEQUENCES, _compiled

_DIGITS = r"^\+?[0-9]{6,40}$"
_PRINTABLE = r"^[\x20-\x7e]*$"
# What `normalize.phone_value` and `fast_e164` strip first: a channel prefix, then spaces,
# then -- for digits-only shapes -- punctuation.
_CHANNEL = r"^\s*(?i:whatsapp|tel|sms)\s*:\s*"
_SHAPE = r"^\+?[0-9( ][0-9 \-.()]*$"
_OK_VERDICTS = ("too_short", "local_only", "invalid_length")


def phones(
    values: list[str], region: str, scalar: Callable[[str], tuple[str | None, int]]
) -> list[tuple[str | None, int]]:
    """(E.164 or None, status 0 ok / 1 invalid / 2 placeholder) for raw phone texts read in
    `region`; `scalar` answers the values this path does not cover."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow ships with our pandas
        return [scalar(v) for v in values]
    home = _meta(region)
    literal_idd = home is not None and home.idd is not None and home.idd.pattern.isdigit()
    # Vectorised only where the region is its country code's main region (GB, not GG), with
    # a literal international prefix ("00") and no national-prefix transform rule.
    if home is None or _BY_CODE.get(home.country_code) is not home or home.transform:
        return [scalar(v) for v in values]
    if not literal_idd or home.general is None:
        return [scalar(v) for v in values]
    if _compiled("phone", ()).regex is not None:
        return [scalar(v) for v in values]
    raw = pa.array(values, pa.string())
    # Printable ASCII only: there Python's and RE2's \s agree (a space).
    text = pc.utf8_trim(pc.replace_substring_regex(raw, _CHANNEL, ""), characters=" ")
    shaped = pc.match_substring_regex(text, _SHAPE)
    text = pc.if_else(shaped, pc.replace_substring_regex(text, r"[ \-.()]", ""), text)
    eligible_mask = pc.and_(
        pc.match_substring_regex(raw, _PRINTABLE), pc.match_substring_regex(text, _DIGITS)
    )
    eligible = [i for i, ok in enumerate(eligible_mask.to_pylist()) if ok]
    out: list[Any] = [None] * len(values)
    if eligible:
        picked = pc.take(text, pa.array(eligible, pa.int64()))
        for i, result in zip(eligible, _vector(pa, pc, picked, home), strict=True):
            out[i] = result
    return [scalar(v) if o is None else o for v, o in zip(values, out, strict=True)]


def _vector(pa: Any, pc: Any, text: Any, home: Any) -> list[Any]:
    """Per cleaned text ("+"? and 6-40 digits): (value, status), or None for "ask the scalar
    path"."""
    plus = pc.starts_with(text, "+")
    digits = pc.if_else(plus, pc.utf8_slice_codeunits(text, 1), text)
    idd = home.idd.pattern
    after_idd = pc.utf8_slice_codeunits(digits, len(idd), len(idd) + 1)
    via_idd = pc.and_(
        pc.and_(pc.invert(plus), pc.starts_with(digits, idd)),
        pc.and_(pc.not_equal(after_idd, "0"), pc.not_equal(after_idd, "")),
    )
    international = pc.or_(plus, via_idd)
    rest = pc.if_else(via_idd, pc.utf8_slice_codeunits(digits, len(idd)), digits)
    code = home.code_text
    # International numbers of another country, or odd ones, go to the scalar path: so do
    # national numbers that start with the country code (phonenumbers' own heuristics).
    own = pc.starts_with(rest, code)
    covered = pc.if_else(international, own, pc.invert(own))
    covered = pc.and_(covered, pc.invert(pc.and_(international, pc.starts_with(rest, "0"))))
    covered = pc.and_(covered, pc.greater(pc.utf8_length(rest), 2))
    national = pc.if_else(international, pc.utf8_slice_codeunits(rest, len(code)), digits)
    size = pc.utf8_length(national)
    too_short = pc.less(size, 2)
    stripped = national
    if home.national_prefix is not None:
        prefix = pc.extract_regex(national, f"^(?P<p>(?:{home.national_prefix.pattern}))")
        prefix_len = pc.utf8_length(pc.struct_field(prefix, "p"))
        candidate = _drop_prefix(pc, national, pc.fill_null(prefix_len, 0))
        general = f"^(?:{home.general.pattern})$"
        keep = pc.and_(
            pc.match_substring_regex(national, general),
            pc.invert(pc.match_substring_regex(candidate, general)),
        )
        matched = pc.is_valid(prefix)
        stripped = pc.if_else(pc.and_(matched, pc.invert(keep)), candidate, national)
    verdicts = pa.array(list(home.verdicts), pa.string())
    stripped_verdict = pc.take(verdicts, pc.min_element_wise(pc.utf8_length(stripped), 48))
    use = pc.invert(pc.is_in(stripped_verdict, pa.array(list(_OK_VERDICTS), pa.string())))
    national = pc.if_else(use, stripped, national)
    size = pc.utf8_length(national)
    verdict = pc.take(verdicts, pc.min_element_wise(size, 48))
    possible = pc.and_(pc.equal(verdict, "possible"), pc.less_equal(size, _MAX_NSN))
    # A national number starting with 0 may change when parsed again: scalar path.
    covered = pc.and_(covered, pc.invert(pc.and_(possible, pc.starts_with(national, "0"))))
    e164 = pc.binary_join_element_wise(f"+{code}", national, "")
    junk = _placeholder(pa, pc, e164, national)
    rows = zip(
        pc.fill_null(covered, False).to_pylist(),
        pc.fill_null(pc.or_(too_short, pc.invert(possible)), True).to_pylist(),
        pc.fill_null(junk, False).to_pylist(),
        e164.to_pylist(),
        strict=True,
    )
    return [
        None if not ok else (None, 1) if bad else (None, 2) if placeholder else (value, 0)
        for ok, bad, placeholder, value in rows
    ]


def _drop_prefix(pc: Any, text: Any, lengths: Any) -> Any:
    """text[length:] per row (lengths vary)."""
    out = text
    for n in sorted(set(lengths.to_pylist())):
        if n:
            out = pc.if_else(pc.equal(lengths, n), pc.utf8_slice_codeunits(text, n), out)
    return out


def _placeholder(pa: Any, pc: Any, e164: Any, national: Any) -> Any:
    """`is_placeholder("phone", ...)` for rows of E.164 values and their national digits."""
    rules = _compiled("phone", ())
    junk = pc.is_in(e164, pa.array(sorted(rules.exact), pa.string()))
    size = pc.utf8_length(national)
    same = "|".join(f"{d}+" for d in "0123456789")
    junk = pc.or_(
        junk,
        pc.and_(pc.greater_equal(size, 6), pc.match_substring_regex(national, f"^(?:{same})$")),
    )
    for d in "0123456789":
        junk = pc.or_(junk, pc.ends_with(national, d * 7))
    inside = sorted(
        {s[i:j] for s in _SEQUENCES for i in range(len(s)) for j in range(i + 9, len(s) + 1)}
    )
    sequence = pc.is_in(national, pa.array(inside, pa.string()))
    for s in _SEQUENCES:
        sequence = pc.or_(sequence, pc.match_substring(national, s))
    return pc.or_(junk, pc.and_(pc.greater_equal(size, 9), sequence))
