"""Helpers every bench shares: a free loopback port, waiting for a served app, the load."""

from __future__ import annotations

import asyncio
import os
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


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one live process, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far per role: the given pids, plus every PostgreSQL and Valkey process
    on the machine (their backends come and go, so they are found by name). Take two
    snapshots and subtract: where a benchmark's cores went."""
    out = {role: sum(_proc_cpu(p) for p in pids) for role, pids in roles.items()}
    out["postgres"] = out["valkey"] = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            out["postgres"] += _proc_cpu(int(entry))
        elif comm.startswith(("valkey", "redis")):
            out["valkey"] += _proc_cpu(int(entry))
    out["bench client"] = _proc_cpu(os.getpid())
    return out
