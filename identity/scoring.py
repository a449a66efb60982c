"""Explainable match scoring: Fellegi–Sunter match weights, as Splink computes them.

Each comparison (email, phone, names, dob, address, ...) lands on a level; each level has
m = P(level | same person) and u = P(level | different people), and contributes the Bayes
factor log2(m/u) bits. The match weight is the prior's log-odds plus those contributions, and
the probability is its sigmoid, so a 0.80 means "four in five pairs scored like this are the
same person" (as far as the m/u are right; `fit_em` and `fit_from_labels` re-estimate them).

Default parameters (u is over random pairs of one brand's records; bits = log2(m/u)):

| comparison | level                | m     | u       | bits  |
|------------|----------------------|-------|---------|-------|
| email      | agree                | 0.60  | 1e-7    | +22.5 |
|            | disagree             | 0.40  | ~1      | -1.3  |
|            | agree_household     | 0.60  | 0.10    | +2.6  |
|            | disagree_household  | 0.40  | 0.90    | -1.2  |
| phone      | agree                | 0.70  | 2e-7    | +21.7 |
|            | disagree             | 0.30  | ~1      | -1.7  |
|            | agree_household     | 0.70  | 0.50    | +0.5  |
|            | disagree_household  | 0.30  | 0.50    | -0.7  |
| external   | agree / disagree     | 0.95 / 0.01 | 1e-8 / ~1 | +26.5 / -6.6 |
| loyalty_id | agree / disagree     | 0.90 / 0.05 | 1e-7 / ~1 | +23.1 / -4.3 |
| device_id  | agree / disagree     | 0.30 / 0.70 | 1e-5 / ~1 | +14.9 / -0.5 |
| cookie_id  | agree / disagree     | 0.20 / 0.80 | 1e-4 / ~1 | +11.0 / -0.3 |
| first_name | exact / nickname / jw92 / jw80 / initial / other | .86/.03/.05/.03/.02/.01 | .01/.002/.004/.03/.002/.952 | +6.4/+3.9/+3.6/0/+3.3/-6.6 |
| last_name  | exact / jw92 / jw80 / other | .90/.05/.02/.03 | .005/.003/.02/.972 | +7.5/+4.1/0/-5.0 |
|            | exact_household / differs_household | .90/.10 | .75/.25 | +0.3/-1.3 |
| dob        | exact / close / other | .92/.05/.03 | 4e-5/.001/.999 | +14.5/+5.6/-5.1 |
| address    | full / postcode / street / area / other | .55/.15/.05/.15/.10 | 1e-6/2e-5/2e-6/.03/.97 | +19.1/+12.9/+14.6/+2.3/-3.3 |
| prior      | lambda = 5e-6 (one random pair in 200,000 is a match) |  |  | -17.6 |

Why the `_household` levels: household members share an address, a surname and often a
landline or an email, so those agreements are not independent. When the address comparison
says "same home", email, phone and surname are scored with household-conditional m/u (the
chain rule P(a, e | M) = P(a | M) P(e | a, M)) instead of being counted twice. Address,
postcode and city form one hierarchy for the same reason. Missing data contributes 0.

An agreeing identifier seen on `freq` distinct entities loses log2(freq) bits (Splink's term
frequency adjustment: u for that value is freq times the average), never going below 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any, Literal

from identity._compare import (
    Entity,
    PairFeatures,
    address_level,
    compare,
    dob_level,
    name_level,
)
from identity.normalize import STRONG, WEAK, Normalized

__all__ = [
    "AUTO_MERGE_THRESHOLD",
    "DEFAULT_PRIOR",
    "MAX_AUTO_MERGE_PROFILES",
    "REVIEW_THRESHOLD",
    "Comparison",
    "Decision",
    "Entity",
    "Level",
    "PairFeatures",
    "ScoreResult",
    "ScoringModel",
    "address_level",
    "compare",
    "conflicting_strong",
    "default_model",
    "dob_level",
    "fit_em",
    "fit_from_labels",
    "name_level",
    "weak_only_bridge",
]

AUTO_MERGE_THRESHOLD = 0.80
REVIEW_THRESHOLD = 0.45
MAX_AUTO_MERGE_PROFILES = 3
DEFAULT_PRIOR = 5e-6
HOUSEHOLD = "_household"


@dataclass(frozen=True)
class Level:
    """One outcome of a comparison with its m and u probabilities.

    Levels with a `context` are conditional probabilities: the surname's `exact_household`
    and `differs_household` are P(level | the pair shares a household), so m (and u) sum to
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


@dataclass(frozen=True)
class ScoreResult:
    """Probability, total match weight (bits, prior included) and its waterfall.

    `contributions` maps "prior" and every comparison with data to its bits; they sum to
    `match_weight`.
    """

    probability: float
    match_weight: float
    contributions: dict[str, float]


@dataclass(frozen=True)
class Decision:
    """What to do with a scored pair: auto_merge, review or no_merge, and why."""

    action: Literal["auto_merge", "review", "no_merge"]
    reason: str


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
    Comparison("external", _agree_disagree(0.95, 1e-8)[:1] + (_lv("disagree", 0.01, 1.0),), True),
    Comparison("loyalty_id", _agree_disagree(0.90, 1e-7)[:1] + (_lv("disagree", 0.05, 1.0),), True),
    Comparison("device_id", _agree_disagree(0.30, 1e-5), True),
    Comparison("cookie_id", _agree_disagree(0.20, 1e-4), True),
    Comparison(
        "first_name",
        (
            _lv("exact", 0.86, 0.01),
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
            _lv("differs" + HOUSEHOLD, 0.10, 0.25, "household"),
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


def _sigmoid_bits(weight: float) -> float:
    # Probability from log2-odds, safe for very large magnitudes.
    if weight >= 0:
        return 1.0 / (1.0 + 2.0**-weight)
    odds = 2.0**weight
    return odds / (1.0 + odds)


@dataclass(frozen=True)
class ScoringModel:
    """Comparisons with m/u, the prior and the decision thresholds; one per brand.

    Thresholds: probability >= `auto_merge_threshold` (0.80) merges automatically when at
    most `max_auto_merge_profiles` (3) profiles are involved; >= `review_threshold` (0.45)
    goes to the review queue; below, nothing happens. A brand overrides them with
    `with_thresholds` and stores the model with `to_dict` / `to_json`.
    """

    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS
    prior: float = DEFAULT_PRIOR
    auto_merge_threshold: float = AUTO_MERGE_THRESHOLD
    review_threshold: float = REVIEW_THRESHOLD
    max_auto_merge_profiles: int = MAX_AUTO_MERGE_PROFILES
    version: str = "default"
    _index: dict[str, Comparison] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.prior < 1.0:
            raise ValueError("prior must be strictly between 0 and 1")
        if not 0.0 <= self.review_threshold <= self.auto_merge_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= review <= auto_merge <= 1")
        for comp in self.comparisons:
            for level in comp.levels:
                if not (0.0 < level.m <= 1.0 and 0.0 < level.u <= 1.0):
                    raise ValueError(f"m and u of {comp.name}.{level.name} must be in (0, 1]")
        object.__setattr__(self, "_index", {c.name: c for c in self.comparisons})

    @property
    def prior_weight(self) -> float:
        """The prior as log2-odds (bits)."""
        return math.log2(self.prior / (1.0 - self.prior))

    def comparison(self, name: str) -> Comparison:
        try:
            return self._index[name]
        except KeyError:
            known = ", ".join(self._index)
            raise ValueError(f"unknown comparison {name!r} (known: {known})") from None

    def weight(self, comparison: str, level: str | None, freq: int = 1) -> float:
        """Bits contributed by one comparison level; agreement on a value shared by `freq`
        distinct entities loses log2(freq) bits (floored at 0)."""
        if level is None:
            return 0.0
        comp = self.comparison(comparison)
        bits = comp.level(level).weight
        if comp.frequency_adjusted and freq > 1 and level.startswith("agree"):
            bits = max(0.0, bits - math.log2(freq))
        return bits

    def score(self, features: PairFeatures) -> ScoreResult:
        """Probability, match weight and per-comparison contributions of one pair."""
        contributions = {"prior": self.prior_weight}
        for name, level in features.levels.items():
            if level is not None:
                contributions[name] = self.weight(name, level, features.freq.get(name, 1))
        total = math.fsum(contributions.values())
        return ScoreResult(_sigmoid_bits(total), total, contributions)

    def probability(self, match_weight: float) -> float:
        """Sigmoid of a match weight in bits."""
        return _sigmoid_bits(match_weight)

    def decide(
        self,
        result: ScoreResult,
        features: PairFeatures | None = None,
        *,
        conflict: bool = False,
        n_profiles: int = 2,
    ) -> Decision:
        """Apply thresholds and hard rules to a score.

        A strong conflict (`conflicting_strong`), more than `max_auto_merge_profiles`
        profiles, or a merge that rests on weak identifiers alone (`weak_only_bridge`) can
        at most go to review; they never merge automatically.
        """
        p = result.probability
        if p < self.review_threshold:
            return Decision("no_merge", f"probability {p:.3f} below {self.review_threshold}")
        if p < self.auto_merge_threshold:
            return Decision("review", f"probability {p:.3f} below {self.auto_merge_threshold}")
        if conflict:
            return Decision("review", "conflicting strong identifiers or date of birth")
        if n_profiles > self.max_auto_merge_profiles:
            return Decision("review", f"{n_profiles} profiles involved")
        if features is not None and weak_only_bridge(features, result, self):
            return Decision("review", "only weak identifiers link profiles with other strong ones")
        return Decision("auto_merge", f"probability {p:.3f}")

    def with_thresholds(
        self, *, auto_merge: float | None = None, review: float | None = None
    ) -> ScoringModel:
        """A copy with a brand's own thresholds."""
        return replace(
            self,
            auto_merge_threshold=self.auto_merge_threshold if auto_merge is None else auto_merge,
            review_threshold=self.review_threshold if review is None else review,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (stored per brand)."""
        return {
            "version": self.version,
            "prior": self.prior,
            "auto_merge_threshold": self.auto_merge_threshold,
            "review_threshold": self.review_threshold,
            "max_auto_merge_profiles": self.max_auto_merge_profiles,
            "comparisons": [
                {
                    "name": c.name,
                    "frequency_adjusted": c.frequency_adjusted,
                    "levels": [asdict(lv) for lv in c.levels],
                }
                for c in self.comparisons
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringModel:
        """Inverse of `to_dict`; missing keys take the defaults."""
        comparisons = tuple(
            Comparison(
                c["name"],
                tuple(
                    Level(lv["name"], float(lv["m"]), float(lv["u"]), str(lv.get("context", "")))
                    for lv in c["levels"]
                ),
                bool(c.get("frequency_adjusted", False)),
            )
            for c in data.get("comparisons", ())
        )
        return cls(
            comparisons=comparisons or DEFAULT_COMPARISONS,
            prior=float(data.get("prior", DEFAULT_PRIOR)),
            auto_merge_threshold=float(data.get("auto_merge_threshold", AUTO_MERGE_THRESHOLD)),
            review_threshold=float(data.get("review_threshold", REVIEW_THRESHOLD)),
            max_auto_merge_profiles=int(data.get("max_auto_merge_profiles", 3)),
            version=str(data.get("version", "default")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScoringModel:
        return cls.from_dict(json.loads(text))


def default_model() -> ScoringModel:
    """The documented default parameters (see the module docstring)."""
    return ScoringModel()


def conflicting_strong(
    a_ids: Iterable[Normalized],
    b_ids: Iterable[Normalized],
    *,
    a_dob: date | None = None,
    b_dob: date | None = None,
) -> bool:
    """True when the two sides are very probably different people, whatever else agrees.

    The rule, kind by kind:
    - external: both carry an id of the same platform and no id in common -> conflict (a
      platform keeps one customer id per person; ids of different platforms never conflict);
    - dob: both known and the `dob` comparison says "other" (not equal, not one mistyped
      part, not a day/month swap) -> conflict;
    - email, phone: different values are NOT a conflict (people have several emails, a
      mobile and a landline); loyalty ids neither (duplicate enrolments are what dedupe is
      for) -- their disagreement is ordinary negative evidence in the score;
    - device and cookie ids never conflict (shared and reset all the time).
    Invalid and placeholder values are ignored.
    """
    ext_a: dict[str, set[str]] = {}
    ext_b: dict[str, set[str]] = {}
    for ids, out in ((a_ids, ext_a), (b_ids, ext_b)):
        for n in ids:
            if n.kind == "external" and n.matchable and n.value:
                out.setdefault(n.value.split(":", 1)[0], set()).add(n.value)
    for source in ext_a.keys() & ext_b.keys():
        if not ext_a[source] & ext_b[source]:
            return True
    return dob_level(a_dob, b_dob) == "other"


def weak_only_bridge(features: PairFeatures, result: ScoreResult, model: ScoringModel) -> bool:
    """True when a merge would rest on weak identifiers alone between two sides that both
    carry different strong ones: without the device/cookie contributions the pair would not
    reach the auto-merge threshold, no strong identifier agrees and one disagrees."""
    levels = features.levels
    strong = [levels.get(k) for k in STRONG]
    if any(lv and lv.startswith("agree") for lv in strong):
        return False
    if not any(lv and lv.startswith("disagree") for lv in strong):
        return False
    weak = sum(v for k, v in result.contributions.items() if k in WEAK and v > 0)
    if weak == 0:
        return False
    return model.probability(result.match_weight - weak) < model.auto_merge_threshold


def fit_em(
    pairs_features: Sequence[PairFeatures],
    model: ScoringModel | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    fit_u: bool = True,
    fit_prior: bool = True,
    pseudo_count: float = 1.0,
) -> ScoringModel:
    """Re-estimate m, u (and the prior) from unlabeled candidate pairs by expectation-
    maximisation, starting from `model` (default: the documented defaults).

    Each iteration computes every pair's match probability with the current parameters,
    then sets m (u) of each level to the probability-weighted (one-minus-weighted) share
    of pairs on that level within its context. `pseudo_count` pairs' worth of the starting
    values keep rare levels away from 0. Frequency adjustments are not applied while
    fitting (as in Splink). With `fit_u=False` u stays fixed, as Splink advises when u was
    estimated from random pairs.
    """
    from identity._fit import em

    return em(pairs_features, model or ScoringModel(), max_iter, tol, fit_u, fit_prior, pseudo_count)


def fit_from_labels(
    features: Sequence[PairFeatures],
    labels: Sequence[bool],
    model: ScoringModel | None = None,
    *,
    prior_strength: float = 20.0,
    fit_u: bool = False,
) -> ScoringModel:
    """Re-fit m from reviewers' answers (True = approved, same person; False = rejected).

    m of each level = (approved pairs on that level + `prior_strength` x current m) /
    (approved pairs in that context + `prior_strength`): a handful of answers nudges the
    model, hundreds move it. Rejected pairs are the hard cases the queue shows, not a random
    sample of non-matches, so u is only re-fitted from them when `fit_u` is asked for.
    """
    from identity._fit import from_labels

    return from_labels(features, labels, model or ScoringModel(), prior_strength, fit_u)
