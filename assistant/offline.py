"""Offline answers: run the planner's tools through the same bridge and policy as Claude's
calls, and render them from templates. Every answer starts by saying it is offline.

Customer-written text (ctx.untrusted) only picks the topic of a ticket's draft reply from a
fixed list; it never chooses a tool, an argument or a word of the answer.
"""

from __future__ import annotations

import re
from typing import Any

from assistant import render
from assistant.planner import plan
from assistant.safety import clean
from assistant.types import Answer, AskContext, ToolCall

OFFLINE_HEAD = "Offline mode ({why}): answered by Customer Brain's rule-based planner from its tools, without Claude."
HELP = (
    'I can answer questions about customers ("tell me about jane@example.com"), churn risk '
    '("which VIP customers are at risk?"), segments ("compare Champions vs At Risk"), '
    'recommendations, similar customers, products, channels and cohorts, forecasts ("forecast '
    'revenue for the next 8 weeks") and campaign audiences ("win-back audience of 200").'
)

_TOPICS = (
    (
        "order_status",
        r"where('?s| is) my (order|parcel|package)|track|deliver|shipp|arriv|dispatch|not received|hasn'?t (come|arrived)",
    ),
    ("refund", r"refund|money back|reimburs|charge ?back|return"),
    ("cancel", r"cancel"),
    ("address", r"address|wrong (house|street)"),
    ("product", r"size|fit|colou?r|stock|ingredient|material|how (do|does|to) (i )?use"),
    ("complaint", r"broken|damaged|faulty|disappoint|terrible|angry|worst|complain"),
)


def topic_of(texts: tuple[str, ...]) -> str:
    """The support topic of a ticket, from a fixed list (the text is never acted on)."""
    low = clean(" ".join(texts)).casefold()
    for name, pattern in _TOPICS:
        if re.search(pattern, low):
            return name
    return "general"


async def answer(
    question: str, ctx: AskContext, bridge: Any, *, why: str = "no ANTHROPIC_API_KEY"
) -> Answer:
    """Plan, run the tools through the bridge (same policy as Claude's calls), render."""
    p = plan(question, ctx, set(bridge.allowed))
    head = OFFLINE_HEAD.format(why=why)
    calls: list[ToolCall] = []
    if p.missing:
        parts = [f"To answer that I need {p.missing}."]
    elif not p.steps:
        parts = [HELP]
    else:
        for st in p.steps[:3]:
            call, _ = await bridge.call(st.tool, st.args)
            calls.append(call)
        parts = [render.describe(c) for c in calls]
    if ctx.surface == "gorgias":
        # A ticket always gets a draft; the briefing says what is (not) known.
        if not ctx.customer_ref:
            parts = ["No customer record is linked to this ticket's email or phone."]
        parts = [_draft(ctx, calls), "Agent briefing:\n" + "\n".join(parts)]
    return Answer(text=head + "\n\n" + "\n\n".join(parts), tool_calls=calls, offline=True)


def _draft(ctx: AskContext, calls: list[ToolCall]) -> str:
    me: dict[str, Any] = {}
    for c in calls:
        if c.name == "lookup_customer" and c.structured and c.structured.get("customers"):
            me = c.structured["customers"][0]
    first = ""
    if ctx.allow_pii and me.get("name"):
        first = str(me["name"].get("untrusted_text", "")).split(" ")[0][:30]
    hello = f"Hi {first}," if first else "Hi,"
    last = str(me.get("last_order_at") or "")[:10]
    topic = topic_of(ctx.untrusted)
    body = {
        "order_status": f"Thanks for checking in about your order{f' from {last}' if last else ''}. I'm looking up its delivery status now and will update you shortly.",
        "refund": "Thanks for reaching out about a refund. I'm reviewing your order now and will confirm the next steps shortly.",
        "cancel": "Thanks for letting us know you'd like to cancel. I'm checking whether your order can still be changed and will confirm shortly.",
        "address": "Thanks for letting us know about the address. I'm checking your order so we can update it if it hasn't shipped yet.",
        "product": "Thanks for your question about the product. I'm checking the details and will get back to you shortly.",
        "complaint": "I'm sorry to hear about this, and thank you for telling us. I'm looking into your order now and will make this right.",
        "general": "Thanks for getting in touch. I'm looking into this now and will get back to you shortly.",
    }[topic]
    if ctx.style in ("email", "phone"):
        text = f"{hello}\n{body} If anything else comes up in the meantime, just reply here.\nBest regards,\n[Agent name]"
    else:
        text = f"{hello} {body}"
    return f"Draft reply ({ctx.style or 'chat'}, topic: {topic.replace('_', ' ')}):\n{text}"
