"""Refresh the cached answers to a brand's usual analytics questions ahead of time.

At a million customers a brand-wide aggregate takes seconds; run this after each scoring run
and every half hour or so (`cbrain mcp --brand SLUG --warm`), and those questions are then
answered from the cache in milliseconds (see _cache.py: stale answers are refreshed in the
background, so a warmed brand rarely waits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from core.runtime import Runtime
from mcp_server._cache import force_refresh
from mcp_server.server import build_server

WARM_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("segments", {}),
    ("churn_risk", {}),
    ("churn_risk", {"rank_by": "value_at_risk"}),
    ("analyze_segments", {}),
    *[
        ("analyze_customers", {"group_by": g})
        for g in ("none", "channel", "country", "city", "cohort", "segment")
    ],
    *[("analyze_customers", {"period_days": d, "group_by": "channel"}) for d in (30, 90)],
    *[
        ("analyze_products", {"view": v})
        for v in ("top_products", "top_categories", "bought_together", "category_affinity")
    ],
    *[
        ("analyze_behavior", {"view": v})
        for v in ("channel_mix", "purchase_cadence", "cohort_retention", "journey_funnel")
    ],
    *[("forecast_metrics", {"metric": m}) for m in ("revenue", "orders", "active_customers")],
    *[
        ("target_campaign", {"goal": g})
        for g in ("win_back", "upsell", "cross_sell", "retain_vips")
    ],
]


async def warm(
    rt: Runtime,
    brand_id: UUID,
    progress: Callable[[str, dict[str, Any], float, str | None], None] | None = None,
) -> list[tuple[str, dict[str, Any], float, str | None]]:
    """Recompute and cache every WARM_CALLS answer; (tool, args, seconds, error) per call.
    The brand's analytics replica is built first (when enabled), so they run on it."""
    from mcp_server import replica

    started = time.perf_counter()
    rep = await replica.store.refresh(rt.pool, brand_id)
    if progress and rep is not None:
        progress("analytics replica", rep.rows, time.perf_counter() - started, None)
    server = build_server(lambda: rt, brand_id=brand_id)
    token = force_refresh.set(True)
    done = []
    try:
        for name, args in WARM_CALLS:
            started = time.perf_counter()
            error = None
            try:
                await server.call_tool(name, args)
            except Exception as exc:  # e.g. too little history to forecast: note it, go on
                error = str(exc)[:200]
            item = (name, args, time.perf_counter() - started, error)
            done.append(item)
            if progress:
                progress(*item)
    finally:
        force_refresh.reset(token)
    return done
