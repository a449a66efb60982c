"""CSV uploads from the browser: the file is kept sealed in Redis while the analyst maps its
columns and reads the dry-run preview; the import then runs in the background through
`ingestion.csv_import.import_lines` (the same path as `cbrain import`), reporting progress.

The upload holds customer data, so it is AES-GCM sealed with the brand's key and expires
after UPLOAD_TTL_S. An import's progress is kept in process memory and mirrored to Redis
per chunk, so any replica can answer the progress poll; if the server stops mid-import, the
rows already accepted sit in the inbox and the stream workers (or the sweeper) finish them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import time
from typing import Any
from uuid import UUID

import orjson

from core.errors import NotFound, ValidationFailed
from core.logging import get_logger
from core.redis import brand_key
from ingestion import csv_import

UPLOAD_TTL_S = 3600
JOB_TTL_S = 24 * 3600
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_log = get_logger("cbrain.dashboard")
_jobs: dict[str, dict[str, Any]] = {}
_tasks: set[asyncio.Task[Any]] = set()

# The canonical fields a column can be mapped to, in the order the mapping menu shows them.
FIELDS = [
    "event_id",
    "occurred_at",
    "type",
    "identifiers.email",
    "identifiers.phone",
    "identifiers.whatsapp",
    "identifiers.loyalty_id",
    "identifiers.device_id",
    "identifiers.cookie_id",
    "identifiers.external_ids.csv",
    "traits.first_name",
    "traits.last_name",
    "traits.city",
    "traits.postcode",
    "traits.country",
    "traits.address",
    "traits.state",
    "traits.dob",
    "properties.order_id",
    "properties.total",
    "properties.currency",
    "properties.store_id",
    "properties.items[].product_id",
    "properties.items[].sku",
    "properties.items[].name",
    "properties.items[].category",
    "properties.items[].quantity",
    "properties.items[].price",
]


def _upload_key(brand_id: UUID, upload_id: str) -> str:
    return brand_key(str(brand_id), "dash", "upload", upload_id)


def _job_key(brand_id: UUID, job_id: str) -> str:
    return brand_key(str(brand_id), "dash", "import", job_id)


def _id(value: str) -> str:
    if not value.isalnum() or not 8 <= len(value) <= 40:
        raise NotFound("no such upload")
    return value


async def save_upload(
    rt: Any,
    brand_id: UUID,
    filename: str,
    data: bytes,
    source: str,
    event_type: str | None,
    fmt: str,
) -> str:
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationFailed("upload larger than 50 MB: use `cbrain import` for big files")
    if not data.strip():
        raise ValidationFailed("the file is empty")
    # Validates source / type / format before anything is stored.
    csv_import.ImportSpec.build(source=source, event_type=event_type, fmt=fmt, mappings=[])
    text = data.decode("utf-8-sig", errors="replace")
    mapping: dict[str, str] = {}
    if fmt == "csv":
        header = header_of(text)
        spec = csv_import.ImportSpec.build(
            source=source, event_type=event_type, fmt=fmt, mappings=[]
        )
        try:
            mapping = spec.resolve_columns(header)
        except ValidationFailed:
            mapping = {}  # nothing recognised: the analyst maps by hand
    upload_id = secrets.token_hex(12)
    meta = {
        "filename": filename[:200],
        "source": source,
        "type": event_type,
        "format": fmt,
        "mapping": mapping,
        "size": len(data),
        "uploaded_at": time.time(),
    }
    sealed = rt.keyring.for_brand(str(brand_id)).encrypt(orjson.dumps({"meta": meta, "text": text}))
    await rt.redis.set(_upload_key(brand_id, upload_id), sealed, ex=UPLOAD_TTL_S)
    return upload_id


async def load_upload(rt: Any, brand_id: UUID, upload_id: str) -> dict[str, Any]:
    raw = await rt.redis.get(_upload_key(brand_id, _id(upload_id)))
    if raw is None:
        raise NotFound("this upload has expired or does not exist: upload the file again")
    return orjson.loads(rt.keyring.for_brand(str(brand_id)).decrypt(raw))


async def update_mapping(
    rt: Any, brand_id: UUID, upload_id: str, mapping: dict[str, str], event_type: str | None
) -> None:
    doc = await load_upload(rt, brand_id, upload_id)
    for target in mapping.values():
        csv_import.validate_field(target)
    unknown = [c for c in mapping if c not in header_of(doc["text"])]
    if unknown:
        raise ValidationFailed(f"no column named {unknown[0]!r} in the file")
    doc["meta"]["mapping"] = mapping
    doc["meta"]["type"] = event_type
    csv_import.ImportSpec.build(
        source=doc["meta"]["source"], event_type=event_type, fmt=doc["meta"]["format"], mappings=[]
    )
    sealed = rt.keyring.for_brand(str(brand_id)).encrypt(orjson.dumps(doc))
    await rt.redis.set(_upload_key(brand_id, upload_id), sealed, ex=UPLOAD_TTL_S)


def header_of(text: str) -> list[str]:
    first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    return [c.strip() for c in first]


def spec_of(meta: dict[str, Any]) -> csv_import.ImportSpec:
    return csv_import.ImportSpec.build(
        source=meta["source"],
        event_type=meta["type"],
        fmt=meta["format"],
        mappings=[f"{c}={f}" for c, f in meta["mapping"].items()],
    )


def preview(doc: dict[str, Any], brand_slug: str, limit: int = 20) -> dict[str, Any]:
    """The dry run: the first events as they would be stored, and every row error."""
    lines = doc["text"].splitlines(keepends=True)
    try:
        out = csv_import.preview(lines, spec_of(doc["meta"]), brand_slug, limit=limit)
        out["errors"].sort(key=lambda e: e["line"])
        return out
    except ValidationFailed as exc:
        return {
            "preview": [],
            "rows": 0,
            "events": 0,
            "rejected": 0,
            "errors": [],
            "fatal": exc.message,
        }


async def start_import(rt: Any, brand_id: UUID, brand_slug: str, upload_id: str, actor: str) -> str:
    """Run the import in the background; returns the job id to poll."""
    doc = await load_upload(rt, brand_id, upload_id)
    spec = spec_of(doc["meta"])
    planned = await asyncio.to_thread(preview, doc, brand_slug, 0)
    if planned.get("fatal"):
        raise ValidationFailed(planned["fatal"])
    job_id = secrets.token_hex(12)
    now = time.time()
    for old in [k for k, v in _jobs.items() if now - v.get("finished_at", now) > 3600]:
        del _jobs[old]  # finished an hour ago: Redis keeps the record
    state: dict[str, Any] = {
        "id": job_id,
        "status": "running",
        "filename": doc["meta"]["filename"],
        "total": planned["events"],
        "done": 0,
        "started_at": time.time(),
        "actor": actor,
        "report": None,
        "error": None,
    }
    _jobs[job_id] = state
    await _mirror(rt, brand_id, state)
    lines = doc["text"].splitlines(keepends=True)
    task = asyncio.create_task(_run(rt, brand_id, brand_slug, upload_id, lines, spec, state))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return job_id


async def _mirror(rt: Any, brand_id: UUID, state: dict[str, Any]) -> None:
    try:
        await rt.redis.set(_job_key(brand_id, state["id"]), orjson.dumps(state), ex=JOB_TTL_S)
    except Exception:
        _log.warning("import progress write failed")


async def _run(
    rt: Any,
    brand_id: UUID,
    brand_slug: str,
    upload_id: str,
    lines: list[str],
    spec: csv_import.ImportSpec,
    state: dict[str, Any],
) -> None:
    pending: set[asyncio.Task[Any]] = set()

    def progress(n: int) -> None:
        state["done"] += n
        t = asyncio.get_running_loop().create_task(_mirror(rt, brand_id, dict(state)))
        pending.add(t)
        t.add_done_callback(pending.discard)

    try:
        report = await csv_import.import_lines(
            rt, brand_id, brand_slug, lines, spec, process=True, progress=progress
        )
        state.update(status="done", report=report.as_dict(), done=state["total"])
        from dashboard import overview

        await overview.mark_stale(rt, brand_id)
    except Exception as exc:
        _log.error("dashboard import failed", error=type(exc).__name__)
        state.update(status="failed", error=getattr(exc, "message", None) or type(exc).__name__)
    finally:
        state["finished_at"] = time.time()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await _mirror(rt, brand_id, state)
        try:
            await rt.redis.delete(_upload_key(brand_id, upload_id))
        except Exception:
            _log.warning("upload cleanup failed")


async def wait_idle() -> None:
    """Wait for the imports running in this process (tests, clean shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


async def job(rt: Any, brand_id: UUID, job_id: str) -> dict[str, Any]:
    """An import's progress; the Redis copy is the one bound to the brand."""
    raw = await rt.redis.get(_job_key(brand_id, _id(job_id)))
    if raw is None:
        raise NotFound("no such import")
    stored = orjson.loads(raw)
    local = _jobs.get(job_id)
    # This process runs it: its memory is ahead of the last mirrored chunk.
    return dict(local) if local is not None and local["status"] != "done" else stored
