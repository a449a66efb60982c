"""Hard rules over identifiers (private; re-exported by `identity.scoring`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from identity._compare import PairFeatures, dob_level
from identity.normalize import STRONG, WEAK, Normalized

if TYPE_CHECKING:
    from identity.scoring import ScoreResult, ScoringModel


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
