"""Column-wise normalization of a customer file into integer codes (private to `identity`).

Each column is factorized and normalized once per distinct raw value (a million rows hold far
fewer distinct names, cities or dates). The columns are independent tasks -- phones, emails,
places, names, ids -- shared among worker processes for large files, largest first. Cheap
clean-ups that cannot change a normalizer's answer (trimming and lower-casing an email,
dropping the spaces, dashes and brackets of a digits-only phone) first merge spelling variants
of one value. The per-value functions are those of `identity.normalize` (emails and
phones of printable ASCII go through pyarrow kernels, `_bulk_email` / `_bulk_phone`, that give
the same answers), so bulk and single-event resolution agree.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from identity import _bulk_email, _bulk_phone
from identity._bulk_values import (
    _address_clean,
    _dob_number,
    _email_clean,
    _fill,
    _identifier_status,
    _local,
    _map_distinct,
    _phone_clean,
    _postcode,
    _postcode_clean,
    _regions,
    _source,
    _street_line,
    _with_region,
    codes_of,
)
from identity._names import soundex
from identity._traits import address_numbers
from identity.normalize import (
    normalize_address,
    normalize_city,
    normalize_name_part,
    normalize_postcode,
    postcode_district,
    split_full_name,
)

# Below this many rows one process is faster than shipping columns to workers.
PARALLEL_MIN_ROWS = 60_000
IDENTIFIERS = ("email", "phone", "loyalty_id", "external")


def _empty() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


@dataclass
class Prepared:
    """A customer file as integer codes per field; -1 means missing (or invalid, or a
    placeholder). `names` and `streets` are the vocabularies behind the name and street
    codes (first and last names share one vocabulary so swapped fields compare);
    `street_numbers` codes the house/flat numbers of each street vocabulary entry."""

    n: int
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    ext_source: np.ndarray | None = None
    names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    first: np.ndarray = field(default_factory=_empty)
    last: np.ndarray = field(default_factory=_empty)
    name_tokens: np.ndarray = field(default_factory=_empty)
    last_sx: np.ndarray = field(default_factory=_empty)
    first_initial: np.ndarray = field(default_factory=_empty)
    last3: np.ndarray = field(default_factory=_empty)
    dob: np.ndarray = field(default_factory=_empty)
    streets: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    street: np.ndarray = field(default_factory=_empty)
    street_numbers: np.ndarray = field(default_factory=_empty)
    postcode: np.ndarray = field(default_factory=_empty)
    district: np.ndarray = field(default_factory=_empty)
    city: np.ndarray = field(default_factory=_empty)
    invalid: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)


def _identifier_task(
    kind: str, raw: np.ndarray, param: Any, regions: np.ndarray | None
) -> dict[str, Any]:
    """One identifier column: row codes, vocabulary, invalid and placeholder counts."""
    normalize = _identifier_status(kind, param)
    if regions is not None and len(distinct := pd.unique(regions)) == 1:
        region = str(distinct[0])  # phones of one country: vectorised (`_bulk_phone`)
        rows, distinct_texts = codes_of(raw)
        results = _bulk_phone.phones(
            list(distinct_texts), region, lambda t: normalize(f"{t}\x00{region}")
        )
    elif regions is not None:  # several countries: each number read in its row's region
        rows, keys = _with_region(raw, regions, _phone_clean)
        results = _phones_by_region(keys, normalize)
    elif kind == "email" and not param:  # without provider rules: vectorised
        rows, cleaned = _map_distinct(raw, _email_clean, _email_clean)
        results = _bulk_email.emails(cleaned, normalize)
    else:
        clean = _email_clean if kind == "email" else None
        rows, results = _map_distinct(raw, normalize, clean)
    status = np.array([s for _, s in results] + [0], dtype=np.int8)[rows]
    return {
        kind: _local([v for v, _ in results], rows),
        "counts": {kind: (int((status == 1).sum()), int((status == 2).sum()))},
    }


def _phones_by_region(
    keys: list[str], normalize: Callable[[str], tuple[str | None, int]]
) -> list[tuple[str | None, int]]:
    """Normalize "number\x00region" keys, vectorised per region (`_bulk_phone`)."""
    by_region: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_region.setdefault(key.rsplit("\x00", 1)[1], []).append(i)
    out: list[tuple[str | None, int]] = [(None, 1)] * len(keys)
    for region, members in by_region.items():
        texts = [keys[i].rsplit("\x00", 1)[0] for i in members]

        def scalar(text: str, region: str = region) -> tuple[str | None, int]:
            return normalize(f"{text}\x00{region}")

        found = _bulk_phone.phones(texts, region, scalar)
        for i, result in zip(members, found, strict=True):
            out[i] = result
    return out


def _names_task(col: dict[str, np.ndarray]) -> dict[str, Any]:
    first, last = col.get("first_name"), col.get("last_name")
    if "full_name" in col:
        split_rows, split = _map_distinct(col["full_name"], split_full_name)
        parts = np.array([*split, ("", "")], dtype=object)[split_rows]
        first = _fill(first, np.array([p[0] for p in parts], dtype=object))
        last = _fill(last, np.array([p[1] for p in parts], dtype=object))
    out: dict[str, Any] = {}
    for name, values in (("first", first), ("last", last)):
        if values is not None:
            out[name] = _local(*reversed(_map_distinct(values, normalize_name_part)))
    return out


def _places_task(col: dict[str, np.ndarray], regions: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    line = _street_line(col)
    if line is not None:
        out["street"] = _local(*reversed(_map_distinct(line, normalize_address, _address_clean)))
    if "postcode" in col:
        if len(distinct := pd.unique(regions)) == 1:
            country = str(distinct[0])
            rows, found = _map_distinct(
                col["postcode"], lambda v: normalize_postcode(v, country), _postcode_clean
            )
            out["postcode"] = _local(found, rows)
        else:
            rows, keys = _with_region(col["postcode"], regions)
            out["postcode"] = _local([_postcode(k) for k in keys], rows)
    if "city" in col:
        out["city"] = _local(*reversed(_map_distinct(col["city"], normalize_city)))
    if "dob" in col:
        rows, results = _map_distinct(col["dob"], _dob_number)
        out["dob"] = np.array([*results, 0], dtype=np.int64)[rows]
    return out


def _run_task(task: tuple[str, dict[str, np.ndarray], Any, np.ndarray | None]) -> dict[str, Any]:
    """Run one normalization task (in a worker process for large files)."""
    name, col, param, regions = task
    if name == "names":
        return _names_task(col)
    if name == "places":
        assert regions is not None
        return _places_task(col, regions)
    (raw,) = col.values()
    return _identifier_task(name, raw, param, regions)


_FORKED_TASKS: list[Any] = []
_FORK_LOCK = threading.Lock()


def _run_forked_task(index: int) -> dict[str, Any]:
    return _run_task(_FORKED_TASKS[index])


def _tasks(
    col: dict[str, np.ndarray], columns: dict[str, str], regions: np.ndarray, provider_rules: bool
) -> list[tuple[str, dict[str, np.ndarray], Any, np.ndarray | None]]:
    """Independent normalization tasks, largest first (phones, then emails...)."""
    tasks: list[tuple[str, dict[str, np.ndarray], Any, np.ndarray | None]] = []
    if "phone" in col:
        tasks.append(("phone", {"phone": col["phone"]}, None, regions))
    if "email" in col:
        tasks.append(("email", {"email": col["email"]}, provider_rules, None))
    place_fields = ("street_number", "address", "postcode", "city", "dob")
    places = {f: col[f] for f in place_fields if f in col}
    if places:
        tasks.append(("places", places, None, regions))
    names: dict[str, np.ndarray] = {
        f: col[f] for f in ("first_name", "last_name", "full_name") if f in col
    }
    if names:
        tasks.append(("names", names, None, None))
    if "loyalty_id" in col:
        tasks.append(("loyalty_id", {"loyalty_id": col["loyalty_id"]}, None, None))
    if "external_id" in col:
        source = _source(columns["external_id"])
        tasks.append(("external", {"external_id": col["external_id"]}, source, None))
    return tasks


def prepare(
    df: pd.DataFrame,
    columns: dict[str, str],
    *,
    region: str,
    provider_rules: bool,
    workers: int | None = None,
) -> Prepared:
    """Normalize the mapped columns of `df` (field -> column) into a `Prepared`."""
    n = len(df)
    workers = max(1, min(os.cpu_count() or 1, 4) if workers is None else workers)
    col = {f: df[c].fillna("").astype(str).to_numpy(dtype=object) for f, c in columns.items()}
    regions = _regions(col.get("country"), region, n)
    tasks = _tasks(col, columns, regions, provider_rules)
    if workers == 1 or n < PARALLEL_MIN_ROWS:
        results = [_run_task(t) for t in tasks]
    elif "fork" in multiprocessing.get_all_start_methods():
        # fork: the workers inherit the columns (no pickling a million strings each way) and
        # the loaded modules; they run pure functions and send back codes and vocabularies.
        global _FORKED_TASKS
        with _FORK_LOCK:  # one run at a time hands its columns to forked workers
            _FORKED_TASKS = tasks
            try:
                ctx = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
                    results = list(pool.map(_run_forked_task, range(len(tasks))))
            finally:
                _FORKED_TASKS = []
    else:
        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            results = list(pool.map(_run_task, tasks))
    fields: dict[str, Any] = {"counts": {}}
    for result in results:
        fields["counts"].update(result.pop("counts", {}))
        fields.update(result)
    return _assemble(fields, n)


def _assemble(fields: dict[str, Any], n: int) -> Prepared:
    """The tasks' (row codes, vocabulary) pairs as a `Prepared`, plus derived keys."""
    prep = Prepared(n)
    missing = np.full(n, -1, dtype=np.int64)

    def codes(name: str) -> np.ndarray:
        return fields[name][0] if name in fields else missing

    def vocab(name: str) -> np.ndarray:
        return fields[name][1] if name in fields else np.empty(0, dtype=object)

    for kind in IDENTIFIERS:
        if kind in fields:
            prep.ids[kind] = codes(kind)
            prep.invalid[kind], prep.placeholders[kind] = fields["counts"][kind]
    if "external" in prep.ids:
        prep.ext_source = np.where(prep.ids["external"] >= 0, 0, -1)
    # One vocabulary for first and last names, so swapped fields compare by code.
    first_vocab, last_vocab = vocab("first"), vocab("last")
    merged, prep.names = codes_of(np.concatenate([first_vocab, last_vocab, [None]]))
    prep.first = _remap(codes("first"), merged[: len(first_vocab)])
    prep.last = _remap(codes("last"), merged[len(first_vocab) : len(first_vocab) + len(last_vocab)])
    _derive_names(prep)
    prep.dob = fields.get("dob", np.zeros(n, dtype=np.int64))
    prep.street, prep.streets = codes("street"), vocab("street")
    numbers = codes_of([" ".join(sorted(address_numbers(s))) for s in prep.streets] + [""])[0]
    prep.street_numbers = numbers  # per street vocabulary entry (last: none)
    prep.postcode = codes("postcode")
    district = codes_of([postcode_district(p) for p in vocab("postcode")] + [None])[0]
    prep.district = district[prep.postcode]
    prep.city = codes("city")
    return prep


def _remap(rows: np.ndarray, new_codes: np.ndarray) -> np.ndarray:
    """Row codes into a vocabulary -> codes into a merged vocabulary (-1 stays -1)."""
    return np.append(new_codes, -1)[rows]


def _derive_names(prep: Prepared) -> None:
    """Name keys computed once per vocabulary entry: Soundex, initial, first three letters,
    and sorted tokens of the full name (for "Lee Wong" == "Wong Lee")."""
    names = prep.names
    width = len(names) + 1
    pair_codes, pairs = pd.factorize((prep.first + 1) * width + prep.last + 1)
    vocab = np.append(names, "")
    keys = [
        " ".join(sorted(f"{vocab[p // width - 1]} {vocab[p % width - 1]}".split())) for p in pairs
    ]
    prep.name_tokens = codes_of(keys)[0][pair_codes]
    prep.last_sx = codes_of([soundex(s) for s in names] + [""])[0][prep.last]
    prep.first_initial = codes_of([s[0] for s in names] + [""])[0][prep.first]
    prep.last3 = codes_of([s[:3] for s in names] + [""])[0][prep.last]
