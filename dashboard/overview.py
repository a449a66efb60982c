"""The overview: brand-wide aggregates, cached in Redis and served stale while they refresh.

At a million profiles these scans take seconds, while the numbers move slowly; so the
overview is fresh for FRESH_S, then served as is while one background task (a Redis lock
makes it one across replicas) recomputes it: the stale-while-refresh cache of the MCP
analytics tools (`mcp_server._cache`). Only aggregates are cached,
never a person. `warm(rt, brand_id)` recomputes it ahead of time (after scoring, on a timer).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import RootModel

from dashboard import repo
from mcp_server import _cache

FRESH_S = 300  # then served stale for up to _cache.STALE_S while one task refreshes it
WINDOW_DAYS = 30
TOOL = "dash-overview"  # its name in the shared analytics cache (mcp_server._cache)


def _key(brand_id: UUID) -> str:
    return _cache.cache_key(brand_id, TOOL, {})


async def compute(rt: Any, brand_id: UUID) -> dict[str, Any]:
    """Every overview figure, straight from Postgres (each scan on its own connection)."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=WINDOW_DAYS)
    pool = rt.pool
    counts, days, health, churn, ltv, segments = await asyncio.gather(
        repo.profile_counts(pool, brand_id, start),
        repo.events_by_day(pool, brand_id, start, end),
        repo.identity_health(pool, brand_id, start),
        repo.churn_bands(pool, brand_id),
        repo.ltv_buckets(pool, brand_id),
        repo.segment_sizes(pool, brand_id),
    )
    edges = repo.LTV_EDGES
    ltv_rows = {r["bucket"]: r for r in ltv}
    ltv_labels = [f"{edges[i]}–{edges[i + 1]}" for i in range(len(edges) - 1)] + [f"{edges[-1]}+"]
    return {
        "computed_at": datetime.now(UTC).isoformat(),
        "window_days": WINDOW_DAYS,
        "start": start.date().isoformat(),
        "profiles": {k: counts[k] for k in ("live", "new_recent", "buyers", "orders")},
        "revenue": {
            "lifetime": counts["revenue"],
            "refunds": counts["refunds"],
            "window": sum(r["revenue"] for r in days),
            "window_orders": sum(r["orders"] for r in days),
        },
        "events": [
            {
                "day": r["day"].isoformat(),
                "source": r["source"],
                "events": r["events"],
                "revenue": r["revenue"],
            }
            for r in days
        ],
        "identity": dict(health),
        "churn": {"Low": churn["low"], "Medium": churn["medium"], "High": churn["high"]},
        "ltv": [
            {
                "label": label,
                "customers": ltv_rows[i + 1]["customers"] if i + 1 in ltv_rows else 0,
                "total": ltv_rows[i + 1]["total"] if i + 1 in ltv_rows else 0.0,
            }
            for i, label in enumerate(ltv_labels)
        ],
        "segments": [dict(r) for r in segments],
        "channels": _channel_totals(days),
    }


def _channel_totals(days: list[Any]) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for r in days:
        t = totals.setdefault(r["source"], {"source": r["source"], "events": 0, "revenue": 0.0})
        t["events"] += r["events"]
        t["revenue"] += r["revenue"]
    return sorted(totals.values(), key=lambda t: -t["events"])


class Overview(RootModel[dict[str, Any]]):
    """The cached document (JSON-shaped)."""


async def _computed(rt: Any, brand_id: UUID) -> Overview:
    return Overview(await compute(rt, brand_id))


async def get(rt: Any, brand_id: UUID) -> dict[str, Any]:
    """The overview: cached, stale-while-refreshing, or computed now."""
    found = await _cache.cached(
        rt, brand_id, TOOL, {}, Overview, lambda: _computed(rt, brand_id), ttl=FRESH_S
    )
    return found.root


async def warm(rt: Any, brand_id: UUID) -> dict[str, Any]:
    """Recompute and cache now (after a scoring run, or from a timer)."""
    token = _cache.force_refresh.set(True)
    try:
        return await get(rt, brand_id)
    finally:
        _cache.force_refresh.reset(token)


async def mark_stale(rt: Any, brand_id: UUID) -> None:
    """After a write made in the dashboard: the next visit gets the cached figures at once
    and starts their refresh (recomputing in the request costs seconds at a million)."""
    await _cache.mark_stale(rt, _key(brand_id))


# --- charts: Plotly specs, every value printed on the chart ---------------------------------
CHANNEL_COLORS = {
    "shopify": "#5b8def",
    "woocommerce": "#8e6bd8",
    "pos": "#f0a030",
    "whatsapp": "#2fb380",
    "web": "#4cb8c4",
    "app": "#e0679a",
    "csv": "#9aa5b1",
    "api": "#6c7a89",
    "gorgias": "#d8564b",
}
BAND_COLORS = {"Low": "#2fb380", "Medium": "#f0a030", "High": "#d8564b"}
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def _short(v: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _layout(**extra: Any) -> dict[str, Any]:
    base = {
        "font": _FONT,
        "margin": {"l": 48, "r": 16, "t": 24, "b": 48},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "showlegend": False,
        "height": 300,
        "yaxis": {"gridcolor": "#e8ecf1", "rangemode": "tozero", "automargin": True},
        "xaxis": {"automargin": True},
    }
    base.update(extra)
    return base


def _bar(labels: list[str], values: list[float], colors: Any, fmt: Any = _short) -> dict:
    return {
        "type": "bar",
        "x": labels,
        "y": values,
        "marker": {"color": colors},
        "text": [fmt(v) for v in values],
        "textposition": "outside",
        "cliponaxis": False,
        "hovertemplate": "%{x}: %{y:,}<extra></extra>",
    }


def charts(ov: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Plotly figures for the overview (labels and values printed: readable without hover)."""
    start = date.fromisoformat(ov["start"])
    days = [(start + timedelta(days=i)).isoformat() for i in range(ov["window_days"])]
    by: dict[str, dict[str, int]] = {}
    rev: dict[str, float] = dict.fromkeys(days, 0.0)
    for r in ov["events"]:
        by.setdefault(r["source"], {})[r["day"]] = r["events"]
        rev[r["day"]] = rev.get(r["day"], 0.0) + r["revenue"]
    totals = [sum(by[s].get(d, 0) for s in by) for d in days]
    per_source = {src: sum(v.values()) for src, v in by.items()}
    traces: list[dict[str, Any]] = [
        {
            "type": "bar",
            # The legend carries each channel's total for the window: readable without hover.
            "name": f"{source} ({_short(per_source[source])})",
            "x": days,
            "y": [by[source].get(d, 0) for d in days],
            "marker": {"color": CHANNEL_COLORS.get(source, "#9aa5b1")},
            "hovertemplate": f"{source}: %{{y:,}}<extra></extra>",
        }
        for source in sorted(by, key=lambda src: -per_source[src])
    ]
    # The day's total printed above each stack; the legend names the channels.
    traces.append(
        {
            "type": "scatter",
            "mode": "text",
            "x": days,
            "y": totals,
            "text": [_short(t) if t else "" for t in totals],
            "textposition": "top center",
            "textfont": {"size": 10, "color": "#334155"},
            "showlegend": False,
            "hoverinfo": "skip",
            "cliponaxis": False,
        }
    )
    events_chart = {
        "data": traces,
        "layout": _layout(
            barmode="stack",
            showlegend=True,
            legend={"orientation": "v", "x": 1.01, "y": 1, "font": {"size": 11}},
            margin={"l": 48, "r": 8, "t": 24, "b": 56},
            xaxis={
                "type": "category",
                "tickangle": -45,
                "automargin": True,
                "tickvals": days[::3],
                "ticktext": [d[5:] for d in days[::3]],
            },
        ),
    }
    rev_values = [round(rev[d], 2) for d in days]
    revenue_chart = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers+text",
                "x": days,
                "y": rev_values,
                "line": {"color": "#5b8def", "width": 2},
                "text": [
                    _short(v) if i % 3 == 0 or i == len(days) - 1 else ""
                    for i, v in enumerate(rev_values)
                ],
                "textposition": "top center",
                "textfont": {"size": 10},
                "cliponaxis": False,
                "hovertemplate": "%{x}: %{y:,.2f}<extra></extra>",
            }
        ],
        "layout": _layout(
            xaxis={
                "type": "category",
                "tickangle": -45,
                "automargin": True,
                "tickvals": days[::3],
                "ticktext": [d[5:] for d in days[::3]],
            },
        ),
    }
    bands = ["Low", "Medium", "High"]
    band_values = [ov["churn"][b] for b in bands]
    band_total = sum(band_values) or 1
    churn_chart = {
        "data": [
            _bar(
                ["Low (< 33%)", "Medium", "High (> 66%)"],
                band_values,
                [BAND_COLORS[b] for b in bands],
                fmt=lambda v: f"{_short(v)} ({v / band_total:.0%})",
            )
        ],
        "layout": _layout(),
    }
    ltv_chart = {
        "data": [
            _bar([b["label"] for b in ov["ltv"]], [b["customers"] for b in ov["ltv"]], "#8e6bd8")
        ],
        "layout": _layout(
            xaxis={
                "title": {"text": "predicted 12-month value"},
                "type": "category",
                "automargin": True,
            }
        ),
    }
    segs = sorted(ov["segments"], key=lambda s: s["customers"])
    segment_chart = {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [s["segment"] for s in segs],
                "x": [s["customers"] for s in segs],
                "marker": {"color": "#4cb8c4"},
                "text": [_short(s["customers"]) for s in segs],
                "textposition": "outside",
                "cliponaxis": False,
                "hovertemplate": "%{y}: %{x:,}<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(220, 34 * len(segs) + 60),
            margin={"l": 16, "r": 48, "t": 16, "b": 32},
            xaxis={"gridcolor": "#e8ecf1", "automargin": True},
            yaxis={"automargin": True, "type": "category"},
        ),
    }
    return {
        "events": events_chart,
        "revenue": revenue_chart,
        "churn": churn_chart,
        "ltv": ltv_chart,
        "segments": segment_chart,
    }
