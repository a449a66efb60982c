"""identity.scoring: the waterfall adds up, agreement never hurts, fitting separates better."""

from __future__ import annotations

import json
import math
import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.normalize import (
    external_id,
    normalize_address,
    normalize_city,
    normalize_email,
    normalize_id,
    normalize_name_part,
    normalize_phone,
    normalize_postcode,
    parse_dob,
)
from identity.scoring import (
    AUTO_MERGE_THRESHOLD,
    REVIEW_THRESHOLD,
    Entity,
    PairFeatures,
    ScoreResult,
    ScoringModel,
    compare,
    conflicting_strong,
    default_model,
    fit_em,
    fit_from_labels,
    weak_only_bridge,
)

MODEL = default_model()


def entity(
    *,
    email: str | None = None,
    phone: str | None = None,
    first: str = "",
    last: str = "",
    dob: str | None = None,
    address: str = "",
    postcode: str | None = None,
    city: str = "",
    device: str | None = None,
    shopify: str | None = None,
) -> Entity:
    ids = []
    if email:
        ids.append(normalize_email(email))
    if phone:
        ids.append(normalize_phone(phone))
    if device:
        ids.append(normalize_id("device_id", device))
    if shopify:
        ids.append(external_id("shopify", shopify))
    return Entity(
        tuple(ids),
        normalize_name_part(first),
        normalize_name_part(last),
        parse_dob(dob) if dob else None,
        normalize_address(address),
        normalize_postcode(postcode),
        normalize_city(city),
    )


def decide(a: Entity, b: Entity, freq: dict[tuple[str, str], int] | None = None) -> str:
    features = compare(a, b, freq=freq)
    conflict = conflicting_strong(a.identifiers, b.identifiers, a_dob=a.dob, b_dob=b.dob)
    return MODEL.decide(MODEL.score(features), features, conflict=conflict).action


HOME = {"address": "12 High Street", "postcode": "SW1A 1AA", "city": "London", "last": "Smith"}


def test_scenarios_decide_as_a_person_would() -> None:
    # One email and nothing else: the same customer.
    assert decide(entity(email="ann@x.com"), entity(email=" ANN@x.com")) == "auto_merge"
    # A gift: the buyer's email, someone else's name.
    gift_a = entity(email="ann@x.com", first="Ann", last="Lee")
    assert decide(gift_a, entity(email="ann@x.com", first="Bob", last="Kay")) == "no_merge"
    # A household: one address and landline, different first names and birthdays.
    john = entity(first="John", phone="020 7946 0958", dob="1970-01-02", **HOME)
    jane = entity(first="Jane", phone="020 7946 0958", dob="1972-05-06", **HOME)
    shared = {("phone", "+442079460958"): 2}  # the landline is known to carry two names
    assert decide(john, jane, shared) == "no_merge"
    no_dob = entity(first="Jane", phone="020 7946 0958", **HOME)
    assert decide(john, no_dob, shared) == "no_merge"
    # Without the frequency the landline looks personal, yet the birthdays still forbid it.
    assert decide(john, jane) == "review"
    # The same person at home under a slightly different spelling.
    jon = entity(first="Jonathon", email="j1@x.com", **HOME)
    assert decide(jon, entity(first="Jonathan", email="j2@y.com", **HOME)) == "auto_merge"
    # Namesakes in one city: not enough.
    city_a = entity(first="John", last="Smith", city="Leeds")
    assert decide(city_a, entity(first="John", last="Smith", city="Leeds")) == "no_merge"
    # Names written the other way round, one email.
    swapped = entity(first="Lee", last="Wong", email="lw@x.com")
    assert decide(swapped, entity(first="Wong", last="Lee", email="lw@x.com")) == "auto_merge"
    # Same name and date of birth.
    dob_a = entity(first="Priya", last="Shah", dob="1990-04-01")
    assert decide(dob_a, entity(first="Priya", last="Shah", dob="01/04/1990")) == "auto_merge"


def test_contributions_are_an_explainable_waterfall() -> None:
    a = entity(email="ann@x.com", first="Ann", last="Lee", city="York")
    b = entity(email="ann@x.com", first="Anne", last="Lee", city="Leeds", phone="07400123456")
    result = MODEL.score(compare(a, b))
    assert set(result.contributions) == {"prior", "email", "first_name", "last_name", "address"}
    assert result.contributions["prior"] == pytest.approx(MODEL.prior_weight)
    assert result.contributions["email"] == pytest.approx(math.log2(0.58 / 1e-7))
    assert math.fsum(result.contributions.values()) == pytest.approx(result.match_weight)
    assert result.probability == pytest.approx(1 / (1 + 2**-result.match_weight))


def _features(draw: st.DrawFn) -> PairFeatures:
    levels: dict[str, str | None] = {}
    freq: dict[str, int] = {}
    for comp in MODEL.comparisons:
        choice = draw(st.sampled_from([None, *[lv.name for lv in comp.levels]]))
        levels[comp.name] = choice
        if comp.frequency_adjusted and choice and choice.startswith("agree"):
            freq[comp.name] = draw(st.integers(1, 20))
    return PairFeatures(levels, freq)


features_strategy = st.composite(_features)()


@settings(max_examples=1000, deadline=None)
@given(features_strategy)
def test_contributions_sum_to_the_match_weight(features: PairFeatures) -> None:
    result = MODEL.score(features)
    assert math.fsum(result.contributions.values()) == pytest.approx(result.match_weight)
    assert 0.0 <= result.probability <= 1.0
    assert result.probability == pytest.approx(MODEL.probability(result.match_weight))
    present = {k for k, v in features.levels.items() if v is not None}
    assert set(result.contributions) == present | {"prior"}


@settings(max_examples=1000, deadline=None)
@given(features_strategy, st.sampled_from([c.name for c in MODEL.comparisons]))
def test_more_agreement_never_lowers_the_probability(features: PairFeatures, name: str) -> None:
    # Moving one comparison to a level with a larger Bayes factor can only raise the score.
    comp = MODEL.comparison(name)
    before = MODEL.score(features).probability
    current = features.levels.get(name)
    floor = comp.level(current).weight if current else 0.0
    for level in comp.levels:
        if level.weight >= floor:
            levels = {**features.levels, name: level.name}
            after = MODEL.score(PairFeatures(levels, {})).probability
            unadjusted = MODEL.score(PairFeatures(features.levels, {})).probability
            assert after >= unadjusted - 1e-12
    assert 0.0 <= before <= 1.0


def test_agreement_levels_outweigh_disagreement() -> None:
    for comp in MODEL.comparisons:
        weights = {lv.name: lv.weight for lv in comp.levels}
        if "agree" in weights:
            assert weights["agree"] > 0 > weights["disagree"]
    first = {lv.name: lv.weight for lv in MODEL.comparison("first_name").levels}
    assert first["exact"] > first["jw92"] > first["jw80"] > first["other"]
    assert (
        MODEL.weight("dob", "exact") > MODEL.weight("dob", "close") > MODEL.weight("dob", "other")
    )


def test_adding_a_matching_identifier_to_both_never_lowers_the_score() -> None:
    rng = random.Random(3)
    firsts = ["Ann", "Anne", "Bob", "Robert", "", "J."]
    for _ in range(300):
        kw = {"first": rng.choice(firsts), "last": rng.choice(["Lee", "Leigh", ""])}
        a = entity(**kw, city=rng.choice(["York", ""]), dob=rng.choice([None, "1990-01-02"]))
        b = entity(first=rng.choice(firsts), last="Lee", city="York")
        with_email = (
            entity(**kw, email="shared@x.com", city=a.city, dob="1990-01-02" if a.dob else None),
            Entity(
                (normalize_email("shared@x.com"),),
                b.first_name,
                b.last_name,
                b.dob,
                "",
                None,
                b.city,
            ),
        )
        base = MODEL.score(compare(a, b)).probability
        assert MODEL.score(compare(*with_email)).probability >= base


def test_frequency_adjustment_lowers_the_weight_of_shared_values() -> None:
    full = MODEL.weight("email", "agree")
    assert MODEL.weight("email", "agree", freq=1) == full
    assert MODEL.weight("email", "agree", freq=8) == pytest.approx(full - 3)
    assert MODEL.weight("email", "agree", freq=10**9) == 0.0  # never evidence against
    assert MODEL.weight("email", "disagree", freq=8) == MODEL.weight("email", "disagree")
    assert MODEL.weight("first_name", "exact", freq=8) == MODEL.weight("first_name", "exact")
    a, b = entity(phone="07400 123456", first="Ann"), entity(phone="+447400123456", first="Ann")
    alone = MODEL.score(compare(a, b)).match_weight
    crowded = MODEL.score(compare(a, b, freq={("phone", "+447400123456"): 1})).match_weight
    assert crowded == alone
    family = MODEL.score(compare(a, b, freq={("phone", "+447400123456"): 3})).match_weight
    assert family < alone


def test_thresholds_and_hard_rules() -> None:
    assert (AUTO_MERGE_THRESHOLD, REVIEW_THRESHOLD) == (0.80, 0.45)
    sure = ScoreResult(0.95, 4.2, {})
    assert MODEL.decide(sure).action == "auto_merge"
    assert MODEL.decide(sure, conflict=True).action == "review"
    assert MODEL.decide(sure, n_profiles=4).action == "review"
    assert MODEL.decide(ScoreResult(0.5, 0.0, {})).action == "review"
    assert MODEL.decide(ScoreResult(0.2, -2.0, {})).action == "no_merge"
    strict = MODEL.with_thresholds(auto_merge=0.99, review=0.9)
    assert strict.decide(sure).action == "review"
    with pytest.raises(ValueError, match="thresholds"):
        MODEL.with_thresholds(auto_merge=0.3, review=0.5)


def test_conflicting_strong_rules() -> None:
    e1, e2 = normalize_email("a@x.com"), normalize_email("b@x.com")
    s1, s2 = external_id("shopify", "1"), external_id("shopify", "2")
    w1 = external_id("woocommerce", "9")
    assert not conflicting_strong([e1], [e2])  # people have several emails
    assert conflicting_strong([s1, e1], [s2, e1])  # two accounts of one platform
    assert not conflicting_strong([s1], [w1])  # different platforms say nothing
    assert not conflicting_strong([s1, s2], [s2])  # one id in common
    guest = external_id("woocommerce", "0")
    assert not conflicting_strong([guest], [w1])  # placeholders are ignored
    born, other = date(1980, 1, 2), date(1985, 7, 9)
    assert conflicting_strong([], [], a_dob=born, b_dob=other)
    assert not conflicting_strong([], [], a_dob=born, b_dob=date(1980, 2, 1))  # d/m swapped
    assert not conflicting_strong([], [], a_dob=born, b_dob=None)


def test_weak_identifiers_alone_never_merge_people_with_other_strong_ones() -> None:
    a = entity(device="tablet-1", email="mum@x.com", first="Ann", last="Lee")
    b = entity(device="tablet-1", email="son@x.com", first="Ann", last="Lee")
    features = compare(a, b)
    result = MODEL.score(features)
    assert result.probability >= MODEL.auto_merge_threshold
    assert weak_only_bridge(features, result, MODEL)
    assert MODEL.decide(result, features).action == "review"
    anonymous = entity(device="tablet-1", first="Ann", last="Lee")
    features = compare(a, anonymous)
    assert not weak_only_bridge(features, MODEL.score(features), MODEL)


def test_model_round_trips_through_json() -> None:
    custom = MODEL.with_thresholds(auto_merge=0.9)
    again = ScoringModel.from_json(json.dumps(json.loads(custom.to_json())))
    assert again == custom
    assert again.score(PairFeatures({"email": "agree"})) == custom.score(
        PairFeatures({"email": "agree"})
    )
    assert ScoringModel.from_dict({}) == ScoringModel()


def test_bad_input_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown comparison 'shoe_size'"):
        MODEL.score(PairFeatures({"shoe_size": "exact"}))
    with pytest.raises(ValueError, match="unknown level 'maybe' for comparison 'email'"):
        MODEL.score(PairFeatures({"email": "maybe"}))
    with pytest.raises(ValueError, match="prior"):
        ScoringModel(prior=0.0)


# --- fitting ------------------------------------------------------------------------------

TRUE_M = {
    "email": {"agree": 0.85, "disagree": 0.15},
    "first_name": {"exact": 0.6, "jw92": 0.3, "other": 0.1},
    "dob": {"exact": 0.95, "other": 0.05},
    "address": {"full": 0.3, "area": 0.3, "other": 0.4},
}
TRUE_U = {
    "email": {"agree": 0.02, "disagree": 0.98},
    "first_name": {"exact": 0.1, "jw92": 0.1, "other": 0.8},
    "dob": {"exact": 0.05, "other": 0.95},
    "address": {"full": 0.05, "area": 0.45, "other": 0.5},
}


def synthetic_pairs(
    n: int, seed: int, match_rate: float = 0.3
) -> tuple[list[PairFeatures], list[bool]]:
    """Candidate pairs drawn from known m/u (some fields missing), with the truth."""
    rng = random.Random(seed)
    pairs, truth = [], []
    for _ in range(n):
        same = rng.random() < match_rate
        table = TRUE_M if same else TRUE_U
        levels: dict[str, str | None] = {}
        for name, dist in table.items():
            if rng.random() < 0.2:
                levels[name] = None
            else:
                levels[name] = rng.choices(list(dist), weights=list(dist.values()))[0]
        pairs.append(PairFeatures(levels))
        truth.append(same)
    return pairs, truth


def log_loss(model: ScoringModel, pairs: list[PairFeatures], truth: list[bool]) -> float:
    total = 0.0
    for f, y in zip(pairs, truth, strict=True):
        p = min(max(model.score(f).probability, 1e-12), 1 - 1e-12)
        total -= math.log(p if y else 1 - p)
    return total / len(pairs)


def auc(model: ScoringModel, pairs: list[PairFeatures], truth: list[bool]) -> float:
    scored = sorted((model.score(f).match_weight, y) for f, y in zip(pairs, truth, strict=True))
    positives = sum(truth)
    negatives = len(truth) - positives
    rank_sum = sum(i + 1 for i, (_, y) in enumerate(scored) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def test_em_recovers_parameters_and_improves_separation() -> None:
    train, _ = synthetic_pairs(6000, seed=1)
    test, truth = synthetic_pairs(3000, seed=2)
    start = default_model()
    fitted = fit_em(train, start)
    assert fitted.version == "default+em"
    assert log_loss(fitted, test, truth) < 0.5 * log_loss(start, test, truth)
    assert auc(fitted, test, truth) >= auc(start, test, truth) - 0.002
    assert fitted.prior == pytest.approx(0.3, abs=0.05)
    email = {lv.name: lv for lv in fitted.comparison("email").levels}
    assert email["agree"].m == pytest.approx(0.85, abs=0.05)
    assert email["agree"].u == pytest.approx(0.02, abs=0.01)
    # The fitted model is a model like any other: it serializes.
    assert ScoringModel.from_json(fitted.to_json()) == fitted


def test_fit_from_labels_moves_m_towards_reviewers_and_improves_separation() -> None:
    pairs, truth = synthetic_pairs(4000, seed=5)
    model = default_model()
    refit = fit_from_labels(pairs, truth, model, prior_strength=20)
    assert refit.version == "default+labels"
    first = {lv.name: lv for lv in refit.comparison("first_name").levels}
    assert first["jw92"].m == pytest.approx(0.3, abs=0.05)  # the default says 0.05
    assert refit.comparison("email").level("agree").u == model.comparison("email").level("agree").u
    test, test_truth = synthetic_pairs(2000, seed=6)
    assert log_loss(refit, test, test_truth) < log_loss(model, test, test_truth)
    # A handful of answers only nudges the model.
    few = fit_from_labels(pairs[:5], truth[:5], model, prior_strength=20)
    assert abs(few.comparison("first_name").level("jw92").m - 0.05) < 0.05
    with pytest.raises(ValueError, match="labels"):
        fit_from_labels(pairs, truth[:-1], model)
