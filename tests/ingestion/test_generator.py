"""The synthetic data generator: reproducible, valid, covered by truth, and realistically messy."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import phonenumbers
import pytest

from core.events import CanonicalEvent
from ingestion.generator import GenerateSummary, generate
from integrations import pos, shopify, twilio, woocommerce

BRAND = "test-brand"
END = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 365
PLACEHOLDER_PHONES = {"0000000000", "00000000000"}


class Run:
    def __init__(self, out: Path, summary: GenerateSummary) -> None:
        self.out = out
        self.summary = summary
        self.events = [
            orjson.loads(line) for line in (out / "events.jsonl").read_bytes().splitlines()
        ]
        self.truth = _csv(out / "truth.csv")
        self.person_of = {row["event_id"]: row["person_id"] for row in self.truth}
        self.people = {row["person_id"]: row for row in _csv(out / "people.csv")}
        self.customers = _csv(out / "customers.csv")
        self.stores = _csv(out / "stores.csv")
        self.catalog = _csv(out / "catalog.csv")

    def raw(self, source: str) -> list[dict[str, Any]]:
        path = self.out / "raw" / source / "deliveries.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]

    def of(self, source: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["source"] == source]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _e164(text: str | None) -> str | None:
    if not text:
        return None
    try:
        number = phonenumbers.parse(text.removeprefix("whatsapp:"), "GB")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("gen")
    calls: list[tuple[int, int]] = []
    summary = generate(
        BRAND, 600, DAYS, 7, out, end=END, progress=lambda done, total: calls.append((done, total))
    )
    assert calls[-1] == (600, 600)
    return Run(out, summary)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(run, tmp_path):
    again = generate(BRAND, 600, DAYS, 7, tmp_path / "again", end=END)
    assert dataclasses.replace(again, files=run.summary.files) == run.summary
    for path in sorted(p for p in run.out.rglob("*") if p.is_file()):
        twin = tmp_path / "again" / path.relative_to(run.out)
        assert twin.read_bytes() == path.read_bytes(), path.name
    other = generate(BRAND, 600, DAYS, 8, tmp_path / "other", end=END, raw=False)
    assert (tmp_path / "other" / "events.jsonl").read_bytes() != (
        run.out / "events.jsonl"
    ).read_bytes()
    assert not (tmp_path / "other" / "raw").exists()
    assert other.raw_deliveries == {}


def test_every_event_is_a_valid_canonical_event_inside_the_window(run):
    start = END - timedelta(days=DAYS)
    for line in run.events:
        event = CanonicalEvent.model_validate(line)
        assert event.brand == BRAND
        assert start <= event.occurred_at < END
        assert not event.identifiers.is_empty() or event.type == "refund", line
    assert len(run.events) == run.summary.events


def test_truth_covers_every_event_exactly_once(run):
    ids = [e["event_id"] for e in run.events]
    truth_ids = [row["event_id"] for row in run.truth]
    assert len(set(ids)) == len(ids)
    assert sorted(truth_ids) == sorted(ids)
    for row in run.truth:
        person = run.people[row["person_id"]]
        assert person["household_id"] == row["household_id"]
    assert len(run.people) == run.summary.people == 600


def test_each_persons_events_are_in_time_order(run):
    last: dict[str, str] = {}
    for event in run.events:
        person = run.person_of[event["event_id"]]
        assert event["occurred_at"] >= last.get(person, "")
        last[person] = event["occurred_at"]


def test_counts_per_source_and_type_are_plausible(run):
    s = run.summary
    assert set(s.by_source) == {"shopify", "woocommerce", "pos", "whatsapp", "web"}
    assert s.by_source == dict(Counter(e["source"] for e in run.events))
    assert s.by_type == dict(Counter(e["type"] for e in run.events))
    purchases = s.by_type["purchase"]
    assert 1.0 < purchases / s.people < 4.0
    assert 0.01 < s.by_type["refund"] / purchases < 0.1
    assert s.by_source["shopify"] > 3 * s.by_source["woocommerce"] > 0
    assert s.by_source["pos"] > 0.1 * purchases
    assert s.by_type["product_view"] > s.by_type["cart_add"] > s.by_type["checkout_start"]
    assert s.by_type["checkout_start"] > s.by_source["shopify"] / 3  # abandoned checkouts too
    assert s.by_type["message_in"] == s.by_source["whatsapp"] > 0
    assert s.by_type["identify"] > 0.3 * s.people
    assert 1 < s.households < s.people and s.shared_households > 0.2 * s.households


def test_raw_deliveries_are_exactly_the_canonical_events_of_their_source(run):
    """Each delivery, through our real adapter, gives one new event equal to ours."""

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    mappers = {
        "shopify": lambda d: shopify.map_webhook(
            d["topic"],
            d["payload"],
            webhook_id=d["headers"]["X-Shopify-Webhook-Id"],
            received_at=at(d["received_at"]),
        ),
        "woocommerce": lambda d: woocommerce.map_webhook(
            d["topic"], d["payload"], received_at=at(d["received_at"])
        ),
        "twilio": lambda d: [twilio.map_inbound(d["form"], at(d["received_at"]))],
        "pos": lambda d: [pos.to_canonical(pos.PosTransaction.model_validate(d))],
    }
    ours = {e["event_id"]: e for e in run.events}
    for raw_source, source in (
        ("shopify", "shopify"),
        ("woocommerce", "woocommerce"),
        ("twilio", "whatsapp"),
        ("pos", "pos"),
    ):
        deliveries = run.raw(raw_source)
        assert len(deliveries) == run.summary.raw_deliveries[raw_source] > 0
        seen: set[str] = set()
        for delivery in deliveries:
            mapped = [e for e in mappers[raw_source](delivery) if isinstance(e, CanonicalEvent)]
            # A Woo refund re-sends its order: the order's event is a duplicate by id.
            new = [e for e in mapped if e.event_id not in seen]
            seen.update(e.event_id for e in mapped)
            assert len(new) == 1, [e.event_id for e in mapped]
            theirs = new[0].model_dump(mode="json", exclude_none=True)
            mine = CanonicalEvent.model_validate(ours[new[0].event_id])
            mine_dump = mine.model_dump(mode="json", exclude_none=True)
            mine_dump.pop("brand")
            # Items differ on purpose: ours carry the master catalog id and category.
            their_items = theirs["properties"].pop("items", [])
            our_items = mine_dump["properties"].pop("items", [])
            assert theirs == mine_dump
            assert [(i.get("sku"), i["price"], i["quantity"]) for i in their_items] == [
                (i.get("sku"), i["price"], i["quantity"]) for i in our_items
            ]
        assert seen == {e["event_id"] for e in run.of(source)}


def test_a_stores_own_phone_is_typed_on_bills_of_many_people(run):
    store_phones = {s["phone"] for s in run.stores}
    people_per_phone: dict[str, set[str]] = defaultdict(set)
    for event in run.of("pos"):
        phone = _e164(event["identifiers"].get("phone"))
        if phone:
            people_per_phone[phone].add(run.person_of[event["event_id"]])
    busiest = max(people_per_phone, key=lambda p: len(people_per_phone[p]))
    assert busiest in store_phones
    assert len(people_per_phone[busiest]) >= 10


def test_households_share_a_landline_an_address_and_a_family_device(run):
    household = {pid: row["household_id"] for pid, row in run.people.items()}
    by_phone: dict[str, set[str]] = defaultdict(set)
    by_address: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in run.customers:
        phone = _e164(row["phone"])
        if phone:
            by_phone[phone].add(row["person_id"])
        if row["address"]:
            by_address[(row["address"], row["city"])].add(row["person_id"])
    store_phones = {s["phone"] for s in run.stores}
    shared = [ps for ph, ps in by_phone.items() if len(ps) > 1 and ph not in store_phones]
    assert len(shared) >= 5
    assert all(len({household[p] for p in ps}) == 1 for ps in shared)
    assert (
        sum(len({household[p] for p in ps}) == 1 for ps in by_address.values() if len(ps) > 1) >= 10
    )

    people_per_device: dict[str, set[str]] = defaultdict(set)
    for event in run.of("web"):
        people_per_device[event["identifiers"]["device_id"]].add(run.person_of[event["event_id"]])
    family = [ps for ps in people_per_device.values() if len(ps) > 1]
    assert len(family) >= 5
    assert all(len({household[p] for p in ps}) == 1 for ps in family)


def test_people_use_two_emails_and_make_typos(run):
    emails: dict[str, set[str]] = defaultdict(set)
    last_names: dict[str, set[str]] = defaultdict(set)
    for event in run.events:
        person = run.person_of[event["event_id"]]
        email = event["identifiers"].get("email")
        if email and email not in ("test@test.com",) and not email.startswith("noemail@"):
            emails[person].add(email.lower())
        last = event.get("traits", {}).get("last_name")
        if last and event["source"] != "whatsapp":
            last_names[person].add(last.lower())
    assert sum(len(v) >= 2 for v in emails.values()) >= 0.05 * len(emails)
    assert sum(len(v) >= 2 for v in last_names.values()) >= 10
    # The same address is never handed to two people (placeholders aside).
    owners: dict[str, set[str]] = defaultdict(set)
    for person, addresses in emails.items():
        for email in addresses:
            owners[email].add(person)
    assert all(len(ps) == 1 for ps in owners.values())


def test_placeholder_contacts_appear_for_different_people(run):
    people: dict[str, set[str]] = defaultdict(set)
    for event in run.of("pos"):
        person = run.person_of[event["event_id"]]
        email = event["identifiers"].get("email") or ""
        if email == "test@test.com" or email.startswith("noemail@"):
            people["email"].add(person)
        if event["identifiers"].get("phone") == "0000000000":
            people["phone"].add(person)
    assert len(people["email"]) >= 3
    assert len(people["phone"]) >= 2
    crm = {
        r["person_id"]
        for r in run.customers
        if r["email"] == "test@test.com" or r["phone"] in PLACEHOLDER_PHONES
    }
    assert len(crm) >= 3


def test_every_phone_is_a_valid_gb_number_except_placeholders(run):
    seen = 0
    for event in run.events:
        ids = event["identifiers"]
        for value in (ids.get("phone"), ids.get("whatsapp")):
            if value and value not in PLACEHOLDER_PHONES:
                assert _e164(value), value
                seen += 1
    for row in run.customers:
        if row["phone"] and row["phone"] not in PLACEHOLDER_PHONES:
            assert _e164(row["phone"]), row["phone"]
    for store in run.stores:
        assert _e164(store["phone"]) == store["phone"]
    formats = {e["identifiers"]["phone"][:2] for e in run.events if e["identifiers"].get("phone")}
    assert {"+4", "07", "00", "44", "(0"} <= formats  # the same numbers in many formats
    assert seen > 500


def test_customers_csv_is_a_messy_crm_export(run):
    columns = "record_id,person_id,first_name,last_name,email,phone,loyalty_id,dob,address,city,postcode,country"
    header = (run.out / "customers.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == columns
    assert len({r["record_id"] for r in run.customers}) == len(run.customers)
    per_person = Counter(r["person_id"] for r in run.customers)
    assert set(per_person) == set(run.people)
    assert set(per_person.values()) <= {1, 2, 3, 4}
    assert sum(n > 1 for n in per_person.values()) >= 0.2 * len(per_person)
    assert any(not r["email"] for r in run.customers)
    assert any(not r["phone"] for r in run.customers)
    assert any(r["first_name"].isupper() for r in run.customers)
    # Row order must not give away who is who.
    firsts = [r["person_id"] for r in run.customers[:50]]
    assert firsts != sorted(firsts)


def test_catalog_has_categories_skewed_popularity_and_repeat_items(run):
    assert 200 <= len(run.catalog) <= 500
    assert 10 <= len({p["category"] for p in run.catalog}) <= 20
    bought: Counter[str] = Counter()
    for event in run.events:
        if event["type"] == "purchase":
            for item in event["properties"]["items"]:
                bought[item["sku"]] += item["quantity"]
    counts = sorted(bought.values(), reverse=True)
    assert counts[0] >= 8 * counts[len(counts) // 2]  # Zipf-ish: a few heroes, a long tail
    assert any(p["bundle_sku"] for p in run.catalog)


def test_truth_about_churn_and_value_is_learnable(run):
    """People who bought recently are mostly still active; long-quiet ones mostly are not."""
    last_purchase: dict[str, str] = {}
    for event in run.events:
        if event["type"] == "purchase":
            last_purchase[run.person_of[event["event_id"]]] = event["occurred_at"]
    recent_cut = (END - timedelta(days=45)).isoformat()
    old_cut = (END - timedelta(days=180)).isoformat()
    recent = [
        run.people[p]["alive_at_end"] == "true" for p, t in last_purchase.items() if t >= recent_cut
    ]
    old = [run.people[p]["alive_at_end"] == "true" for p, t in last_purchase.items() if t < old_cut]
    assert len(recent) > 30 and len(old) > 30
    assert sum(recent) / len(recent) > sum(old) / len(old) + 0.25


def test_a_window_ending_mid_day_and_no_customers(tmp_path):
    end = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)
    summary = generate(BRAND, 40, 30, 1, tmp_path / "mid", end=end)
    for line in (tmp_path / "mid" / "events.jsonl").read_bytes().splitlines():
        at = CanonicalEvent.model_validate(orjson.loads(line)).occurred_at
        assert end - timedelta(days=30) <= at < end
    assert summary.people == 40
    empty = generate(BRAND, 0, 30, 1, tmp_path / "empty", end=end)
    assert empty.events == 0 and empty.people == 0
    assert (tmp_path / "empty" / "truth.csv").read_text() == "event_id,person_id,household_id\n"
    with pytest.raises(ValueError, match="days"):
        generate(BRAND, 10, 0, 1, tmp_path / "bad", end=end)
