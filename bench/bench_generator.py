"""Synthetic data generator throughput: events per second for 10,000 customers over 365 days.

    .venv/bin/python bench/bench_generator.py [--customers N] [--days D] [--seed S] [--raw/--no-raw]

Writes into a temporary directory (deleted afterwards) and prints the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ingestion.generator import generate


def main() -> None:
    """Run the generator once and print events/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--raw", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    end = datetime(2025, 6, 1, tzinfo=UTC)  # fixed, so runs are comparable
    with tempfile.TemporaryDirectory(prefix="cbrain-gen-") as tmp:
        started = time.perf_counter()
        summary = generate(
            "bench", args.customers, args.days, args.seed, Path(tmp), end=end, raw=args.raw
        )
        elapsed = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())

    raw = sum(summary.raw_deliveries.values())
    print(f"generator: {summary.people:,} customers x {args.days} days, seed {args.seed}")
    print(f"  events            {summary.events:,}  ({summary.events / summary.people:.1f}/person)")
    print(f"  raw deliveries    {raw:,}")
    print(f"  CRM records       {summary.customer_records:,}")
    print(f"  households        {summary.households:,} ({summary.shared_households:,} shared)")
    print(f"  by source         {summary.by_source}")
    print(f"  written           {size / 1e6:,.0f} MB")
    print(f"  elapsed           {elapsed:.1f} s")
    print(f"  throughput        {summary.events / elapsed:,.0f} events/s")


if __name__ == "__main__":
    main()
