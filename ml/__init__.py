"""Predictions: features, churn, value, segments, recommendations, embeddings (database-free).

Every function here takes pandas frames and returns frames, arrays or models with
``to_bytes``/``from_bytes``; the registry, the CLI and Postgres I/O sit on top. See
docs/ml.md for the methods and the quality bench.
"""

from __future__ import annotations


def set_threads(n: int) -> None:
    """Threads LightGBM may use on large trainings (default 2). Imported lazily: cheap."""
    from ml._lgbm import set_threads as _set

    _set(n)
