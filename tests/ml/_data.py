"""Small synthetic frames shared by the ml tests (built once per process)."""

from __future__ import annotations

from functools import cache

import pandas as pd

from ml.datasets import Dataset, synthetic

AS_OF = pd.Timestamp("2024-10-01", tz="UTC")


@cache
def small() -> Dataset:
    """1,500 customers, ~30k events, with item lists (the events.properties shape)."""
    return synthetic(1500, seed=7)
