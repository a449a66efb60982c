"""Browser tests of the dashboard: the real app (app.main.create_app) served by uvicorn on a
loopback port, driven by Playwright for Python with Debian's Chromium.

Chromium is installed here when missing (`apt-get install -y chromium`), so a clean CI machine
gets it through `make test`; if it cannot be installed the session fails loudly (nothing is
skipped). Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import uvicorn

from core import brands
from core.events import CanonicalEvent
from ingestion import service
from ingestion.csv_import import ImportSpec, import_lines
from ingestion.generator import generate
from tests.conftest import TestBrand, make_brand
from tests.helpers import wait_for
from tests.identity.streaming_helpers import ev, ingest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "dashboard"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PEOPLE = 120


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing; fails the run if impossible."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail("Chromium is missing at /usr/bin/chromium and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for cmd in ([*sudo, apt, "update", "-qq"], [*sudo, apt, "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail("apt-get installed chromium but /usr/bin/chromium is still missing")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = ensure_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(path), headless=True, args=LAUNCH_ARGS)
        yield b
        await b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
async def base_url(rt: Any) -> AsyncIterator[str]:
    """The app exactly as app/main.py builds it, served by uvicorn in this event loop (the
    runtime's pool belongs to it)."""
    from app.main import create_app

    app = create_app(rt.settings, runtime=rt)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = __import__("asyncio").create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await wait_for(started, timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Data:
    a: TestBrand
    b: TestBrand
    b_profile: UUID
    review_pair: list[UUID]
    named: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
async def data(rt: Any) -> Data:
    """Brand A: generated customers (with predictions as ML writes them), a genuine review
    proposal (a strict auto-merge threshold sends it to review), a webhook secret and a dead
    letter. Brand B: a few customers of its own."""
    from tests.mcp_server.conftest import _predict

    a = await make_brand(
        rt, "dash", {"default_region": "GB", "identity": {"auto_merge_threshold": 0.99999999}}
    )
    b = await make_brand(rt, "dashb")
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        generate(a.slug, PEOPLE, 120, 5, Path(tmp), end=end, raw=False)
        spec = ImportSpec.build(source="api", event_type=None, fmt="jsonl", mappings=[])
        with open(Path(tmp) / "events.jsonl", encoding="utf-8") as fh:
            report = await import_lines(rt, a.id, a.slug, fh, spec)
        assert report.rejected == 0, report.errors[:3]
    day = (end - timedelta(days=2)).strftime("%Y-%m-%dT10:00:00Z")
    ola = [
        ev("ola-1", first="Olamide", last="Quartermaine", email="ola@quarter-mail.com"),
        ev("ola-2", first="Olamide", last="Quartermaine", source="pos", phone="07700900888"),
    ]
    for e in ola:
        e["occurred_at"] = day
    await ingest(rt, a, ola, batch=1)
    both = ev(
        "ola-3",
        first="Olamide",
        last="Quartermaine",
        email="ola@quarter-mail.com",
        phone="07700900888",
    )
    both["occurred_at"] = day
    await ingest(rt, a, [both])
    pair = await rt.pool.fetchval(
        "SELECT profile_ids FROM merge_review_queue WHERE brand_id = $1 AND status = 'open' "
        "AND $2 = ANY(SELECT name_norm FROM profiles p WHERE p.brand_id = $1 "
        "AND p.id = ANY(profile_ids))",
        a.id,
        "olamide quartermaine",
    )
    assert pair is not None and len(pair) == 2, "the Olamide pair should wait in review"
    await _predict(rt, a.id, end)
    # A dead letter: an accepted event whose processing failed for good (say, a bug since
    # fixed), so a replay processes it.
    late = ev("dead-1", first="Dorothea", last="Lazarus", email="dorothea@dead-letter.co.uk")
    late["occurred_at"] = day
    accepted = await service.accept(
        rt, a.id, [(0, CanonicalEvent.model_validate({**late, "brand": a.slug}))], conn=rt.pool
    )
    async with rt.pool.acquire() as conn:
        await brands.add_secret(conn, rt.keyring, a.id, "shopify", "shpss_dashboard_secret_1")
        await conn.execute(
            "UPDATE raw_events SET status = 'dead', attempts = 6, error = 'test: poison row' "
            "WHERE brand_id = $1 AND id = $2",
            a.id,
            accepted[0].raw_id,
        )
        await conn.execute(
            """INSERT INTO model_versions (brand_id, kind, version, status, metrics)
               VALUES ($1, 'churn', 2, 'candidate', '{"auc": 0.84, "brier": 0.12, "lift_top_decile": 3.1}')""",
            a.id,
        )
    await ingest(
        rt,
        b,
        [ev("b-1", first="Bartholomew", last="Onlyinb", email="bart@other-brand.co.uk")],
    )
    b_profile = await rt.pool.fetchval(
        "SELECT id FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", b.id
    )
    return Data(a, b, b_profile, list(pair))


class PageWatch:
    """Console errors, failed requests and HTTP errors seen by a page."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        self.allowed_status: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status} {r.url}")
                if r.status >= 400 and r.status not in self.allowed_status
                else None
            ),
        )

    def _failed(self, request: Any) -> None:
        # ERR_ABORTED is the browser dropping a request itself when the test navigates on
        # (a favicon still loading); every other failure is a real one.
        if "ERR_ABORTED" not in str(request.failure):
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx page as a console error too: those a test expects are fine.
        found = re.search(r"status of (\d{3})", message.text)
        if found and int(found.group(1)) in self.allowed_status:
            return
        self.problems.append(f"console error: {message.text}")

    def clean(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


@contextlib.asynccontextmanager
async def open_page(browser: Any) -> AsyncIterator[tuple[Any, PageWatch]]:
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    try:
        yield page, watch
    finally:
        await context.close()


async def sign_in(page: Any, base_url: str, key: str, next_path: str = "/dashboard/") -> None:
    await page.goto(f"{base_url}/dashboard/login?next={next_path}")
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("load")


async def shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
