"""Synthetic people and households, with the latent behaviour that drives their events.

Behaviour follows the BG/NBD and gamma-gamma stories so churn and value are learnable:
purchase rates are gamma-distributed across people, each purchase may be the last one with a
beta-distributed probability, and each person has a gamma-distributed typical order value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ingestion._gen_catalog import Catalog
from ingestion._gen_data import (
    COMPANIES,
    EMAIL_DOMAINS,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    LAST_NAMES,
    MOBILE_PREFIXES,
    STREET_TYPES,
    CitySpec,
    cities,
    streets,
    words,
)
from ingestion._gen_noise import ascii_fold
from ingestion._gen_rand import Clock, Rand, cumulative

_INWARD = "ABDEFGHJLNPQRSTUWXYZ"
_STORE_SITES = (
    ("LDN", "London", "Covent Garden"),
    ("MAN", "Manchester", "Northern Quarter"),
    ("LDN", "London", "Shoreditch"),
    ("BRS", "Bristol", "Clifton"),
    ("EDI", "Edinburgh", "Stockbridge"),
    ("LDS", "Leeds", "Victoria Quarter"),
    ("BHM", "Birmingham", "Jewellery Quarter"),
    ("BTN", "Brighton", "The Lanes"),
)


@dataclass(slots=True)
class Store:
    store_id: str
    city: str
    name: str
    phone: str  # E.164; cashiers type it when a customer will not give their own
    area_len: int


@dataclass(slots=True)
class Address:
    line1: str
    city: str
    postcode: str
    country: str = "GB"


@dataclass(slots=True)
class Household:
    hid: str
    address: Address
    city_idx: int
    landline: str | None  # E.164, shared by everyone at home
    landline_area: int
    device: str | None  # the family tablet, used by several members
    cookies: dict[int, str] = field(default_factory=dict)
    members: list[Person] = field(default_factory=list)


@dataclass(slots=True)
class Person:
    pid: str
    hh: Household
    first: str
    last: str
    gender: str
    dob: str
    email: str
    alt_email: str | None
    mobile: str | None
    loyalty: str | None
    cards: list[tuple[str, str]]  # (last4, name as printed on the card)
    whatsapp: bool
    profile_name: str
    store: int  # home store index, -1 when none is near
    p_pos: float  # share of purchases made in a store
    web: bool  # browses the web store
    platform: str  # "shopify" or "woocommerce" for web orders
    has_account: bool
    woo_customer: int  # WooCommerce customer id, 0 for a guest
    buyer: bool
    lam: float  # purchases per day while alive
    p_drop: float  # probability that a purchase is the last one
    spend: float  # mean order value (GBP)
    browse: float  # web sessions per day while alive
    signup: float  # simulation day of acquisition (may precede the window)
    pref_cum: list[float]
    pref_cum_gift: list[float]
    favourites: list[tuple[int, float]]  # (product index, re-order every N days)
    devices: list[str]
    cookie_life: float
    cookies: dict[tuple[str, int], str] = field(default_factory=dict)
    shopify_ids: dict[str, int] = field(default_factory=dict)
    last_bought: dict[int, float] = field(default_factory=dict)
    # Ground truth filled in by the simulation.
    death: float | None = None
    orders: int = 0
    revenue: float = 0.0
    future_orders: int = 0
    future_revenue: float = 0.0


def _clean(name: str) -> str:
    return re.sub(r"[^a-z]", "", ascii_fold(name).lower())


class Population:
    """Draws households and people one household at a time (so 100k people stream)."""

    def __init__(
        self, gen: np.random.Generator, n: int, clock: Clock, catalog: Catalog, domain: str
    ) -> None:
        self.gen = gen
        self.rand = Rand(gen)
        self.n = n
        self.clock = clock
        self.catalog = catalog
        self.domain = domain
        self.first_f = words(FIRST_NAMES_F)
        self.first_m = words(FIRST_NAMES_M)
        self.last = words(LAST_NAMES)
        self.cities: tuple[CitySpec, ...] = cities()
        self.city_cum = cumulative(c.weight for c in self.cities)
        self.streets = streets()
        self.domains = [d for d, _ in EMAIL_DOMAINS]
        self.domain_cum = cumulative(w for _, w in EMAIL_DOMAINS)
        self.companies = words(COMPANIES)
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()
        self.next_loyalty = 10_000_000 + int(gen.integers(1_000_000))
        self.next_woo_customer = 2
        self.stores = self._stores()
        self.store_city = {s.city: i for i, s in reversed(list(enumerate(self.stores)))}

        # Latent behaviour for everyone at once: vectorised draws are what keeps 100k cheap.
        self.lam = np.minimum(gen.gamma(0.9, 6.5 / 0.9, n), 60.0) / 365.0
        self.p_drop = np.clip(gen.beta(1.0, 4.0, n), 0.01, 0.95)
        self.spend = np.maximum(gen.gamma(3.0, 38.0 / 3.0, n), 6.0)
        self.browse_k = gen.uniform(2.0, 6.0, n)
        self.prefs = gen.dirichlet(catalog.cat_weight * 4.0, n) * 0.85 + catalog.cat_weight * 0.15
        pre = gen.random(n) < 0.3
        late = np.where(gen.random(n) < 0.6, gen.random(n), np.sqrt(gen.random(n)))
        self.signup = np.where(
            pre,
            -gen.random(n) * clock.pre_days,
            clock.lo / 86_400 + late * (clock.hi - clock.lo) / 86_400,
        )

    # -- stores ----------------------------------------------------------------------------

    def _stores(self) -> list[Store]:
        count = 3 + int(self.gen.integers(4))
        out = []
        seen: dict[str, int] = {}
        for code, city, name in _STORE_SITES[:count]:
            seen[code] = seen.get(code, 0) + 1
            spec = next(c for c in self.cities if c.name == city)
            phone = self._landline(spec)
            out.append(Store(f"{code}{seen[code]:02d}", city, name, phone, len(spec.area_code)))
        return out

    # -- identifiers -----------------------------------------------------------------------

    def _mobile(self) -> str:
        while True:
            n = f"+44{self.rand.pick(MOBILE_PREFIXES)}{self.rand.below(10_000_000):07d}"
            if n not in self.used_phones:
                self.used_phones.add(n)
                return n

    def _landline(self, spec: CitySpec) -> str:
        while True:
            rest = f"{self.rand.below(10**spec.rest_len):0{spec.rest_len}d}"
            n = f"+44{spec.area_code}{self.rand.pick(spec.next_digits)}{rest}"
            if n not in self.used_phones:
                self.used_phones.add(n)
                return n

    def _email(self, first: str, last: str, dob_year: int, work: bool = False) -> str:
        r = self.rand
        f, la = _clean(first) or "x", _clean(last) or "x"
        if work:
            local, domain = f"{f}.{la}", f"{r.pick(self.companies)}.co.uk"
        else:
            k = r.below(8)
            nn = r.int_between(1, 99)
            local = (
                f"{f}.{la}",
                f"{f}{la}",
                f"{f[0]}{la}",
                f"{f}.{la}{nn}",
                f"{f}_{la}",
                f"{f}{dob_year % 100:02d}",
                f"{la}{f[0]}",
                f"{f}{la}{dob_year}",
            )[k]
            domain = self.domains[r.weighted(self.domain_cum)]
        email = f"{local}@{domain}"
        while email in self.used_emails:
            local += str(r.below(10))
            email = f"{local}@{domain}"
        self.used_emails.add(email)
        return email

    def _address(self, spec: CitySpec, rand: Rand | None = None) -> Address:
        r = rand or self.rand
        full, _short = r.pick(STREET_TYPES)
        line1 = f"{r.int_between(1, 180)} {r.pick(self.streets)} {full}"
        if r.chance(0.15):
            line1 = f"Flat {r.int_between(1, 24)}, {line1}"
        postcode = (
            f"{r.pick(spec.areas)}{r.int_between(1, 20)} {r.below(10)}"
            f"{r.pick(_INWARD)}{r.pick(_INWARD)}"
        )
        return Address(line1, spec.name, postcode)

    def other_address(self, rand: Rand) -> Address:
        """Somewhere else the person once lived (CRM records keep old addresses)."""
        return self._address(self.cities[rand.weighted(self.city_cum)], rand)

    # -- people ----------------------------------------------------------------------------

    def households(self) -> Iterator[Household]:
        """Households in a fixed order until `n` people exist; sizes 1-4."""
        made = 0
        h = 0
        size_cum = cumulative((0.62, 0.22, 0.10, 0.06))
        while made < self.n:
            size = min(1 + self.rand.weighted(size_cum), self.n - made)
            h += 1
            yield self._household(h, made, size)
            made += size

    def _household(self, h: int, first_idx: int, size: int) -> Household:
        r = self.rand
        ci = r.weighted(self.city_cum)
        spec = self.cities[ci]
        has_landline = r.chance(0.45 if size > 1 else 0.12)
        landline = self._landline(spec) if has_landline else None
        device = r.uuid() if size > 1 and r.chance(0.45) else None
        hh = Household(f"H{h:07d}", self._address(spec), ci, landline, len(spec.area_code), device)
        family_name = r.pick(self.last)
        for k in range(size):
            last = family_name if k == 0 or r.chance(0.7) else r.pick(self.last)
            hh.members.append(self._person(first_idx + k, hh, last, adult=k < 2))
        return hh

    def _person(self, i: int, hh: Household, last: str, adult: bool) -> Person:
        r = self.rand
        gender = "F" if r.chance(0.56) else "M"  # more women shop these categories
        first = r.pick(self.first_f if gender == "F" else self.first_m)
        age = r.int_between(25, 70) if adult else r.int_between(18, 30)
        year = self.clock.base.year - age
        dob = f"{year}-{r.int_between(1, 12):02d}-{r.int_between(1, 28):02d}"
        email = self._email(first, last, year)
        alt = None
        if r.chance(0.16):
            alt = self._email(first, last, year, work=r.chance(0.4))
        mobile = self._mobile() if r.chance(0.93) else None
        store = self.store_city.get(self.cities[hh.city_idx].name, -1)
        if store >= 0:
            seg = r.weighted((0.35, 0.65, 1.0))  # web only, store only, omnichannel
        else:
            seg = 0 if r.chance(0.85) else 2
            store = r.below(len(self.stores)) if seg == 2 else -1
        p_pos = (0.0, 1.0, float(self.gen.beta(2.0, 2.0)))[seg]
        if seg == 2 and store >= 0 and self.cities[hh.city_idx].name != self.stores[store].city:
            p_pos *= 0.2  # visits that city's shop now and then
        web = seg != 1 or r.chance(0.25)
        cards: list[tuple[str, str]] = []
        for _ in range(1 + int(r.chance(0.2))):
            cards.append((f"{r.below(10_000):04d}", _card_name(first, last, gender, r)))
        whatsapp = mobile is not None and r.chance(0.22 + 0.15 * p_pos)
        pn = r.below(10)
        profile = (
            first
            if pn < 5
            else f"{first} {last}"
            if pn < 7
            else f"{first} {last[0]}"
            if pn < 8
            else f"{first} \u2728"
            if pn < 9
            else first[0]
        )
        platform = "woocommerce" if r.chance(0.12) else "shopify"
        cat = self.catalog
        prefs = self.prefs[i]
        gift = prefs * cat.gift_boost
        favourites: list[tuple[int, float]] = []
        top = np.argsort(-prefs)[:2]
        for _ in range(r.int_between(1, 3)):
            ci = int(top[r.below(2)])
            if cat.repeatables[ci]:
                pid = r.pick(cat.repeatables[ci])
                favourites.append((pid, cat.products[pid].repeat_days * r.between(0.7, 1.5)))
        devices = []
        if web:
            devices.append(r.uuid())
            if r.chance(0.5):
                devices.append(r.uuid())
        loyalty = None
        if p_pos > 0 and r.chance(0.65):
            self.next_loyalty += 1 + r.below(40)
            loyalty = f"LC{self.next_loyalty}"
        woo = 0
        if platform == "woocommerce" and r.chance(0.6):
            woo = self.next_woo_customer
            self.next_woo_customer += 1 + r.below(3)
        return Person(
            pid=f"P{i + 1:07d}",
            hh=hh,
            first=first,
            last=last,
            gender=gender,
            dob=dob,
            email=email,
            alt_email=alt,
            mobile=mobile,
            loyalty=loyalty,
            cards=cards,
            whatsapp=whatsapp,
            profile_name=profile,
            store=store,
            p_pos=p_pos,
            web=web,
            platform=platform,
            has_account=r.chance(0.7),
            woo_customer=woo,
            buyer=r.chance(0.88),
            lam=float(self.lam[i]),
            p_drop=float(self.p_drop[i]),
            spend=float(self.spend[i]),
            browse=float(self.lam[i] * self.browse_k[i]) + 0.004,
            signup=float(self.signup[i]),
            pref_cum=cumulative(prefs),
            pref_cum_gift=cumulative(gift),
            favourites=favourites,
            devices=devices,
            cookie_life=r.between(30.0, 300.0),
        )


def _card_name(first: str, last: str, gender: str, r: Rand) -> str:
    title = "MR" if gender == "M" else r.pick(("MRS", "MS", "MISS"))
    k = r.below(7)
    name = (
        f"{title} {first[0]} {last}",
        f"{first[0]} {last}",
        f"{first} {last}",
        f"{first} {r.pick('ABCDEJLMR')} {last}",
        f"{title} {first} {last}",
        f"{last}/{first}",  # ISO 7813 track order, as some terminals pass it on
        f"{last}/{first[0]} {title}",
    )[k]
    return name.upper()
