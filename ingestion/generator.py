"""Synthetic multi-channel retail data with ground truth, for the demo, tests and benchmarks.

`generate()` simulates a UK brand's customers across its web store (Shopify, with a smaller
WooCommerce storefront), its shops (POS) and WhatsApp, and writes:

- `events.jsonl`: canonical events (`core.events.CanonicalEvent`), one per line, in time
  order within each person;
- `truth.csv`: `event_id,person_id,household_id` for every event;
- `customers.csv`: a messy CRM export for bulk dedupe, `person_id` being the truth column;
- `people.csv`: each person's latent behaviour and what they did in the 90 days after the
  window (churn and lifetime-value truth);
- `catalog.csv`, `stores.csv`: the products and shops the events refer to;
- with `raw`: `raw/{shopify,woocommerce,twilio,pos}/deliveries.jsonl`, the deliveries each
  source would have sent, one per line, mapping 1:1 onto the canonical events of that source
  (the id rules are in `ingestion._gen_emit`).

Everything is drawn from `numpy.random.Generator(PCG64)` streams spawned from `seed`, so a
seed reproduces the files byte for byte. People are simulated and written one household at a
time, so memory stays flat in the number of events.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from ingestion._gen_behaviour import Simulator
from ingestion._gen_catalog import Catalog, build_catalog
from ingestion._gen_crm import CRM_COLUMNS, CrmBuilder
from ingestion._gen_people import Person, Population
from ingestion._gen_rand import DAY, Clock, Rand
from ingestion._gen_webstore import Emitter

RAW_SOURCES = ("shopify", "woocommerce", "twilio", "pos")
PEOPLE_COLUMNS = (
    "person_id",
    "household_id",
    "first_name",
    "last_name",
    "is_buyer",
    "signup_date",
    "home_store",
    "store_share",
    "web",
    "whatsapp",
    "purchase_rate_per_year",
    "dropout_prob",
    "mean_order_value",
    "alive_at_end",
    "dropout_date",
    "orders_in_window",
    "revenue_in_window",
    "orders_next_90d",
    "revenue_next_90d",
)
PRE_DAYS = 365  # history simulated before the window, so existing customers arrive mid-life
POST_DAYS = 90  # truth horizon after the window
_FLUSH_EVERY = 500  # people per write


@dataclass(slots=True)
class GenerateSummary:
    """What `generate()` wrote."""

    people: int
    households: int  # all households, including people living alone
    events: int
    by_source: dict[str, int]
    by_type: dict[str, int]
    files: list[Path]
    shared_households: int = 0  # households of two or more people
    raw_deliveries: dict[str, int] = field(default_factory=dict)
    customer_records: int = 0


class _Writers:
    """Buffered writers for the streamed outputs; flushed every few hundred people."""

    def __init__(self, out: Path, raw: bool) -> None:
        self.events = (out / "events.jsonl").open("wb")
        self.truth = (out / "truth.csv").open("w", encoding="utf-8", newline="")
        self.truth.write("event_id,person_id,household_id\n")
        self.people_file = (out / "people.csv").open("w", encoding="utf-8", newline="")
        self.people = csv.writer(self.people_file, lineterminator="\n")
        self.people.writerow(PEOPLE_COLUMNS)
        self.raw: dict[str, IO[bytes]] = {}
        if raw:
            for source in RAW_SOURCES:
                folder = out / "raw" / source
                folder.mkdir(parents=True, exist_ok=True)
                self.raw[source] = (folder / "deliveries.jsonl").open("wb")
        self.ev_buf: list[bytes] = []
        self.truth_buf: list[str] = []
        self.raw_buf: dict[str, list[bytes]] = {s: [] for s in RAW_SOURCES}

    def flush(self) -> None:
        if self.ev_buf:
            self.events.write(b"\n".join(self.ev_buf) + b"\n")
            self.ev_buf.clear()
        if self.truth_buf:
            self.truth.write("".join(self.truth_buf))
            self.truth_buf.clear()
        for source, buf in self.raw_buf.items():
            if buf and source in self.raw:
                self.raw[source].write(b"\n".join(buf) + b"\n")
            buf.clear()

    def _files(self) -> list[IO[Any]]:
        return [self.events, self.truth, self.people_file, *self.raw.values()]

    def paths(self) -> list[Path]:
        return [Path(f.name) for f in self._files()]

    def close(self) -> None:
        self.flush()
        for f in self._files():
            f.close()


def _domain(brand: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", brand.lower()).strip("-") or "brand"
    return f"{slug}.co.uk"


def generate(
    brand: str,
    customers: int,
    days: int,
    seed: int,
    out: Path,
    *,
    end: datetime | None = None,
    raw: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateSummary:
    """Simulate `customers` people of `brand` over the `days` before `end` and write the files.

    `end` defaults to today's 00:00 UTC; events fall in [end - days, end). `progress` is called
    with (people done, people total) after each batch. The same arguments give the same bytes.
    """
    if customers < 0:
        raise ValueError("customers must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if end is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    domain = _domain(brand)

    # Separate streams per concern, so adding a draw in one does not reshuffle the others.
    cat_ss, pop_ss, sim_ss, crm_ss = np.random.SeedSequence(seed).spawn(4)
    clock = Clock(end, days, PRE_DAYS, POST_DAYS)
    catalog = build_catalog(np.random.Generator(np.random.PCG64(cat_ss)))
    population = Population(
        np.random.Generator(np.random.PCG64(pop_ss)), customers, clock, catalog, domain
    )
    sim_gen = np.random.Generator(np.random.PCG64(sim_ss))
    sim_rand = Rand(sim_gen)
    emitter = Emitter(brand, domain, clock, sim_rand, catalog, population.stores)
    simulator = Simulator(sim_gen, sim_rand, clock, catalog, emitter)
    crm_gen = np.random.Generator(np.random.PCG64(crm_ss))
    crm = CrmBuilder(Rand(crm_gen), population, domain)

    writers = _Writers(out, raw)
    by_source: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    raw_counts: Counter[str] = Counter()
    crm_rows: list[str] = []  # CSV-encoded: ~5x smaller than lists of fields at 100k people
    done = households = shared = 0
    dumps = orjson.dumps
    try:
        for hh in population.households():
            households += 1
            shared += len(hh.members) > 1
            for person in hh.members:
                simulator.run(person)
                pid, hid = person.pid, hh.hid
                for _ts, _seq, ev, raw_source, raw_doc in emitter.take():
                    writers.ev_buf.append(dumps(ev))
                    writers.truth_buf.append(f"{ev['event_id']},{pid},{hid}\n")
                    by_source[ev["source"]] += 1
                    by_type[ev["type"]] += 1
                    if raw_source is not None:
                        raw_counts[raw_source] += 1
                        if raw:
                            writers.raw_buf[raw_source].append(dumps(raw_doc))
                writers.people.writerow(_people_row(person, clock, population))
                crm_rows.extend(_csv_line(row) for row in crm.records(person))
                done += 1
                if done % _FLUSH_EVERY == 0:
                    writers.flush()
                    if progress:
                        progress(done, customers)
        writers.flush()
    finally:
        writers.close()

    files = writers.paths()
    files.append(_write_crm(out / "customers.csv", crm_rows, crm_gen))
    files.append(_write_catalog(out / "catalog.csv", catalog))
    files.append(_write_stores(out / "stores.csv", population))
    if progress:
        progress(done, customers)
    return GenerateSummary(
        people=done,
        households=households,
        events=sum(by_source.values()),
        by_source=dict(sorted(by_source.items())),
        by_type=dict(sorted(by_type.items())),
        files=files,
        shared_households=shared,
        raw_deliveries=dict(sorted(raw_counts.items())) if raw else {},
        customer_records=len(crm_rows),
    )


def _people_row(p: Person, clock: Clock, population: Population) -> list[Any]:
    hi_day = clock.hi / DAY
    alive: str = ""
    dropout = ""
    if p.buyer:
        alive = "true" if p.death is None or p.death >= hi_day else "false"
        if p.death is not None and p.death < hi_day:
            dropout = clock.date(int(p.death // 1)).date().isoformat()
    store = population.stores[p.store].store_id if p.store >= 0 else ""
    return [
        p.pid,
        p.hh.hid,
        p.first,
        p.last,
        "true" if p.buyer else "false",
        clock.date(int(p.signup // 1)).date().isoformat(),
        store,
        round(p.p_pos, 3),
        "true" if p.web else "false",
        "true" if p.whatsapp else "false",
        round(p.lam * 365, 3),
        round(p.p_drop, 4),
        round(p.spend, 2),
        alive,
        dropout,
        p.orders,
        round(p.revenue, 2),
        p.future_orders,
        round(p.future_revenue, 2),
    ]


def _csv_line(fields: list[str]) -> str:
    """One CSV row without its line end, quoted the way csv.writer quotes (QUOTE_MINIMAL)."""
    out = []
    for v in fields:
        if any(c in v for c in ',"\n\r'):
            v = '"' + v.replace('"', '""') + '"'
        out.append(v)
    return ",".join(out)


def _write_crm(path: Path, rows: list[str], gen: np.random.Generator) -> Path:
    # Shuffled so that row order says nothing about who is who.
    order = gen.permutation(len(rows)) if rows else np.empty(0, dtype=np.int64)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(CRM_COLUMNS) + "\n")
        f.writelines(f"C{k + 1:07d},{rows[i]}\n" for k, i in enumerate(order.tolist()))
    return path


def _write_catalog(path: Path, catalog: Catalog) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            (
                "product_id",
                "variant_id",
                "woo_product_id",
                "sku",
                "title",
                "category",
                "price",
                "repeat_days",
                "bundle_sku",
            )
        )
        for p in catalog.products:
            bundle = catalog.products[p.bundle].sku if p.bundle >= 0 else ""
            w.writerow(
                (
                    p.product_id,
                    p.variant_id,
                    p.woo_id,
                    p.sku,
                    p.title,
                    p.category,
                    p.price_str,
                    p.repeat_days,
                    bundle,
                )
            )
    return path


def _write_stores(path: Path, population: Population) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("store_id", "name", "city", "phone"))
        for s in population.stores:
            w.writerow((s.store_id, s.name, s.city, s.phone))
    return path
