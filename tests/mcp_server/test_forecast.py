"""The forecasting models on series with known structure, and forecast_metrics on the brand."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np

from mcp_server import _ets
from tests.conftest import make_brand
from tests.identity.streaming_helpers import ingest
from tests.mcp_server.conftest import call, call_error


def test_a_yearly_season_is_found_and_forecast():
    rng = np.random.default_rng(1)
    t = np.arange(160)
    season = 300 * np.sin(2 * np.pi * t / 52)
    y = 1000 + 2 * t + season + rng.normal(0, 40, len(t))
    model, bt, best = _ets.select(y, 8)
    assert model.name.startswith("ETS(A,Ad,A)")
    assert bt.scores[best][1] == min(s[1] for s in bt.scores)
    point, lo, hi = model.forecast(12)
    future = 1000 + 2 * np.arange(160, 172) + 300 * np.sin(2 * np.pi * np.arange(160, 172) / 52)
    assert np.mean(np.abs(point - future)) < 80  # noise sd is 40
    assert np.all(np.diff(hi - lo) > 0)  # intervals widen with the horizon


def test_intervals_cover_at_their_level():
    """80% one-step intervals of simple exponential smoothing on local-level series hold
    about 80% of the next values."""
    rng = np.random.default_rng(7)
    inside = 0
    runs = 300
    for _ in range(runs):
        level = 500 + np.cumsum(0.3 * rng.normal(0, 10, 81))
        y = level + rng.normal(0, 10, 81)
        model = _ets.fit_ets(y[:-1], trend=False, seasonal=False)
        _, lo, hi = model.forecast(1, 80)
        inside += lo[0] <= y[-1] <= hi[0]
    assert 0.72 <= inside / runs <= 0.88


async def test_forecast_metrics_on_the_brand(dataset, rt, connect):
    async with connect(dataset.a) as c:
        out = await call(c, "forecast_metrics", metric="orders", horizon_weeks=6, interval=95)
        customers = await call(c, "forecast_metrics", metric="active_customers")
    weekly: dict[str, int] = defaultdict(int)
    buyers: dict[str, set] = defaultdict(set)
    for r in await rt.pool.fetch(
        "SELECT occurred_at, profile_id FROM events WHERE brand_id = $1 AND type = 'purchase'",
        dataset.a.id,
    ):
        day = r["occurred_at"].astimezone(UTC).date()
        week = (day - timedelta(days=day.weekday())).isoformat()
        weekly[week] += 1
        buyers[week].add(r["profile_id"])
    for point in out["recent_history"]:
        assert point["value"] == weekly.get(point["week_start"], 0)
    for point in customers["recent_history"]:
        assert point["value"] == len(buyers.get(point["week_start"], ()))
    this_week = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    assert out["forecast"][0]["week_start"] == this_week.isoformat()
    assert len(out["forecast"]) == 6 and out["interval_level"] == 95
    assert all(f["lower"] <= f["forecast"] <= f["upper"] for f in out["forecast"])
    assert out["backtest_mase"] == min(c["mase"] for c in out["candidates"])
    chosen = next(c for c in out["candidates"] if c["mase"] == out["backtest_mase"])
    assert chosen["method"] == out["method"]
    assert out["weeks_of_history"] >= 50


async def test_too_little_history_is_a_clear_error(rt):
    brand = await make_brand(rt, "fc")
    day = datetime.now(UTC) - timedelta(days=3)
    await ingest(
        rt,
        brand,
        [
            {
                "event_id": "o1",
                "source": "pos",
                "type": "purchase",
                "occurred_at": day.isoformat().replace("+00:00", "Z"),
                "identifiers": {"email": "solo@shop-customer.co.uk"},
                "properties": {"order_id": "o1", "total": 10.0, "currency": "GBP"},
            }
        ],
    )
    from mcp import Client

    from mcp_server.server import build_server

    async with Client(build_server(lambda: rt, brand_id=brand.id)) as c:
        assert "not enough history" in await call_error(c, "forecast_metrics")
