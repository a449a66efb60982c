"""`cbrain`: the command line. Each command imports its package inside itself so that
`cbrain --help` stays fast."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

app = typer.Typer(
    help="Customer Brain: one profile per real person, and what to do next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
brand_app = typer.Typer(help="Brands (tenants) and their webhook secrets.", no_args_is_help=True)
key_app = typer.Typer(help="API keys of a brand.", no_args_is_help=True)
app.add_typer(brand_app, name="brand")
app.add_typer(key_app, name="key")

T = TypeVar("T")


def _run(fn: Callable[[Any], Awaitable[T]], *, migrate: bool = True) -> T:
    """Open the runtime (embedded servers when no URLs are set), run, close; errors exit 1."""
    from core.errors import CBrainError
    from core.logging import configure_logging
    from core.runtime import open_runtime
    from core.settings import load_settings

    settings = load_settings()
    configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)

    async def main() -> T:
        async with open_runtime(settings, apply_migrations=migrate) as rt:
            return await fn(rt)

    try:
        return asyncio.run(main())
    except CBrainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def migrate() -> None:
    """Apply the SQL migrations in sql/ that are not applied yet (safe to re-run)."""
    from core.runtime import resolve_database_url, run_migrations
    from core.settings import load_settings

    settings = load_settings()
    done = asyncio.run(run_migrations(resolve_database_url(settings)))
    if done:
        for m in done:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("database is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    worker: bool = typer.Option(True, help="Run the stream worker in-process."),
) -> None:
    """Serve the REST API (and, by default, the stream worker) with uvicorn."""
    import uvicorn

    from app.main import create_app
    from app.wiring import background_tasks
    from core.settings import load_settings

    settings = load_settings()
    api = create_app(settings, background=background_tasks(worker=worker))
    uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
) -> None:
    """Start the embedded servers, create the `demo` brand, load demo data, and serve."""
    from app.demo import run_demo

    run_demo(host=host, port=port)


@brand_app.command("create")
def brand_create(
    slug: str,
    name: str = typer.Option(None, help="Display name (defaults to the slug)."),
    region: str = typer.Option("GB", help="Default phone region (ISO 3166 alpha-2)."),
) -> None:
    """Create a brand and print its first API key (scopes ingest + read) as the last line."""
    from core import brands

    async def go(rt: Any) -> str:
        async with rt.pool.acquire() as conn, conn.transaction():
            brand = await brands.create_brand(conn, slug, name, {"default_region": region.upper()})
            _, key = await brands.create_key(conn, brand.id, brands.DEFAULT_SCOPES, "default")
        typer.echo(
            f"created brand {brand.slug} ({brand.id}); API key (shown once, scopes ingest,read):"
        )
        return key

    typer.echo(_run(go))


@brand_app.command("list")
def brand_list() -> None:
    """List brands."""
    from core import brands

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            for b in await brands.list_brands(conn):
                typer.echo(f"{b.slug}\t{b.id}\t{b.name}")

    _run(go)


@brand_app.command("set-secret")
def brand_set_secret(
    slug: str,
    source: str,
    secret: str,
    replace: bool = typer.Option(False, "--replace", help="Drop the older secrets of this source."),
) -> None:
    """Add a webhook secret for SOURCE; a second call adds a rotated one (both accepted)."""
    from core import brands

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            await brands.add_secret(conn, rt.keyring, brand.id, source, secret, replace=replace)
        typer.echo(f"{'replaced' if replace else 'added'} {source} secret for {slug}")

    _run(go)


@key_app.command("create")
def key_create(
    slug: str,
    scope: list[str] = typer.Option(
        ..., "--scope", help="ingest, read, pii:read or admin; repeat."
    ),
    name: str = typer.Option("", help="A label for the key."),
) -> None:
    """Create an API key with the given scopes; the key is printed once, as the last line."""
    from core import brands

    async def go(rt: Any) -> str:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            scopes = [s for item in scope for s in item.split(",") if s]
            key_id, key = await brands.create_key(conn, brand.id, scopes, name)
        typer.echo(f"created key {key_id} for {slug} with scopes {','.join(sorted(set(scopes)))}:")
        return key

    typer.echo(_run(go))


@key_app.command("list")
def key_list(slug: str) -> None:
    """List a brand's keys (prefixes only, never the keys)."""
    from core import brands

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            for r in await brands.list_keys(conn, brand.id):
                state = "revoked" if r["revoked_at"] else "active"
                typer.echo(
                    f"{r['id']}\t{r['prefix']}…\t{','.join(r['scopes'])}\t{state}\t{r['name']}"
                )

    _run(go)


@key_app.command("revoke")
def key_revoke(slug: str, key: str = typer.Argument(..., help="Key id or prefix.")) -> None:
    """Revoke a key (by id or prefix)."""
    from core import brands

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            await brands.revoke_key(conn, brand.id, key)
        typer.echo("revoked")

    _run(go)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
