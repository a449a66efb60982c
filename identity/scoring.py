"""Explainable match scoring: Fellegi–Sunter match weights, as Splink computes them.

Each comparison (email, phone, names, dob, address, ...) lands on a level; each level has
m = P(level | same person) and u = P(level | different people), and contributes the Bayes
factor log2(m/u) bits. The match weight is the prior's log-odds plus those contributions, and
the probability is its sigmoid, so a 0.80 means "four in five pairs scored like this are the
same person" (as far as the m/u are right; `fit_em` and `fit_from_labels` re-estimate them).

Default parameters. u is the chance among random pairs of one brand's records (~200,000
customers), m among true pairs; bits = log2(m/u); a comparison without data adds 0.

    comparison  level               m      u       bits
    email       agree               0.58   1e-7   +22.5   value carried by one person
                agree_shared        0.02   1.5e-7 +17.0   value several people carry (*)
                agree_household     0.01   0.005   +1.0   (*) once a home is established
                disagree            0.39   0.995   -1.4   people have several emails
    phone       agree               0.62   2e-7   +21.6
                agree_shared        0.05   3e-7   +17.3   a family landline (*)
                agree_household     0.03   0.02    +0.6
                disagree            0.30   0.98    -1.7   mobile + landline
    external    agree / disagree    0.95 / 0.01    1e-8 / 1     +26.5 / -6.6  (same platform)
    loyalty_id  agree / disagree    0.90 / 0.05    1e-7 / 1     +23.1 / -4.3
    device_id   agree / disagree    0.30 / 0.70    1e-5 / ~1    +14.9 / -0.5
    cookie_id   agree / disagree    0.20 / 0.80    1e-4 / ~1    +11.0 / -0.3
    first_name  exact               0.86   0.015   +5.8
                nickname            0.03   0.002   +3.9   Bob / Robert
                jw92 (JW >= 0.92)   0.05   0.004   +3.6   typo, or a middle name
                jw80 (JW >= 0.80)   0.03   0.03     0.0   or one edit in a short name
                initial             0.02   0.002   +3.3   "J." / "John"
                other               0.01   0.952   -6.6
    last_name   exact               0.90   0.005   +7.5
                jw92 / jw80         0.05 / 0.02   0.003 / 0.02   +4.1 / 0.0
                other               0.03   0.972   -5.0   (marriage, errors)
                exact_household     0.90   0.75    +0.3   given one home, relatives share
                fuzzy_household     0.07   0.03    +1.2   a surname and flatmates do not
                other_household     0.03   0.22    -2.9   (a context of its own)
    Names swapped between the fields ("Wong Lee" / "Lee Wong") compare crossed.
    dob         exact               0.92   4e-5   +14.5
                close               0.05   0.001   +5.6   two of y/m/d equal, or d/m swapped
                other               0.03   0.999   -5.1
    address     full                0.60   3e-6   +17.6   same street line (and postcode)
                postcode            0.12   8e-5   +10.6   same postcode, street unknown
                street              0.03   3e-6   +13.3   same street line, postcode typo
                area                0.15   0.03    +2.3   postcode district or city
                other               0.10   0.97    -3.3   moved, or another person
    prior       lambda = 5e-6 (one random pair in 200,000 is a match)    -17.6

Thresholds: >= 0.80 auto-merge (at most 3 profiles), 0.45-0.80 review, below: nothing.

Households: members share an address, a surname and often a landline or an email, so those
agreements are not independent. One piece of household evidence is counted in full (a
shared street line, or else an email/phone that several people carry: `agree_shared`); the
rest is then scored with household-conditional m/u (`agree_household`, and the surname's
`*_household` levels whose m and u sum to 1 in their own context: the chain rule P(a, s | M)
= P(a | M) P(s | a, M)). Address, postcode and city form one hierarchy for the same reason.

Frequency: an agreeing identifier carried by `freq` distinct people loses log2(freq) bits
(Splink's term-frequency adjustment: u for that value is freq times the average), never
going below 0. Values carried by many people are "shared" and never reach scoring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from identity._compare import (
    Entity,
    PairFeatures,
    address_level,
    compare,
    dob_level,
    name_level,
)
from identity._params import DEFAULT_COMPARISONS, Comparison, Level
from identity._rules import conflicting_strong, weak_only_bridge

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

    return em(
        pairs_features, model or ScoringModel(), max_iter, tol, fit_u, fit_prior, pseudo_count
    )


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
