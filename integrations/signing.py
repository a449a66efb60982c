"""Constant-time webhook signature checks shared by the commerce adapters.

Shopify and WooCommerce sign the same way: base64 of HMAC-SHA256 over the raw request body.
These helpers never raise on hostile input: a webhook endpoint is public, so anything that
is not a valid signature is simply "not verified".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up case-insensitively in any mapping (a dict or Starlette `Headers`)."""
    try:
        value = headers.get(name)
        if value is None:
            wanted = name.lower()
            for key, candidate in headers.items():
                if isinstance(key, str) and key.lower() == wanted:
                    value = candidate
                    break
    except Exception:  # a broken mapping is "no header", never a 500
        return None
    return value if isinstance(value, str) else None


def compute_base64_hmac_sha256(raw_body: bytes, secret: str) -> str:
    """The vendor recipe: base64(HMAC-SHA256(key=secret, msg=raw body))."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_base64_hmac_sha256(
    raw_body: bytes, header_value: str | None, secrets: list[str]
) -> bool:
    """True when `header_value` is the base64 HMAC-SHA256 of `raw_body` under any secret.

    Several secrets are accepted so a rotation has no gap (Shopify keeps signing with the old
    secret for up to an hour). Empty secrets are skipped: an HMAC keyed with "" is forgeable by
    anyone. An empty secret list, a missing or empty header, or garbage input gives False.
    """
    if not isinstance(raw_body, bytes | bytearray | memoryview):
        return False
    if not isinstance(header_value, str) or not header_value.strip():
        return False
    try:
        presented = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    if not isinstance(secrets, list | tuple):
        return False
    body = bytes(raw_body)
    matched = False
    # No early exit: every configured secret is tried, so timing does not reveal which matched.
    for secret in secrets:
        if not isinstance(secret, str) or not secret:
            continue
        try:
            expected = compute_base64_hmac_sha256(body, secret).encode("ascii")
        except UnicodeEncodeError:  # a lone surrogate in a configured secret
            continue
        matched |= hmac.compare_digest(expected, presented)
    return matched
