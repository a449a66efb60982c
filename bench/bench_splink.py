"""Bulk dedupe side by side with Splink (DuckDB backend) on the same generated customer file
(issue 4). Prints precision / recall / F1 and seconds for both.

Splink gets the file pre-cleaned with our normalizers (lower-cased emails, E.164 phones,
folded names): the fairest start we can give it, since cleaning is the user's job in Splink.
Its model is trained the documented way (random-sampling u, EM on two blockings) and clustered
at 0.8, our auto-merge threshold. Requires the `bench` extra (splink, duckdb).

    python bench/bench_splink.py [--customers 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from identity.batch import resolve_frame  # noqa: E402
from identity.normalize import normalize_email, normalize_name_part, normalize_phone  # noqa: E402
from ingestion.generator import generate  # noqa: E402


def pairs(sizes) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def score(truth: pd.Series, predicted: pd.Series) -> tuple[float, float, float]:
    both = Counter(zip(truth, predicted, strict=True))
    tp = pairs(both.values())
    pp = pairs(Counter(predicted).values())
    tt = pairs(Counter(truth).values())
    p, r = tp / pp if pp else 1.0, tp / tt if tt else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_splink(df: pd.DataFrame) -> tuple[pd.Series, float]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    clean = pd.DataFrame(
        {
            "unique_id": df["record_id"],
            "first_name": [normalize_name_part(v) or None for v in df["first_name"].fillna("")],
            "last_name": [normalize_name_part(v) or None for v in df["last_name"].fillna("")],
            "email": [normalize_email(v).value if v else None for v in df["email"].fillna("")],
            "phone": [normalize_phone(v).value if v else None for v in df["phone"].fillna("")],
            "dob": df["dob"].where(df["dob"].notna(), None),
            "postcode": df["postcode"].str.upper().str.replace(" ", "", regex=False),
            "loyalty_id": df["loyalty_id"].where(df["loyalty_id"].notna(), None),
        }
    )
    t = time.perf_counter()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name"),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
            cl.ExactMatch("dob"),
            cl.ExactMatch("postcode"),
            cl.ExactMatch("loyalty_id"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("loyalty_id"),
            block_on("first_name", "postcode"),
            block_on("last_name", "dob"),
        ],
    )
    db = DuckDBAPI()
    sdf = db.register(clean)
    linker = Linker(sdf, settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    preds = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(preds, 0.8)
    out = clusters.as_pandas_dataframe()
    seconds = time.perf_counter() - t
    mapping = dict(zip(out["unique_id"], out["cluster_id"], strict=True))
    return df["record_id"].map(mapping), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cbrain-splink-"))
    generate("bench", args.customers, 365, 3, data, raw=False)
    df = pd.read_csv(data / "customers.csv", dtype=str)
    truth = df["person_id"]
    records = df.drop(columns=["person_id"])
    t = time.perf_counter()
    ours = resolve_frame(records, id_column="record_id", workers=1)
    our_s = time.perf_counter() - t
    ours_map = dict(zip(ours["record_id"], ours["cluster_id"], strict=True))
    p1, r1, f1 = score(truth, df["record_id"].map(ours_map))
    try:
        splink_pred, splink_s = run_splink(df)
        p2, r2, f2 = score(truth, splink_pred)
        splink_row = f"{'Splink 5 (DuckDB)':22} {p2:10.4f} {r2:8.4f} {f2:8.4f} {splink_s:10.1f}"
    except ImportError:
        splink_row = "Splink not installed: pip install -e '.[bench]'"
    print(f"{len(df):,} records of {truth.nunique():,} people (generated, seed 3)")
    print(f"{'':22} {'precision':>10} {'recall':>8} {'F1':>8} {'seconds':>10}")
    print(f"{'Customer Brain':22} {p1:10.4f} {r1:8.4f} {f1:8.4f} {our_s:10.1f}")
    print(splink_row)


if __name__ == "__main__":
    main()
