from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from integrations.signing import get_header, verify_base64_hmac_sha256

BODY = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00"}'
SECRET = "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"
OLD_SECRET = "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"
# Every code point, lone surrogates included: they cannot be encoded and must not crash.
ANY_CHAR = st.characters(exclude_categories=())


def sign(body: bytes, secret: str) -> str:
    # The vendor recipe, written out independently of the code under test.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_valid_signature():
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), [SECRET]) is True


def test_tampered_body_is_rejected():
    tampered = BODY.replace(b"199.00", b"1.00")
    assert verify_base64_hmac_sha256(tampered, sign(BODY, SECRET), [SECRET]) is False


def test_wrong_secret_is_rejected():
    assert verify_base64_hmac_sha256(BODY, sign(BODY, "another-secret"), [SECRET]) is False


def test_either_secret_verifies_during_rotation():
    secrets = [SECRET, OLD_SECRET]
    assert verify_base64_hmac_sha256(BODY, sign(BODY, OLD_SECRET), secrets) is True
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), secrets) is True
    assert verify_base64_hmac_sha256(BODY, sign(BODY, "third"), secrets) is False


def test_missing_or_empty_header_is_rejected():
    assert verify_base64_hmac_sha256(BODY, None, [SECRET]) is False
    assert verify_base64_hmac_sha256(BODY, "", [SECRET]) is False
    assert verify_base64_hmac_sha256(BODY, "   ", [SECRET]) is False


def test_garbage_header_is_rejected():
    for garbage in ("not base64 at all!!", "é" * 44, "A" * 10_000, "\x00\x01", "=="):
        assert verify_base64_hmac_sha256(BODY, garbage, [SECRET]) is False


def test_no_secrets_means_nothing_verifies():
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), []) is False


def test_empty_secret_is_never_used():
    # Anyone can compute an HMAC keyed with "", so a blank configured secret must not verify.
    assert verify_base64_hmac_sha256(BODY, sign(BODY, ""), [""]) is False
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), ["", SECRET]) is True


def test_surrounding_whitespace_in_header_is_tolerated():
    assert verify_base64_hmac_sha256(BODY, f" {sign(BODY, SECRET)}\t", [SECRET]) is True


def test_wrong_types_return_false():
    assert verify_base64_hmac_sha256("text", sign(BODY, SECRET), [SECRET]) is False  # type: ignore[arg-type]
    assert verify_base64_hmac_sha256(BODY, 12345, [SECRET]) is False  # type: ignore[arg-type]
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), SECRET) is False  # type: ignore[arg-type]
    assert verify_base64_hmac_sha256(BODY, sign(BODY, SECRET), [None, 7]) is False  # type: ignore[list-item]


def test_get_header_is_case_insensitive():
    assert get_header({"x-shopify-hmac-sha256": "abc"}, "X-Shopify-Hmac-Sha256") == "abc"
    assert get_header({"X-SHOPIFY-HMAC-SHA256": "abc"}, "X-Shopify-Hmac-Sha256") == "abc"
    assert get_header(Headers({"X-Shopify-Hmac-Sha256": "abc"}), "x-shopify-hmac-sha256") == "abc"
    assert get_header({}, "X-Shopify-Hmac-Sha256") is None
    assert get_header({"X-Shopify-Hmac-Sha256": 5}, "X-Shopify-Hmac-Sha256") is None  # type: ignore[dict-item]


@given(
    body=st.binary(max_size=2048),
    header=st.one_of(
        st.none(),
        st.text(ANY_CHAR, max_size=200),
        st.binary(max_size=64),
        st.integers(),
    ),
    secrets=st.lists(
        st.one_of(st.text(ANY_CHAR, max_size=64), st.none(), st.binary(max_size=8)),
        max_size=4,
    ),
)
def test_verify_never_raises_on_arbitrary_input(body, header, secrets):
    assert verify_base64_hmac_sha256(body, header, secrets) in (True, False)


@given(body=st.binary(max_size=4096), secret=st.text(min_size=1, max_size=64))
def test_a_correct_signature_always_verifies(body, secret):
    assert verify_base64_hmac_sha256(body, sign(body, secret), [secret]) is True
