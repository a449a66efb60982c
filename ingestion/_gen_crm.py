"""CRM-style customer records: 1-4 per person, each as messy as a real bulk export.

Records come from the places a brand collects customers (web account, store sign-up,
newsletter, an old system migrated in) and disagree in the usual ways: nicknames and typos,
second emails, phone formats, abbreviations, old addresses, missing fields, placeholders.
"""

from __future__ import annotations

from ingestion._gen_noise import (
    PHONE_STYLES,
    email_typo,
    format_phone,
    name_variant,
    postcode_variant,
    street_variant,
    typo,
)
from ingestion._gen_people import Person, Population
from ingestion._gen_rand import Rand, cumulative

CRM_COLUMNS = (
    "record_id",
    "person_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "loyalty_id",
    "dob",
    "address",
    "city",
    "postcode",
    "country",
)
_COUNT_CUM = cumulative((0.6, 0.25, 0.1, 0.05))
_KINDS = ("web", "store", "newsletter", "legacy", "chat")


class CrmBuilder:
    """Makes the CRM rows for one person; `record_id` is given after the final shuffle."""

    def __init__(self, rand: Rand, population: Population, domain: str) -> None:
        self.rand = rand
        self.population = population
        self.domain = domain

    def _phone(self, p: Person, prefer_landline: bool) -> str:
        r, hh = self.rand, p.hh
        if hh.landline and (prefer_landline or p.mobile is None):
            return format_phone(hh.landline, hh.landline_area, r.below(PHONE_STYLES))
        if p.mobile:
            return format_phone(p.mobile, 4, r.below(PHONE_STYLES))
        return ""

    def records(self, p: Person) -> list[list[str]]:
        """Rows without record_id: person_id first, then the CRM_COLUMNS after record_id."""
        r = self.rand
        n = 1 + r.weighted(_COUNT_CUM)
        kinds = ["main"] + [r.pick(_KINDS) for _ in range(n - 1)]
        rows = []
        for kind in kinds:
            rows.append(self._record(p, kind))
        return rows

    def _record(self, p: Person, kind: str) -> list[str]:
        r = self.rand
        addr = p.hh.address
        first, last = p.first, p.last
        x = r.u()
        noisy = 0.05 if kind == "main" else 0.18
        if x < noisy * 0.6:
            first = name_variant(first, r)
        elif x < noisy:
            last = typo(last, r)
        if kind == "legacy":
            first, last = first.upper(), last.upper()
        elif r.chance(0.03):
            first, last = first.lower(), last.lower()
        if kind != "main" and r.chance(0.03):
            first, last = last, first  # keyed into the wrong boxes

        email = p.email
        if kind == "web" and p.alt_email:
            email = p.alt_email
        elif kind == "store" and r.chance(0.6):
            email = ""
        if email and r.chance(0.04):
            email = email_typo(email, r)
        if email and r.chance(0.05):
            email = email.upper() if r.chance(0.3) else f" {email}"  # hand-keyed exports

        phone = ""
        if kind in ("main", "store", "legacy") or r.chance(0.3):
            # Home landlines live on in CRMs: the main and old records often carry one.
            landline = kind == "legacy" or r.chance(0.3 if kind == "main" else 0.1)
            phone = self._phone(p, prefer_landline=landline)
        if phone and r.chance(0.1 if kind == "main" else 0.25):
            phone = ""
        if kind == "store" and p.store >= 0 and r.chance(0.08):
            store = self.population.stores[p.store]
            phone = format_phone(store.phone, store.area_len, r.below(3))  # the shop's own
        if kind == "chat" and p.whatsapp and p.mobile:
            # Added from a WhatsApp conversation: the chat address and the display name.
            phone, email = f"whatsapp:{p.mobile}", ""
            first, _, rest = p.profile_name.partition(" ")
            last = rest if r.chance(0.5) else ""
        loyalty = p.loyalty or ""
        if kind in ("web", "newsletter") or (kind == "main" and r.chance(0.5)):
            loyalty = ""
        dob = p.dob if r.chance(0.55) else ""
        if dob and r.chance(0.1):
            y, m, d = dob.split("-")
            dob = f"{d}/{m}/{y}"  # UK-style date from an older system

        line1, city, postcode = addr.line1, addr.city, addr.postcode
        if kind == "legacy" and r.chance(0.4):
            old = self.population.other_address(r)  # they have moved since
            line1, city, postcode = old.line1, old.city, old.postcode
        elif r.chance(0.15):
            line1 = street_variant(line1, r)
        if kind == "newsletter" and r.chance(0.7):
            line1, city, postcode = "", "", postcode if r.chance(0.3) else ""
        postcode = postcode_variant(postcode, r) if postcode else ""
        country = "GB" if r.chance(0.85) else r.pick(("United Kingdom", "UK", "England", ""))

        # Placeholders a clerk types to get past a required field.
        if r.chance(0.012):
            email = r.pick(("test@test.com", f"noemail@{self.domain}", "none@none.com"))
        if r.chance(0.008):
            phone = r.pick(("0000000000", "00000000000"))
        return [p.pid, first, last, email, phone, loyalty, dob, line1, city, postcode, country]
