"""What the agent takes and gives back; shared by the surfaces (CLI, Slack, Gorgias).

The brand, the surface and — for a ticket — the customer in scope come from the server-side
context here, never from anything a model or a message says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

Surface = Literal["cli", "slack", "gorgias"]


@dataclass(frozen=True, slots=True)
class AskContext:
    brand_id: UUID
    surface: Surface
    # Memory key: a Slack thread ("slack:T1:C1:1700000000.1") or a ticket ("gorgias:123").
    conversation_id: str | None = None
    # For a ticket: the customer the ticket is about, found server-side from the ticket's
    # email/phone. Tools that take a customer are pinned to it.
    customer_ref: str | None = None
    # Text written by customers (ticket messages): passed to the model as delimited data.
    untrusted: tuple[str, ...] = ()
    allow_pii: bool = False
    # Gorgias reply style: "sms" | "chat" | "email" | "phone" (length and tone of the draft).
    style: str | None = None


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    duration_ms: float
    is_error: bool = False
    structured: dict[str, Any] | None = None
    error: str | None = None
    # True when policy refused the call (tool outside the surface's allowlist, or a customer
    # other than the pinned one): it was never executed.
    refused: bool = False


@dataclass(slots=True)
class Answer:
    text: str  # already filtered (other customers' PII, links, images removed)
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Short source lines: "churn_risk(customer_ref=c_…): probability 0.72".
    sources: list[str] = field(default_factory=list)
    offline: bool = False
    stop_reason: str = "end_turn"  # end_turn | max_tokens | refusal | budget | timeout | error
    # Optional small tables for Block Kit / notes: {"title": str, "columns": [...], "rows": [[...]]}
    tables: list[dict[str, Any]] = field(default_factory=list)
