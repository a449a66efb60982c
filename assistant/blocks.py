"""An `Answer` as a Slack message: Block Kit blocks plus the plain-text fallback.

Layout: an optional header, the answer in mrkdwn sections, key/value tables as section
fields, other small tables as aligned monospace blocks, and a context line naming the tools
and numbers the answer rests on (and offline mode). Slack's limits are respected: at most 50
blocks, 3000 characters per section text, 10 fields of 2000, 150 for a header.
"""

from __future__ import annotations

import re
from typing import Any

from assistant.types import Answer

MAX_BLOCKS = 50
SECTION_CHARS = 3000
FIELD_CHARS = 2000
HEADER_CHARS = 150
MAX_FIELDS = 10
TABLE_ROWS = 12
CELL_CHARS = 28
FALLBACK_CHARS = 3000

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_BULLET = re.compile(r"^(\s*)[-*]\s+", re.M)


def escape(text: str) -> str:
    """Slack control characters: `<!channel>` or `<@U…>` in data must never ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Common Markdown (from the model) to Slack mrkdwn, with Slack's markup escaped."""
    text = escape(text)
    text = _HEADING.sub(lambda m: f"*{m.group(1).strip()}*", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    return _BOLD.sub(lambda m: f"*{m.group(1)}*", text)


def _chunks(text: str, limit: int) -> list[str]:
    """Split on paragraph, then line, then hard boundaries so each piece fits."""
    out: list[str] = []
    current = ""
    for para in text.split("\n\n"):
        piece = para if not current else "\n\n" + para
        if len(current) + len(piece) <= limit:
            current += piece
            continue
        if current:
            out.append(current)
        current = ""
        while len(para) > limit:
            cut = para.rfind("\n", 0, limit)
            cut = cut if cut > limit // 2 else limit
            out.append(para[:cut])
            para = para[cut:].lstrip("\n")
        current = para
    if current:
        out.append(current)
    return [c for c in out if c.strip()]


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:,.2f}"
    s = str(value).replace("\n", " ").strip()
    return s if len(s) <= CELL_CHARS else s[: CELL_CHARS - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_CHARS]}}


def _fields_block(table: dict[str, Any]) -> list[dict[str, Any]]:
    """A two-column table (label, value) as section fields, at most 10 per section."""
    rows = [r for r in table.get("rows") or [] if isinstance(r, list | tuple) and len(r) >= 2]
    blocks = []
    title = table.get("title")
    for i in range(0, min(len(rows), 2 * MAX_FIELDS), MAX_FIELDS):
        fields = [
            {
                "type": "mrkdwn",
                "text": f"*{escape(_cell(r[0]))}*\n{escape(_cell(r[1]))}"[:FIELD_CHARS],
            }
            for r in rows[i : i + MAX_FIELDS]
        ]
        block: dict[str, Any] = {"type": "section", "fields": fields}
        if title and i == 0:
            block["text"] = {"type": "mrkdwn", "text": f"*{escape(str(title))[:200]}*"}
        blocks.append(block)
    return blocks


def _table_block(table: dict[str, Any]) -> dict[str, Any]:
    """A small table as aligned monospace text (works in every Slack client)."""
    columns = [_cell(c) for c in table.get("columns") or []]
    rows = [[_cell(v) for v in r] for r in (table.get("rows") or []) if isinstance(r, list | tuple)]
    shown = rows[:TABLE_ROWS]
    width = max([len(columns)] + [len(r) for r in shown]) if (columns or shown) else 0
    grid = ([columns] if columns else []) + shown
    widths = [max((len(r[i]) for r in grid if i < len(r)), default=0) for i in range(width)]
    lines = [
        "  ".join(r[i].ljust(widths[i]) if i < len(r) else "" for i in range(width)).rstrip()
        for r in grid
    ]
    if columns:
        lines.insert(1, "  ".join("-" * w for w in widths))
    more = f"\n_…and {len(rows) - len(shown)} more rows_" if len(rows) > len(shown) else ""
    title = f"*{escape(str(table['title']))[:200]}*\n" if table.get("title") else ""
    body = escape("\n".join(lines))
    budget = SECTION_CHARS - len(title) - len(more) - 8
    return _section(f"{title}```{body[:budget]}```{more}")


def _is_key_value(table: dict[str, Any]) -> bool:
    rows = table.get("rows") or []
    cols = table.get("columns") or []
    return (
        (len(cols) == 2 or not cols)
        and 0 < len(rows) <= 2 * MAX_FIELDS
        and all(isinstance(r, list | tuple) and len(r) == 2 for r in rows)
    )


def context_line(answer: Answer) -> list[dict[str, Any]]:
    """The context elements: sources, offline mode, and why an answer stopped early."""
    elements = []
    if answer.sources:
        shown = " · ".join(escape(s) for s in answer.sources[:8])
        more = f" (+{len(answer.sources) - 8} more)" if len(answer.sources) > 8 else ""
        elements.append({"type": "mrkdwn", "text": f"Sources: {shown}{more}"[:SECTION_CHARS]})
    if answer.offline:
        elements.append(
            {
                "type": "mrkdwn",
                "text": "Offline mode: answered by the built-in planner (no Claude key)",
            }
        )
    if answer.stop_reason not in ("end_turn", "tool_use"):
        elements.append(
            {"type": "mrkdwn", "text": f"Answer may be incomplete ({escape(answer.stop_reason)})"}
        )
    return elements


def render(answer: Answer, *, title: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """(blocks, fallback text) for chat.postMessage / respond()."""
    head: list[dict[str, Any]] = []
    if title:
        head.append(
            {
                "type": "header",
                "text": {"type": "plain_text", "text": title[:HEADER_CHARS], "emoji": True},
            }
        )
    body = [
        _section(c) for c in _chunks(to_mrkdwn(answer.text.strip() or "(no answer)"), SECTION_CHARS)
    ]
    tables: list[dict[str, Any]] = []
    for table in answer.tables:
        if not isinstance(table, dict):
            continue
        tables.extend(_fields_block(table) if _is_key_value(table) else [_table_block(table)])
    tail: list[dict[str, Any]] = []
    ctx = context_line(answer)
    if ctx:
        tail = [{"type": "divider"}, {"type": "context", "elements": ctx}]
    room = MAX_BLOCKS - len(head) - len(tail)
    body = body[: max(1, room - 1)] if len(body) >= room else body
    room -= len(body)
    if len(tables) > room:
        tables = tables[: max(0, room - 1)]
        tables.append(_section("_More tables were left out to fit Slack's message limit._"))
    blocks = head + body + tables + tail
    fallback = answer.text.strip() or "(no answer)"
    if title:
        fallback = f"{title}\n{fallback}"
    if len(fallback) > FALLBACK_CHARS:
        fallback = fallback[: FALLBACK_CHARS - 1] + "…"
    return blocks[:MAX_BLOCKS], escape(fallback)
