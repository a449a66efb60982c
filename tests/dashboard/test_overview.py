"""The overview's figures against the database, and its cache: served from Redis, marked
stale by a dashboard write, refreshed in the background without making the visitor wait."""

from __future__ import annotations

from dashboard import overview
from tests.helpers import wait_for
from tests.identity.streaming_helpers import ev, ingest


async def test_overview_counts_and_stale_while_refresh(rt, brand, other_brand):
    await ingest(
        rt,
        brand,
        [
            ev("o1", first="Ada", last="Byron", email="ada@ov-mail.com"),
            ev("o2", first="Alan", last="Turing", email="alan@ov-mail.com"),
        ],
    )
    first = await overview.get(rt, brand.id)
    assert first["profiles"]["live"] == 2
    assert first["revenue"]["lifetime"] == 20.0  # two purchases of 10.00
    assert first["identity"]["review_open"] == 0
    assert first["churn"] == {"Low": 0, "Medium": 0, "High": 0}
    charts = overview.charts(first)
    assert set(charts) == {"events", "revenue", "churn", "ltv", "segments"}
    # A new customer: the cached overview is still served (fresh for 5 minutes)...
    await ingest(rt, brand, [ev("o3", first="Grace", last="Hopper", email="grace@ov-mail.com")])
    assert (await overview.get(rt, brand.id))["profiles"]["live"] == 2
    # ...until a dashboard write marks it stale: the next visit gets the old figures at once
    # and a background task brings the new ones.
    await overview.mark_stale(rt, brand.id)
    assert (await overview.get(rt, brand.id))["profiles"]["live"] == 2

    async def refreshed() -> bool:
        return (await overview.get(rt, brand.id))["profiles"]["live"] == 3

    await wait_for(refreshed, timeout=20)
    # Brand-bound: another brand's overview (computed, then cached) is its own.
    assert (await overview.get(rt, other_brand.id))["profiles"]["live"] == 0
    assert (await overview.get(rt, brand.id))["profiles"]["live"] == 3
