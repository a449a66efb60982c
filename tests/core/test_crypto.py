import os

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from core.crypto import Keyring

ring = Keyring(b"p" * 32, os.urandom(32))


@given(st.text(min_size=1, max_size=60))
def test_blind_index_is_deterministic_per_brand_and_differs_across_brands(value):
    a = ring.for_brand("brand-a")
    b = ring.for_brand("brand-b")
    assert a.blind_index("email", value) == a.blind_index("email", value)
    assert a.blind_index("email", value) != b.blind_index("email", value)
    assert a.blind_index("email", value) != a.blind_index("phone", value)


def test_blind_index_depends_on_the_pepper():
    other = Keyring(b"q" * 32, os.urandom(32))
    assert ring.for_brand("x").blind_index("phone", "+447700900123") != other.for_brand(
        "x"
    ).blind_index("phone", "+447700900123")


@given(st.binary(max_size=500))
def test_encrypt_roundtrip(data):
    c = ring.for_brand("brand-a")
    blob = c.encrypt(data)
    assert c.decrypt(blob) == data
    assert len(data) < 8 or data not in blob


def test_ciphertext_of_one_brand_does_not_open_in_another():
    blob = ring.for_brand("brand-a").encrypt("jane@example.com")
    with pytest.raises(InvalidTag):
        ring.for_brand("brand-b").decrypt(blob)
