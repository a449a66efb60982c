"""Bulk identity resolution (`cbrain resolve`): records/s and pairwise precision/recall/F1.

    python bench/bench_resolve.py                    # 1,000,000 generated records, all cores
    python bench/bench_resolve.py --records 200000 --workers 1
    python bench/bench_resolve.py --input customers.csv --id-column record_id \\
        --truth-column person_id                     # e.g. `cbrain generate`'s customers.csv

Generated files come from `tests/identity/synth.py` (people with 1-4 records, typos,
phone formats, households, placeholders) and are cached in bench/out/ by size and seed;
generating is not timed. The timed part is `identity.batch.resolve_file`: reading the CSV,
resolving, writing the clusters. The machine's load average is printed next to the figure
because other work on the same cores slows every stage.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from identity.batch import resolve_file  # noqa: E402
from tests.identity.synth import generate_records, pairwise_scores  # noqa: E402

OUT = ROOT / "bench" / "out"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _input(args: argparse.Namespace) -> Path:
    if args.input:
        return Path(args.input)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"customers_{args.records}_{args.seed}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate_records(args.records, seed=args.seed).to_csv(path, index=False)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f}s (not timed)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--input", help="a CSV to resolve instead of a generated one")
    parser.add_argument("--id-column", default="record_id")
    parser.add_argument("--truth-column", default="person_id")
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count (max 4)")
    args = parser.parse_args()

    source = _input(args)
    target = OUT / f"{source.stem}.clusters.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    summary = resolve_file(source, target, id_column=args.id_column, workers=args.workers)
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    print(f"input            {source} ({summary.records:,} records)")
    print(f"machine          {os.cpu_count()} cores, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")  # fmt: skip
    print(f"resolve          {wall:.2f}s wall, {cpu:.2f}s CPU (all processes)")
    print(f"records/s        {summary.records / wall:,.0f}")
    print(f"clusters         {summary.clusters:,}")
    print(f"candidate pairs  {summary.candidate_pairs:,} (linked {summary.linked_pairs:,}, "
          f"review band {summary.review_pairs:,}, conflicts {summary.conflict_pairs:,})")  # fmt: skip
    print(f"shared values    {summary.shared_values} on {summary.shared_records} records")
    print(f"placeholders     {summary.placeholders}; invalid {summary.invalid}")
    print(f"bridge guard     {summary.guard_split_clusters} clusters rebuilt, "
          f"{summary.guard_dropped_links} links dropped")  # fmt: skip
    header = pd.read_csv(source, nrows=0).columns
    if args.truth_column in header:
        truth = pd.read_csv(source, usecols=[args.id_column, args.truth_column], dtype=str)
        clusters = pd.read_csv(target, dtype=str)
        precision, recall, f1 = pairwise_scores(truth[args.truth_column], clusters.cluster_id)
        print(f"pairwise         precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}")
    else:
        print(f"pairwise         no {args.truth_column!r} column: quality not measured")


if __name__ == "__main__":
    main()
