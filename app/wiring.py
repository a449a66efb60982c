"""Which long-running tasks the app runs beside the API (filled in as packages land)."""

from __future__ import annotations

from typing import Any


def background_tasks(*, worker: bool = True) -> list[Any]:
    return []
