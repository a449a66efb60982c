"""Which Gorgias ticket messages get a draft, and in which style. Pure functions over the
ticket and messages as the Gorgias API returns them (re-fetched, never taken from the webhook).

Skips: spam tickets (always), closed tickets, tickets tagged `ai_ignore`, messages written by
agents, internal notes, automated messages. The tag `force-ai` overrides every skip except
spam; our own notes are never drafted for, whatever the tags (that would loop: each note
creates a message, which fires the webhook again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TAG_IGNORE = "ai_ignore"
TAG_FORCE = "force-ai"
NOTE_MARK = "Customer Brain draft for message"
_NOTE_REF = re.compile(re.escape(NOTE_MARK) + r" #(\d+)")

# Style per source: (style, fewest sentences, most sentences).
STYLES: dict[str, tuple[int, int]] = {
    "sms": (2, 3),
    "chat": (2, 3),
    "email": (4, 6),
    "phone": (4, 6),
}
_SOURCE_STYLE = {
    "email": "email",
    "chat": "chat",
    "sms": "sms",
    "phone": "phone",
    "whatsapp": "chat",
}
_CHANNELS = {
    "email": "email",
    "contact_form": "email",
    "contact-form": "email",
    "help-center": "email",
    "api": "email",
    "chat": "chat",
    "gorgias_chat": "chat",
    "facebook-messenger": "chat",
    "facebook": "chat",
    "instagram-direct-message": "chat",
    "instagram": "chat",
    "twitter-direct-message": "chat",
    "sms": "sms",
    "twilio": "sms",
    "phone": "phone",
    "voice": "phone",
    "aircall": "phone",
    "ringcentral": "phone",
    "whatsapp": "whatsapp",
    "whatsapp-message": "whatsapp",
}
# Phone systems (RingCentral, Aircall, Dialpad…) often reach the helpdesk as email
# notifications; the subject gives them away.
_VOICE_SUBJECT = re.compile(
    r"\b(voice\s*mail|voice\s*message|missed\s+call|new\s+call|incoming\s+call|call\s+from|"
    r"call\s+recording)\b",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[\s-]*(reply|response)|out\s+of\s+(the\s+)?office|undeliverable|"
    r"delivery\s+status\s+notification|mail\s+delivery\s+(failed|subsystem)|"
    r"returned\s+mail|vacation\s+reply)\b",
    re.I,
)
_AUTO_SENDER = re.compile(r"^(no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounce)", re.I)
_AUTO_VIA = {"rule", "self_service", "auto-reply", "autoresponder"}


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Target:
    message: dict[str, Any]
    source: str  # email | chat | sms | phone | whatsapp
    style: str  # sms | chat | email | phone
    forced: bool
    # Customer-written texts the draft answers (subject first, then messages since the last
    # agent reply), for ctx.untrusted.
    texts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def message_id(self) -> int:
        return int(self.message["id"])


def obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of an API payload, or {} when absent or not an object."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def tags_of(ticket: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for t in ticket.get("tags") or []:
        name = t.get("name") if isinstance(t, dict) else t
        if isinstance(name, str):
            out.add(name.strip().lower())
    return out


def channel_of(message: dict[str, Any], ticket: dict[str, Any]) -> str:
    source = obj(message, "source")
    for value in (message.get("channel"), source.get("type"), ticket.get("channel")):
        if isinstance(value, str) and value:
            return value.strip().lower()
    return "email"


def detect_source(message: dict[str, Any], ticket: dict[str, Any]) -> str:
    """email, chat, sms, phone or whatsapp."""
    channel = channel_of(message, ticket)
    if channel in ("internal-note", "internal_note"):
        channel = str(ticket.get("channel") or "email").lower()
    source = _CHANNELS.get(channel)
    if source is None:
        source = next((v for k, v in _CHANNELS.items() if k in channel), "email")
    subject = f"{message.get('subject') or ''} {ticket.get('subject') or ''}"
    if source in ("email", "sms") and _VOICE_SUBJECT.search(subject):
        return "phone"
    return source


def style_of(source: str) -> str:
    return _SOURCE_STYLE.get(source, "email")


def is_internal_note(message: dict[str, Any]) -> bool:
    source = obj(message, "source")
    return (
        str(message.get("channel") or "").lower() in ("internal-note", "internal_note")
        or str(source.get("type") or "").lower() in ("internal-note", "internal_note")
        or message.get("public") is False
    )


def is_ours(message: dict[str, Any]) -> bool:
    """A note this integration posted (its footer names the message it drafted for)."""
    return is_internal_note(message) and NOTE_MARK in str(message.get("body_text") or "")


def noted_messages(messages: list[dict[str, Any]]) -> set[int]:
    """Ids of the messages that already have a note from us (found on the ticket itself)."""
    out: set[int] = set()
    for m in messages:
        if is_ours(m):
            out.update(int(x) for x in _NOTE_REF.findall(str(m.get("body_text") or "")))
    return out


def is_automated(message: dict[str, Any]) -> bool:
    via = str(message.get("via") or "").lower()
    if via in _AUTO_VIA:
        return True
    meta = obj(message, "meta")
    if meta.get("auto_reply") or meta.get("is_auto_reply") or meta.get("automated"):
        return True
    if _AUTO_SUBJECT.search(str(message.get("subject") or "")):
        return True
    sender = obj(message, "sender")
    source = obj(message, "source")
    frm = obj(source, "from")
    address = str(sender.get("email") or frm.get("address") or "")
    return bool(_AUTO_SENDER.match(address))


def message_text(message: dict[str, Any]) -> str:
    for key in ("stripped_text", "body_text"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    html = message.get("body_html")
    if isinstance(html, str):
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return ""


def _message_skip(message: dict[str, Any]) -> str | None:
    if is_internal_note(message):
        return "internal note"
    if message.get("from_agent"):
        return "message from an agent"
    if is_automated(message):
        return "automated message"
    return None


def triage(
    ticket: dict[str, Any], messages: list[dict[str, Any]], message_id: int | None = None
) -> Skip | Target:
    """The message to draft for (the one named, else the latest), or why not."""
    if ticket.get("spam"):
        return Skip("spam ticket")
    tags = tags_of(ticket)
    forced = TAG_FORCE in tags
    if not forced:
        if str(ticket.get("status") or "").lower() == "closed":
            return Skip("ticket closed")
        if TAG_IGNORE in tags:
            return Skip(f"tagged {TAG_IGNORE}")
    candidates = [m for m in messages if isinstance(m.get("id"), int) and not is_ours(m)]
    if message_id is not None:
        candidates = [m for m in candidates if m["id"] == message_id]
        if not candidates:
            return Skip("message not on this ticket")
    if not candidates:
        return Skip("no message to answer")
    target = candidates[-1]
    why = _message_skip(target)
    if why and not forced:
        return Skip(why)
    source = detect_source(target, ticket)
    return Target(
        message=target,
        source=source,
        style=style_of(source),
        forced=forced,
        texts=_customer_texts(ticket, messages, target),
    )


def _customer_texts(
    ticket: dict[str, Any], messages: list[dict[str, Any]], target: dict[str, Any]
) -> tuple[str, ...]:
    """The subject and the customer's messages since the last agent reply, up to the target."""
    upto = messages[: messages.index(target) + 1] if target in messages else [target]
    recent: list[str] = []
    for m in reversed(upto):
        if m is not target and (m.get("from_agent") and not is_internal_note(m)):
            break
        if m is target or _message_skip(m) is None:
            text = message_text(m)
            if text:
                recent.append(text)
        if len(recent) >= 5:
            break
    subject = str(ticket.get("subject") or "").strip()
    return tuple(([f"Subject: {subject}"] if subject else []) + list(reversed(recent)))


def customer_contacts(
    ticket: dict[str, Any], message: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(emails, phones) of the ticket's customer, best first. Phone systems' notification
    senders are not the customer: their calls name the caller's number in the subject."""
    customer = obj(ticket, "customer")
    emails: list[str] = []
    phones: list[str] = []
    if isinstance(customer.get("email"), str):
        emails.append(customer["email"])
    for ch in customer.get("channels") or []:
        if not isinstance(ch, dict) or not isinstance(ch.get("address"), str):
            continue
        kind = str(ch.get("type") or "").lower()
        if kind == "email":
            emails.append(ch["address"])
        elif kind in ("phone", "sms", "whatsapp", "voice"):
            phones.append(ch["address"])
    source = obj(message, "source")
    frm = obj(source, "from")
    address = frm.get("address")
    if isinstance(address, str) and address:
        (emails if "@" in address else phones).append(address)
    subject = f"{message.get('subject') or ''} {ticket.get('subject') or ''}"
    if _VOICE_SUBJECT.search(subject):
        phones += re.findall(r"\+?\d[\d\s().-]{6,}\d", subject)
    emails = [
        e for e in dict.fromkeys(e.strip() for e in emails) if e and not _AUTO_SENDER.match(e)
    ]
    return emails, list(dict.fromkeys(p.strip() for p in phones if p.strip()))


def limit_sentences(text: str, style: str) -> str:
    """The draft cut to the style's length (the model is asked for it; this makes sure)."""
    _, most = STYLES.get(style, (4, 6))
    parts = sentences(text)
    return " ".join(parts[:most]) if len(parts) > most else text.strip()


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")


def sentences(text: str) -> list[str]:
    flat = re.sub(r"\s+", " ", text).strip()
    return [s for s in _SENTENCE.split(flat) if s.strip()] if flat else []


# "Draft reply:", "**Draft reply (sms, topic: refund):**" ... up to "Agent briefing".
_DRAFT = re.compile(
    r"[*#_]*\s*draft(?:\s+reply)?\b[ \t]*(?:\([^)\n]{0,80}\))?[ \t]*[*_]*[ \t]*:[*_]*[ \t]*"
    r"(.*?)(?=\n\s*[*#_]*\s*agent briefing\b|\Z)",
    re.I | re.S,
)


def draft_of(answer_text: str) -> str:
    """The draft part of the assistant's answer (it writes 'Draft reply:' then 'Agent
    briefing:'); the whole text when it did not label the parts."""
    m = _DRAFT.search(answer_text)
    text = m.group(1) if m else answer_text
    return text.strip()


def has_draft(answer_text: str) -> bool:
    return _DRAFT.search(answer_text) is not None
