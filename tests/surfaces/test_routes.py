"""The surfaces as app/main.py wires them: routes included, lifespan opens and closes them."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_lifespan_builds_and_closes_the_surfaces(rt: Any) -> None:
    from app.main import create_app

    app = create_app(rt.settings, runtime=rt)
    assert app.url_path_for("slack_events") == "/slack/events"
    assert app.url_path_for("gorgias_webhook") == "/integrations/gorgias/webhook"
    before = _sweepers()  # other apps of the session (the dashboard's server) have their own
    async with app.router.lifespan_context(app):
        assert app.state.assistant_surfaces is not None
        ours = _sweepers() - before
        assert ours, "the Gorgias sweeper runs with the app"
    assert app.state.assistant_surfaces is None
    assert all(t.done() for t in ours)


def _sweepers() -> set[asyncio.Task]:
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and getattr(t.get_coro(), "__qualname__", "") == "GorgiasSurface.run_sweeper"
    }
