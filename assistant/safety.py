"""Prompt-injection defences at the text level.

Inbound: customer-written text reaches the model only inside delimited data blocks whose
delimiters cannot be forged from inside (markup is escaped, hidden characters removed).
Outbound: `filter_output` strips what could carry data out of the conversation or leak other
people's details: markdown images and links (link text kept), HTML, raw URLs and bare
domains, and emails / phone numbers that the caller may not see.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

UNTRUSTED_TAG = "untrusted_customer_text"

# Invisible and direction-changing characters (zero-width, bidi overrides, tag characters,
# variation selectors, Hangul fillers): they hide text from a reader or split a keyword.
_HIDDEN = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)


def clean(text: str) -> str:
    """NFKC (folds full-width and compatibility look-alikes such as `！［` to `![`), hidden
    characters removed, control characters other than newline and tab turned into spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _HIDDEN.sub("", text)
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)


def escape_data(text: str, limit: int = 4000) -> str:
    """Customer text made safe to place between delimiters: cleaned, markup escaped (so
    `</untrusted_customer_text>` inside it is inert), bounded."""
    text = clean(text)
    cut = len(text) > limit
    text = text[:limit]
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text + (" [truncated]" if cut else "")


def wrap_untrusted(text: str, *, source: str = "ticket", index: int | None = None) -> str:
    """One delimited block of customer-written data."""
    attrs = f' source="{re.sub(r"[^a-z0-9_-]", "", source.lower())[:30]}"'
    if index is not None:
        attrs += f' index="{int(index)}"'
    return f"<{UNTRUSTED_TAG}{attrs}>\n{escape_data(text)}\n</{UNTRUSTED_TAG}>"


def wrap_tool_payload(value: Any) -> Any:
    """A tool result with every `untrusted_text` field turned into a delimited block."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "untrusted_text" and isinstance(v, str):
                out[k] = wrap_untrusted(v, source="customer_record")
            else:
                out[k] = wrap_tool_payload(v)
        return out
    if isinstance(value, list):
        return [wrap_tool_payload(v) for v in value]
    return value


# ---------------------------------------------------------------------------------- output


@dataclass
class Filtered:
    text: str
    removed: Counter[str] = field(default_factory=Counter)


_ENTITY = re.compile(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", re.I)
_OBF_AT = re.compile(r"\s*[\[\(\{<]\s*(?:at|@)\s*[\]\)\}>]\s*", re.I)
_OBF_DOT = re.compile(r"\s*[\[\(\{<]\s*(?:dot|\.)\s*[\]\)\}>]\s*", re.I)
_MD_IMAGE = re.compile(r"!\s*\[([^\]]*)\]\s*(?:\((?:[^()]|\([^()]*\))*\)?|\[[^\]]*\])")
_MD_LINK = re.compile(r"\[([^\]]*)\]\s*\((?:[^()]|\([^()]*\))*\)?")
_MD_REF_LINK = re.compile(r"\[([^\]]+)\]\s*\[[^\]]*\]")
_MD_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.M)
_HTML_BLOCK = re.compile(
    r"<\s*(script|style|iframe|object|svg)\b.*?(<\s*/\s*\1\s*>|$)", re.I | re.S
)
_HTML_TAG = re.compile(r"<\s*/?\s*[a-z!?][^<>]*(?:>|$)", re.I)
_URL = re.compile(
    r"(?:\b(?:https?|ftp|sftp|data|javascript|vbscript|file|blob|wss?|mailto|tel|sms|ssh|"
    r"slack|gopher|ldap|intent|about|chrome)\s*:\S*|\bwww\d?\.\S+|//[\w.-]+\.[a-z]{2,}\S*)",
    re.I,
)
_TLDS = (
    "com|net|org|io|co|uk|us|de|fr|es|it|nl|be|eu|info|biz|xyz|app|dev|ai|me|ly|gl|ru|cn|tk|"
    "top|site|online|store|shop|link|click|live|cc|tv|ws|to|sh|gg|so|pw|ml|ga|cf|gq|in|jp|au|"
    "ca|ch|se|no|pl|br|mx|ngrok|cloud|page|fyi|zip|mov|pro|win|vip|lol|tech|icu|cyou|rest"
)
_BARE_DOMAIN = re.compile(
    rf"(?<![\w@*•.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})\b(?:[/?#:]\S*)?",
    re.I,
)
# Any host name followed by a path or query is a link, whatever its TLD (attacker.example/x).
_PATHED_DOMAIN = re.compile(r"(?<![\w@*•.-])(?:[a-z0-9-]+\.)+[a-z][a-z0-9-]{1,24}[/?#]\S*", re.I)
_EMAIL = re.compile(r"[\w.+%*•'-]+@[\w-]+(?:\.[\w-]+)+", re.U)
_PHONE = re.compile(r"(?<![\w.,])(?:\+|00)?\(?\d[\d \-().\u2010-\u2015/]{5,22}\d(?![\w])")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
# Amounts and counts, not phones: 12,345.67 / 1 234 567 / 45.20 / 1234567 (a bare integer is
# a phone only from 10 digits, or with a leading 0: 07700900123).
_NUMBER = re.compile(
    r"^\d{1,3}(?:[,\s]\d{3})+(?:\.\d+)?$|^\d+\.\d{1,4}$|^[1-9]\d{0,8}$|^\d{1,3}(?:\.\d{3})+,\d+$"
)


def digits_of(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _masked(value: str) -> bool:
    return "*" in value or "•" in value


class _Vault:
    """Spans already judged safe, replaced by sentinels so later rules leave them alone."""

    def __init__(self) -> None:
        self.kept: list[str] = []

    def keep(self, value: str) -> str:
        self.kept.append(value)
        return f"\x00{len(self.kept) - 1}\x00"

    def restore(self, text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: self.kept[int(m.group(1))], text)


def filter_output(
    text: str, *, allowed_contacts: Iterable[str] = (), allow_all_contacts: bool = False
) -> Filtered:
    """Text safe to post: no images, links, URLs, HTML; emails and phones only when allowed.

    `allowed_contacts` are the emails / phones the reader may see (the pinned customer's own,
    for a ticket); `allow_all_contacts` is for callers with PII scope and no pinned customer.
    Masked identifiers (`j***@gmail.com`) are kept: they are the tools' own redaction.
    """
    removed: Counter[str] = Counter()
    emails = {c.strip().casefold() for c in allowed_contacts if "@" in c}
    phones = {
        digits_of(c)[-9:] for c in allowed_contacts if "@" not in c and len(digits_of(c)) >= 7
    }
    vault = _Vault()

    # Entities first: `&lt;img&gt;` or `https&#58;//` must be judged in their decoded form.
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = clean(text).replace("\x00", "")
    text = _OBF_AT.sub("@", text)
    text = _OBF_DOT.sub(".", text)

    def count(kind: str, repl: str | Any) -> Any:
        def sub(m: re.Match[str]) -> str:
            removed[kind] += 1
            return repl(m) if callable(repl) else repl

        return sub

    text = _HTML_BLOCK.sub(count("html", ""), text)
    text = _MD_IMAGE.sub(count("image", ""), text)
    text = re.sub(r"<\s*img\b[^>]*>?", count("image", ""), text, flags=re.I)
    text = _MD_REF_DEF.sub(count("link", ""), text)
    text = _MD_LINK.sub(count("link", lambda m: m.group(1)), text)
    text = _MD_REF_LINK.sub(count("link", lambda m: m.group(1)), text)
    # Slack's own link syntax <url|label>: keep the label.
    text = re.sub(r"<([^<>|\s]+)\|([^<>]*)>", count("link", lambda m: m.group(2)), text)
    text = _HTML_TAG.sub(count("html", ""), text)

    def email(m: re.Match[str]) -> str:
        value = m.group(0).strip(".'-")
        if _masked(value) or allow_all_contacts or value.casefold() in emails:
            return vault.keep(m.group(0))
        removed["email"] += 1
        return "[email removed]"

    text = _EMAIL.sub(email, text)
    text = _URL.sub(count("url", "[link removed]"), text)
    text = _PATHED_DOMAIN.sub(count("url", "[link removed]"), text)
    text = _BARE_DOMAIN.sub(count("url", "[link removed]"), text)
    text = _UUID.sub(lambda m: vault.keep(m.group(0)), text)
    text = _DATE.sub(lambda m: vault.keep(m.group(0)), text)

    def phone(m: re.Match[str]) -> str:
        value = m.group(0)
        d = digits_of(value)
        if len(d) < 7 or len(d) > 15 or _NUMBER.match(value.strip()):
            return value
        if allow_all_contacts or d[-9:] in phones:
            return vault.keep(value)
        removed["phone"] += 1
        return "[phone removed]"

    text = _PHONE.sub(phone, text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Filtered(vault.restore(text), removed)


def contacts_in(text: str) -> set[str]:
    """Emails and phone-like numbers in a text (used by tests and the eval)."""
    found = {m.group(0).casefold() for m in _EMAIL.finditer(clean(text))}
    for m in _PHONE.finditer(clean(text)):
        d = digits_of(m.group(0))
        if 7 <= len(d) <= 15 and not _NUMBER.match(m.group(0).strip()):
            found.add(d)
    return found
