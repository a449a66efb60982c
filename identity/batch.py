"""Bulk resolution of a customer file: the engine behind `cbrain resolve`.

`cbrain resolve INPUT.csv --out CLUSTERS.csv --id-column COL [--map column=field ...]`
reads a file, finds the records that belong to one person, and writes `record_id,cluster_id`
(cluster_id = the smallest record id in the cluster, so it is stable across runs and row
orders). The same rules as single-event resolution apply, in bulk:

1. normalize every column once per distinct value (`identity.normalize`; `_bulk_normalize`
   spreads the columns over worker processes);
2. drop placeholders (`is_placeholder`) and "shared" identifier values -- carried by more
   than `ID_BLOCK_CAP` records, or by `SHARED_MIN_NAMES` people whose first names cannot be
   one person's: nobody links through them. For the rest, the number of people carrying a
   value is its frequency (a family landline: 2), which the model uses;
3. block: exact email, phone, loyalty id, external id; first initial + postcode; date of
   birth + surname Soundex; first three letters of surname + city; street line + first
   initial. Name and place blocks above `NAME_BLOCK_CAP` records produce no pairs (common
   surnames in big cities), and their sizes are reported;
4. compare every candidate pair (`_bulk_compare`: the same levels as `scoring.compare`, with
   fuzzy name and street tests run once per distinct pair of values) and score it with the
   `ScoringModel`;
5. link pairs at or above the model's auto-merge threshold without a strong conflict
   (`scoring.conflicting_strong`), take connected components, and run the bridge guard
   (`_cluster`): a cluster holding conflicting dates of birth, two ids of one platform or
   first names that cannot be one person's is rebuilt from its strongest links, dropping
   the weakest links that bridged two people.

Every step works on sets of values and pairs, so the partition does not depend on row order.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from identity._blocking import BlockStats, candidate_pairs, combine, distinct_people, drop_shared
from identity._bulk_compare import match_weights, pair_levels
from identity._bulk_normalize import Prepared, prepare
from identity._cluster import Names, cluster
from identity.scoring import ScoringModel

__all__ = ["ALIASES", "FIELDS", "ResolveSummary", "detect_columns", "resolve_file", "resolve_frame"]

# `full_name` fills first/last names where those are empty; `street_number` is prefixed to
# `address`; `country` picks the region for phones and postcodes; `state` is accepted but not
# compared (postcode district and city already place a record); an `external_id` column is
# namespaced by its header ("shopify_id:123").
FIELDS = (
    "first_name", "last_name", "full_name", "email", "phone", "loyalty_id", "external_id",
    "dob", "street_number", "address", "city", "postcode", "state", "country",
)  # fmt: skip
# Header spellings seen in exports (compared lower-cased, without spaces, dashes, underscores).
ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename", "fname", "christianname"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    "full_name": ("fullname", "name", "customername", "displayname"),
    "email": ("email", "emailaddress", "mail"),
    "phone": ("phone", "phonenumber", "mobile", "mobilenumber", "telephone", "tel", "cell",
              "cellphone", "whatsapp", "msisdn"),
    "loyalty_id": ("loyaltyid", "loyalty", "loyaltynumber", "loyaltycard", "membershipid",
                   "memberid", "cardnumber"),
    "external_id": ("externalid", "shopifyid", "shopifycustomerid", "woocommerceid",
                    "platformid"),
    "dob": ("dob", "dateofbirth", "birthdate", "birthday", "dateofbirthddmmyyyy"),
    "street_number": ("streetnumber", "housenumber", "houseno", "buildingnumber"),
    "address": ("address", "address1", "addressline1", "street", "streetaddress", "line1"),
    "city": ("city", "town", "towncity", "locality"),
    "postcode": ("postcode", "postalcode", "zip", "zipcode", "postal"),
    "state": ("state", "county", "province", "region"),
    "country": ("country", "countrycode", "countryname"),
}  # fmt: skip
_HEADER_NOISE = re.compile(r"[\s_\-.]+")

# Blocks above these sizes produce no pairs. Identifier blocks that large are shared values.
ID_BLOCK_CAP = 50
NAME_BLOCK_CAP = 40
SHARED_MIN_NAMES = 5


@dataclass
class ResolveSummary:
    """What a bulk run did. `seconds` is the run's wall time (for `resolve_file`, reading
    and writing included); `blocks` has one `BlockStats` per blocking rule."""

    records: int = 0
    clusters: int = 0
    candidate_pairs: int = 0
    linked_pairs: int = 0
    review_pairs: int = 0
    conflict_pairs: int = 0
    guard_split_clusters: int = 0
    guard_dropped_links: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)
    shared_values: dict[str, int] = field(default_factory=dict)
    shared_records: dict[str, int] = field(default_factory=dict)
    blocks: list[BlockStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


def _key(header: str) -> str:
    return _HEADER_NOISE.sub("", header.strip().lower())


def detect_columns(
    columns: list[str], *, id_column: str, mapping: dict[str, str] | None = None
) -> dict[str, str]:
    """field -> column: explicit `mapping` (column -> field) first, then header aliases.

    Raises ValueError naming the problem: an unknown field, a mapped or id column missing
    from the file, or a field mapped twice.
    """
    if id_column not in columns:
        raise ValueError(
            f"id column {id_column!r} not found in the file (columns: {', '.join(columns)})"
        )
    chosen: dict[str, str] = {}
    for column, fld in (mapping or {}).items():
        if fld not in FIELDS:
            raise ValueError(
                f"unknown field {fld!r} for column {column!r} (fields: {', '.join(FIELDS)})"
            )
        if column not in columns:
            raise ValueError(f"mapped column {column!r} not found in the file")
        if fld in chosen:
            raise ValueError(f"field {fld!r} is mapped twice ({chosen[fld]!r}, {column!r})")
        chosen[fld] = column
    taken = set(chosen.values()) | {id_column}
    for fld in FIELDS:
        if fld in chosen:
            continue
        wanted = {_key(fld), *ALIASES.get(fld, ())}
        for column in columns:
            if column not in taken and _key(column) in wanted:
                chosen[fld] = column
                taken.add(column)
                break
    if not chosen:
        raise ValueError("no known field found in the file's columns; map them with --map")
    return {fld: chosen[fld] for fld in FIELDS if fld in chosen}


def _record_ranks(ids: pd.Series) -> np.ndarray:
    """Rank of every record id: numeric order when all ids are integers, else text order."""
    text = ids.to_numpy(dtype=object)
    numeric = pd.to_numeric(ids, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        values = numeric.to_numpy()
        order = np.argsort(values, kind="stable")
        if np.unique(values).size < values.size:  # "7" and "007": break ties by text
            order = np.lexsort((text.astype(str), values))
    else:
        order = np.argsort(text.astype(str), kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


def _blocking_rules(prep: Prepared) -> dict[str, tuple[np.ndarray, int]]:
    rules: dict[str, tuple[np.ndarray, int]] = {
        kind: (codes, ID_BLOCK_CAP) for kind, codes in prep.ids.items()
    }
    first_letter = prep.first_initial
    rules["initial+postcode"] = (combine(first_letter, prep.postcode), NAME_BLOCK_CAP)
    rules["dob+surname_soundex"] = (
        combine(np.where(prep.dob > 0, prep.dob, -1), prep.last_sx),
        NAME_BLOCK_CAP,
    )
    rules["surname3+city"] = (combine(prep.last3, prep.city), NAME_BLOCK_CAP)
    rules["street+initial"] = (combine(prep.street, first_letter), NAME_BLOCK_CAP)
    return rules


def _resolve(
    df: pd.DataFrame,
    *,
    id_column: str,
    mapping: dict[str, str] | None,
    region: str,
    provider_rules: bool,
    model: ScoringModel | None,
    progress: Callable[[int, int], None] | None,
    workers: int | None,
) -> tuple[pd.DataFrame, ResolveSummary]:
    started = time.perf_counter()
    steps = 5
    tick = progress or (lambda done, total: None)
    model = model or ScoringModel()
    columns = detect_columns(list(df.columns), id_column=id_column, mapping=mapping)
    ids = pd.Series(
        [str(v).strip() for v in df[id_column].fillna("").to_numpy(dtype=object)], dtype=object
    )
    blank = np.flatnonzero((ids == "").to_numpy())
    if blank.size:
        raise ValueError(f"id column {id_column!r} is empty in data row {int(blank[0]) + 1}")
    codes, distinct = pd.factorize(ids.to_numpy())
    if len(distinct) < len(ids):
        first_dup = ids.to_numpy()[np.flatnonzero(np.bincount(codes) > 1)[0]]
        raise ValueError(f"id column {id_column!r} has duplicate values, e.g. {first_dup!r}")
    summary = ResolveSummary(records=len(df), columns=columns)
    tick(0, steps)
    prep = prepare(df, columns, region=region, provider_rules=provider_rules, workers=workers)
    summary.invalid, summary.placeholders = prep.invalid, prep.placeholders
    tick(1, steps)
    n = prep.n
    freq: dict[str, np.ndarray] = {}
    for kind in list(prep.ids):
        people = distinct_people(
            prep.ids[kind], prep.first, prep.last, prep.names, cap=ID_BLOCK_CAP
        )
        prep.ids[kind], freq[kind], values, records = drop_shared(
            prep.ids[kind], people, cap=ID_BLOCK_CAP, min_names=SHARED_MIN_NAMES
        )
        summary.shared_values[kind], summary.shared_records[kind] = values, records
    left, right, summary.blocks = candidate_pairs(_blocking_rules(prep), n)
    summary.candidate_pairs = int(left.size)
    tick(2, steps)
    levels = pair_levels(prep, left, right, freq)
    weight = match_weights(model, levels)
    tick(3, steps)
    prob = 1.0 / (1.0 + np.exp2(-np.clip(weight, -200, 200)))
    link = (prob >= model.auto_merge_threshold) & ~levels.conflict
    summary.linked_pairs = int(link.sum())
    summary.conflict_pairs = int(levels.conflict.sum())
    summary.review_pairs = int(((prob >= model.review_threshold) & ~link).sum())
    rank = _record_ranks(ids)
    external = prep.ids.get("external")
    names = Names(prep.first, prep.last, prep.names)
    labels, guard = cluster(
        n, left[link], right[link], weight[link], rank, prep.dob, external, names
    )
    summary.guard_split_clusters, summary.guard_dropped_links = (
        guard.conflicted_clusters, guard.dropped_links,
    )  # fmt: skip
    summary.clusters = int(np.unique(labels).size)
    tick(4, steps)
    out = pd.DataFrame({"record_id": ids.to_numpy(), "cluster_id": ids.to_numpy()[labels]})
    summary.seconds = time.perf_counter() - started
    tick(5, steps)
    return out, summary


def _read_csv(path: Path, usecols: list[str]) -> pd.DataFrame:
    """Every value as text (leading zeros and "+" survive), empty cells as "". The pyarrow
    parser is multi-threaded; pandas' own parser is the fallback."""
    options: dict[str, object] = {
        "dtype": str, "keep_default_na": False, "encoding": "utf-8-sig", "usecols": usecols,
    }  # fmt: skip
    try:
        import pyarrow  # noqa: F401

        return pd.read_csv(path, engine="pyarrow", **options).fillna("")
    except ImportError:
        return pd.read_csv(path, na_filter=False, **options)


def resolve_frame(
    df: pd.DataFrame,
    *,
    id_column: str,
    mapping: dict[str, str] | None = None,
    region: str = "GB",
    provider_rules: bool = False,
    model: ScoringModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Resolve a DataFrame of customer records; returns `record_id, cluster_id` in row order.

    `mapping` maps column -> field (see `FIELDS`); unmapped fields are detected from the
    headers. `progress(step, steps)` is called as the stages finish. `workers` caps the
    normalization processes (default: the CPU count, at most 4).
    """
    out, _ = _resolve(
        df, id_column=id_column, mapping=mapping, region=region,
        provider_rules=provider_rules, model=model, progress=progress, workers=workers,
    )  # fmt: skip
    return out


def resolve_file(
    input_path: Path,
    out_path: Path,
    *,
    id_column: str,
    mapping: dict[str, str] | None = None,
    region: str = "GB",
    provider_rules: bool = False,
    model: ScoringModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ResolveSummary:
    """Read a CSV, resolve it, write `record_id,cluster_id` to `out_path`, return a summary.

    Only the id column and mapped/detected columns are loaded; every value is read as text
    (leading zeros and "+" survive). The summary's `seconds` includes reading and writing.
    """
    started = time.perf_counter()
    with open(input_path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ValueError(f"{input_path}: empty file, no header row")
    raw_header = header
    header = [h.strip() for h in header]
    columns = detect_columns(header, id_column=id_column, mapping=mapping)
    wanted = {id_column, *columns.values()}
    usecols = [h for h in raw_header if h.strip() in wanted]
    df = _read_csv(input_path, usecols)
    df.columns = [c.strip() for c in df.columns]
    out, summary = _resolve(
        df, id_column=id_column, mapping=mapping, region=region,
        provider_rules=provider_rules, model=model, progress=progress, workers=workers,
    )  # fmt: skip
    out.to_csv(out_path, index=False)
    summary.seconds = time.perf_counter() - started
    return summary
