"""Helpers every bench shares: a free loopback port, waiting for a served app, the load."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_server(url: str, timeout: float = 60) -> None:
    """Until `url`/health answers 200."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            try:
                if (await c.get(url + "/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not come up")


def uptime() -> str:
    """`uptime`'s line: benches print the load they ran under."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
