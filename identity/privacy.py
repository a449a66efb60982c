"""Data-subject requests: delete and export by any identifier, as asynchronous jobs.

A request is a `deletion_requests` row holding only keyed hashes of the identifiers it names
(Shopify's customers/redact and customers/data_request arrive the same way from ingestion).
`run_privacy_jobs` claims rows with `FOR UPDATE SKIP LOCKED`, so any number of runners can
work side by side; a job is tried up to MAX_ATTEMPTS times, and a runner that died mid-job
leaves it `running` until it is older than STALE_AFTER_S and another runner takes it over
(delete and export are both idempotent).

Delete: everything about the person goes in one transaction under the identity locks (the
identifiers first, then the profiles, as identity takes them), suppressions stay behind so
later events naming them are dropped; then the cached 360s, the stream entries that carried
their inbox ids or profile ids, and any other brand key naming their profiles are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from redis.exceptions import RedisError

from core import brands as brands_repo
from core.brands import Brand
from core.db import is_transient
from core.errors import NotFound, ValidationFailed
from core.logging import get_logger
from core.redis import brand_key
from core.streams import DEAD, MERGED, RAW, RESOLVED, publish, stream
from identity import _erasure, repo
from identity.profile360 import audit
from identity.service import IdentityConfig, invalidate

MAX_ATTEMPTS = 5
STALE_AFTER_S = 900
KINDS = ("delete", "export")
RUNNER = "privacy-runner"

_log = get_logger("cbrain.privacy")

INSERT_JOB = """
INSERT INTO deletion_requests (brand_id, kind, requested_by, identifier_hashes, summary)
VALUES ($1, $2, $3, $4, $5) RETURNING id, kind, status, created_at"""
GET_JOB = """
SELECT id, kind, status, requested_by, summary, error, created_at, started_at, finished_at,
       attempts, result_enc
FROM deletion_requests WHERE brand_id = $1 AND id = $2"""
LIST_JOBS = """
SELECT id, kind, status, requested_by, summary, error, created_at, started_at, finished_at,
       attempts, NULL::bytea AS result_enc
FROM deletion_requests
WHERE brand_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4"""
CLAIM = """
UPDATE deletion_requests d SET status = 'running', started_at = now(), attempts = d.attempts + 1
WHERE d.brand_id = $1 AND d.id = (
    SELECT id FROM deletion_requests
    WHERE brand_id = $1 AND kind = ANY($2::text[])
      AND (status = 'pending'
           OR (status = 'running' AND started_at < now() - make_interval(secs => $3)))
    ORDER BY created_at LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.kind, d.identifier_hashes, d.attempts"""
LOCK_JOB = """
SELECT id FROM deletion_requests WHERE brand_id = $1 AND id = $2 AND status = 'running'
FOR UPDATE SKIP LOCKED"""
FINISH = """
UPDATE deletion_requests SET status = 'done', finished_at = now(), summary = summary || $3,
       result_enc = $4, identifier_hashes = $5, error = NULL
WHERE brand_id = $1 AND id = $2"""
FAIL = """
UPDATE deletion_requests SET status = $3, error = $4, finished_at = CASE WHEN $3 = 'failed'
       THEN now() END
WHERE brand_id = $1 AND id = $2"""


@dataclass
class JobOutcome:
    id: UUID
    kind: str
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def request_refs(brand: Brand, crypto: Any, identifiers: dict[str, Any]) -> list[dict[str, str]]:
    """The keyed hashes of the identifiers a request names, as stored on the job. Invalid
    values and placeholders (test@test.com: suppressing it would drop everyone's events) are
    refused with the field named."""
    from identity.keys import identifier_keys

    cfg = IdentityConfig.of(brand)
    keys = identifier_keys(
        crypto,
        identifiers,
        region=cfg.region,
        provider_rules=cfg.provider_rules,
        blocklist=cfg.blocklist,
    )
    as_kind = {"whatsapp": "phone", "external_ids": "external"}
    named = {k for k, v in identifiers.items() if v}
    usable = {k.kind for k in keys if k.usable}
    bad = sorted(k for k in named if as_kind.get(k, k) not in usable)
    if bad:
        raise ValidationFailed(
            f"{bad[0]}: not a valid identifier of one person",
            details=[{"field": b, "message": "invalid or a placeholder"} for b in bad],
        )
    return [{"kind": k.kind, "hash": k.hash.hex()} for k in keys if k.usable]


async def request_job(
    conn: asyncpg.Connection,
    crypto: Any,
    brand: Brand,
    kind: str,
    identifiers: dict[str, Any],
    profile_id: UUID | None,
    *,
    actor: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Queue a delete or export job for the person the identifiers (or profile id) name."""
    refs = request_refs(brand, crypto, identifiers)
    if profile_id is not None:
        refs.append({"kind": "profile", "id": str(profile_id)})
    if not refs:
        raise ValidationFailed(
            "name the person: email, phone, whatsapp, loyalty_id, device_id, cookie_id, "
            "external_ids or profile_id",
            details=[{"field": "body", "message": "no identifier"}],
        )
    row = await conn.fetchrow(
        INSERT_JOB,
        brand.id,
        kind,
        actor,
        refs,
        {"identifier_kinds": sorted({r["kind"] for r in refs})},
    )
    await audit(conn, brand.id, actor, f"privacy.{kind}.requested", str(row["id"]), {}, request_id)
    return {
        "id": str(row["id"]),
        "kind": kind,
        "status": row["status"],
        "created_at": row["created_at"],
    }


def _job(r: asyncpg.Record, crypto: Any, *, with_result: bool) -> dict[str, Any]:
    out = {
        "id": str(r["id"]),
        "kind": r["kind"],
        "status": r["status"],
        "requested_by": r["requested_by"],
        "summary": r["summary"],
        "error": r["error"],
        "attempts": r["attempts"],
        "created_at": r["created_at"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
    }
    if with_result and r["result_enc"] is not None:
        out["result"] = orjson.loads(crypto.decrypt(r["result_enc"]))
    return out


async def get_job(
    conn: asyncpg.Connection, crypto: Any, brand_id: UUID, job_id: UUID, *, with_result: bool
) -> dict[str, Any]:
    """A job's status; a finished export carries its result when `with_result`."""
    r = await conn.fetchrow(GET_JOB, brand_id, job_id)
    if r is None:
        raise NotFound("no such privacy job")
    return _job(r, crypto, with_result=with_result)


async def list_jobs(
    conn: asyncpg.Connection, brand_id: UUID, *, status: str | None, before: UUID | None, limit: int
) -> list[dict[str, Any]]:
    """Jobs newest first (results are only served one job at a time)."""
    rows = await conn.fetch(LIST_JOBS, brand_id, status, before, limit)
    return [_job(r, None, with_result=False) for r in rows]


def _split(hashes: Sequence[dict[str, Any]]) -> tuple[list[_erasure.Ref], list[UUID]]:
    refs: list[_erasure.Ref] = []
    pids: list[UUID] = []
    for h in hashes or []:
        if h.get("kind") == "profile" and h.get("id"):
            pids.append(UUID(str(h["id"])))
        elif h.get("kind") and h.get("hash"):
            refs.append((str(h["kind"]), bytes.fromhex(str(h["hash"]))))
    return refs, pids


async def _run_one(rt: Any, brand: Brand, sweep: dict[str, set]) -> JobOutcome | None:
    """Claim and run one job of `brand`; None when there is nothing to claim."""
    async with rt.pool.acquire() as conn:
        job = await conn.fetchrow(CLAIM, brand.id, list(KINDS), STALE_AFTER_S)
    if job is None:
        return None
    started = time.perf_counter()
    crypto = rt.keyring.for_brand(str(brand.id))
    refs, pids = _split(job["identifier_hashes"])
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(LOCK_JOB, brand.id, job["id"]) is None:
                return JobOutcome(job["id"], job["kind"], "skipped")
            person = await _erasure.find_person(conn, brand.id, refs, pids)
            # The locks identity takes, in its order: identifiers, then profiles.
            await repo.lock_keys(conn, brand.id, [f"{k}:{h.hex()}" for k, h in refs + person.refs])
            await repo.lock_profiles(conn, brand.id, person.profiles)
            person = await _erasure.find_person(conn, brand.id, refs, pids)
            await repo.lock_profiles(conn, brand.id, person.profiles)
            result_enc = None
            if job["kind"] == "delete":
                counts, raw_ids = await _erasure.erase(
                    conn, crypto, brand.id, job["id"], person, refs, region=brand.region
                )
                sweep["raw"].update(raw_ids)
                sweep["profiles"].update(str(p) for p in person.profiles)
                summary = {"deleted": counts, "profiles": len(person.profiles)}
                # The record of the request keeps keyed hashes only, no profile ids.
                kept = [{"kind": k, "hash": h.hex()} for k, h in sorted(set(refs + person.refs))]
            else:
                data = await _erasure.export(conn, crypto, brand.id, person)
                result_enc = crypto.encrypt(orjson.dumps(data, default=str))
                summary = {
                    "profiles": len(data["profiles"]),
                    "events": len(data["events"]),
                    "identifiers": len(data["identifiers"]),
                }
                kept = list(job["identifier_hashes"])
            await conn.execute(FINISH, brand.id, job["id"], summary, result_enc, kept)
            await audit(
                conn, brand.id, RUNNER, f"privacy.{job['kind']}.done", str(job["id"]), summary
            )
    except Exception as exc:
        retry = job["attempts"] < MAX_ATTEMPTS and is_transient(exc)
        status = "pending" if retry else "failed"
        _log.error("privacy job failed", job=str(job["id"]), error=type(exc).__name__, retry=retry)
        async with rt.pool.acquire() as conn:
            await conn.execute(
                FAIL, brand.id, job["id"], status, f"{type(exc).__name__}: {exc}"[:500]
            )
        return JobOutcome(job["id"], job["kind"], status, seconds=time.perf_counter() - started)
    if job["kind"] == "delete":
        # After commit: a reader that refilled the cache before it would serve a ghost.
        await invalidate(rt, brand.id, person.profiles)
    return JobOutcome(job["id"], job["kind"], "done", summary, time.perf_counter() - started)


async def process_pending(
    rt: Any, brand_id: UUID | None = None, *, limit: int = 100
) -> list[JobOutcome]:
    """Run up to `limit` queued jobs per brand (every brand when `brand_id` is None), purge
    inbox rows dropped as suppressed since the last pass, then clear Redis of what the
    deletions left behind (stream entries, keys)."""
    async with rt.pool.acquire() as conn:
        if brand_id is None:
            found = await brands_repo.list_brands(conn)
        else:
            found = [await brands_repo.get_brand_by_id(conn, brand_id)]
    outcomes: list[JobOutcome] = []
    for brand in found:
        sweep: dict[str, set] = {"raw": set(), "profiles": set()}
        for _ in range(limit):
            outcome = await _run_one(rt, brand, sweep)
            if outcome is None:
                break
            outcomes.append(outcome)
        async with rt.pool.acquire() as conn:
            sweep["raw"].update(await _erasure.purge_suppressed(conn, brand.id))
        if sweep["raw"] or sweep["profiles"]:
            await scrub_redis(rt, brand.id, sweep["raw"], sweep["profiles"])
    return outcomes


async def run_privacy_jobs(
    rt: Any, *, poll_s: float = 5.0, stop: asyncio.Event | None = None
) -> None:
    """The job runner: process queued privacy jobs of every brand until `stop` is set or the
    task is cancelled. Start it beside the API (`app/wiring.background_tasks`)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            done = await process_pending(rt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.error("privacy runner pass failed", error=type(exc).__name__, exc_info=exc)
            done = []
        if not done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)


# Stream name -> the fields that carry inbox ids ("ids") or profile ids.
_STREAM_FIELDS = {
    RAW: ("ids",),
    DEAD: ("ids",),
    RESOLVED: ("profiles",),
    MERGED: ("survivor", "merged"),
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def scrub_redis(
    rt: Any, brand_id: UUID, raw_ids: set[int], profile_ids: set[str], *, page: int = 1000
) -> dict[str, int]:
    """Delete stream entries naming the erased inbox rows or profiles (entries that also name
    others are re-added without them) and every brand key whose name holds an erased profile
    id. A Redis outage is logged: entries only name ids whose rows are already gone."""
    raw = {str(i) for i in raw_ids}
    counts = {"stream_entries": 0, "keys": 0}
    try:
        for name, fields in _STREAM_FIELDS.items():
            key = stream(brand_id, name)
            start = "-"
            while True:
                entries = await rt.redis.xrange(key, min=start, max="+", count=page)
                if not entries:
                    break
                for entry_id, values in entries:
                    if await _scrub_entry(
                        rt, brand_id, name, key, entry_id, values, fields, raw, profile_ids
                    ):
                        counts["stream_entries"] += 1
                if len(entries) < page:
                    break
                start = "(" + _text(entries[-1][0])
        doomed = []
        async for k in rt.redis.scan_iter(match=brand_key(str(brand_id), "*"), count=page):
            text = _text(k)
            if any(p in text for p in profile_ids):
                doomed.append(k)
        for i in range(0, len(doomed), 500):
            counts["keys"] += await rt.redis.delete(*doomed[i : i + 500])
    except (RedisError, OSError) as exc:
        _log.warning("privacy redis scrub incomplete", error=type(exc).__name__)
    return counts


async def _scrub_entry(
    rt: Any,
    brand_id: UUID,
    name: str,
    key: str,
    entry_id: Any,
    values: dict[Any, Any],
    fields: tuple[str, ...],
    raw: set[str],
    profiles: set[str],
) -> bool:
    doomed = raw if name in (RAW, DEAD) else profiles
    decoded = {_text(k): _text(v) for k, v in values.items()}
    hit = False
    rest: dict[str, str] = {}
    for f in fields:
        items = [x for x in decoded.get(f, "").split(",") if x]
        kept = [x for x in items if x not in doomed]
        hit = hit or len(kept) != len(items)
        rest[f] = ",".join(kept)
    if not hit:
        return False
    await rt.redis.xdel(key, entry_id)
    # A merge announcement is about the person alone; a batch notice also names others.
    if name != MERGED and any(rest.values()):
        await publish(rt.redis, brand_id, name, {**decoded, **rest})
    return True
