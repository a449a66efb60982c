"""The internal note posted on a Gorgias ticket: a draft reply in the ticket's style, and a
briefing for the agent built from Customer Brain's own numbers (not the model's words).

The note is an internal note (channel internal-note, via api, from_agent true): Gorgias never
sends it to the customer. Its footer names the message it drafts for; that is how a re-fetch
of the ticket recognises our notes (idempotency even without our database, and no loops).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from assistant.gorgias_rules import NOTE_MARK, STYLES
from assistant.types import Answer

SENDER_NAME = "Customer Brain"
RECENT_SUPPORT_DAYS = 30


@dataclass
class Briefing:
    """What the agent should know before replying, as label/value lines."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.lines.append((label, value))


def _money(v: float | None) -> str:
    return "—" if v is None else f"{v:,.2f}"


def _day(d: datetime | None) -> str:
    return d.astimezone(UTC).date().isoformat() if d else "—"


def briefing(
    customer: Any | None,
    *,
    matched_by: str | None,
    subject: str,
    other_open: list[dict[str, Any]],
    now: datetime | None = None,
) -> Briefing:
    """`customer` is the lookup_customer summary (mcp_server.tools.customers.Customer)."""
    now = now or datetime.now(UTC)
    b = Briefing()
    issues = [f"this ticket ({subject[:120]})" if subject else "this ticket"]
    issues += [f"#{t.get('id')} {str(t.get('subject') or '')[:80]}".strip() for t in other_open[:3]]
    if customer is None:
        b.add("Customer", "not found in Customer Brain (no profile with this email or phone)")
        b.add("Open issues", "; ".join(issues))
        b.add(
            "Recommended action",
            "confirm who the customer is (order number, email) before offering anything",
        )
        return b
    p = customer.predictions
    b.add(
        "Customer", f"matched by {matched_by or customer.matched_by}; ref {customer.customer_ref}"
    )
    aov = f", AOV {_money(customer.average_order_value)}" if customer.average_order_value else ""
    b.add(
        "Orders",
        f"{customer.orders} lifetime, revenue {_money(customer.revenue)}{aov}"
        + (f", refunds {_money(customer.refunds)}" if customer.refunds else ""),
    )
    if customer.last_order_at:
        ago = customer.days_since_last_order
        b.add("Last purchase", f"{_day(customer.last_order_at)} ({ago} days ago)")
    else:
        b.add("Last purchase", "never ordered")
    if p is not None and p.ltv is not None:
        horizon = f" over {p.ltv.horizon_days} days" if p.ltv.horizon_days else ""
        decile = f", decile {p.ltv.decile}" if p.ltv.decile else ""
        b.add("LTV", f"{_money(p.ltv.expected_value)} expected{horizon}{decile}")
    else:
        b.add("LTV", f"no prediction yet; {_money(customer.revenue)} spent to date")
    if p is not None and p.churn is not None:
        top = p.churn.drivers[0].feature if p.churn.drivers else None
        b.add(
            "Churn risk",
            f"{p.churn.band} ({p.churn.probability:.0%})" + (f", mainly {top}" if top else ""),
        )
    else:
        b.add("Churn risk", "no prediction yet")
    if p is not None and p.segment is not None:
        b.add("Segment", p.segment.name)
    recent = [
        i
        for i in customer.recent_interactions
        if i.type == "support_ticket" and (now - i.at).days <= RECENT_SUPPORT_DAYS
    ]
    if recent:
        issues.append(f"{len(recent)} support contact(s) in the last {RECENT_SUPPORT_DAYS} days")
    if customer.refunds:
        issues.append(f"refunds on record ({_money(customer.refunds)})")
    b.add("Open issues", "; ".join(issues))
    action = p.churn.suggested_action if p is not None and p.churn is not None else None
    b.add("Recommended action", action or "answer the question; no special retention action")
    return b


@dataclass
class Note:
    text: str
    html: str

    def payload(self, sender_email: str) -> dict[str, Any]:
        """The POST /api/tickets/{id}/messages body of an internal note."""
        return {
            "channel": "internal-note",
            "via": "api",
            "from_agent": True,
            "public": False,
            "body_text": self.text,
            "body_html": self.html,
            "sender": {"email": sender_email},
            "source": {
                "type": "internal-note",
                "from": {"name": SENDER_NAME, "address": sender_email},
            },
        }


def compose(
    *,
    message_id: int,
    style: str,
    source: str,
    draft: str,
    brief: Briefing,
    answer: Answer,
) -> Note:
    lo, hi = STYLES.get(style, (4, 6))
    heading = f"Draft reply ({style}, {lo}-{hi} sentences; review before sending)"
    mode = "offline planner" if answer.offline else "Claude"
    footer = f"{NOTE_MARK} #{message_id} ({source}) · not sent to the customer · {mode}"
    text_lines = [heading + ":", draft.strip(), "", "Agent briefing:"]
    text_lines += [f"- {label}: {value}" for label, value in brief.lines]
    if answer.sources:
        text_lines += ["", "Sources: " + "; ".join(answer.sources[:6])]
    text_lines += ["", footer]
    e = html.escape
    paragraphs = "".join(f"<p>{e(p)}</p>" for p in draft.strip().split("\n\n") if p.strip())
    items = "".join(
        f"<li><strong>{e(label)}:</strong> {e(value)}</li>" for label, value in brief.lines
    )
    sources = (
        f"<p><small>Sources: {e('; '.join(answer.sources[:6]))}</small></p>"
        if answer.sources
        else ""
    )
    body_html = (
        f"<p><strong>{e(heading)}</strong></p>{paragraphs}"
        f"<p><strong>Agent briefing</strong></p><ul>{items}</ul>{sources}"
        f"<p><small>{e(footer)}</small></p>"
    )
    return Note(text="\n".join(text_lines), html=body_html)
