"""`cbrain ask` as a user runs it: a subprocess, offline without a key, Claude (the fake) with one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.assistant.fake_anthropic import calls, end_turn


def _cbrain(args: list[str], settings: Any, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    base.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        CBRAIN_HOME=str(settings.home),
        CBRAIN_ENV="test",
        CBRAIN_PEPPER=settings.pepper.get_secret_value(),
        CBRAIN_ENCRYPTION_KEY=settings.encryption_key.get_secret_value(),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_ask_offline_with_trace(settings, dataset):
    out = _cbrain(
        ["ask", "Forecast revenue for the next 6 weeks", "--brand", dataset.a.slug, "--trace"],
        settings,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "# offline planner, stop_reason=end_turn, 1 tool call(s)"
    name, rest = lines[1].split("(", 1)
    assert name == "> forecast_metrics"
    args, timing = rest.rsplit(")", 1)
    assert json.loads(args) == {"metric": "revenue", "horizon_weeks": 6}
    assert timing.strip().endswith("ms  ok")
    assert "Offline mode (no ANTHROPIC_API_KEY)" in out.stdout
    assert "Forecast of weekly revenue" in out.stdout
    assert (
        "Sources:\n- forecast_metrics(metric=revenue, horizon_weeks=6): revenue next 6 weeks"
        in out.stdout
    )


async def test_ask_with_claude_and_an_unknown_brand(settings, dataset, fake):
    fake.play(
        calls(("segments", {}), say="Checking segments."),
        end_turn("You have 6 segments; Champions is the most valuable. Sources: segments"),
    )
    out = _cbrain(
        ["ask", "what segments do we have?", "--brand", dataset.a.slug, "--trace"],
        settings,
        ANTHROPIC_API_KEY=fake.api_key,
        ANTHROPIC_BASE_URL=fake.url,
        ASSISTANT_MODEL="claude-test-model",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# claude, stop_reason=end_turn, 1 tool call(s)\n> segments({})")
    assert "Champions is the most valuable" in out.stdout
    assert len(fake.requests) == 2 and fake.requests[0]["model"] == "claude-test-model"
    missing = _cbrain(["ask", "hi", "--brand", "no-such-brand"], settings)
    assert missing.returncode == 1 and "no-such-brand" in missing.stderr
