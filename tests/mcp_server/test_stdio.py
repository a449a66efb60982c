"""stdio: the claude_desktop_config.json entry of docs/mcp.md, spawned as Claude Desktop
would spawn it (its command, args and env, nothing else from our environment)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]


def desktop_entry(settings: Any, slug: str) -> dict[str, Any]:
    """The documented entry with this machine's paths and the test servers' settings."""
    doc = (ROOT / "docs" / "mcp.md").read_text()
    block = next(b for b in re.findall(r"```json\n(.*?)```", doc, re.S) if "mcpServers" in b)
    entry = json.loads(block)["mcpServers"]["customer-brain"]
    assert entry["command"].endswith("/.venv/bin/cbrain")
    assert entry["args"] == ["mcp", "--brand", "acme"]
    entry["command"] = str(Path(sys.executable).parent / "cbrain")
    entry["args"] = ["mcp", "--brand", slug]
    values = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CBRAIN_HOME": str(settings.home),
        "CBRAIN_PEPPER": settings.pepper.get_secret_value(),
        "CBRAIN_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
    }
    assert set(entry["env"]) == set(values)
    entry["env"] = values
    return entry


async def test_claude_desktop_entry_lists_and_calls_tools(dataset, settings):
    entry = desktop_entry(settings, dataset.a.slug)
    async with Client(StdioServerParameters(**entry, cwd="/")) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        out = await c.call_tool("lookup_customer", {"query": dataset.injected_phone})
    assert len(tools) == 11 and "forecast_metrics" in tools
    got = out.structured_content["customers"][0]
    assert got["customer_ref"] == str(dataset.injected)
    assert got["identifiers"][0]["value"] == "+44 ***** **123"  # no --pii: masked


async def test_unknown_brand_fails_cleanly(settings):
    entry = desktop_entry(settings, "no-such-brand")
    try:
        async with Client(StdioServerParameters(**entry, cwd="/")) as c:
            await c.list_tools()
    except Exception:
        return  # the process exits with "error: no brand 'no-such-brand'" before serving
    raise AssertionError("the server started for an unknown brand")


async def test_warm_command_refreshes_every_usual_question(dataset, settings):
    import subprocess

    from mcp_server.warm import WARM_CALLS

    entry = desktop_entry(settings, dataset.a.slug)
    out = subprocess.run(
        [entry["command"], *entry["args"], "--warm"],
        env={"PATH": "/usr/bin:/bin", **entry["env"]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    first, *lines = out.stdout.strip().splitlines()
    # the brand's analytics replica is built first (the process runs with it on by default)
    assert first.startswith("analytics replica") and '"events": ' in first, first
    assert len(lines) == len(WARM_CALLS) and all(line.endswith("ok") for line in lines)
