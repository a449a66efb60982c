"""A third-party client: the MCP Inspector CLI (npm) against stdio and HTTP.

Skipped, with the reason printed, only when node/npx are missing or the package cannot be
downloaded from the npm registry."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from typing import Any

import pytest

from tests.mcp_server.test_http import build_app, serve
from tests.mcp_server.test_stdio import desktop_entry

PACKAGE = "@modelcontextprotocol/inspector@2"
TIMEOUT_S = 300


async def inspector(*args: str) -> tuple[int, str, str]:
    npx = shutil.which("npx")
    if npx is None or shutil.which("node") is None:
        print("skipping Inspector tests: node/npx not installed")
        pytest.skip("node/npx not installed")
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "MCP_CATALOG_PATH": os.path.join(home, "catalog.json"),
            "MCP_CLIENT_CONFIG_PATH": os.path.join(home, "client.json"),
        }
        proc = await asyncio.create_subprocess_exec(
            npx,
            "-y",
            PACKAGE,
            "--cli",
            "--format",
            "json",
            "-q",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    text, errors = out.decode(), err.decode()
    if proc.returncode != 0 and ("npm error" in errors or "ERR!" in errors) and not text:
        print(f"skipping Inspector tests: could not fetch {PACKAGE}: {errors[-500:]}")
        pytest.skip(f"could not fetch {PACKAGE} from the npm registry")
    return proc.returncode or 0, text, errors


async def test_inspector_over_stdio(dataset, settings):
    entry = desktop_entry(settings, dataset.a.slug)
    env_args = [a for k, v in entry["env"].items() for a in ("-e", f"{k}={v}")]
    code, out, err = await inspector(
        *env_args, "--method", "tools/list", "--", entry["command"], *entry["args"]
    )
    assert code == 0, err
    tools = json.loads(out)["result"]["tools"]
    assert len(tools) == 11
    assert all(t["annotations"]["readOnlyHint"] for t in tools)
    code, out, err = await inspector(
        *env_args,
        "--method",
        "tools/call",
        "--tool-name",
        "lookup_customer",
        "--tool-arg",
        f"query={dataset.injected_phone}",
        "--",
        entry["command"],
        *entry["args"],
    )
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)["result"]
    assert result["structuredContent"]["customers"][0]["customer_ref"] == str(dataset.injected)


async def test_inspector_over_http(dataset, rt):
    async with serve(build_app(rt)) as url:
        auth = ["--transport", "http", "--header", f"Authorization: Bearer {dataset.a.read_key}"]
        code, out, err = await inspector(f"{url}/mcp/", *auth, "--method", "tools/list", "--strict")
        assert code == 0, err
        assert len(json.loads(out)["result"]["tools"]) == 11
        code, out, err = await inspector(
            f"{url}/mcp/",
            *auth,
            "--method",
            "tools/call",
            "--tool-name",
            "churn_risk",
            "--tool-arg",
            "top_n=3",
        )
        assert code == 0, err
        assert len(json.loads(out)["result"]["structuredContent"]["at_risk"]) == 3
        code, out, err = await inspector(
            f"{url}/mcp/", "--transport", "http", "--stored-auth-only", "--method", "tools/list"
        )
        assert code != 0  # no token: refused
