"""Keyed hashing (blind indexes), AES-GCM encryption and HMAC helpers.

Match keys are HMAC-SHA256 with a per-brand key derived from the pepper: plain SHA-256 of a
phone number is reversible by enumerating the ~10^10 numbers, a keyed hash is not without
the pepper. Raw values are sealed with AES-GCM under a per-brand data key derived from the
master key, with the brand id as associated data so a ciphertext cannot be replayed into
another brand.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = 12
_VERSION = b"\x01"


def _derive(master: bytes, purpose: bytes, brand_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=purpose, info=brand_id.encode()).derive(
        master
    )


class BrandCrypto:
    """The blind index and cipher of one brand."""

    __slots__ = ("_aad", "_aead", "_hash_key", "brand_id")

    def __init__(self, pepper: bytes, master_key: bytes, brand_id: str) -> None:
        self.brand_id = brand_id
        self._hash_key = _derive(pepper, b"cbrain-blind-index-v1", brand_id)
        self._aead = AESGCM(_derive(master_key, b"cbrain-data-key-v1", brand_id))
        self._aad = brand_id.encode()

    def blind_index(self, kind: str, normalized_value: str) -> bytes:
        """Deterministic per brand, different across brands; computed after normalization."""
        msg = kind.encode() + b"\x00" + normalized_value.encode()
        return hmac.new(self._hash_key, msg, hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes | str) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, self._aad)

    def decrypt(self, blob: bytes) -> bytes:
        if not blob or blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        return self._aead.decrypt(nonce, body, self._aad)

    def decrypt_str(self, blob: bytes) -> str:
        return self.decrypt(blob).decode()


class Keyring:
    """Hands out `BrandCrypto` objects, derived once per brand and process."""

    def __init__(self, pepper: bytes, master_key: bytes) -> None:
        self._pepper = pepper
        self._master = master_key
        self.for_brand = lru_cache(maxsize=4096)(self._make)

    def _make(self, brand_id: str) -> BrandCrypto:
        return BrandCrypto(self._pepper, self._master, str(brand_id))

    def system(self) -> BrandCrypto:
        """Crypto for values that belong to no brand (webhook secrets are sealed per brand)."""
        return self.for_brand("__system__")


def api_key_hash(key: str) -> bytes:
    """API keys are 256-bit random strings, so a plain SHA-256 is not enumerable."""
    return hashlib.sha256(key.encode()).digest()


def new_api_key(prefix: str = "cb") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)
