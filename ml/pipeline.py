"""Train, score and export against Postgres: the wiring of `ml/` (issue 6).

`train` reads only events before ``as_of``, fits churn, value, segments and the recommender,
measures them on held-out customers, registers and activates the versions, then `score`s
every live profile. `score` writes `predictions` per docs/predictions-contract.md, the
`products` table and both embeddings, and drops cached Customer 360s.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import orjson
import pandas as pd

from core.errors import CBrainError, ValidationFailed
from ml import data, registry
from ml import metrics as M
from ml.churn import ChurnModel, band, train_churn
from ml.embeddings import fit_embeddings
from ml.features import build_features, top_categories, training_set
from ml.ltv import ValueModel, train_value
from ml.recommend import Recommender, fit_recommender
from ml.segments import Clusters, fit_clusters, rfm

Progress = Callable[[str, float], None]

MIN_HISTORY_DAYS = 60  # history needed before a training feature date
MIN_HORIZON_DAYS = 14
HOLDOUT = 0.2  # share of customers held out for the stored metrics
REFERENCE_QUANTILES = np.linspace(0, 1, 101)  # feature summary kept for PSI drift


class NotEnoughData(CBrainError):
    code = "not_enough_data"
    status = 422


@dataclass
class TrainReport:
    as_of: pd.Timestamp
    versions: dict[str, int]
    metrics: dict[str, dict[str, Any]]
    drift: dict[str, float]
    notes: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    score: ScoreReport | None = None


@dataclass
class ScoreReport:
    as_of: pd.Timestamp
    profiles: int
    predictions: int
    products: int
    embeddings: int
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


@dataclass
class _Frames:
    events: pd.DataFrame
    lines: pd.DataFrame
    profiles: pd.DataFrame
    products: pd.DataFrame


def _utc(as_of: Any) -> pd.Timestamp:
    if as_of is None:
        return pd.Timestamp.now(tz="UTC")
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


async def _load(rt: Any, brand_id: UUID, as_of: pd.Timestamp) -> _Frames:
    return _Frames(
        await data.load_events(rt.pool, brand_id, as_of),
        await data.load_lines(rt.pool, brand_id, as_of),
        await data.load_profiles(rt.pool, brand_id),
        await data.load_products(rt.pool, brand_id, as_of),
    )


def _gz(obj: Any) -> bytes:
    return gzip.compress(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


def _ungz(blob: bytes) -> Any:
    return orjson.loads(gzip.decompress(blob))


def _f(x: Any) -> float | None:
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None


def _split(index: pd.Index, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Customer-level holdout: boolean masks (train, test), reproducible for a seed."""
    rng = np.random.default_rng(seed)
    test = rng.random(len(index)) < HOLDOUT
    if test.sum() < 20 or (~test).sum() < 50:  # too small to hold out: evaluate in-sample
        return np.ones(len(index), bool), np.ones(len(index), bool)
    return ~test, test


def _horizon(asked: int, history_days: float, what: str, notes: list[str]) -> int:
    if history_days >= asked + MIN_HISTORY_DAYS:
        return asked
    h = int(history_days - MIN_HISTORY_DAYS)
    if h < MIN_HORIZON_DAYS:
        raise NotEnoughData(
            f"{history_days:.0f} days of history: need at least "
            f"{MIN_HORIZON_DAYS + MIN_HISTORY_DAYS} to train {what}"
        )
    notes.append(
        f"{what}: horizon shrunk from {asked} to {h} days "
        f"({history_days:.0f} days of history, {MIN_HISTORY_DAYS} needed before the cutoff)"
    )
    return h


def _reference(X: pd.DataFrame) -> dict[str, list[float]]:
    out = {}
    for c in X.columns:
        if pd.api.types.is_numeric_dtype(X[c]):
            v = X[c].to_numpy(float, na_value=np.nan)
            v = v[np.isfinite(v)]
            if len(v):
                out[str(c)] = [float(q) for q in np.quantile(v, REFERENCE_QUANTILES)]
    return out


def _drift(reference: dict[str, list[float]] | None, X: pd.DataFrame) -> dict[str, float]:
    """PSI of the current features against the previous version's stored percentiles."""
    if not reference:
        return {}
    out = {}
    for c, q in reference.items():
        if c in X.columns and pd.api.types.is_numeric_dtype(X[c]):
            v = M.psi(np.asarray(q, float), X[c].to_numpy(float, na_value=np.nan))
            if np.isfinite(v):
                out[c] = round(v, 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def train(
    rt: Any,
    brand: Any,
    *,
    as_of: Any = None,
    horizon_days: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    store_features: bool = True,
    score_after: bool = True,
) -> TrainReport:
    """Fit and register every model for ``brand`` on events before ``as_of``, then score."""
    step = progress or (lambda _s, _f: None)
    as_of = _utc(as_of)
    t0 = time.perf_counter()
    secs: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        secs[name] = round(now - t0, 2)
        t0 = now

    step("load", 0.0)
    fr = await _load(rt, brand.id, as_of)
    lap("load")
    if fr.events.empty:
        raise NotEnoughData("the brand has no events before the as-of date")
    start = fr.events["occurred_at"].min()
    history_days = (as_of - start) / pd.Timedelta(days=1)
    notes: list[str] = []
    hc = _horizon(horizon_days or 90, history_days, "churn", notes)
    hv = _horizon(horizon_days or 365, history_days, "value", notes)
    horizons = tuple(dict.fromkeys((hc, hv)))
    cats = top_categories(fr.lines, as_of - pd.Timedelta(days=max(hc, hv)))
    window = {
        "as_of": as_of.isoformat(),
        "history_start": start.isoformat(),
        "events": len(fr.events),
        "line_items": len(fr.lines),
    }
    common = {"seed": seed, "categories": cats, "horizons": list(horizons)}
    out_metrics: dict[str, dict[str, Any]] = {}

    # churn
    step("churn: features", 0.05)
    Xc, yc = training_set(
        fr.events,
        as_of,
        hc,
        profiles=fr.profiles,
        lines=fr.lines,
        categories=cats,
        horizons=horizons,
    )
    tr, te = _split(Xc.index, seed)
    step("churn: fit", 0.2)
    try:
        churn = train_churn(Xc.loc[tr], yc.loc[tr], seed, horizon_days=hc)
    except ValueError as exc:
        raise NotEnoughData(str(exc)) from None
    y_te = (~yc.loc[te, "purchased"].astype(bool)).to_numpy(float)
    p_te = churn.predict(Xc.loc[te])
    peer = Xc.loc[te].get(f"btyd_p_no_purchase_{hc}")
    peer_p = peer.fillna(float(y_te.mean())).to_numpy(float) if peer is not None else None
    cm: dict[str, Any] = {
        "horizon_days": hc,
        "customers_train": int(tr.sum()),
        "customers_test": int(te.sum()),
        "churn_rate_test": _f(y_te.mean()),
        "auc": _f(M.auc(y_te, p_te)) if len(np.unique(y_te)) > 1 else None,
        "brier": _f(M.brier(y_te, p_te)),
        "lift_top_decile": _f(M.lift_at(y_te, p_te)),
    }
    if peer_p is not None:
        cm["peer_bgnbd"] = {
            "auc": _f(M.auc(y_te, peer_p)) if len(np.unique(y_te)) > 1 else None,
            "brier": _f(M.brier(y_te, peer_p)),
            "lift_top_decile": _f(M.lift_at(y_te, peer_p)),
        }
    cm["cv"] = {k: _f(v) for k, v in churn.metrics.items() if isinstance(v, int | float)}
    lap("churn")

    # value
    step("value: features", 0.35)
    Xv, yv = training_set(
        fr.events,
        as_of,
        hv,
        profiles=fr.profiles,
        lines=fr.lines,
        categories=cats,
        horizons=horizons,
    )
    tr, te = _split(Xv.index, seed)
    step("value: fit", 0.45)
    value = train_value(Xv.loc[tr], yv.loc[tr], seed, horizon_days=hv)
    s_te = yv.loc[te, "spend"].fillna(0).clip(lower=0).to_numpy(float)
    v_te = value.predict(Xv.loc[te])
    peer_v = Xv.loc[te].get(f"btyd_exp_spend_{hv}")

    def value_metrics(pred: np.ndarray) -> dict[str, Any]:
        ok = s_te.sum() > 0
        return {
            "gini": _f(M.normalized_gini(s_te, pred)) if ok else None,
            "spearman": _f(M.spearman(s_te, pred)) if ok else None,
            "aggregate_error": _f(M.aggregate_error(s_te, pred)) if ok else None,
        }

    vm: dict[str, Any] = {
        "horizon_days": hv,
        "method": value.method,
        "customers_train": int(tr.sum()),
        "customers_test": int(te.sum()),
        **value_metrics(v_te),
    }
    if peer_v is not None:
        vm["peer_bgnbd_gg"] = value_metrics(peer_v.fillna(0).to_numpy(float))
    vm["train"] = {k: _f(v) for k, v in value.metrics.items()}
    lap("value")

    # features as of now: segments, recommender, drift, feature store
    step("features as of", 0.55)
    X = build_features(
        fr.events, as_of, fr.profiles, lines=fr.lines, categories=cats, horizons=horizons
    )
    step("segments", 0.62)
    clusters = fit_clusters(X, seed=seed)
    seg = rfm(X)["segment"].value_counts().to_dict()
    sm = {
        "k": len(clusters.names),
        "silhouette": {str(k): _f(v) for k, v in clusters.silhouette.items()},
        "clusters": clusters.names,
        "rfm_counts": {str(k): int(v) for k, v in seg.items()},
    }
    lap("segments")
    step("recommender", 0.68)
    rec = None
    if len(fr.lines):
        rec = fit_recommender(fr.lines, products=fr.products, as_of=as_of, seed=seed)
    rm = dict(rec.metrics) if rec is not None else {}
    lap("recommender")

    async with rt.pool.acquire() as conn:
        prev = await registry.load_active(conn, brand.id, "churn")
    drift = _drift((prev.params or {}).get("feature_reference") if prev else None, X)
    cm["drift_psi_max"] = max(drift.values()) if drift else None
    cm["drift_psi"] = dict(list(drift.items())[:10])
    if prev is not None:
        cm["drift_reference_version"] = prev.version

    if store_features:
        step("store features", 0.75)
        await _store_features(rt, brand.id, X, as_of)
        lap("store_features")

    step("register", 0.8)
    btyd = X.attrs.get("btyd")
    versions: dict[str, int] = {}
    async with rt.pool.acquire() as conn:
        specs = [
            (
                "churn",
                churn.to_bytes(),
                {
                    **common,
                    **churn.params,
                    "horizon_days": hc,
                    "btyd": btyd,
                    "feature_reference": _reference(X),
                },
                cm,
                {
                    **window,
                    "feature_date": (as_of - pd.Timedelta(days=hc)).isoformat(),
                    "label_window": [
                        (as_of - pd.Timedelta(days=hc)).isoformat(),
                        as_of.isoformat(),
                    ],
                },
            ),
            (
                "ltv",
                value.to_bytes(),
                {**common, **value.params, "horizon_days": hv},
                vm,
                {
                    **window,
                    "feature_date": (as_of - pd.Timedelta(days=hv)).isoformat(),
                    "label_window": [
                        (as_of - pd.Timedelta(days=hv)).isoformat(),
                        as_of.isoformat(),
                    ],
                },
            ),
            ("segment", _gz(clusters.to_dict()), common, sm, window),
        ]
        if rec is not None:
            specs.append(("recommendations", rec.to_bytes(), {**common, **rec.params}, rm, window))
        for kind, blob, params, mets, win in specs:
            if notes:
                mets["notes"] = notes
            mv = await registry.save(
                conn,
                brand.id,
                kind,
                blob,
                params=_jsonable(params),
                metrics=_jsonable(mets),
                data_window=win,
                activate_now=True,
            )
            versions[kind] = mv.version
            out_metrics[kind] = mets
    lap("register")
    report = TrainReport(as_of, versions, out_metrics, drift, notes, secs)
    if score_after:
        report.score = await score(
            rt,
            brand,
            as_of=as_of,
            progress=lambda s, f: step(f"score: {s}", 0.85 + 0.15 * f),
            _frames=fr,
            _features=X,
        )
        lap("score")
    step("done", 1.0)
    return report


def _jsonable(obj: Any) -> Any:
    return orjson.loads(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )


async def _store_features(rt: Any, brand_id: UUID, X: pd.DataFrame, as_of: pd.Timestamp) -> None:
    """One `features` row per profile for ``as_of``'s date (NaNs left out)."""
    num = X.select_dtypes("number")
    cols = [str(c) for c in num.columns]
    arr = num.to_numpy(float, na_value=np.nan)
    day = as_of.date()
    recs = []
    for pid, row in zip(X.index, arr, strict=True):
        ok = np.isfinite(row)
        recs.append(
            (
                brand_id,
                UUID(str(pid)),
                day,
                {c: float(v) for c, v, k in zip(cols, row, ok, strict=True) if k},
            )
        )
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM features WHERE brand_id = $1 AND as_of = $2", brand_id, day)
        await conn.copy_records_to_table(
            "features", records=recs, columns=["brand_id", "profile_id", "as_of", "values"]
        )


def _action(p: float, drivers: list[dict]) -> str:
    top = drivers[0]["feature"] if drivers else ""
    if p > 0.66:
        if "recency" in top or "overdue" in top:
            return "Win-back offer now: well past their usual time to reorder"
        return "Win-back campaign with a personal offer"
    if "cart" in top:
        return "Remind them of the abandoned cart"
    return "Nudge with recommendations before they lapse"


async def score(
    rt: Any,
    brand: Any,
    *,
    as_of: Any = None,
    profile_ids: Iterable[Any] | None = None,
    progress: Progress | None = None,
    _frames: _Frames | None = None,
    _features: pd.DataFrame | None = None,
) -> ScoreReport:
    """Score live profiles with the active versions and write the predictions.

    Features are always built for the whole brand (RFM quintiles, value deciles and the
    BG/NBD columns are relative to everyone); with ``profile_ids`` only those profiles'
    predictions are rewritten (re-scoring after new events). Products and embeddings are
    refreshed only on full runs.
    """
    report_to = progress or (lambda _s, _f: None)
    steps: dict[str, float] = {}
    last: list[Any] = [time.perf_counter(), "start"]

    def step(name: str, frac: float) -> None:
        now = time.perf_counter()
        steps[last[1]] = round(steps.get(last[1], 0.0) + now - last[0], 2)
        last[:] = [now, name]
        report_to(name, frac)

    t0 = time.perf_counter()
    as_of = _utc(as_of)
    async with rt.pool.acquire() as conn:
        act = {k: await registry.load_active(conn, brand.id, k) for k in registry.KINDS}
    if act["churn"] is None or act["ltv"] is None:
        raise NotEnoughData("no active churn/ltv model: run `cbrain train` first")
    churn = ChurnModel.from_bytes(_artifact(act["churn"]))
    value = ValueModel.from_bytes(_artifact(act["ltv"]))
    params = act["churn"].params
    step("load", 0.0)
    fr = _frames or await _load(rt, brand.id, as_of)
    X = _features
    if X is None:
        step("features", 0.1)
        X = build_features(
            fr.events,
            as_of,
            fr.profiles,
            lines=fr.lines,
            categories=params.get("categories"),
            horizons=params.get("horizons", (90, 365)),
        )
    full = profile_ids is None
    target = (
        X.index
        if profile_ids is None
        else X.index.intersection(pd.Index([str(p) for p in profile_ids]))
    )
    if len(X) == 0:
        return ScoreReport(as_of, 0, 0, 0, 0, time.perf_counter() - t0)
    rows: list[tuple] = []
    mv = {k: (v.id if v else None) for k, v in act.items()}

    step("churn", 0.3)
    p = pd.Series(churn.predict(X), index=X.index)
    bands = pd.Series(band(p.to_numpy()), index=X.index)
    pt, bt = p.loc[target], bands.loc[target]
    need = bt.index[bt.isin(["Medium", "High"])]
    step("churn: drivers", 0.4)
    drivers = churn.drivers(X.loc[need]).to_dict() if len(need) else {}
    for pid, prob, b in zip(target, pt.to_numpy(), bt.to_numpy(), strict=True):
        d = drivers.get(pid, []) if b != "Low" else []
        det: dict[str, Any] = {"horizon_days": churn.horizon_days, "drivers": d}
        if b != "Low":
            det["suggested_action"] = _action(float(prob), d)
        rows.append((pid, "churn", mv["churn"], float(prob), str(b), det))

    step("value", 0.5)
    vf = value.predict_frame(X, as_of)
    dec = np.ceil(vf["predicted_value"].rank(ascending=False, method="first") / len(vf) * 10)
    dec = dec.clip(1, 10).astype(int)
    # Column arrays aligned on the target rows: per-row pandas lookups cost minutes at 1M.
    vt = vf.reindex(target)
    val = vt["predicted_value"].to_numpy(float)
    exp_p = vt["expected_purchases"].to_numpy(float)
    nxt = pd.to_datetime(vt["expected_next_order"], utc=True).dt.strftime("%Y-%m-%d")
    nxt_s = nxt.where(nxt.notna(), None).to_numpy(object)
    dec_t = dec.reindex(target).to_numpy()
    nan = pd.Series(np.nan, index=X.index)
    alive = X.get("btyd_p_alive", nan).reindex(target).to_numpy(float)
    ipt = X.get("ipt_mean", nan).reindex(target).to_numpy(float)
    for i, pid in enumerate(target):
        rows.append(
            (
                pid,
                "ltv",
                mv["ltv"],
                float(val[i]),
                f"D{dec_t[i]}",
                {
                    "horizon_days": value.horizon_days,
                    "expected_purchases": _f(exp_p[i]),
                    "expected_next_order": nxt_s[i],
                    "p_alive": _f(alive[i]),
                    "avg_days_between_orders": _f(ipt[i]),
                },
            )
        )

    if act["segment"] is not None:
        step("segments", 0.6)
        cl = Clusters.from_dict(_ungz(_artifact(act["segment"])))
        r = rfm(X).reindex(target)
        names = cl.assign(X).reindex(target).to_numpy(object)
        idx = {n: i for i, n in enumerate(cl.names)}
        codes = [
            "" if pd.isna(a) else f"{int(a)}{int(b)}{int(c)}"
            for a, b, c in zip(r["r"], r["f"], r["m"], strict=True)
        ]
        for pid, seg, code, name in zip(target, r["segment"], codes, names, strict=True):
            rows.append(
                (
                    pid,
                    "segment",
                    mv["segment"],
                    None,
                    str(seg),
                    {"rfm": code, "cluster": idx.get(name), "cluster_name": name},
                )
            )

    if act["recommendations"] is not None and len(fr.lines):
        step("recommendations", 0.7)
        rec = Recommender.from_bytes(_artifact(act["recommendations"]))
        recs = rec.recommend(fr.lines, list(target), k=10, as_of=as_of)
        prod = fr.products.set_index("product_id")
        pname = prod["name"].to_dict() if len(prod) else {}
        pcat = prod["category"].to_dict() if len(prod) else {}
        for pid, g in recs.groupby("profile_id", sort=False):
            items = [
                {
                    "product_id": str(it),
                    "name": _s(pname.get(it)),
                    "category": _s(pcat.get(it)),
                    "score": round(float(sc), 4),
                    "reason": str(rs),
                }
                for it, sc, rs in zip(g["product_id"], g["score"], g["reason"], strict=True)
            ]
            rows.append(
                (pid, "recommendations", mv["recommendations"], None, None, {"items": items})
            )

    step("write", 0.8)
    n_products = n_emb = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE _pred (profile_id uuid, kind text, model_version_id uuid,"
            " value float8, band text, details jsonb) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(
            "_pred",
            records=[(UUID(r[0]), *r[1:]) for r in rows],
            columns=["profile_id", "kind", "model_version_id", "value", "band", "details"],
        )
        await conn.execute(
            """INSERT INTO predictions
                 (brand_id, profile_id, kind, model_version_id, as_of, value, band, details)
               SELECT $1, profile_id, kind, model_version_id, $2, value, band, details FROM _pred
               ON CONFLICT (brand_id, profile_id, kind) DO UPDATE SET
                 model_version_id = EXCLUDED.model_version_id, as_of = EXCLUDED.as_of,
                 value = EXCLUDED.value, band = EXCLUDED.band, details = EXCLUDED.details,
                 created_at = now()""",
            brand.id,
            as_of.to_pydatetime(),
        )
        if full:
            # Profiles merged away (or gone) since the last full run lose their rows.
            await conn.execute(
                """DELETE FROM predictions pr WHERE pr.brand_id = $1 AND NOT EXISTS
                     (SELECT 1 FROM _pred t WHERE t.profile_id = pr.profile_id
                      AND t.kind = pr.kind)""",
                brand.id,
            )
            n_products = await _write_products(conn, brand.id, fr.products)
    if full and len(fr.lines):
        step("embeddings", 0.9)
        emb = fit_embeddings(fr.lines, X, seed=int(params.get("seed", 0)))
        n_emb = await _write_embeddings(rt, brand.id, emb)

    from identity.service import invalidate
    from ml.journeys import update_journeys

    step("journeys", 0.95)
    ids = [UUID(str(t)) for t in target]
    await update_journeys(rt, brand.id, None if full else ids)
    await invalidate(rt, brand.id, ids)
    step("done", 1.0)
    steps.pop("done", None)
    return ScoreReport(
        as_of,
        len(target),
        len(rows),
        n_products,
        n_emb,
        round(time.perf_counter() - t0, 2),
        steps,
    )


def _s(x: Any) -> str | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else str(x)


async def _write_products(conn: Any, brand_id: UUID, products: pd.DataFrame) -> int:
    if products.empty:
        return 0
    recs = [
        (
            str(r.product_id),
            _s(r.sku),
            _s(r.name),
            _s(r.category),
            None if pd.isna(r.price) else round(float(r.price), 2),
        )
        for r in products.itertuples(index=False)
    ]
    await conn.execute(
        "CREATE TEMP TABLE _prod (product_id text, sku text, name text, category text,"
        " price numeric) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "_prod", records=recs, columns=["product_id", "sku", "name", "category", "price"]
    )
    await conn.execute(
        """INSERT INTO products (brand_id, product_id, sku, name, category, price)
           SELECT $1, product_id, sku, name, category, price FROM _prod
           ON CONFLICT (brand_id, product_id) DO UPDATE SET
             sku = coalesce(EXCLUDED.sku, products.sku),
             name = coalesce(EXCLUDED.name, products.name),
             category = coalesce(EXCLUDED.category, products.category),
             price = coalesce(EXCLUDED.price, products.price), updated_at = now()""",
        brand_id,
    )
    return len(recs)


def _artifact(mv: Any) -> bytes:
    """The stored model of an active version (a version row without one cannot score)."""
    if mv.artifact is None:
        raise NotEnoughData(f"model {mv.kind} v{mv.version} has no stored artifact: retrain")
    return bytes(mv.artifact)


async def _write_embeddings(rt: Any, brand_id: UUID, emb: Any) -> int:
    cust = [
        (UUID(str(i)), v.astype(np.float32))
        for i, v in zip(emb.customer_ids, emb.customers, strict=True)
    ]
    prod = [
        (str(i), v.astype(np.float32)) for i, v in zip(emb.product_ids, emb.products, strict=True)
    ]
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE _cemb (id uuid, embedding vector(32)) ON COMMIT DROP;"
            "CREATE TEMP TABLE _pemb (id text, embedding vector(32)) ON COMMIT DROP"
        )
        await conn.copy_records_to_table("_cemb", records=cust, columns=["id", "embedding"])
        await conn.copy_records_to_table("_pemb", records=prod, columns=["id", "embedding"])
        await conn.execute(
            # Every write re-inserts into the HNSW index: skip vectors that barely moved.
            "INSERT INTO profile_embeddings AS pe (brand_id, profile_id, embedding)"
            " SELECT $1, t.id, t.embedding FROM _cemb t"
            " JOIN profiles p ON p.brand_id = $1 AND p.id = t.id"
            " ON CONFLICT (brand_id, profile_id) DO UPDATE"
            " SET embedding = EXCLUDED.embedding, updated_at = now()"
            " WHERE (pe.embedding <=> EXCLUDED.embedding) > 1e-4",
            brand_id,
        )
        await conn.execute(
            "UPDATE products p SET embedding = t.embedding FROM _pemb t"
            " WHERE p.brand_id = $1 AND p.product_id = t.id"
            " AND (p.embedding IS NULL OR (p.embedding <=> t.embedding) > 1e-4)",
            brand_id,
        )
    return len(cust)


EXPORT_COLUMNS = [
    "key",
    "churn_probability",
    "churn_band",
    "predicted_ltv",
    "expected_purchases",
    "expected_next_order",
    "segment",
]


async def export_predictions(rt: Any, brand: Any, key: str, out_path: str | Path) -> int:
    """Write the predictions CSV; returns the number of rows.

    ``key`` is ``profile_id``, ``email`` or ``loyalty_id``. Identifier values are decrypted;
    a profile with several values of the kind gets one row, keyed by the first seen (active
    before shared); profiles without one are left out.
    """
    if key not in ("profile_id", "email", "loyalty_id"):
        raise ValidationFailed("key must be one of loyalty_id, email, profile_id")
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT p.id AS profile_id,
                      c.value AS churn_probability, c.band AS churn_band,
                      l.value AS predicted_ltv, l.details->>'expected_purchases' AS expected_purchases,
                      l.details->>'expected_next_order' AS expected_next_order,
                      s.band AS segment, k.value_enc
               FROM profiles p
               LEFT JOIN predictions c ON c.brand_id = p.brand_id AND c.profile_id = p.id
                    AND c.kind = 'churn'
               LEFT JOIN predictions l ON l.brand_id = p.brand_id AND l.profile_id = p.id
                    AND l.kind = 'ltv'
               LEFT JOIN predictions s ON s.brand_id = p.brand_id AND s.profile_id = p.id
                    AND s.kind = 'segment'
               LEFT JOIN LATERAL (
                   SELECT value_enc FROM profile_identifiers i
                   WHERE i.brand_id = p.brand_id AND i.profile_id = p.id AND i.kind = $2
                     AND i.status IN ('active', 'shared')
                   ORDER BY (i.status = 'active') DESC, i.first_seen, i.hash LIMIT 1
               ) k ON true
               WHERE p.brand_id = $1 AND p.merged_into IS NULL
                 AND (c.profile_id IS NOT NULL OR l.profile_id IS NOT NULL)
               ORDER BY p.id""",
            brand.id,
            key,
        )
    sealer = rt.keyring.for_brand(str(brand.id)) if key != "profile_id" else None
    out: list[list[str]] = []
    for r in rows:
        if sealer is None:
            k = str(r["profile_id"])
        elif r["value_enc"] is None:
            continue
        else:
            k = sealer.decrypt_str(r["value_enc"])
        out.append(
            [
                k,
                "" if r["churn_probability"] is None else f"{r['churn_probability']:.4f}",
                r["churn_band"] or "",
                "" if r["predicted_ltv"] is None else f"{r['predicted_ltv']:.2f}",
                r["expected_purchases"] or "",
                r["expected_next_order"] or "",
                r["segment"] or "",
            ]
        )
    await asyncio.to_thread(_write_csv, Path(out_path), out)
    return len(out)


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EXPORT_COLUMNS)
        w.writerows(rows)
