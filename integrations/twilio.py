"""Twilio WhatsApp webhooks: request validation and inbound message / status callback mapping.

Validation uses the official `twilio` RequestValidator: the URL + sorted form-pair
canonicalisation is easy to get wrong by hand. Mapping is pure: the caller passes the form
fields and the time it received the request (Twilio's form carries no timestamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import _parse
from integrations.signing import get_header

# Twilio's default opt-out and opt-in keywords for messaging. "YES" is left out of opt-in on
# purpose: in a support chat it is far more often an answer than a subscription.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
_MAX_MEDIA = 10  # WhatsApp allows one; Twilio's form numbers up to ten for MMS.


def verify(
    url: str, form: Mapping[str, str], headers: Mapping[str, str], auth_tokens: list[str]
) -> bool:
    """True when X-Twilio-Signature signs `url` + `form` with any of `auth_tokens`.

    `url` must be the public URL Twilio called (rebuilt from configuration behind a proxy).
    The algorithm comes from X-Twilio-Webhooks-Signature-Settings (HMAC_SHA256 for SharedKey
    signing, otherwise the legacy HMAC_SHA1 with the Auth Token), so `auth_tokens` holds the
    Auth Token(s) and any SharedKey secret(s); several are accepted for rotation. Never raises.
    """
    signature = get_header(headers, SIGNATURE_HEADER)
    if not isinstance(url, str) or not url or not signature or not isinstance(auth_tokens, list):
        return False
    try:
        algorithm = get_signature_algorithm(get_header(headers, SIGNATURE_SETTINGS_HEADER))
        # Keep a multi-dict (Starlette FormData has getlist) so repeated keys are all signed.
        params: Any = form if hasattr(form, "getlist") else dict(form)
    except Exception:
        return False
    matched = False
    # No early exit, so timing does not tell which token matched.
    for token in auth_tokens:
        matched |= _signed_with(token, url, params, signature, algorithm)
    return matched


def _signed_with(token: Any, url: str, params: Any, signature: str, algorithm: str) -> bool:
    if not isinstance(token, str) or not token:
        return False
    try:
        return bool(RequestValidator(token).validate(url, params, signature, algorithm))
    except Exception:  # garbage form values or URL: not verified, never a 500
        return False


def map_inbound(form: Mapping[str, str], received_at: datetime) -> CanonicalEvent:
    """Map an inbound WhatsApp message to a `message_in` event (source "whatsapp").

    An opt-out keyword as the whole body ("STOP", "unsubscribe", ...) sets
    `properties.opt_out` and `traits.whatsapp_consent = False`; "START" sets it back to True.
    """
    sid = _required(form, "MessageSid")
    sender = _required(form, "From")
    body = _field(form, "Body")
    num_media = _count(form, "NumMedia")
    first_name, last_name = _split_name(_field(form, "ProfileName"))
    traits: dict[str, Any] = {"first_name": first_name, "last_name": last_name}
    properties: dict[str, Any] = {
        "message_sid": sid,
        "text": body,
        "num_media": num_media,
        # The brand's own number: tells apart brands that run several senders.
        "to": _field(form, "To"),
    }
    media = [
        {"url": url, "content_type": _field(form, f"MediaContentType{i}")}
        for i in range(min(num_media, _MAX_MEDIA))
        if (url := _field(form, f"MediaUrl{i}"))
    ]
    if media:
        properties["media"] = media
    keyword = _keyword(body or "")
    if keyword in OPT_OUT_KEYWORDS:
        properties["opt_out"] = True
        traits["whatsapp_consent"] = False
    elif keyword in OPT_IN_KEYWORDS:
        properties["opt_in"] = True
        traits["whatsapp_consent"] = True
    return _build(
        event_id=sid,
        type="message_in",
        occurred_at=_utc(received_at),
        identifiers=_address(sender),
        traits=_compact(traits),
        properties=_compact(properties),
    )


def map_status(form: Mapping[str, str], received_at: datetime) -> CanonicalEvent:
    """Map a status callback (queued, sent, delivered, read, failed, undelivered) to `message_out`.

    The event id is `{MessageSid}:{MessageStatus}`: each status of a message is one event, and
    a retried callback is a duplicate.
    """
    sid = _required(form, "MessageSid")
    status = _required(form, "MessageStatus").lower()
    recipient = _field(form, "To")
    return _build(
        event_id=f"{sid}:{status}",
        type="message_out",
        occurred_at=_utc(received_at),
        identifiers=_address(recipient) if recipient else {},
        properties=_compact(
            {
                "message_sid": sid,
                "status": status,
                "error_code": _field(form, "ErrorCode"),
                "from": _field(form, "From"),
            }
        ),
    )


def _address(value: str) -> dict[str, str]:
    # WhatsApp senders keep the "whatsapp:+…" form (identity treats it as the phone's person
    # key); a plain number means the same webhook served SMS, so it is a phone.
    if value.lower().startswith("whatsapp:"):
        return {"whatsapp": value}
    return {"phone": value}


def _keyword(body: str) -> str:
    # Whole-message match only, as Twilio does: "please stop sending me sizes" is a message.
    return " ".join(body.strip().rstrip(".!").split()).upper()


def _split_name(profile_name: str | None) -> tuple[str | None, str | None]:
    if not profile_name:
        return None, None
    first, _, rest = profile_name.strip().partition(" ")
    return first or None, rest.strip() or None


def _field(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _required(form: Mapping[str, str], name: str) -> str:
    value = _field(form, name)
    if value is None:
        raise ValidationFailed(f"twilio: field '{name}' is required", details={"field": name})
    return value


def _count(form: Mapping[str, str], name: str) -> int:
    value = _field(form, name)
    if value is None:
        return 0
    if not value.isdigit():
        raise ValidationFailed(
            f"twilio: field '{name}' must be a whole number", details={"field": name}
        )
    return int(value)


def _build(**fields: Any) -> CanonicalEvent:
    try:
        return CanonicalEvent(source="whatsapp", **fields)
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "event"
        raise ValidationFailed(
            f"twilio: field '{field}' {error['msg']}", details={"field": field}
        ) from None


_utc = _parse.utc
_compact = _parse.compact
