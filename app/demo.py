"""`cbrain demo`: everything up on one machine with data worth looking at."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from core import brands
from core.errors import NotFound
from core.runtime import Runtime, open_runtime
from core.settings import load_settings

DEMO_SLUG = "demo"


async def ensure_demo_brand(rt: Runtime) -> tuple[brands.Brand, str]:
    """The demo brand and a fresh admin key for this run (old demo keys stay valid)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        try:
            brand = await brands.get_brand(conn, DEMO_SLUG)
        except NotFound:
            brand = await brands.create_brand(
                conn, DEMO_SLUG, "Demo Brand", {"default_region": "GB"}
            )
        _, key = await brands.create_key(conn, brand.id, ["admin"], "demo")
    return brand, key


def run_demo(host: str, port: int) -> None:
    import uvicorn

    from app.main import create_app
    from app.wiring import background_tasks

    settings = load_settings()

    async def prepare() -> dict[str, Any]:
        async with open_runtime(settings) as rt:
            brand, key = await ensure_demo_brand(rt)
            return {"brand": brand.slug, "key": key}

    info = asyncio.run(prepare())
    typer.echo(f"Customer Brain demo: brand '{info['brand']}' at http://{host}:{port}")
    typer.echo(f"  curl -H 'Authorization: Bearer {info['key']}' http://{host}:{port}/v1/me")
    uvicorn.run(
        create_app(settings, background=background_tasks(worker=True)),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
