"""A small, realistic customer-file generator with ground truth, for identity tests and bench.

People have 1-4 records each. Records carry typos, nicknames, swapped names, several emails,
phones in every format people type (national, +44, 0044, "(0)", whatsapp:), households that
share an address, a surname and a landline, placeholder emails and phones on many records,
a store's default phone, dob in mixed formats, and missing fields. Columns match the product
generator's `customers.csv`: record_id,person_id,first_name,last_name,email,phone,loyalty_id,
dob,address,city,postcode,country, plus household_id (truth for the household checks).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Olivia Amelia Isla Ava Mia Grace Sophia Lily Freya Emily Ella Poppy Evie Charlotte Isabella "
    "Sophie Jessica Alice Ruby Florence Daisy Matilda Chloe Lucy Phoebe Harriet Ellie Holly Hannah "
    "Emma Sarah Laura Rebecca Rachel Natalie Katherine Catherine Elizabeth Victoria Samantha "
    "Jennifer Nicola Helen Claire Joanne Louise Michelle Amanda Susan Margaret Patricia Deborah "
    "Karen Julie Gemma Zara Aisha Fatima Priya Anjali Maryam Yasmin Leah Megan Abigail Erin Niamh "
    "Siobhán Zoë Maya Layla Nadia Agnieszka Chiara Ana Oliver George Harry Noah Jack Leo Arthur "
    "Oscar Charlie Jacob Thomas Henry William James Joshua Alfie Freddie Archie Theo Isaac Samuel "
    "Daniel Benjamin Alexander Matthew Joseph Edward Christopher Michael Andrew David Richard "
    "Stephen Robert Jonathan Peter Paul Mark Simon Anthony Nicholas Gareth Ian Martin Graham Kevin "
    "Adam Ryan Liam Connor Callum Jamie Aaron Ethan Dylan Mohammed Ali Hamza Ibrahim Yusuf Arjun "
    "Rohan Tomasz Piotr Marco Luca José Kwame Chinedu Rhys Owen Cameron Ewan Finlay Seán Declan "
    "Patrick Zachary Wei Hiroshi Mei"
)
LAST = _words(
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson "
    "Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen "
    "James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook "
    "Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson "
    "Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali "
    "Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell "
    "Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur "
    "Gibson Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks "
    "West Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth "
    "Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster "
    "Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland "
    "Hawkins Harding Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah "
    "Dean Lane Cooke Bates Henderson Parry Burgess Bishop Walton Burns Nicholson Shepherd Ross "
    "Cross Long Freeman Warren Nicholls Hamilton Byrne Sutton McDonald Yates Hodgson Robson Curtis "
    "Hopkins O'Connor Harper Coleman Watkins Moss McCarthy Chambers O'Neill Griffin Sharp Hardy "
    "Wheeler Potter Osborne Johnston Gordon Doyle Wallace Jordan Hutchinson Rowe Burke Pritchard "
    "Gilbert Willis Higgins Miah Nowak Kowalski Nguyen Chen Wang Okafor Adeyemi Mensah Rossi "
    "Silva Santos Costa Novak Macleod Fraser Smith-Jones Müller García Ó'Sé"
)
NICK = {
    "William": "Bill", "Robert": "Bob", "Elizabeth": "Liz", "Katherine": "Kate", "James": "Jim",
    "Michael": "Mike", "David": "Dave", "Thomas": "Tom", "Christopher": "Chris", "Daniel": "Dan",
    "Samuel": "Sam", "Alexander": "Alex", "Benjamin": "Ben", "Nicholas": "Nick", "Matthew": "Matt",
    "Anthony": "Tony", "Joseph": "Joe", "Andrew": "Andy", "Patricia": "Pat", "Jennifer": "Jen",
    "Susan": "Sue", "Margaret": "Maggie", "Rebecca": "Becky", "Richard": "Rick", "Edward": "Ed",
    "Jonathan": "Jon", "Victoria": "Vicky", "Samantha": "Sam", "Deborah": "Debbie",
    "Stephen": "Steve", "Peter": "Pete", "Zachary": "Zach", "Abigail": "Abby",
}  # fmt: skip
CITIES = {
    "London": ("E", "N", "SE", "SW", "W", "NW"), "Manchester": ("M",), "Birmingham": ("B",),
    "Leeds": ("LS",), "Glasgow": ("G",), "Liverpool": ("L",), "Bristol": ("BS",),
    "Sheffield": ("S",), "Edinburgh": ("EH",), "Cardiff": ("CF",), "Leicester": ("LE",),
    "Nottingham": ("NG",), "Newcastle upon Tyne": ("NE",), "Brighton": ("BN",),
    "Southampton": ("SO",), "Oxford": ("OX",), "Cambridge": ("CB",), "York": ("YO",),
    "Norwich": ("NR",), "Belfast": ("BT",), "Aberdeen": ("AB",), "Plymouth": ("PL",),
    "Reading": ("RG",), "Coventry": ("CV",), "St Albans": ("AL",), "Exeter": ("EX",),
}  # fmt: skip
STREETS = _words(
    "High Church Station Victoria Green Manor Park Queens Kings Grange Mill School Alexandra "
    "New London York Albert Chapel West North South East Windsor Springfield Highfield Orchard "
    "Meadow Beech Oak Elm Willow Ash Cedar Maple Hawthorn Holly Rowan Birch Chestnut Cherry "
    "Stanley Richmond Cambridge Oxford Marlborough Nelson Wellington Clarence Mount Hill Bridge "
    "Market Castle Abbey Priory Rectory Vicarage Tudor Coronation Jubilee Princes Waterloo"
)
SUFFIX = (
    "Street",
    "Road",
    "Avenue",
    "Lane",
    "Close",
    "Drive",
    "Way",
    "Gardens",
    "Crescent",
    "Place",
)
ABBREV = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Lane": "Ln", "Drive": "Dr", "Close": "Cl"}
DOMAINS = ("gmail.com", "yahoo.co.uk", "hotmail.co.uk", "outlook.com", "btinternet.com",
           "icloud.com", "live.co.uk", "aol.com", "sky.com", "protonmail.com")  # fmt: skip
PLACEHOLDER_EMAILS = ("test@test.com", "noemail@shop.co.uk", "none@none.com", "na@na.com",
                      "no-reply@brand.co.uk", "NoEmail@noemail.com")  # fmt: skip
PLACEHOLDER_PHONES = ("00000000000", "07000000000", "1234567890", "+440000000000", "0000 000 0000")
STORE_PHONES = ("0161 496 0000", "020 7946 0000", "0113 496 0999")
JUNK = ("n/a", "-", "unknown", "none", "x")


@dataclass
class Person:
    pid: int
    first: str
    last: str
    dob: date
    address: str
    city: str
    postcode: str
    landline: str | None
    mobile: str | None
    household: int = 0
    emails: list[str] = field(default_factory=list)
    loyalty: str | None = None
    moved_to: tuple[str, str, str] | None = None


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.used: set[str] = set()
        self.first_w = [1.0 / (i + 10) for i in range(len(FIRST))]
        self.last_w = [1.0 / (i + 20) for i in range(len(LAST))]

    def unique(self, make) -> str:
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def digits(self, n: int) -> str:
        return "".join(self.r.choices(string.digits, k=n))

    def home(self) -> tuple[str, str, str]:
        r = self.r
        city = r.choice(list(CITIES))
        area = r.choice(CITIES[city])
        inward = f"{r.randint(0, 9)}{''.join(r.choices('ABDEFGHJLNPQRSTUWXYZ', k=2))}"
        postcode = f"{area}{r.randint(1, 28)} {inward}"
        street = f"{r.randint(1, 220)} {r.choice(STREETS)} {r.choice(SUFFIX)}"
        if r.random() < 0.12:
            street = f"Flat {r.randint(1, 30)}, {street}"
        return street, city, postcode

    def email(self, first: str, last: str) -> str:
        r = self.r
        f, last_ = first.lower(), last.lower().replace("'", "").replace(" ", "")
        styles = (f"{f}.{last_}", f"{f}{last_}", f"{f[0]}{last_}", f"{f}_{last_}", f"{last_}.{f}")

        def make() -> str:
            local = r.choice(styles)
            if r.random() < 0.6:
                local += str(r.randint(1, 999))
            return f"{local}@{r.choice(DOMAINS)}"

        return self.unique(make)

    def people(self, n: int) -> list[Person]:
        r, out, households = self.r, [], 0
        while len(out) < n:
            households += 1
            size = r.choices((1, 2, 3, 4, 5), weights=(50, 27, 12, 8, 3))[0]
            street, city, postcode = self.home()
            family = r.choices(LAST, weights=self.last_w)[0]
            landline = None
            if r.random() < 0.55:
                # 11-digit national numbers: London 020 7xxx xxxx, or a 4-digit area code.
                area = r.choice(("0207", "0208", "01614", "01132", "01215", "01179"))
                landline = self.unique(lambda a=area: a + self.digits(11 - len(a)))
            firsts: set[str] = set()
            dobs: set[date] = set()
            for _ in range(size):
                first = r.choices(FIRST, weights=self.first_w)[0]
                while first in firsts:
                    first = r.choices(FIRST, weights=self.first_w)[0]
                firsts.add(first)
                dob = date(1940, 1, 1) + timedelta(days=r.randint(0, 65 * 365))
                while dob in dobs:
                    dob += timedelta(days=r.randint(40, 4000))
                dobs.add(dob)
                last = family if r.random() < 0.8 else r.choices(LAST, weights=self.last_w)[0]
                mobile = None
                if r.random() < 0.9:
                    mobile = self.unique(lambda: "07" + r.choice("45789") + self.digits(8))
                p = Person(len(out), first, last, dob, street, city, postcode, landline, mobile)
                p.household = households
                p.emails = [self.email(first, last) for _ in range(1 if r.random() < 0.88 else 2)]
                if r.random() < 0.35:
                    p.loyalty = self.unique(lambda: "LY" + self.digits(8))
                if r.random() < 0.06:
                    p.moved_to = self.home()
                out.append(p)
                if len(out) >= n:
                    break
        return out

    # --- noise ------------------------------------------------------------------------------

    def typo(self, word: str) -> str:
        r = self.r
        if len(word) < 4:
            return word
        i = r.randint(1, len(word) - 2)
        kind = r.random()
        if kind < 0.35:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind < 0.65:
            return word[:i] + word[i + 1 :]
        if kind < 0.85:
            return word[:i] + r.choice(string.ascii_lowercase) + word[i + 1 :]
        return word[:i] + word[i] + word[i:]

    def case(self, word: str) -> str:
        x = self.r.random()
        return word.upper() if x < 0.05 else word.lower() if x < 0.12 else word

    def phone_fmt(self, national: str) -> str:
        r, n = self.r, national
        body = n[1:]
        return r.choices(
            (n, f"{n[:5]} {n[5:]}", f"+44 {body[:4]} {body[4:]}", f"+44{body}", f"0044 {body}",
             f"+44 (0){body[:4]} {body[4:]}", f"({n[:5]}) {n[5:8]}-{n[8:]}", f"whatsapp:+44{body}",
             f"{n[:5]}-{n[5:8]}-{n[8:]}", f"{n} ext {r.randint(1, 99)}"),
            weights=(30, 25, 10, 8, 4, 4, 4, 8, 4, 3),
        )[0]  # fmt: skip

    def dob_fmt(self, d: date) -> str:
        r = self.r
        if r.random() < 0.04:  # a mistyped part
            x = r.random()
            if x < 0.4:
                d = d.replace(day=min(28, max(1, d.day + r.choice((-1, 1, 10, -10)))))
            elif x < 0.7 and d.day <= 12:
                d = date(d.year, d.day, d.month)
            else:
                d = d.replace(year=d.year + r.choice((-1, 1)), day=min(d.day, 28))
        return r.choices(
            (
                d.isoformat(),
                d.strftime("%d/%m/%Y"),
                d.strftime("%-d %b %Y"),
                d.strftime("%d.%m.%Y"),
            ),
            weights=(50, 30, 10, 10),
        )[0]

    def record(self, p: Person) -> dict[str, str]:
        r = self.r
        first, last = p.first, p.last
        x = r.random()
        if x < 0.06:
            first = self.typo(first)
        elif x < 0.09 and first in NICK:
            first = NICK[first]
        elif x < 0.10:
            first = first[0] + "."
        elif x < 0.13:
            first = r.choice(("Mr ", "Mrs ", "Ms ", "Dr ")) + first
        if r.random() < 0.04:
            last = self.typo(last)
        first, last = self.case(first), self.case(last)
        if r.random() < 0.01:
            first, last = last, first
        street, city, postcode = p.address, p.city, p.postcode
        if p.moved_to and r.random() < 0.5:
            street, city, postcode = p.moved_to
        email = p.emails[-1] if r.random() < 0.3 else p.emails[0]
        if r.random() < 0.1:
            email = f" {email.upper() if r.random() < 0.5 else email.title()} "
        phone = p.mobile if (p.mobile and (not p.landline or r.random() < 0.8)) else p.landline
        # Which fields a record has depends on where it came from, as in real merged files:
        # web orders carry email and a delivery address, tills a phone and a loyalty card,
        # newsletter sign-ups little more than an email.
        channel = r.choices(("web", "pos", "signup", "crm"), weights=(50, 25, 15, 10))[0]
        p_first, p_last, p_email, p_phone, p_dob, p_addr, p_loyal = {
            "web": (0.99, 0.99, 0.99, 0.85, 0.3, 0.92, 0.2),
            "pos": (0.92, 0.92, 0.85, 0.97, 0.35, 0.6, 0.8),
            "signup": (0.85, 0.6, 1.0, 0.5, 0.5, 0.4, 0.1),
            "crm": (0.95, 0.95, 0.95, 0.92, 0.5, 0.8, 0.3),
        }[channel]
        has_addr = r.random() < p_addr
        rec = {
            "first_name": first if r.random() < p_first else "",
            "last_name": last if r.random() < p_last else "",
            "email": email if r.random() < p_email else "",
            "phone": self.phone_fmt(phone) if phone and r.random() < p_phone else "",
            "loyalty_id": "",
            "dob": self.dob_fmt(p.dob) if r.random() < p_dob else "",
            "address": street if has_addr and r.random() < 0.9 else "",
            "city": city if (has_addr and r.random() < 0.9) or r.random() < 0.2 else "",
            "postcode": postcode if has_addr and r.random() < 0.92 else "",
            "country": r.choice(("GB", "GB", "United Kingdom", "UK", "")),
        }
        if p.loyalty and r.random() < p_loyal:
            lid = p.loyalty
            rec["loyalty_id"] = r.choice((lid, f"{lid[:2]}-{lid[2:6]} {lid[6:]}", lid.lower()))
        if rec["address"]:
            for word, short in ABBREV.items():
                if word in rec["address"] and r.random() < 0.3:
                    rec["address"] = rec["address"].replace(word, short)
            if r.random() < 0.03:
                rec["address"] = self.typo(rec["address"])
            if r.random() < 0.1:
                rec["address"] = rec["address"].upper()
        if rec["postcode"] and r.random() < 0.2:
            rec["postcode"] = r.choice((postcode.replace(" ", ""), postcode.lower()))
        if r.random() < 0.025:
            rec["email"] = r.choice(PLACEHOLDER_EMAILS)
        elif r.random() < 0.007:
            rec["email"] = r.choice((*JUNK, "john at gmail", "jane@", "a b@c.com"))
        x = r.random()
        if x < 0.02:
            rec["phone"] = r.choice(PLACEHOLDER_PHONES)
        elif x < 0.025:
            rec["phone"] = r.choice(STORE_PHONES)
        elif x < 0.033:
            rec["phone"] = r.choice((*JUNK, "12345", "call me"))
        if r.random() < 0.01:
            rec["dob"] = "1900-01-01"
        return rec


def generate(n_persons: int, seed: int = 7) -> pd.DataFrame:
    """Records for `n_persons` people (about 2 records each) with a `person_id` truth column."""
    gen = _Gen(seed)
    rows = []
    for p in gen.people(n_persons):
        k = gen.r.choices((1, 2, 3, 4), weights=(40, 30, 18, 12))[0]
        for _ in range(k):
            rec = gen.record(p)
            rec["person_id"] = str(p.pid)
            rec["household_id"] = str(p.household)
            rows.append(rec)
    gen.r.shuffle(rows)
    df = pd.DataFrame(rows)
    df.insert(0, "record_id", [str(i + 1) for i in range(len(df))])
    cols = ["record_id", "person_id", "first_name", "last_name", "email", "phone", "loyalty_id",
            "dob", "address", "city", "postcode", "country", "household_id"]  # fmt: skip
    return df[cols]


def generate_records(n_records: int, seed: int = 7) -> pd.DataFrame:
    """About `n_records` records (people are drawn until the count is reached)."""
    df = generate(max(1, int(n_records / 1.95)), seed)
    return df.iloc[:n_records].reset_index(drop=True) if len(df) > n_records else df


def pairwise_scores(truth: pd.Series, predicted: pd.Series) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a predicted partition against the truth."""

    def pairs(counts: pd.Series) -> int:
        c = counts.to_numpy(dtype="int64")
        return int((c * (c - 1) // 2).sum())

    frame = pd.DataFrame({"t": truth.to_numpy(), "p": predicted.to_numpy()})
    tp = pairs(frame.groupby(["t", "p"]).size())
    predicted_pairs = pairs(frame.groupby("p").size())
    true_pairs = pairs(frame.groupby("t").size())
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
