"""Train + score + export against Postgres on a small generated brand (issue 6 wiring)."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingestion.csv_import import ImportSpec, import_lines
from ingestion.generator import generate
from ml import pipeline, registry
from tests.conftest import make_brand

END = datetime(2026, 6, 1, tzinfo=UTC)
AS_OF = END - timedelta(days=20)
KEEP = {"purchase", "refund", "cart_add", "checkout_start", "identify", "message_in"}


@pytest.fixture(scope="module")
async def trained(rt: Any, tmp_path_factory: Any) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gen")
    generate("mlp", 300, 400, 11, out, end=END, raw=False)
    lines = []
    for line in (out / "events.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        if e["type"] in KEEP:  # views/searches dropped: keeps the ingest fast
            e.pop("brand", None)
            lines.append(orjson.dumps(e).decode())
    brand = await make_brand(rt, "ml")
    t0 = time.perf_counter()
    spec = ImportSpec.build(source="api", event_type=None, fmt="jsonl", mappings=[])
    await import_lines(rt, brand.id, brand.slug, lines, spec)
    t_ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = await pipeline.train(rt, brand, as_of=AS_OF, seed=3)
    t_train = time.perf_counter() - t0
    print(
        f"\ningest {len(lines)} events {t_ingest:.1f}s, train+score {t_train:.1f}s", report.seconds
    )
    return {"brand": brand, "report": report, "events": len(lines)}


async def _preds(rt: Any, brand_id: Any) -> list[Any]:
    return await rt.pool.fetch(
        "SELECT profile_id, kind, model_version_id, as_of, value, band, details"
        " FROM predictions WHERE brand_id = $1",
        brand_id,
    )


async def test_versions_metrics_and_predictions(rt: Any, trained: dict[str, Any]) -> None:
    brand, report = trained["brand"], trained["report"]
    assert report.versions == {"churn": 1, "ltv": 1, "segment": 1, "recommendations": 1}
    async with rt.pool.acquire() as conn:
        versions = await registry.list_versions(conn, brand.id)
    assert {(v.kind, v.status) for v in versions} == {
        (k, "active") for k in ("churn", "ltv", "segment", "recommendations")
    }
    churn = next(v for v in versions if v.kind == "churn")
    assert churn.metrics["horizon_days"] == 90
    assert churn.metrics["auc"] is not None and 0.5 < churn.metrics["auc"] <= 1
    assert {"brier", "lift_top_decile", "peer_bgnbd"} <= churn.metrics.keys()
    assert churn.data_window["as_of"].startswith(AS_OF.date().isoformat())
    ltv = next(v for v in versions if v.kind == "ltv")
    # 400 days of history < 365 + 60: the value horizon shrinks, and the metrics say so.
    assert ltv.metrics["horizon_days"] < 365
    assert any("value: horizon shrunk" in n for n in ltv.metrics["notes"])
    assert {"gini", "spearman", "aggregate_error", "peer_bgnbd_gg"} <= ltv.metrics.keys()

    # Every live profile with activity before as_of has churn, ltv and segment predictions.
    live = {
        r["id"]
        for r in await rt.pool.fetch(
            "SELECT p.id FROM profiles p WHERE p.brand_id = $1 AND p.merged_into IS NULL"
            " AND EXISTS (SELECT 1 FROM events e WHERE e.brand_id = p.brand_id"
            " AND e.profile_id = p.id AND e.occurred_at < $2)",
            brand.id,
            AS_OF,
        )
    }
    rows = await _preds(rt, brand.id)
    active = {v.kind: v.id for v in versions}
    by_kind: dict[str, dict[Any, Any]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], {})[r["profile_id"]] = r
        assert r["model_version_id"] == active[r["kind"]]
        assert r["as_of"] == AS_OF
    for kind in ("churn", "ltv", "segment"):
        assert set(by_kind[kind]) == live, kind
    for r in by_kind["churn"].values():
        assert 0 <= r["value"] <= 1 and r["band"] in ("Low", "Medium", "High")
        assert r["details"]["horizon_days"] == 90
        if r["band"] == "Low":
            assert r["details"]["drivers"] == []
        else:
            assert r["details"]["drivers"] and "suggested_action" in r["details"]
            assert {"feature", "contribution", "value"} <= r["details"]["drivers"][0].keys()
    for r in by_kind["ltv"].values():
        assert r["value"] >= 0 and r["band"] in {f"D{i}" for i in range(1, 11)}
        assert {"horizon_days", "expected_purchases", "expected_next_order", "p_alive"} <= r[
            "details"
        ].keys()
    for r in by_kind["segment"].values():
        assert r["value"] is None and r["details"]["cluster_name"]
    recs = by_kind["recommendations"]
    assert recs and all(r["details"]["items"] for r in recs.values())
    item = next(iter(recs.values()))["details"]["items"][0]
    assert {"product_id", "name", "category", "score", "reason"} <= item.keys()
    assert item["name"]

    n_products, named, emb = await rt.pool.fetchrow(
        "SELECT count(*), count(name), count(embedding) FROM products WHERE brand_id = $1",
        brand.id,
    )
    assert n_products > 0 and named == n_products and emb > 0
    assert await rt.pool.fetchval(
        "SELECT count(*) FROM profile_embeddings WHERE brand_id = $1", brand.id
    ) >= len(live)
    assert await rt.pool.fetchval(
        "SELECT count(*) FROM features WHERE brand_id = $1 AND as_of = $2", brand.id, AS_OF.date()
    ) == len(live)


async def test_no_leakage_and_reproducible(rt: Any, trained: dict[str, Any]) -> None:
    """Big purchases injected at and after as_of change nothing; same seed, same metrics."""
    brand, first = trained["brand"], trained["report"]
    feats_before = {
        r["profile_id"]: r["values"]
        for r in await rt.pool.fetch(
            "SELECT profile_id, values FROM features WHERE brand_id = $1 AND as_of = $2",
            brand.id,
            AS_OF.date(),
        )
    }
    pids = [
        r["id"]
        for r in await rt.pool.fetch(
            "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL LIMIT 40", brand.id
        )
    ]
    items = [
        {"product_id": "LEAK", "name": "Leak", "category": "Leak", "price": 999.0, "quantity": 3}
    ]
    await rt.pool.executemany(
        "INSERT INTO events (brand_id, raw_event_id, source, event_id, type, occurred_at,"
        " profile_id, order_id, total, properties) VALUES ($1, 0, 'api', $2, $3, $4, $5, $2,"
        " 2997, $6)",
        [
            (brand.id, f"leak-{i}-{k}", typ, AS_OF + timedelta(days=k), pid, {"items": items})
            for i, pid in enumerate(pids)
            for k, typ in ((0, "purchase"), (3, "refund"), (5, "purchase"))
        ],
    )
    second = await pipeline.train(rt, brand, as_of=AS_OF, seed=3)
    assert second.versions["churn"] == 2
    for kind in ("churn", "ltv", "segment", "recommendations"):
        a = {k: v for k, v in first.metrics[kind].items() if not k.startswith("drift")}
        b = {k: v for k, v in second.metrics[kind].items() if not k.startswith("drift")}
        assert a == b, kind
    # Drift against version 1's stored percentiles: same data, "stable" (PSI < 0.1).
    assert second.metrics["churn"]["drift_reference_version"] == 1
    assert second.drift and max(second.drift.values()) < 0.1
    feats_after = {
        r["profile_id"]: r["values"]
        for r in await rt.pool.fetch(
            "SELECT profile_id, values FROM features WHERE brand_id = $1 AND as_of = $2",
            brand.id,
            AS_OF.date(),
        )
    }
    assert feats_after == feats_before
    assert not await rt.pool.fetchval(
        "SELECT count(*) FROM products WHERE brand_id = $1 AND product_id = 'LEAK'", brand.id
    )


async def test_registry_activate_rollback(rt: Any, trained: dict[str, Any]) -> None:
    brand = trained["brand"]
    async with rt.pool.acquire() as conn:
        n = max(v.version for v in await registry.list_versions(conn, brand.id, "churn"))
        if n < 2:
            await registry.save(conn, brand.id, "churn", b"x", activate_now=False)
            n = 2
        await registry.activate(conn, brand.id, "churn", n)
        back = await registry.rollback(conn, brand.id, "churn")
        assert back.version == n - 1 and back.status == "active"
        status = {
            v.version: v.status for v in await registry.list_versions(conn, brand.id, "churn")
        }
        assert status[n] == "retired" and list(status.values()).count("active") == 1
        again = await registry.activate(conn, brand.id, "churn", n)
        assert again.status == "active"
        with pytest.raises(registry.RegistryError):
            await registry.activate(conn, brand.id, "churn", 99)


async def test_rescore_subset_and_cross_brand(rt: Any, trained: dict[str, Any]) -> None:
    brand = trained["brand"]
    other = await make_brand(rt, "mlo")
    pid = await rt.pool.fetchval(
        "INSERT INTO profiles (brand_id) VALUES ($1) RETURNING id", other.id
    )
    await rt.pool.execute(
        "INSERT INTO predictions (brand_id, profile_id, kind, as_of, value, band)"
        " VALUES ($1, $2, 'churn', now(), 0.5, 'Medium')",
        other.id,
        pid,
    )
    before = {(r["profile_id"], r["kind"]): r for r in await _preds(rt, brand.id)}
    some = sorted({p for p, k in before if k == "churn"})[:5]
    later = AS_OF + timedelta(days=1)
    rep = await pipeline.score(rt, brand, as_of=later, profile_ids=some)
    assert rep.profiles == 5
    after = {(r["profile_id"], r["kind"]): r for r in await _preds(rt, brand.id)}
    assert set(after) == set(before)
    for key, r in after.items():
        assert (r["as_of"] == later) == (key[0] in some), key
    row = await rt.pool.fetchrow(
        "SELECT value, band FROM predictions WHERE brand_id = $1", other.id
    )
    assert (row["value"], row["band"]) == (0.5, "Medium")


async def test_export(rt: Any, trained: dict[str, Any], tmp_path: Path) -> None:
    brand = trained["brand"]
    n_live = await rt.pool.fetchval(
        "SELECT count(DISTINCT profile_id) FROM predictions WHERE brand_id = $1", brand.id
    )
    out = tmp_path / "p.csv"
    n = await pipeline.export_predictions(rt, brand, "profile_id", out)
    rows = list(csv.reader(out.open()))
    assert rows[0] == pipeline.EXPORT_COLUMNS
    assert n == len(rows) - 1 == n_live
    assert all(r[2] in ("Low", "Medium", "High") for r in rows[1:])
    n_mail = await pipeline.export_predictions(rt, brand, "email", out)
    rows = list(csv.reader(out.open()))
    assert 0 < n_mail <= n and all("@" in r[0] for r in rows[1:])
    assert len({r[0] for r in rows[1:]}) == n_mail


async def test_complete_journey_loader_resolves_households(rt: Any) -> None:
    """Baskets spread over pos (loyalty + phone) and shopify (email + phone) join per household."""
    import pandas as pd

    from ml import cj_load

    item = {
        "product_id": "1",
        "sku": "1",
        "name": "Milk",
        "category": "DAIRY",
        "price": 1.5,
        "quantity": 2.0,
    }
    rows = [
        {
            "profile_id": str(h),
            "occurred_at": pd.Timestamp("2017-01-01", tz="UTC") + pd.Timedelta(days=7 * k + h),
            "type": "purchase",
            "source": "pos",
            "total": 3.0,
            "order_id": f"{h}-{k}",
            "store_id": "9",
            "items": [item],
        }
        for h in (1, 2, 3)
        for k in range(8)
    ]
    docs = cj_load.canonical_events(pd.DataFrame(rows), limit_households=2, seed=1)
    assert len(docs) == 16 and {d["source"] for d in docs} <= {"pos", "shopify"}
    brand = await make_brand(rt, "cj")
    spec = ImportSpec.build(source="api", event_type=None, fmt="jsonl", mappings=[])
    await import_lines(rt, brand.id, brand.slug, [orjson.dumps(d).decode() for d in docs], spec)
    n = await rt.pool.fetchval(
        "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", brand.id
    )
    assert n == 2


async def test_cli(rt: Any, settings: Any, trained: dict[str, Any], tmp_path: Path) -> None:
    from dashboard.overview import _key as overview_key
    from tests.app.test_cli import _cbrain

    slug = trained["brand"].slug
    await rt.redis.delete(overview_key(trained["brand"].id))
    out = _cbrain(
        [
            "train",
            "--brand",
            slug,
            "--as-of",
            str(AS_OF.date()),
            "--seed",
            "3",
            "--no-store-features",
        ],
        settings,
    )
    assert out.returncode == 0, out.stderr
    assert "auc" in out.stdout and "gini" in out.stdout and "horizon shrunk" in out.stdout
    # New predictions: the dashboard's overview was recomputed, not left for a visitor.
    cached = orjson.loads(await rt.redis.get(overview_key(trained["brand"].id)))
    assert time.time() - cached["at"] < 120
    assert sum(cached["v"]["churn"].values()) > 0
    out = _cbrain(["models", "list", "--brand", slug, "--kind", "churn"], settings)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("active") == 1
    out = _cbrain(["models", "rollback", "--brand", slug, "--kind", "churn"], settings)
    assert out.returncode == 0 and "rolled back" in out.stdout, out.stderr
    out = _cbrain(["score", "--brand", slug, "--as-of", str(AS_OF.date())], settings)
    assert out.returncode == 0 and "scored" in out.stdout, out.stderr
    csv_path = tmp_path / "e.csv"
    out = _cbrain(
        ["export", "predictions", "--brand", slug, "--key", "email", "--out", str(csv_path)],
        settings,
    )
    assert out.returncode == 0, out.stderr
    assert csv_path.read_text().splitlines()[0] == ",".join(pipeline.EXPORT_COLUMNS)
    bad = _cbrain(
        ["models", "activate", "--brand", slug, "--kind", "ltv", "--version", "99"], settings
    )
    assert bad.returncode == 1 and "no ltv model version 99" in bad.stderr
