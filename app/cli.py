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
deadletter_app = typer.Typer(help="Events that failed processing.", no_args_is_help=True)
identity_app = typer.Typer(help="Identity resolution maintenance.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")
app.add_typer(key_app, name="key")
app.add_typer(deadletter_app, name="deadletter")

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
    # `--no-worker` also leaves automations to their own process (`cbrain automation run`).
    api = create_app(settings, background=background_tasks(worker=worker, automations=worker))
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


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="CSV or JSONL file ('-' for standard input)."),
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    source: str = typer.Option("csv", help="pos, csv, api, web, shopify, ... (canonical source)."),
    type: str = typer.Option(
        None, "--type", help="Event type for every row (else a column or inferred)."
    ),
    map: list[str] = typer.Option(
        [], "--map", help="COLUMN=FIELD, e.g. Email=identifiers.email; repeat."
    ),
    format: str = typer.Option("csv", "--format", help="csv or jsonl (canonical events)."),
    date_format: str = typer.Option(
        None, help="strptime format of the date column when not ISO 8601."
    ),
    currency: str = typer.Option(None, help="Currency for rows that have none (ISO 4217)."),
    process: bool = typer.Option(True, help="Resolve inline (no running server needed)."),
) -> None:
    """Import a file: row errors reported with line numbers, good rows imported, re-imports
    import nothing twice."""
    import os

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from core import brands
    from ingestion import csv_import

    spec = csv_import.ImportSpec.build(
        source=source,
        event_type=type,
        fmt=format,
        mappings=map,
        date_format=date_format,
        currency=currency,
    )

    async def go(rt: Any) -> Any:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
        if file == "-":
            return await csv_import.import_lines(rt, b.id, b.slug, sys.stdin, spec, process=process)
        size = os.path.getsize(file)
        with (
            open(file, encoding="utf-8-sig", newline="") as fh,
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                transient=True,
                disable=not sys.stderr.isatty(),
            ) as bar,
        ):
            task = bar.add_task("importing", total=size)
            last = [0]

            def tick(_: int) -> None:
                pos = getattr(fh, "buffer", fh).tell()
                bar.update(task, completed=pos)
                last[0] = pos

            return await csv_import.import_lines(
                rt, b.id, b.slug, fh, spec, process=process, progress=tick
            )

    try:
        report = _run(go)
    except FileNotFoundError:
        typer.echo(f"error: no such file: {file}", err=True)
        raise typer.Exit(1) from None
    r = report
    typer.echo(
        f"rows {r.rows}  events {r.events}  accepted {r.accepted}  duplicates {r.duplicates}"
        f"  rejected {r.rejected}  processed {r.processed}"
    )
    for e in r.errors[:50]:
        typer.echo(f"line {e.line}: {e.message}", err=True)
    if len(r.errors) > 50 or r.rejected > len(r.errors[:50]):
        typer.echo(f"... {r.rejected} rejected rows in all", err=True)


@app.command()
def generate(
    brand: str = typer.Option("demo", "--brand", help="Brand slug written into the events."),
    customers: int = typer.Option(1000, help="People to simulate."),
    days: int = typer.Option(365, help="Length of the history, ending today (UTC)."),
    seed: int = typer.Option(7, help="Same seed, same files, byte for byte."),
    out: str = typer.Option("generated", "--out", help="Output directory."),
    raw: bool = typer.Option(True, help="Also write raw Shopify/Woo/Twilio/POS deliveries."),
) -> None:
    """Synthetic multi-channel data with ground truth (events.jsonl, raw/, truth.csv, ...)."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ingestion.generator import generate as run

    if customers < 1 or days < 1:
        typer.echo("error: --customers and --days must be at least 1", err=True)
        raise typer.Exit(1)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("simulating people", total=customers)
        summary = run(
            brand,
            customers,
            days,
            seed,
            Path(out),
            raw=raw,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(
        f"{summary.people} people in {summary.households} households, "
        f"{summary.events} events -> {out}"
    )
    for source, n in sorted(summary.by_source.items()):
        typer.echo(f"  {source:12} {n}")


@app.command("mcp")
def mcp_stdio(
    brand: str = typer.Option(..., "--brand", help="Brand slug whose customers the tools read."),
    pii: bool = typer.Option(
        False, "--pii", help="Show personal data (emails, phones, names, messages) in clear."
    ),
    warm: bool = typer.Option(
        False, "--warm", help="Instead: refresh the brand's cached analytics answers, then exit."
    ),
) -> None:
    """Serve the MCP tools over stdio, for Claude Desktop and other local MCP clients."""
    import json

    from core import brands
    from mcp_server.server import build_server

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
        if warm:
            from mcp_server.warm import warm as refresh

            def show(name: str, args: dict, seconds: float, error: str | None) -> None:
                status = f"error: {error}" if error else "ok"
                typer.echo(f"{name:18} {json.dumps(args):45} {seconds:7.2f} s  {status}")

            await refresh(rt, b.id, show)
            return
        # stdout is the protocol channel: nothing else may print there (logs go to stderr).
        await build_server(lambda: rt, brand_id=b.id, allow_pii=pii).run_stdio_async()

    _run(go)


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, in plain language."),
    brand: str = typer.Option(..., "--brand", help="Brand slug whose customers to ask about."),
    trace: bool = typer.Option(
        False, "--trace", help="Also print each tool call with its arguments and timing."
    ),
    pii: bool = typer.Option(
        False, "--pii", help="Show personal data (emails, phones, names) in clear."
    ),
    conversation: str = typer.Option(
        None, "--conversation", help="Remember turns under this id (follow-up questions)."
    ),
) -> None:
    """Ask the assistant about a brand's customers: Claude over the MCP tools when
    ANTHROPIC_API_KEY is set, else the offline planner (which says so)."""
    import json

    from assistant.agent import Assistant
    from assistant.types import AskContext
    from core import brands

    async def go(rt: Any) -> Any:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
        ctx = AskContext(brand_id=b.id, surface="cli", conversation_id=conversation, allow_pii=pii)
        async with Assistant(rt) as assistant:
            return await assistant.ask(question, ctx)

    answer = _run(go)
    if trace:
        mode = "offline planner" if answer.offline else "claude"
        typer.echo(
            f"# {mode}, stop_reason={answer.stop_reason}, {len(answer.tool_calls)} tool call(s)"
        )
        for c in answer.tool_calls:
            status = "refused" if c.refused else "error" if c.is_error else "ok"
            line = f"> {c.name}({json.dumps(c.arguments, ensure_ascii=False, default=str)})"
            typer.echo(f"{line}  {c.duration_ms:.0f} ms  {status}")
            if c.is_error and c.error:
                typer.echo(f"    {c.error[:200]}")
        typer.echo("")
    typer.echo(answer.text)
    if answer.sources:
        typer.echo("\nSources:")
        for s in answer.sources:
            typer.echo(f"- {s}")
    if answer.stop_reason in ("error", "timeout") and not answer.offline:
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run the stream worker (consumes events.raw of every brand) until interrupted."""
    from ingestion.worker import run_worker

    _run(run_worker)


@deadletter_app.command("list")
def deadletter_list(
    brand: str = typer.Option(..., "--brand"), limit: int = typer.Option(100)
) -> None:
    """Events that failed processing, with the reason."""
    from core import brands
    from ingestion import inbox

    async def go(rt: Any) -> None:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
            rows = await inbox.dead_letters(conn, b.id, limit)
        for r in rows:
            typer.echo(
                f"{r['id']}\t{r['source']}\t{r['event_id']}\t{r['type']}\t"
                f"{r['attempts']}\t{r['error']}"
            )
        typer.echo(f"{len(rows)} dead letter(s)")

    _run(go)


@deadletter_app.command("replay")
def deadletter_replay(
    brand: str = typer.Option(..., "--brand"),
    ids: list[int] = typer.Argument(None, help="Raw event ids (default: all dead letters)."),
) -> None:
    """Put dead letters back in the inbox and process them now."""
    from core import brands
    from ingestion import inbox
    from ingestion.worker import drain

    async def go(rt: Any) -> tuple[int, int]:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
            revived = await inbox.revive(conn, b.id, ids or None)
        done = await drain(rt, b.id)
        async with rt.pool.acquire() as conn:
            still = len(await inbox.dead_letters(conn, b.id, 100000))
        del done
        return len(revived), still

    revived, still = _run(go)
    typer.echo(f"replayed {revived}; {still} still dead")


@app.command()
def unmerge(
    merge_id: str = typer.Argument(..., help="Merge id (from identity_merge_log)."),
    brand: str = typer.Option(..., "--brand"),
) -> None:
    """Roll back a merge exactly; events that arrived after it are re-resolved."""
    from uuid import UUID

    from identity.merge import rollback

    async def go(rt: Any) -> dict:
        b = await _brand_by_slug(rt, brand)
        return await rollback(rt, b.id, UUID(merge_id), actor="cli")

    out = _run(go)
    typer.echo(
        f"restored {', '.join(out['restored'])} from {out['survivor']}; "
        f"{out['reresolved_events']} later event(s) re-resolved"
    )


privacy_app = typer.Typer(help="Data-subject requests: delete and export.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


@app.command()
def recompute(
    brand: str = typer.Option(None, "--brand", help="Brand slug (default: every brand)."),
    batch: int = typer.Option(5000, help="Profiles compared per statement."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report drift without fixing it."),
) -> None:
    """Recompute profile aggregates from events, fix drift, and report it per field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from core import brands
    from identity.recompute import recompute_brand

    async def go(rt: Any) -> list[tuple[str, Any]]:
        async with rt.pool.acquire() as conn:
            found = (
                [await brands.get_brand(conn, brand)] if brand else await brands.list_brands(conn)
            )
        out = []
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
            disable=not sys.stderr.isatty(),
        ) as bar:
            for b in found:
                task = bar.add_task(f"checking {b.slug}", total=None)

                def advance(done: int, total: int, t: Any = task) -> None:
                    bar.update(t, completed=done, total=total)

                report = await recompute_brand(
                    rt, b.id, batch=batch, dry_run=dry_run, progress=advance
                )
                out.append((b.slug, report))
        return out

    for slug, report in _run(go):
        verb = "would fix" if report.dry_run else "fixed"
        fields = ", ".join(f"{k} {v}" for k, v in report.fields.items() if v) or "no drift"
        typer.echo(
            f"{slug}: checked {report.profiles_checked} profiles, {verb} "
            f"{report.profiles_fixed} ({fields})"
        )


def _privacy_queue(kind: str, brand: str, ids: dict[str, Any], profile_id: str | None) -> str:
    from uuid import UUID

    from core import brands
    from identity import privacy

    async def go(rt: Any) -> str:
        async with rt.pool.acquire() as conn, conn.transaction():
            b = await brands.get_brand(conn, brand)
            job = await privacy.request_job(
                conn,
                rt.keyring.for_brand(str(b.id)),
                b,
                kind,
                {k: v for k, v in ids.items() if v},
                UUID(profile_id) if profile_id else None,
                actor="cli",
            )
        return job["id"]

    return _run(go)


@privacy_app.command("delete")
def privacy_delete(
    brand: str = typer.Option(..., "--brand"),
    email: str = typer.Option(None),
    phone: str = typer.Option(None),
    loyalty_id: str = typer.Option(None, "--loyalty-id"),
    profile_id: str = typer.Option(None, "--profile-id"),
) -> None:
    """Queue the erasure of a person (run it with `cbrain privacy run` or a running server)."""
    ids = {"email": email, "phone": phone, "loyalty_id": loyalty_id}
    typer.echo(f"queued delete job {_privacy_queue('delete', brand, ids, profile_id)}")


@privacy_app.command("export")
def privacy_export(
    brand: str = typer.Option(..., "--brand"),
    email: str = typer.Option(None),
    phone: str = typer.Option(None),
    loyalty_id: str = typer.Option(None, "--loyalty-id"),
    profile_id: str = typer.Option(None, "--profile-id"),
) -> None:
    """Queue an export of everything held about a person."""
    ids = {"email": email, "phone": phone, "loyalty_id": loyalty_id}
    typer.echo(f"queued export job {_privacy_queue('export', brand, ids, profile_id)}")


@privacy_app.command("run")
def privacy_run(brand: str = typer.Option(None, "--brand")) -> None:
    """Process queued privacy jobs now (every brand unless --brand)."""
    from core import brands
    from identity import privacy

    async def go(rt: Any) -> list[Any]:
        brand_id = None
        if brand:
            async with rt.pool.acquire() as conn:
                brand_id = (await brands.get_brand(conn, brand)).id
        return await privacy.process_pending(rt, brand_id)

    for o in _run(go):
        typer.echo(f"{o.id}\t{o.kind}\t{o.status}\t{o.seconds:.2f}s\t{o.summary}")


@privacy_app.command("status")
def privacy_status(
    job_id: str,
    brand: str = typer.Option(..., "--brand"),
    out: str = typer.Option(None, "--out", help="Write a finished export's JSON here."),
) -> None:
    """Show a job; with --out, save a finished export (the only way it leaves the database)."""
    from pathlib import Path
    from uuid import UUID

    import orjson

    from core import brands
    from identity import privacy

    async def go(rt: Any) -> dict:
        from identity.profile360 import audit

        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
            job = await privacy.get_job(
                conn, rt.keyring.for_brand(str(b.id)), b.id, UUID(job_id), with_result=bool(out)
            )
            if "result" in job:
                await audit(conn, b.id, "cli", "pii.read", job_id, {"fields": ["privacy_export"]})
            return job

    job = _run(go)
    result = job.pop("result", None)
    typer.echo(orjson.dumps(job, default=str, option=orjson.OPT_INDENT_2).decode())
    if out and result is not None:
        Path(out).write_bytes(orjson.dumps(result, default=str, option=orjson.OPT_INDENT_2))
        typer.echo(f"export written to {out}")


@app.command()
def resolve(
    input_csv: str = typer.Argument(
        ..., metavar="INPUT.csv", help="Customer file (CSV with a header)."
    ),
    out: str = typer.Option(..., "--out", help="Output CSV: record_id,cluster_id."),
    id_column: str = typer.Option(..., "--id-column", help="Column holding each record's id."),
    map: list[str] = typer.Option(
        [],
        "--map",
        help="column=field (first_name, last_name, full_name, email, phone, "
        "loyalty_id, external_id, dob, street_number, address, city, postcode, state, country).",
    ),
    region: str = typer.Option("GB", help="Default phone region (ISO 3166 alpha-2)."),
    email_provider_rules: bool = typer.Option(False, help="Gmail dots/plus-tags rules."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core, at most 4)."),
) -> None:
    """Deduplicate a customer file (a CRM export) without loading it: same scoring as the
    streaming resolver, with blocking and vectorised comparisons."""
    from pathlib import Path

    from rich.progress import BarColumn, Progress

    from identity.batch import resolve_file

    mapping = {}
    for item in map:
        for part in item.split(","):
            col, sep, field = part.partition("=")
            if not sep or not col.strip() or not field.strip():
                typer.echo(f"error: --map takes column=field, got {part!r}", err=True)
                raise typer.Exit(1)
            mapping[col.strip()] = field.strip()
    if not Path(input_csv).exists():
        typer.echo(f"error: no such file: {input_csv}", err=True)
        raise typer.Exit(1)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("resolving", total=5)
        try:
            summary = resolve_file(
                Path(input_csv),
                Path(out),
                id_column=id_column,
                mapping=mapping or None,
                region=region.upper(),
                provider_rules=email_provider_rules,
                workers=workers or None,
                progress=lambda step, total: bar.update(task, completed=step, total=total),
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    def total(v: Any) -> int:
        return sum(v.values()) if isinstance(v, dict) else int(v)

    typer.echo(
        f"{summary.records} records -> {summary.clusters} clusters in {summary.seconds:.1f} s "
        f"({summary.records_per_second:,.0f} records/s); {summary.linked_pairs} links, "
        f"{summary.review_pairs} pairs left for review, {total(summary.shared_values)} shared "
        f"values and {total(summary.placeholders)} placeholders never linked; wrote {out}"
    )


@identity_app.command("fit")
def identity_fit(
    brand: str = typer.Option(..., "--brand"),
    apply: bool = typer.Option(True, help="Store the re-fitted model when it scores better."),
) -> None:
    """Re-fit the scoring weights from review answers and rolled-back merges; report the
    quality before and after (cross-validated on the labels)."""
    from core import brands
    from identity.fit import fit_brand
    from identity.service import IdentityConfig

    async def go(rt: Any) -> Any:
        async with rt.pool.acquire() as conn:
            b = await brands.get_brand(conn, brand)
            return await fit_brand(conn, b.id, IdentityConfig.of(b).model, apply=apply)

    report = _run(go)
    typer.echo(f"labels {report.labels} ({report.positives} same person)")
    for name in ("log_loss", "auto_merge_precision", "auto_merge_recall"):
        typer.echo(f"  {name:22} before {report.before[name]:.4f}  after {report.after[name]:.4f}")
    typer.echo("model stored for the brand" if report.applied else "model not changed")


automation_app = typer.Typer(help="Automations: triggers and safe actions.", no_args_is_help=True)
app.add_typer(automation_app, name="automation")


async def _automation_brand(rt: Any, slug: str) -> Any:
    from core import brands

    async with rt.pool.acquire() as conn:
        return await brands.get_brand(conn, slug)


@automation_app.command("create")
def automation_create(
    file: str = typer.Argument(..., help="JSON file: name, trigger, conditions, action, ..."),
    brand: str = typer.Option(..., "--brand"),
) -> None:
    """Create an automation from a JSON file (disabled and in dry run unless it says so)."""
    from pathlib import Path

    import orjson
    from pydantic import ValidationError

    from automations import service
    from automations.models import AutomationSpec

    try:
        spec = AutomationSpec.model_validate(orjson.loads(Path(file).read_bytes()))
    except FileNotFoundError:
        typer.echo(f"error: no such file: {file}", err=True)
        raise typer.Exit(1) from None
    except (orjson.JSONDecodeError, ValidationError) as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(1) from None

    async def go(rt: Any) -> tuple[Any, str | None]:
        b = await _automation_brand(rt, brand)
        async with rt.pool.acquire() as conn:
            return await service.create(conn, rt.keyring, b.id, spec)

    automation, secret = _run(go)
    state = "enabled" if automation.enabled else "disabled"
    typer.echo(
        f"created {automation.id} {automation.name!r} ({state}, dry run {automation.dry_run})"
    )
    if secret:
        typer.echo(f"webhook signing secret (shown once): {secret}")


@automation_app.command("list")
def automation_list(brand: str = typer.Option(..., "--brand")) -> None:
    """List a brand's automations."""
    from automations import service

    async def go(rt: Any) -> list[dict]:
        b = await _automation_brand(rt, brand)
        async with rt.pool.acquire() as conn:
            return (await service.list_page(conn, b.id, 200, None))["data"]

    for a in _run(go):
        state = "enabled" if a["enabled"] else "disabled"
        mode = "dry-run" if a["dry_run"] else "live"
        typer.echo(
            f"{a['id']}\t{state}\t{mode}\t{a['trigger']['type']}\t{a['action']['type']}\t{a['name']}"
        )


def _automation_patch(brand: str, automation_id: str, **fields: Any) -> Any:
    from uuid import UUID

    from automations import service
    from automations.models import AutomationPatch

    async def go(rt: Any) -> Any:
        b = await _automation_brand(rt, brand)
        async with rt.pool.acquire() as conn:
            return await service.update(conn, b.id, UUID(automation_id), AutomationPatch(**fields))

    return _run(go)


@automation_app.command("enable")
def automation_enable(
    automation_id: str,
    brand: str = typer.Option(..., "--brand"),
    live: bool = typer.Option(False, "--live", help="Also leave dry run: really send."),
) -> None:
    """Switch an automation on (state triggers are armed: only changes from now fire)."""
    a = _automation_patch(brand, automation_id, enabled=True, dry_run=False if live else None)
    typer.echo(f"enabled {a.id} ({'dry run' if a.dry_run else 'live'})")


@automation_app.command("disable")
def automation_disable(automation_id: str, brand: str = typer.Option(..., "--brand")) -> None:
    """Switch an automation off (its queued runs are cancelled when they come due)."""
    a = _automation_patch(brand, automation_id, enabled=False)
    typer.echo(f"disabled {a.id}")


@automation_app.command("test")
def automation_test(
    automation_id: str,
    brand: str = typer.Option(..., "--brand"),
    profile: str = typer.Option(..., "--profile", help="Profile id to evaluate."),
) -> None:
    """Dry evaluation for one person: trigger, conditions, safety and the message (JSON)."""
    from uuid import UUID

    import orjson

    from automations import service
    from automations.config import automation_settings

    async def go(rt: Any) -> dict:
        b = await _automation_brand(rt, brand)
        async with rt.pool.acquire() as conn:
            return await service.dry_test(
                conn, rt.keyring, automation_settings(rt), b.id, UUID(automation_id), UUID(profile)
            )

    typer.echo(orjson.dumps(_run(go), default=str, option=orjson.OPT_INDENT_2).decode())


@automation_app.command("runs")
def automation_runs(
    automation_id: str,
    brand: str = typer.Option(..., "--brand"),
    status: str = typer.Option(None, help="Only runs with this status."),
    limit: int = typer.Option(50),
) -> None:
    """Recent runs: when, status, person, trigger reason, error, provider message id."""
    from uuid import UUID

    from automations import service

    async def go(rt: Any) -> list[dict]:
        b = await _automation_brand(rt, brand)
        async with rt.pool.acquire() as conn:
            page = await service.runs_page(
                conn, b.id, UUID(automation_id), status=status, limit=limit, cursor=None
            )
        return page["data"]

    for r in _run(go):
        typer.echo(
            f"{r['created_at']:%Y-%m-%d %H:%M}\t{r['status']}\t{r['profile_id']}\t"
            f"{r['trigger_reason']}\t{r['error'] or ''}\t{r['provider_message_id'] or ''}"
        )


@automation_app.command("run")
def automation_run() -> None:
    """Run the automation runner (streams, due runs, sweeps) until interrupted."""
    from automations.scheduler import run_automations

    _run(run_automations)


# --- predictions (issue 6) -------------------------------------------------------------

models_app = typer.Typer(help="Model versions (registry) of a brand.", no_args_is_help=True)
export_app = typer.Typer(help="Exports.", no_args_is_help=True)
dataset_app = typer.Typer(help="Public datasets for demos and benchmarks.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(export_app, name="export")
app.add_typer(dataset_app, name="dataset")


async def _brand_by_slug(rt: Any, slug: str) -> Any:
    from core import brands

    async with rt.pool.acquire() as conn:
        return await brands.get_brand(conn, slug)


def _as_of(value: str | None) -> Any:
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError:
        typer.echo(f"error: --as-of {value!r} is not a date", err=True)
        raise typer.Exit(1) from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _ml_bar() -> Any:
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


@app.command("train")
def train_cmd(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    as_of: str = typer.Option(None, "--as-of", help="Only events before this date (default now)."),
    horizon_days: int = typer.Option(
        None, "--horizon-days", help="H for churn and value (default 90 and 365)."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed and data, same models and metrics."),
    store_features: bool = typer.Option(True, help="Store the feature rows in `features`."),
) -> None:
    """Train churn, value, segments and recommendations; register, activate, score everyone."""
    from rich.console import Console
    from rich.table import Table

    from ml import pipeline

    when = _as_of(as_of)

    async def go(rt: Any) -> Any:
        b = await _brand_by_slug(rt, brand)
        with _ml_bar() as bar:
            task = bar.add_task("train", total=100)

            def progress(step: str, frac: float) -> None:
                bar.update(task, completed=100 * frac, description=step)

            rep = await pipeline.train(
                rt,
                b,
                as_of=when,
                horizon_days=horizon_days,
                seed=seed,
                progress=progress,
                store_features=store_features,
            )
        await _refresh_overview(rt, b.id)
        return rep

    rep = _run(go)
    table = Table(title=f"models as of {rep.as_of:%Y-%m-%d}")
    for col in ("model", "version", "metric", "ours", "BG/NBD peer"):
        table.add_column(col)
    rows = [
        ("churn", ("auc", "brier", "lift_top_decile"), "peer_bgnbd"),
        ("ltv", ("gini", "spearman", "aggregate_error"), "peer_bgnbd_gg"),
    ]
    for kind, names, peer in rows:
        m = rep.metrics[kind]
        for i, name in enumerate(names):
            table.add_row(
                f"{kind} (H={m['horizon_days']}d)" if i == 0 else "",
                str(rep.versions[kind]) if i == 0 else "",
                name,
                _fmt(m.get(name)),
                _fmt((m.get(peer) or {}).get(name)),
            )
    seg = rep.metrics["segment"]
    table.add_row("segment", str(rep.versions["segment"]), "clusters", str(seg["k"]), "")
    if "recommendations" in rep.versions:
        table.add_row("recommendations", str(rep.versions["recommendations"]), "", "", "")
    Console().print(table)
    for note in rep.notes:
        typer.echo(f"note: {note}")
    if rep.drift:
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(rep.drift.items())[:5])
        typer.echo(f"feature drift (PSI vs previous version, top 5): {top}")
    if rep.score is not None:
        typer.echo(
            f"scored {rep.score.profiles} profiles ({rep.score.predictions} predictions), "
            f"{rep.score.products} products, {rep.score.embeddings} embeddings"
        )
    typer.echo("seconds: " + ", ".join(f"{k} {v}" for k, v in rep.seconds.items()))


async def _refresh_overview(rt: Any, brand_id: Any) -> None:
    """New predictions change the dashboard's churn, value and segment charts: recompute its
    cached overview now (seconds at a million profiles) rather than on an analyst's visit."""
    from dashboard import overview

    await overview.warm(rt, brand_id)


@app.command("score")
def score_cmd(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    as_of: str = typer.Option(None, "--as-of", help="Score as of this date (default now)."),
) -> None:
    """Score every live profile with the active model versions."""
    from ml import pipeline

    when = _as_of(as_of)

    async def go(rt: Any) -> Any:
        b = await _brand_by_slug(rt, brand)
        with _ml_bar() as bar:
            task = bar.add_task("score", total=100)
            rep = await pipeline.score(
                rt,
                b,
                as_of=when,
                progress=lambda s, f: bar.update(task, completed=100 * f, description=s),
            )
        await _refresh_overview(rt, b.id)
        return rep

    rep = _run(go)
    typer.echo(
        f"scored {rep.profiles} profiles ({rep.predictions} predictions), {rep.products} "
        f"products, {rep.embeddings} embeddings in {rep.seconds:.1f}s"
    )


@export_app.command("predictions")
def export_predictions_cmd(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    key: str = typer.Option(..., "--key", help="loyalty_id, email or profile_id."),
    out: str = typer.Option(..., "--out", help="CSV file to write."),
) -> None:
    """CSV: key, churn_probability, churn_band, predicted_ltv, expected_purchases,
    expected_next_order, segment (one row per profile; the first-seen email/loyalty id)."""
    from ml import pipeline

    async def go(rt: Any) -> int:
        b = await _brand_by_slug(rt, brand)
        return await pipeline.export_predictions(rt, b, key, out)

    typer.echo(f"{_run(go)} rows -> {out}")


@models_app.command("list")
def models_list(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    kind: str = typer.Option(None, "--kind", help="churn, ltv, segment or recommendations."),
) -> None:
    """Versions with status, data window and headline metrics."""
    from ml import registry

    async def go(rt: Any) -> Any:
        b = await _brand_by_slug(rt, brand)
        async with rt.pool.acquire() as conn:
            return await registry.list_versions(conn, b.id, kind)

    heads = ("auc", "brier", "gini", "spearman", "k")
    for v in _run(go):
        m = ", ".join(f"{h} {_fmt(v.metrics[h])}" for h in heads if v.metrics.get(h) is not None)
        typer.echo(
            f"{v.kind:16} v{v.version:<4} {v.status:9} {v.created_at:%Y-%m-%d %H:%M}  "
            f"as_of {str(v.data_window.get('as_of', ''))[:10]}  {m}"
        )


@models_app.command("activate")
def models_activate(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    kind: str = typer.Option(..., "--kind", help="churn, ltv, segment or recommendations."),
    version: int = typer.Option(..., "--version", help="Version number to activate."),
) -> None:
    """Activate a version (the active one is retired). Run `cbrain score` to apply it."""
    from ml import registry

    async def go(rt: Any) -> Any:
        b = await _brand_by_slug(rt, brand)
        async with rt.pool.acquire() as conn:
            return await registry.activate(conn, b.id, kind, version)

    v = _run(go)
    typer.echo(f"{v.kind} v{v.version} active (run `cbrain score --brand {brand}` to apply)")


@models_app.command("rollback")
def models_rollback(
    brand: str = typer.Option(..., "--brand", help="Brand slug."),
    kind: str = typer.Option(
        None, "--kind", help="One kind; default: every kind with an earlier version."
    ),
) -> None:
    """Re-activate the version before the active one. Run `cbrain score` to apply it."""
    from ml import registry

    async def go(rt: Any) -> list[Any]:
        b = await _brand_by_slug(rt, brand)
        done = []
        async with rt.pool.acquire() as conn:
            for k in [kind] if kind else registry.KINDS:
                try:
                    done.append(await registry.rollback(conn, b.id, k))
                except registry.RegistryError as exc:
                    if kind:
                        raise
                    typer.echo(f"skipped {k}: {exc.message}")
        return done

    for v in _run(go):
        typer.echo(f"{v.kind} rolled back to v{v.version}")


@dataset_app.command("load")
def dataset_load(
    name: str = typer.Argument(..., help="completejourney"),
    brand: str = typer.Option(..., "--brand", help="Brand slug (created beforehand)."),
    limit_households: int = typer.Option(None, "--limit-households", help="First N households."),
    seed: int = typer.Option(7, "--seed", help="Seed of the generated identifiers."),
) -> None:
    """Load a public dataset through the real ingestion path (identity resolution included)."""
    from ml import cj_load

    if name != "completejourney":
        typer.echo("error: the only dataset is completejourney", err=True)
        raise typer.Exit(1)

    async def go(rt: Any) -> Any:
        b = await _brand_by_slug(rt, brand)
        with _ml_bar() as bar:
            task = bar.add_task("loading", total=100)
            return await cj_load.load(
                rt,
                b,
                limit_households=limit_households,
                seed=seed,
                progress=lambda f: bar.update(task, completed=100 * f),
            )

    rep = _run(go)
    typer.echo(
        f"{rep['households']} households, {rep['events']} purchase events "
        f"({rep['accepted']} accepted, {rep['processed']} processed)"
    )


slack_app = typer.Typer(help="Slack workspaces connected to a brand.", no_args_is_help=True)
app.add_typer(slack_app, name="slack")
gorgias_app = typer.Typer(help="The Gorgias helpdesk of a brand.", no_args_is_help=True)
app.add_typer(gorgias_app, name="gorgias")


@slack_app.command("connect")
def slack_connect(
    slug: str,
    bot_token: str = typer.Option(..., "--bot-token", help="The workspace's xoxb- bot token."),
    team_id: str = typer.Option(
        None, "--team-id", help="Expected workspace id (checked against the token)."
    ),
    signing_secret: str = typer.Option(
        None,
        "--signing-secret",
        help="Only for a brand's own Slack app; default: the app-wide SLACK_SIGNING_SECRET.",
    ),
) -> None:
    """Connect a Slack workspace to SLUG: the token is checked with auth.test, then sealed."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from assistant import surfaces_repo
    from core import brands

    async def go(rt: Any) -> str:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
        client = AsyncWebClient(token=bot_token, base_url=rt.settings.slack_api_base, timeout=10)
        try:
            me = await client.auth_test()
        except SlackApiError as exc:
            typer.echo(f"error: Slack refused the token: {exc.response.get('error')}", err=True)
            raise typer.Exit(1) from None
        if not me.get("bot_id"):
            typer.echo("error: that is not a bot token (xoxb-…)", err=True)
            raise typer.Exit(1)
        if team_id and me.get("team_id") != team_id:
            typer.echo(f"error: the token belongs to workspace {me.get('team_id')}", err=True)
            raise typer.Exit(1)
        await surfaces_repo.upsert_workspace(
            rt.pool,
            rt.keyring,
            brand.id,
            team_id=str(me["team_id"]),
            team_name=str(me.get("team") or ""),
            bot_user_id=str(me["user_id"]),
            bot_id=str(me.get("bot_id") or ""),
            bot_token=bot_token,
            signing_secret=signing_secret,
        )
        return f"connected Slack workspace {me['team_id']} ({me.get('team') or '?'}) to {slug}"

    typer.echo(_run(go))


@slack_app.command("list")
def slack_list(slug: str) -> None:
    """The Slack workspaces connected to SLUG."""
    from assistant import surfaces_repo
    from core import brands

    async def go(rt: Any) -> list[Any]:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            return await surfaces_repo.workspaces_of(conn, brand.id)

    for r in _run(go):
        secret = "own signing secret" if r["own_secret"] else "app signing secret"
        typer.echo(f"{r['team_id']}\t{r['team_name']}\tbot {r['bot_user_id']}\t{secret}")


@slack_app.command("disconnect")
def slack_disconnect(slug: str, team_id: str = typer.Option(..., "--team-id")) -> None:
    """Forget a workspace: its token is deleted and its requests are refused."""
    from assistant import surfaces_repo
    from core import brands

    async def go(rt: Any) -> bool:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            return await surfaces_repo.delete_workspace(conn, brand.id, team_id)

    if not _run(go):
        typer.echo(f"error: workspace {team_id} is not connected to {slug}", err=True)
        raise typer.Exit(1)
    typer.echo(f"disconnected {team_id} from {slug}")


@gorgias_app.command("connect")
def gorgias_connect(
    slug: str,
    domain: str = typer.Option(None, "--domain", help="Account name: 'acme' for acme.gorgias.com."),
    base_url: str = typer.Option(None, "--base-url", help="Instead of --domain."),
    email: str = typer.Option(..., "--email", help="The REST API user's email."),
    api_key: str = typer.Option(..., "--api-key", help="Settings → REST API key."),
    webhook_secret: str = typer.Option(
        None, "--webhook-secret", help="X-Webhook-Token value; generated when omitted."
    ),
    check: bool = typer.Option(True, "--check/--no-check", help="Try the key on the API."),
) -> None:
    """Connect SLUG's Gorgias account; prints the webhook URL and header for the HTTP
    integration (see docs/gorgias.md)."""
    import secrets as _secrets

    import httpx

    from assistant import surfaces_repo
    from assistant.gorgias_client import account_base_url
    from core import brands

    token = webhook_secret or _secrets.token_urlsafe(32)

    async def go(rt: Any) -> str:
        url = account_base_url(domain, base_url, rt.settings.gorgias_base_url)
        if check:
            async with httpx.AsyncClient(base_url=url, auth=(email, api_key), timeout=15) as h:
                try:
                    resp = await h.get("/api/account")
                except httpx.HTTPError as exc:
                    typer.echo(f"error: {url} unreachable: {type(exc).__name__}", err=True)
                    raise typer.Exit(1) from None
            if resp.status_code in (401, 403):
                typer.echo("error: Gorgias refused the email / API key", err=True)
                raise typer.Exit(1)
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
            await surfaces_repo.upsert_gorgias(
                conn, rt.keyring, brand.id, base_url=url, api_email=email, api_key=api_key
            )
            await brands.add_secret(conn, rt.keyring, brand.id, "gorgias", token, replace=True)
        return (
            f"connected Gorgias {url} to {slug}\n"
            f"webhook URL: {rt.settings.public_base_url}/integrations/gorgias/webhook?brand={slug}\n"
            f"header X-Webhook-Token: {token}"
        )

    typer.echo(_run(go))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
