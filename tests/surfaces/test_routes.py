"""The surfaces as app/main.py wires them: routes included, lifespan opens and closes them."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_lifespan_builds_and_closes_the_surfaces(rt: Any) -> None:
    from app.main import create_app

    app = create_app(rt.settings, runtime=rt)
    assert app.url_path_for("slack_events") == "/slack/events"
    assert app.url_path_for("gorgias_webhook") == "/integrations/gorgias/webhook"
    async with app.router.lifespan_context(app):
        assert app.state.assistant_surfaces is not None
        assert "GorgiasSurface.run_sweeper" in _running()  # the sweeper runs with the app
    assert app.state.assistant_surfaces is None
    assert "GorgiasSurface.run_sweeper" not in _running()


def _running() -> set[str]:
    return {getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks() if not t.done()}
