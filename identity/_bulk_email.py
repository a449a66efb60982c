"""Vectorised email normalization for bulk runs (private to `identity`).

For printable-ASCII values -- nearly every email in a customer file -- pyarrow's compute
kernels (RE2) give exactly what `normalize.email_value` followed by `is_placeholder` gives,
five times faster than a Python loop. Other values (accents, control characters, "mailto:")
and brand-specific wildcard blocklists take the scalar path. `tests/identity/
test_normalize.py` checks both paths agree on generated values.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from identity._domains import correct_domain
from identity._placeholders import _compiled

# `normalize._EMAIL` restricted to ASCII: the \u00a1-\uffff ranges cannot occur here.
EMAIL_ASCII = (
    r'^[^\s@"(),:;<>\[\]\\]{1,64}@'
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)
_ELIGIBLE = re.compile(r"^[\x20-\x7e]*$")


def emails(
    values: list[str], scalar: Callable[[str], tuple[str | None, int]]
) -> list[tuple[str | None, int]]:
    """(normalized value or None, status 0 ok / 1 invalid / 2 placeholder) per value."""
    rules = _compiled("email", ())
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow ships with our pandas
        return [scalar(v) for v in values]
    if rules.regex is not None:
        return [scalar(v) for v in values]
    out: list[tuple[str | None, int] | None] = [None] * len(values)
    eligible = []
    for i, v in enumerate(values):
        if _ELIGIBLE.match(v) and not v.lstrip().lower().startswith("mailto:"):
            eligible.append(i)
        else:
            out[i] = scalar(v)
    if eligible:
        text = pc.utf8_lower(pc.utf8_trim(pa.array([values[i] for i in eligible]), characters=" "))
        length = pc.utf8_length(text)
        parts = pc.split_pattern(text, "@", max_splits=1)
        two = pc.if_else(pc.equal(pc.list_value_length(parts), 2), parts, None)
        local, domain = pc.list_element(two, 0), pc.list_element(two, 1)
        valid = pc.and_(
            pc.and_(pc.greater(length, 0), pc.less_equal(length, 254)),
            pc.and_(
                pc.and_(pc.invert(pc.match_substring(text, " ")), pc.equal(pc.count_substring(text, "@"), 1)),
                pc.match_substring_regex(text, EMAIL_ASCII),
            ),
        )  # fmt: skip
        dots = pc.or_(
            pc.or_(pc.starts_with(local, "."), pc.ends_with(local, ".")),
            pc.match_substring(local, ".."),
        )
        valid = pc.and_kleene(valid, pc.invert(pc.fill_null(dots, True)))
        first = pc.utf8_slice_codeunits(local, 0, 1)
        repeated = pc.and_(
            pc.greater_equal(pc.utf8_length(local), 3),
            pc.equal(local, pc.binary_repeat(first, pc.utf8_length(local))),
        )
        placeholder = pc.or_(
            pc.or_(pc.is_in(text, pa.array(sorted(rules.exact), pa.string())), repeated),
            pc.or_(
                pc.is_in(local, pa.array(sorted(rules.locals), pa.string())),
                pc.is_in(domain, pa.array(sorted(rules.domains), pa.string())),
            ),
        )
        for suffix in rules.suffixes:
            placeholder = pc.or_(placeholder, pc.ends_with(domain, suffix))
        valid_list = pc.fill_null(valid, False).to_pylist()
        placeholder_list = pc.fill_null(placeholder, False).to_pylist()
        for i, v, ok, junk in zip(
            eligible, text.to_pylist(), valid_list, placeholder_list, strict=True
        ):
            out[i] = (None, 1) if not ok else (None, 2) if junk else (_fix_domain(v), 0)
    return [o if o is not None else (None, 1) for o in out]


def _fix_domain(email: str) -> str:
    local, _, domain = email.partition("@")
    fixed = correct_domain(domain)
    return email if fixed == domain else f"{local}@{fixed}"
