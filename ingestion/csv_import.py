"""CSV and JSONL imports: map columns to canonical fields, report row errors by line number,
import the good rows through the same inbox as every other source, idempotently.

Rows sharing an event id (one row per line item, as POS exports are) must be adjacent; they
become one event with several items. Without an event id column, a row's idempotency key is
a hash of its content (plus its occurrence count in the file), so re-importing the same file
imports nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from core.errors import CBrainError, ValidationFailed
from core.events import EVENT_TYPES, SOURCES, CanonicalEvent, Identifiers, Item, Properties, Traits
from core.runtime import Runtime

CHUNK = 1000
MAX_ERRORS_KEPT = 200

_TOP = {"event_id", "type", "occurred_at", "source"}
_ITEM_FIELDS = set(Item.model_fields)
_ID_FIELDS = set(Identifiers.model_fields) - {"external_ids"}
_TRAIT_FIELDS = set(Traits.model_fields)
_PROP_FIELDS = set(Properties.model_fields) - {"items"}

# Column names recognised without --map (lower-cased, spaces/dashes as underscores).
ALIASES: dict[str, str] = {
    "event_id": "event_id",
    "id": "event_id",
    "type": "type",
    "event_type": "type",
    "occurred_at": "occurred_at",
    "timestamp": "occurred_at",
    "date": "occurred_at",
    "created_at": "occurred_at",
    "order_date": "occurred_at",
    "datetime": "occurred_at",
    "transaction_date": "occurred_at",
    "email": "identifiers.email",
    "e_mail": "identifiers.email",
    "email_address": "identifiers.email",
    "phone": "identifiers.phone",
    "mobile": "identifiers.phone",
    "phone_number": "identifiers.phone",
    "telephone": "identifiers.phone",
    "whatsapp": "identifiers.whatsapp",
    "loyalty_id": "identifiers.loyalty_id",
    "loyalty_card": "identifiers.loyalty_id",
    "loyalty_number": "identifiers.loyalty_id",
    "member_id": "identifiers.loyalty_id",
    "device_id": "identifiers.device_id",
    "cookie_id": "identifiers.cookie_id",
    "customer_id": "identifiers.external_ids.csv",
    "first_name": "traits.first_name",
    "firstname": "traits.first_name",
    "given_name": "traits.first_name",
    "last_name": "traits.last_name",
    "lastname": "traits.last_name",
    "surname": "traits.last_name",
    "family_name": "traits.last_name",
    "city": "traits.city",
    "town": "traits.city",
    "postcode": "traits.postcode",
    "zip": "traits.postcode",
    "zip_code": "traits.postcode",
    "postal_code": "traits.postcode",
    "country": "traits.country",
    "address": "traits.address",
    "address1": "traits.address",
    "state": "traits.state",
    "dob": "traits.dob",
    "date_of_birth": "traits.dob",
    "card_last4": "traits.card_last4",
    "order_id": "properties.order_id",
    "bill_number": "properties.order_id",
    "receipt_number": "properties.order_id",
    "invoice": "properties.order_id",
    "total": "properties.total",
    "amount": "properties.total",
    "order_total": "properties.total",
    "currency": "properties.currency",
    "store_id": "properties.store_id",
    "store": "properties.store_id",
    "product_id": "properties.items[].product_id",
    "sku": "properties.items[].sku",
    "product_name": "properties.items[].name",
    "item_name": "properties.items[].name",
    "category": "properties.items[].category",
    "quantity": "properties.items[].quantity",
    "qty": "properties.items[].quantity",
    "price": "properties.items[].price",
    "unit_price": "properties.items[].price",
}
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def _norm_col(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def validate_field(path: str) -> str:
    """A canonical path, or a ValidationFailed naming what is wrong with it."""
    if path in _TOP:
        return path
    head, _, rest = path.partition(".")
    ok = (
        (
            head == "identifiers"
            and (rest in _ID_FIELDS or re.fullmatch(r"external_ids\.[a-z0-9_]+", rest))
        )
        or (head == "traits" and rest in _TRAIT_FIELDS)
        or (
            head == "properties"
            and (
                rest in _PROP_FIELDS
                or (rest.startswith("items[].") and rest[8:] in _ITEM_FIELDS)
                or re.fullmatch(r"[a-z][a-z0-9_]{0,62}", rest) is not None
            )
        )
    )
    if not ok:
        raise ValidationFailed(
            f"unknown canonical field {path!r} (e.g. event_id, occurred_at, identifiers.email, "
            "traits.first_name, properties.total, properties.items[].product_id)"
        )
    return path


@dataclass
class ImportSpec:
    source: str = "csv"
    event_type: str | None = None
    fmt: str = "csv"
    mapping: dict[str, str] = field(default_factory=dict)  # column -> canonical path
    date_format: str | None = None
    currency: str | None = None

    @classmethod
    def build(
        cls,
        *,
        source: str,
        event_type: str | None,
        fmt: str,
        mappings: Iterable[str],
        date_format: str | None = None,
        currency: str | None = None,
    ) -> ImportSpec:
        if source not in SOURCES:
            raise ValidationFailed(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        if event_type is not None and event_type not in EVENT_TYPES:
            raise ValidationFailed(
                f"unknown event type {event_type!r}; one of {', '.join(EVENT_TYPES)}"
            )
        if fmt not in ("csv", "jsonl"):
            raise ValidationFailed(f"unknown format {fmt!r}; csv or jsonl")
        mapping = {}
        for item in mappings:
            for part in str(item).split(","):
                if not part.strip():
                    continue
                col, sep, target = part.partition("=")
                if not sep or not col.strip() or not target.strip():
                    raise ValidationFailed(f"--map takes COLUMN=FIELD, got {part!r}")
                mapping[col.strip()] = validate_field(target.strip())
        return cls(source, event_type, fmt, mapping, date_format, currency)

    def resolve_columns(self, header: Sequence[str]) -> dict[str, str]:
        """column -> path: explicit --map entries, else recognised names."""
        missing = [c for c in self.mapping if c not in header]
        if missing:
            raise ValidationFailed(f"mapped column(s) not in the file header: {', '.join(missing)}")
        if self.mapping:
            return dict(self.mapping)
        out = {}
        for col in header:
            key = _norm_col(col)
            if key in ALIASES:
                out[col] = ALIASES[key]
            elif "." in col:
                try:
                    out[col] = validate_field(col.strip())
                except ValidationFailed:
                    continue
        if not out:
            raise ValidationFailed("no column could be mapped: pass --map COLUMN=FIELD")
        return out


@dataclass
class RowError:
    line: int
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    processed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(RowError(line, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "events": self.events,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "processed": self.processed,
            "errors": [{"line": e.line, "message": e.message} for e in self.errors],
        }


def _parse_time(value: str, fmt: str | None) -> datetime:
    text = value.strip()
    if fmt:
        parsed = datetime.strptime(text, fmt)
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for f in _DATE_FORMATS:
                try:
                    parsed = datetime.strptime(text, f)
                    break
                except ValueError:
                    continue
            else:
                raise ValueError(
                    f"occurred_at: cannot read {text[:40]!r} as a date (ISO 8601 expected, or pass --date-format)"
                ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _set(doc: dict[str, Any], path: str, value: Any, item: dict[str, Any]) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        doc[head] = value
        return
    if rest.startswith("items[]."):
        item[rest[8:]] = value
        return
    section = doc.setdefault(head, {})
    if rest.startswith("external_ids."):
        section.setdefault("external_ids", {})[rest[13:]] = value
    else:
        section[rest] = value


_NUMERIC = {"properties.total", "properties.items[].price", "properties.items[].quantity"}


def _row_doc(row: dict[str, str], columns: dict[str, str], spec: ImportSpec) -> tuple[dict, dict]:
    doc: dict[str, Any] = {}
    item: dict[str, Any] = {}
    for col, path in columns.items():
        raw = row.get(col)
        if raw is None or str(raw).strip() == "":
            continue
        value: Any = str(raw).strip()
        if path in _NUMERIC:
            try:
                value = (
                    float(value.replace(",", ""))
                    if value.count(",") and value.count(".")
                    else float(value.replace(",", "."))
                )
            except ValueError:
                raise ValueError(f"{path} ({col}): {value[:30]!r} is not a number") from None
        elif path == "occurred_at":
            value = _parse_time(value, spec.date_format)
        _set(doc, path, value, item)
    return doc, item


def _finish(doc: dict[str, Any], items: list[dict], spec: ImportSpec, fallback_id: str) -> dict:
    doc = dict(doc)
    doc.setdefault("source", spec.source)
    doc["event_id"] = str(
        doc.get("event_id") or doc.get("properties", {}).get("order_id") or fallback_id
    )
    if (
        spec.source == "pos"
        and doc.get("properties", {}).get("store_id")
        and doc.get("properties", {}).get("order_id")
    ):
        p = doc["properties"]
        doc["event_id"] = f"{p['store_id']}:{p['order_id']}"
    props = doc.setdefault("properties", {})
    if items:
        props["items"] = items
        if "total" not in props:
            props["total"] = round(
                sum(float(i.get("price", 0)) * float(i.get("quantity", 1)) for i in items), 2
            )
    if spec.currency and "currency" not in props:
        props["currency"] = spec.currency
    if "type" not in doc:
        # An order whose lines add up below zero is a return or credit note (retail exports
        # such as Online Retail's "C..." invoices carry negative quantities), not a purchase.
        total = props.get("total")
        negative = isinstance(total, int | float) and total < 0
        doc["type"] = spec.event_type or (
            "refund" if negative else "purchase" if (total is not None or items) else "identify"
        )
    if "occurred_at" not in doc:
        raise ValueError("occurred_at: missing (map a date column)")
    doc["occurred_at"] = (
        doc["occurred_at"].isoformat()
        if isinstance(doc["occurred_at"], datetime)
        else doc["occurred_at"]
    )
    return doc


def iter_events(
    lines: Iterable[str], spec: ImportSpec, brand_slug: str, report: ImportReport
) -> Iterator[tuple[int, CanonicalEvent]]:
    """Yield (line, event) for good rows; bad rows are recorded in `report` with their line."""
    from ingestion.service import parse_event

    if spec.fmt == "jsonl":
        for n, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            report.rows += 1
            try:
                raw = orjson.loads(text)
                if isinstance(raw, dict) and spec.source and "source" not in raw:
                    raw["source"] = spec.source
                yield n, parse_event(raw, brand_slug)
            except orjson.JSONDecodeError as exc:
                report.error(n, f"invalid JSON: {exc}")
            except CBrainError as exc:
                report.error(n, exc.message)
        return

    reader = csv.DictReader(lines if not isinstance(lines, list) else io.StringIO("".join(lines)))
    header = reader.fieldnames or []
    if not header:
        raise ValidationFailed("the file is empty or has no header row")
    columns = spec.resolve_columns(header)
    seen: dict[str, int] = {}
    group_doc: dict | None = None
    group_items: list[dict] = []
    group_line = 0
    group_key = ""

    def flush() -> Iterator[tuple[int, CanonicalEvent]]:
        if group_doc is None:
            return
        try:
            yield (
                group_line,
                parse_event(_finish(group_doc, group_items, spec, group_key), brand_slug),
            )
        except (CBrainError, ValueError) as exc:
            report.error(group_line, getattr(exc, "message", None) or str(exc))

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rows += 1
            report.error(reader.line_num, f"malformed CSV: {exc}")
            continue
        report.rows += 1
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            report.error(line, f"expected {len(header)} columns, found a different number")
            continue
        try:
            doc, item = _row_doc(row, columns, spec)
        except ValueError as exc:
            report.error(line, str(exc))
            continue
        explicit = doc.get("event_id") or doc.get("properties", {}).get("order_id")
        if explicit:
            key = str(explicit)
        else:
            digest = hashlib.sha256(
                "\x1f".join(f"{k}={row[k]}" for k in header).encode()
            ).hexdigest()[:32]
            seen[digest] = seen.get(digest, 0) + 1
            key = f"row:{digest}:{seen[digest]}"
        if group_doc is not None and explicit and key == group_key:
            if item:
                group_items.append(item)
            continue
        yield from flush()
        group_doc, group_items, group_line, group_key = doc, ([item] if item else []), line, key
    yield from flush()


def preview(lines: list[str], spec: ImportSpec, brand_slug: str, limit: int = 20) -> dict[str, Any]:
    """Dry run: the first events as they would be stored, and every row error."""
    report = ImportReport()
    events: list[dict[str, Any]] = []
    for _, ev in iter_events(lines, spec, brand_slug, report):
        report.events += 1
        if len(events) < limit:
            events.append(ev.wire())
    return {"preview": events, **report.as_dict()}


async def import_lines(
    rt: Runtime,
    brand_id: UUID,
    brand_slug: str,
    lines: Iterable[str],
    spec: ImportSpec,
    *,
    process: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import in chunks. With `process`, each chunk is resolved inline (no server needed);
    otherwise chunks are announced to the stream workers."""
    from core import brands
    from ingestion import service
    from ingestion.processing import process_batch

    report = ImportReport()
    async with rt.pool.acquire() as conn:
        brand = await brands.get_brand_by_id(conn, brand_id)
    chunk: list[tuple[int, CanonicalEvent]] = []

    async def flush() -> None:
        if not chunk:
            return
        # Two rows of one chunk with the same id: the inbox keeps the first.
        results = await service.accept(rt, brand_id, chunk, conn=rt.pool if process else None)
        report.accepted += sum(r.status == "accepted" for r in results)
        report.duplicates += sum(r.status == "duplicate" for r in results)
        if process:
            ids = [r.raw_id for r in results if r.raw_id]
            if ids:
                done = await process_batch(rt, brand, ids)
                report.processed += done.processed + done.suppressed
        if progress:
            progress(len(chunk))
        chunk.clear()

    for index, event in iter_events(lines, spec, brand_slug, report):
        report.events += 1
        chunk.append((index, event))
        if len(chunk) >= CHUNK:
            await flush()
    await flush()
    if process:
        # Rows left pending by an earlier, interrupted import are finished now too.
        from ingestion.worker import drain

        report.processed += await drain(rt, brand_id)
    return report
