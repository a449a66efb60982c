"""The surfaces as app/main.py wires them: routes included, lifespan opens and closes them."""

from __future__ import annotations

from typing import Any


async def test_lifespan_builds_and_closes_the_surfaces(rt: Any) -> None:
    from app.main import create_app

    app = create_app(rt.settings, runtime=rt)
    assert app.url_path_for("slack_events") == "/slack/events"
    assert app.url_path_for("gorgias_webhook") == "/integrations/gorgias/webhook"
    async with app.router.lifespan_context(app):
        surfaces = app.state.assistant_surfaces
        assert surfaces.slack.bolt is not None and surfaces.gorgias is not None
    assert app.state.assistant_surfaces is None
