"""Identity-resolution quality and speed on generated data with ground truth (issue 4):
streaming mode (events through the inbox and the batch resolver, as the worker runs them).

Prints pairwise precision / recall / F1 over events (two events are a true pair when the
generator made them for the same person), merges through placeholder or shared identifiers,
and events/s of resolution.

    python bench/bench_identity.py [--customers 5000] [--days 365]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import csv
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import brands  # noqa: E402
from core.events import CanonicalEvent  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402
from identity.keys import identifier_keys  # noqa: E402
from ingestion import inbox  # noqa: E402
from ingestion.generator import generate  # noqa: E402
from ingestion.processing import process_batch  # noqa: E402


def pairs(sizes) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float, float]:
    """Pairwise precision/recall from the contingency table (no pair enumeration)."""
    both = Counter((truth[e], predicted[e]) for e in predicted)
    tp = pairs(both.values())
    pred_pairs = pairs(Counter(predicted.values()).values())
    true_pairs = pairs(Counter(truth[e] for e in predicted).values())
    p = tp / pred_pairs if pred_pairs else 1.0
    r = tp / true_pairs if true_pairs else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


async def _event_profiles(rt, brand_id) -> dict[str, str]:
    """Each resolved event's live profile."""
    rows = await rt.pool.fetch(
        "SELECT e.event_id, coalesce(p.merged_into, p.id)::text AS pid FROM events e "
        "JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id "
        "WHERE e.brand_id = $1",
        brand_id,
    )
    return {r["event_id"]: r["pid"] for r in rows}


def dominant(truth: dict[str, str], event_pid: dict[str, str]) -> dict[str, str]:
    """Each person's dominant profile: the one holding most of their events."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for e, pid in event_pid.items():
        counts[truth[e]][pid] += 1
    return {person: c.most_common(1)[0][0] for person, c in counts.items()}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cbrain-bench-id-"))
    atexit.register(shutil.rmtree, home, True)  # a run leaves ~500 MB of data
    os.environ.update({"CBRAIN_HOME": str(home), "CBRAIN_LOG_LEVEL": "WARNING"})
    data = home / "data"
    t = time.perf_counter()
    generate("bench", args.customers, args.days, args.seed, data, raw=False)
    gen_s = time.perf_counter() - t
    truth = {}
    with (data / "truth.csv").open() as fh:
        for row in csv.DictReader(fh):
            truth[row["event_id"]] = row["person_id"]
    events = [orjson.loads(line) for line in (data / "events.jsonl").open("rb")]
    # The stream sees events roughly in arrival order: sort by time across people.
    events.sort(key=lambda e: e["occurred_at"])
    async with open_runtime(load_settings()) as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.create_brand(conn, f"idb-{secrets.token_hex(3)}")
        crypto = rt.keyring.for_brand(str(brand.id))
        ids: list[list[int]] = []
        for i in range(0, len(events), args.batch):
            chunk = [
                (j, CanonicalEvent.model_validate({**e, "brand": brand.slug}))
                for j, e in enumerate(events[i : i + args.batch])
            ]
            res = await inbox.insert_events(rt.pool, crypto, brand.id, chunk)
            ids.append([r.raw_id for r in res if r.raw_id])
        t = time.perf_counter()
        merges = reviews = 0
        # Stability: resolve the first 10/11 of the history, note each person's profile,
        # resolve the last 1/11 (10% more data), and count people whose profile id changed.
        split = len(ids) * 10 // 11
        before_events: dict[str, str] = {}
        for n, chunk_ids in enumerate(ids):
            if n == split:
                before_events = await _event_profiles(rt, brand.id)
            r = await process_batch(rt, brand, chunk_ids)
            merges += r.merges
            reviews += r.reviews
        resolve_s = time.perf_counter() - t
        rows = await rt.pool.fetch(
            "SELECT e.event_id, coalesce(p.merged_into, p.id)::text AS pid FROM events e "
            "JOIN profiles p ON p.brand_id = e.brand_id AND p.id = e.profile_id "
            "WHERE e.brand_id = $1",
            brand.id,
        )
        predicted = {r["event_id"]: r["pid"] for r in rows}
        shared_refs = {
            (r["kind"], bytes(r["hash"]))
            for r in await rt.pool.fetch(
                "SELECT kind, hash FROM profile_identifiers "
                "WHERE brand_id = $1 AND status = 'shared'",
                brand.id,
            )
        }
        shared = len(shared_refs)
        profiles = await rt.pool.fetchval(
            "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
        )
    # Two readings of "profile id changed": (a) where the person's existing data now lives
    # (the dominant live profile of the events they had before), which only a merge or an
    # unmerge can change; (b) the dominant profile over all their events, which also flips
    # when new events land on a person's second, still unmerged profile.
    before_map = dominant(truth, before_events)
    moved = sum(
        1
        for person, pid in dominant(truth, {e: predicted[e] for e in before_events}).items()
        if before_map[person] != pid
    )
    after_map = dominant(truth, predicted)
    moved_all = sum(1 for person, pid in before_map.items() if after_map.get(person) != pid)
    p, r, f1 = pairwise(truth, predicted)
    named = {
        e["event_id"]
        for e in events
        if any(e["identifiers"].get(k) for k in ("email", "phone", "whatsapp", "loyalty_id"))
        or e["identifiers"].get("external_ids")
    }
    p2, r2, f2 = pairwise(truth, {e: v for e, v in predicted.items() if e in named})
    # Events that name someone by a value that can name one person: a valid email, phone,
    # loyalty or platform id that is neither a placeholder nor found shared (a till that types
    # the store's own number for walk-ins names nobody).
    usable = {
        e["event_id"]
        for e in events
        if any(
            k.usable and k.rank >= 2 and k.ref not in shared_refs
            for k in identifier_keys(crypto, e["identifiers"])
        )
    }
    p3, r3, f3 = pairwise(truth, {e: v for e, v in predicted.items() if e in usable})
    people_of = defaultdict(set)
    for e, pid in predicted.items():
        people_of[pid].add(truth[e])
    overmerged = sum(1 for s in people_of.values() if len(s) > 1)
    print(f"customers {args.customers}  events {len(events):,}  generated in {gen_s:.1f} s")
    print(
        f"streaming resolution: {len(predicted):,} events in {resolve_s:.1f} s = "
        f"{len(predicted) / resolve_s:,.0f} events/s (batches of {args.batch})"
    )
    print(f"pairwise precision {p:.4f}  recall {r:.4f}  F1 {f1:.4f}   (all events)")
    print(
        f"stability: {moved} of {len(before_map):,} people seen before the last 10% of data "
        f"changed profile id ({100 * moved / max(1, len(before_map)):.2f}%); counting "
        f"the dominant profile over all events, new ones included: {moved_all} "
        f"({100 * moved_all / max(1, len(before_map)):.2f}%)"
    )
    print(
        f"pairwise precision {p2:.4f}  recall {r2:.4f}  F1 {f2:.4f}   "
        f"({len(named):,} events carrying an email, phone, loyalty or platform id)"
    )
    print(
        f"pairwise precision {p3:.4f}  recall {r3:.4f}  F1 {f3:.4f}   "
        f"({len(usable):,} events carrying one that is valid, not a placeholder, not shared)"
    )
    print(
        f"profiles {profiles:,} for {len(set(truth.values())):,} people; "
        f"profiles holding >1 person: {overmerged}; merges {merges}; open reviews {reviews}; "
        f"shared identifiers {shared}"
    )


if __name__ == "__main__":
    asyncio.run(main())
