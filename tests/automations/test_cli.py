"""`cbrain automation`: create from a JSON file, list, enable, test, disable."""

from __future__ import annotations

from datetime import timedelta

import orjson

from tests.app.test_cli import _cbrain
from tests.automations.conftest import base_time, event, profile_of, send


async def test_automation_commands(rt, settings, sbrand, tmp_path):
    spec = {
        "name": "Win-back",
        "trigger": {"type": "churn_threshold", "threshold": 0.7},
        "conditions": [{"field": "total_spent", "op": ">=", "value": 10}],
        "action": {"type": "email", "subject": "We miss you", "body": "Hi {first_name}"},
    }
    path = tmp_path / "winback.json"
    path.write_bytes(orjson.dumps(spec))
    out = _cbrain(["automation", "create", str(path), "--brand", sbrand.slug], settings)
    assert out.returncode == 0, out.stderr
    aid = out.stdout.split()[1]
    assert "disabled" in out.stdout

    listed = _cbrain(["automation", "list", "--brand", sbrand.slug], settings)
    assert f"{aid}\tdisabled\tdry-run\tchurn_threshold\temail\tWin-back" in listed.stdout

    on = _cbrain(["automation", "enable", aid, "--brand", sbrand.slug], settings)
    assert on.returncode == 0 and "dry run" in on.stdout

    await send(
        rt,
        sbrand,
        event("o1", base_time() - timedelta(days=2), "purchase", email="ada@example-shop.co.uk"),
    )
    pid = await profile_of(rt, sbrand, "o1")
    test = _cbrain(
        ["automation", "test", aid, "--brand", sbrand.slug, "--profile", str(pid)], settings
    )
    assert test.returncode == 0, test.stderr
    result = orjson.loads(test.stdout)
    assert result["trigger"]["fires"] is False  # no churn prediction yet
    assert result["would_send"]["subject"] == "We miss you"

    off = _cbrain(["automation", "disable", aid, "--brand", sbrand.slug], settings)
    assert off.returncode == 0 and "disabled" in off.stdout

    path.write_bytes(b'{"name": "bad", "trigger": {"type": "nope"}}')
    bad = _cbrain(["automation", "create", str(path), "--brand", sbrand.slug], settings)
    assert bad.returncode == 1 and "trigger" in bad.stderr
