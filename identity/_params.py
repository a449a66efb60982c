"""Comparison levels with their m/u, and the documented defaults (private; re-exported by
`identity.scoring`, whose docstring tables these numbers)."""

from __future__ import annotations

import math
from dataclasses import dataclass

HOUSEHOLD = "_household"


@dataclass(frozen=True)
class Level:
    """One outcome of a comparison with its m and u probabilities.

    Levels with a `context` are conditional probabilities: the surname's `exact_household`
    `fuzzy_household` and `other_household` are P(level | the pair shares a household), so m (and u) sum to
    1 within that context rather than with the comparison's other levels.
    """

    name: str
    m: float
    u: float
    context: str = ""

    @property
    def weight(self) -> float:
        """Bayes factor in bits, log2(m/u)."""
        return math.log2(self.m / self.u)


@dataclass(frozen=True)
class Comparison:
    """A named comparison and its levels; `frequency_adjusted` for identifier comparisons."""

    name: str
    levels: tuple[Level, ...]
    frequency_adjusted: bool = False

    def level(self, name: str) -> Level:
        for level in self.levels:
            if level.name == name:
                return level
        known = ", ".join(lv.name for lv in self.levels)
        raise ValueError(f"unknown level {name!r} for comparison {self.name!r} (known: {known})")


def _lv(name: str, m: float, u: float, context: str = "") -> Level:
    return Level(name, m, u, context)


def _agree_disagree(
    m: float,
    u: float,
    *,
    shared: tuple[float, float] | None = None,
    household: tuple[float, float] | None = None,
) -> tuple[Level, ...]:
    if shared is None or household is None:
        return (_lv("agree", m, u), _lv("disagree", 1 - m, 1 - u))
    (m_s, u_s), (m_h, u_h) = shared, household
    return (
        _lv("agree", m, u),
        _lv("disagree", 1 - m - m_s - m_h, 1 - u - u_s - u_h),
        _lv("agree_shared", m_s, u_s),
        _lv("agree" + HOUSEHOLD, m_h, u_h),
    )


DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "email", _agree_disagree(0.58, 1e-7, shared=(0.02, 1.5e-7), household=(0.01, 0.005)), True
    ),
    Comparison(
        "phone", _agree_disagree(0.62, 2e-7, shared=(0.05, 3e-7), household=(0.03, 0.02)), True
    ),
    Comparison("external", (_lv("agree", 0.95, 1e-8), _lv("disagree", 0.01, 1.0)), True),
    Comparison("loyalty_id", (_lv("agree", 0.90, 1e-7), _lv("disagree", 0.05, 1.0)), True),
    Comparison("device_id", _agree_disagree(0.30, 1e-5), True),
    Comparison("cookie_id", _agree_disagree(0.20, 1e-4), True),
    Comparison(
        "first_name",
        (
            _lv("exact", 0.86, 0.015),
            _lv("nickname", 0.03, 0.002),
            _lv("jw92", 0.05, 0.004),
            _lv("jw80", 0.03, 0.03),
            _lv("initial", 0.02, 0.002),
            _lv("other", 0.01, 0.952),
        ),
    ),
    Comparison(
        "last_name",
        (
            _lv("exact", 0.90, 0.005),
            _lv("jw92", 0.05, 0.003),
            _lv("jw80", 0.02, 0.02),
            _lv("other", 0.03, 0.972),
            _lv("exact" + HOUSEHOLD, 0.90, 0.75, "household"),
            _lv("fuzzy" + HOUSEHOLD, 0.07, 0.03, "household"),
            _lv("other" + HOUSEHOLD, 0.03, 0.22, "household"),
        ),
    ),
    Comparison("dob", (_lv("exact", 0.92, 4e-5), _lv("close", 0.05, 0.001), _lv("other", 0.03, 0.999))),
    Comparison(
        "address",
        (
            _lv("full", 0.60, 3e-6),
            _lv("postcode", 0.12, 8e-5),
            _lv("street", 0.03, 3e-6),
            _lv("area", 0.15, 0.03),
            _lv("other", 0.10, 0.97),
        ),
    ),
)  # fmt: skip
