"""Which long-running tasks the app runs beside the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def background_tasks(
    *, worker: bool = True, automations: bool = True
) -> list[Callable[[Any], Awaitable[None]]]:
    tasks: list[Callable[[Any], Awaitable[None]]] = []
    if worker:
        from identity.privacy import run_privacy_jobs
        from ingestion.worker import run_worker

        tasks.append(run_worker)
        tasks.append(run_privacy_jobs)
    if automations:
        from automations.scheduler import run_automations

        tasks.append(run_automations)
    return tasks
