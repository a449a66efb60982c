"""`cbrain demo`: everything up on one machine with data worth looking at.

Starts the embedded servers, creates the `demo` brand (webhook secrets and an admin key),
generates a synthetic brand history, and loads it through the real paths: signed Shopify and
WooCommerce webhooks, the POS endpoint and the event API, all over HTTP to the running server.
Then prints a summary and keeps serving until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import typer

from core import brands
from core.errors import NotFound
from core.runtime import Runtime, open_runtime
from core.settings import Settings, load_settings

DEMO_SLUG = "demo"
DEMO_CUSTOMERS = int(os.environ.get("CBRAIN_DEMO_CUSTOMERS", "2000"))
DEMO_DAYS = 730
SOURCES = ("shopify", "woocommerce", "twilio")


async def ensure_demo_brand(rt: Runtime) -> tuple[brands.Brand, str, dict[str, str]]:
    """The demo brand, a fresh admin key for this run and its webhook secrets."""
    async with rt.pool.acquire() as conn, conn.transaction():
        try:
            brand = await brands.get_brand(conn, DEMO_SLUG)
        except NotFound:
            brand = await brands.create_brand(
                conn, DEMO_SLUG, "Demo Brand", {"default_region": "GB"}
            )
        _, key = await brands.create_key(conn, brand.id, ["admin"], "demo")
        found = {}
        for source in SOURCES:
            existing = await brands.secrets_for(conn, rt.keyring, brand.id, source)
            if not existing:
                secret = secrets.token_urlsafe(24)
                await brands.add_secret(conn, rt.keyring, brand.id, source, secret)
                existing = [secret]
            found[source] = existing[0]
    return brand, key, found


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


async def _post_history(
    url: str, key: str, secrets_: dict[str, str], data: Path, progress: Any
) -> dict[str, int]:
    import base64
    import hashlib
    import hmac

    import httpx

    def b64sig(body: bytes, secret: str) -> str:
        return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()

    auth = {"Authorization": f"Bearer {key}"}
    sent: dict[str, int] = {}
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def post(path: str, **kw: Any) -> None:
            async with sem:
                resp = await client.post(path, **kw)
                if resp.status_code >= 300:
                    raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:200]}")
                progress(1)

        tasks = []
        for d in _lines(data / "raw" / "shopify" / "deliveries.jsonl"):
            body = orjson.dumps(d["payload"])
            headers = {**d["headers"], "X-Shopify-Hmac-Sha256": b64sig(body, secrets_["shopify"])}
            # A backfill, not a retry: stamp the delivery now so it is not refused as stale.
            headers["X-Shopify-Triggered-At"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            tasks.append(post(f"/webhooks/shopify/{DEMO_SLUG}", content=body, headers=headers))
        for d in _lines(data / "raw" / "woocommerce" / "deliveries.jsonl"):
            body = orjson.dumps(d["payload"])
            headers = {
                **d["headers"],
                "X-WC-Webhook-Signature": b64sig(body, secrets_["woocommerce"]),
                "Content-Type": "application/json",
            }
            tasks.append(post(f"/webhooks/woocommerce/{DEMO_SLUG}", content=body, headers=headers))
        for d in _lines(data / "raw" / "pos" / "deliveries.jsonl"):
            tasks.append(post("/v1/pos/transactions", json=d, headers=auth))
        sent["webhooks+pos"] = len(tasks)
        # Web browsing and WhatsApp history go through the event API in batches: Twilio's
        # webhook carries no timestamp, so replaying old messages through it would date them
        # all today.
        batch: list[dict[str, Any]] = []
        web = 0
        with (data / "events.jsonl").open("rb") as fh:
            for line in fh:
                ev = orjson.loads(line)
                if ev["source"] not in ("web", "whatsapp"):
                    continue
                ev.pop("brand", None)
                batch.append(ev)
                web += 1
                if len(batch) == 500:
                    tasks.append(post("/v1/events/batch", json={"events": batch}, headers=auth))
                    batch = []
        if batch:
            tasks.append(post("/v1/events/batch", json={"events": batch}, headers=auth))
        sent["api events"] = web
        await asyncio.gather(*tasks)
    return sent


async def _wait_processed(rt: Runtime, brand_id: Any, limit_s: float = 900) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        pending = await rt.pool.fetchval(
            "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND status = 'pending'", brand_id
        )
        if pending == 0:
            return
        await asyncio.sleep(0.5)


async def _summary(rt: Runtime, brand_id: Any) -> dict[str, Any]:
    q = {
        "profiles": "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL",
        "events": "SELECT count(*) FROM events WHERE brand_id = $1",
        "merges": "SELECT count(*) FROM identity_merge_log WHERE brand_id = $1",
        "reviews": "SELECT count(*) FROM merge_review_queue WHERE brand_id = $1 AND status = 'open'",
        "shared identifiers": "SELECT count(*) FROM profile_identifiers WHERE brand_id = $1 "
        "AND status = 'shared'",
        "revenue": "SELECT coalesce(sum(total_spent), 0) FROM profiles WHERE brand_id = $1",
    }
    return {k: await rt.pool.fetchval(v, brand_id) for k, v in q.items()}


async def _train_if_needed(rt: Runtime, brand: brands.Brand, console: Any) -> None:
    """Train and score once (churn, value, segments, recommendations, embeddings, journeys),
    so every page, tool and answer of the demo has predictions; later runs reuse them."""
    from rich.progress import BarColumn, Progress

    from dashboard import overview
    from ml import pipeline, registry

    async with rt.pool.acquire() as conn:
        if await registry.load_active(conn, brand.id, "churn") is not None:
            return
    with Progress(
        "[progress.description]{task.description}", BarColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("training models", total=100)
        await pipeline.train(
            rt,
            brand,
            progress=lambda step, frac: bar.update(task, completed=100 * frac, description=step),
        )
    await overview.warm(rt, brand.id)
    console.print("models trained and every customer scored")


def run_demo(host: str, port: int) -> None:
    import uvicorn
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.main import create_app
    from app.wiring import background_tasks
    from ingestion.generator import generate

    console = Console(stderr=True)
    url = f"http://{host}:{port}"
    os.environ.setdefault("CBRAIN_PUBLIC_URL", url)
    settings: Settings = load_settings()

    async def main() -> None:
        async with open_runtime(settings) as rt:
            brand, key, secrets_ = await ensure_demo_brand(rt)
            from automations.samples import install_samples

            await install_samples(rt, brand.id)
            data = settings.home / "demo-data"
            if not (data / "events.jsonl").exists():
                console.print(f"generating {DEMO_CUSTOMERS} customers x {DEMO_DAYS} days ...")
                generate(DEMO_SLUG, DEMO_CUSTOMERS, DEMO_DAYS, 7, data, raw=True)
            app = create_app(settings, runtime=rt, background=background_tasks(worker=True))
            server = uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
            )
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    serving.result()
                    return
                await asyncio.sleep(0.05)
            events = await rt.pool.fetchval(
                "SELECT count(*) FROM raw_events WHERE brand_id = $1", brand.id
            )
            if events == 0:
                with Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                ) as bar:
                    task = bar.add_task("loading through the real API paths", total=None)
                    sent = await _post_history(
                        url, key, secrets_, data, lambda n: bar.advance(task, n)
                    )
                    bar.update(task, description="resolving identities")
                    await _wait_processed(rt, brand.id)
                console.print(f"loaded: {sent}")
            await _train_if_needed(rt, brand, console)
            summary = await _summary(rt, brand.id)
            out = Console(soft_wrap=True)
            out.print(f"\n[bold]Customer Brain demo[/bold] at {url}  (brand '{DEMO_SLUG}')")
            for k, v in summary.items():
                out.print(f"  {k:20} {v}")
            out.print(f"  health:     curl {url}/health")
            out.print(f"  API key (admin, shown once): {key}")
            out.print(f"  dashboard:  {url}/dashboard  (sign in with the key above)")
            out.print(f"  REST:       curl -H 'Authorization: Bearer {key}' {url}/v1/reviews")
            out.print(f"  MCP:        {url}/mcp  (Bearer key), or `cbrain mcp --brand {DEMO_SLUG}`")
            out.print(
                f'  assistant:  cbrain ask "which VIP customers are at risk?" --brand {DEMO_SLUG}'
            )
            out.print("Ctrl-C to stop.")
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
        sys.exit(0)
