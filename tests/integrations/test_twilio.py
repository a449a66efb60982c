from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import FormData, Headers
from twilio.request_validator import RequestValidator

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import twilio

AUTH_TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OLD_TOKEN = "00112233445566778899aabbccddeeff"
SHARED_KEY_SECRET = "whsk_secret_b7c1d9e3f5a2"
URL = "https://brain.example.com/v1/webhooks/twilio/acme?channel=whatsapp"
RECEIVED = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)

INBOUND: dict[str, Any] = {
    "SmsMessageSid": "SM3a5e0c8b6f1d4e2a9c7b5d3f1e0a2c4b",
    "NumMedia": "0",
    "ProfileName": "Ana Lúcia Ferreira",
    "MessageType": "text",
    "SmsSid": "SM3a5e0c8b6f1d4e2a9c7b5d3f1e0a2c4b",
    "WaId": "5511987654321",
    "SmsStatus": "received",
    "Body": "Hi! Is the linen dress back in size M?",
    "To": "whatsapp:+14155238886",
    "NumSegments": "1",
    "ReferralNumMedia": "0",
    "MessageSid": "SM3a5e0c8b6f1d4e2a9c7b5d3f1e0a2c4b",
    "AccountSid": "AC1f2e3d4c5b6a79880716253443526170",
    "From": "whatsapp:+5511987654321",
    "ApiVersion": "2010-04-01",
}

STATUS: dict[str, Any] = {
    "ChannelPrefix": "whatsapp",
    "ApiVersion": "2010-04-01",
    "MessageStatus": "undelivered",
    "SmsSid": "SMf0e1d2c3b4a5968778695a4b3c2d1e0f",
    "SmsStatus": "undelivered",
    "ChannelInstallSid": "XE0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "To": "whatsapp:+5511987654321",
    "From": "whatsapp:+14155238886",
    "MessageSid": "SMf0e1d2c3b4a5968778695a4b3c2d1e0f",
    "AccountSid": "AC1f2e3d4c5b6a79880716253443526170",
    "ErrorCode": "63016",
    "ChannelToAddress": "+551198765XXXX",
}


def extra(event: CanonicalEvent) -> dict[str, Any]:
    """The custom (non-reserved) properties of an event."""
    return event.properties.model_extra or {}


def signed_headers(
    form: dict[str, str], token: str = AUTH_TOKEN, url: str = URL, algorithm: str | None = None
) -> dict[str, str]:
    headers = {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, form, algorithm),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if algorithm:
        headers["X-Twilio-Webhooks-Signature-Settings"] = (
            f"key=webhooks_sharedkey_01hx9,algorithm={algorithm}"
        )
    return headers


# --- verification -------------------------------------------------------------------------


def test_verify_accepts_a_signed_request():
    assert twilio.verify(URL, INBOUND, signed_headers(INBOUND), [AUTH_TOKEN]) is True


def test_verify_accepts_starlette_headers_and_form():
    headers = Headers(signed_headers(INBOUND))
    # What `await request.form()` returns: a multi-dict, passed through so repeats are signed.
    form = FormData(list(INBOUND.items()))
    assert twilio.verify(URL, form, headers, [AUTH_TOKEN]) is True  # type: ignore[arg-type]


def test_verify_rejects_a_tampered_body():
    headers = signed_headers(INBOUND)
    tampered = dict(INBOUND, Body="STOP")
    assert twilio.verify(URL, tampered, headers, [AUTH_TOKEN]) is False
    extra = dict(INBOUND, MediaUrl0="https://evil.example/x.jpg")
    assert twilio.verify(URL, extra, headers, [AUTH_TOKEN]) is False


def test_verify_rejects_another_url():
    headers = signed_headers(INBOUND)
    other = URL.replace("acme", "other-brand")
    assert twilio.verify(other, INBOUND, headers, [AUTH_TOKEN]) is False


def test_verify_tolerates_the_default_port_in_the_url():
    # Twilio is inconsistent about the port, so the validator tries with and without it.
    headers = signed_headers(INBOUND)
    with_port = URL.replace("brain.example.com", "brain.example.com:443")
    assert twilio.verify(with_port, INBOUND, headers, [AUTH_TOKEN]) is True


def test_verify_rejects_the_wrong_token():
    headers = signed_headers(INBOUND, token="not-our-token")
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN]) is False


def test_verify_accepts_either_token_during_rotation():
    headers = signed_headers(INBOUND, token=OLD_TOKEN)
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN, OLD_TOKEN]) is True
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN]) is False


def test_verify_rejects_missing_and_garbage_signatures():
    assert twilio.verify(URL, INBOUND, {}, [AUTH_TOKEN]) is False
    for garbage in ("", "abc", "ÿÿÿÿ", "=" * 28):
        assert twilio.verify(URL, INBOUND, {"X-Twilio-Signature": garbage}, [AUTH_TOKEN]) is False
    assert twilio.verify(URL, INBOUND, signed_headers(INBOUND), []) is False
    assert twilio.verify(URL, INBOUND, signed_headers(INBOUND, token=""), [""]) is False


def test_verify_follows_the_shared_key_sha256_setting():
    headers = signed_headers(INBOUND, token=SHARED_KEY_SECRET, algorithm="HMAC_SHA256")
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN, SHARED_KEY_SECRET]) is True
    # The same SHA-256 signature without the settings header is checked as SHA-1 and fails.
    del headers["X-Twilio-Webhooks-Signature-Settings"]
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN, SHARED_KEY_SECRET]) is False


def test_verify_rejects_an_unsupported_algorithm():
    headers = signed_headers(INBOUND)
    headers["X-Twilio-Webhooks-Signature-Settings"] = "key=k1,algorithm=HMAC_SHA512"
    assert twilio.verify(URL, INBOUND, headers, [AUTH_TOKEN]) is False


@given(
    url=st.text(st.characters(exclude_categories=()), max_size=80),
    form=st.dictionaries(
        st.text(max_size=12), st.text(st.characters(exclude_categories=()), max_size=40)
    ),
    headers=st.dictionaries(
        st.sampled_from(
            ["X-Twilio-Signature", "x-twilio-signature", "X-Twilio-Webhooks-Signature-Settings"]
        ),
        st.text(st.characters(exclude_categories=()), max_size=60),
    ),
    tokens=st.lists(st.text(max_size=32), max_size=3),
)
def test_verify_never_raises(url, form, headers, tokens):
    assert twilio.verify(url, form, headers, tokens) in (True, False)


# --- inbound ------------------------------------------------------------------------------


def test_inbound_message_maps_field_by_field():
    event = twilio.map_inbound(INBOUND, RECEIVED)
    assert event.event_id == "SM3a5e0c8b6f1d4e2a9c7b5d3f1e0a2c4b"
    assert event.source == "whatsapp"
    assert event.type == "message_in"
    assert event.occurred_at == RECEIVED
    assert event.identifiers.whatsapp == "whatsapp:+5511987654321"
    assert event.identifiers.phone is None
    assert (event.traits.first_name, event.traits.last_name) == ("Ana", "Lúcia Ferreira")
    assert event.traits.whatsapp_consent is None
    assert extra(event) == {
        "message_sid": "SM3a5e0c8b6f1d4e2a9c7b5d3f1e0a2c4b",
        "text": "Hi! Is the linen dress back in size M?",
        "num_media": 0,
        "to": "whatsapp:+14155238886",
    }


def test_inbound_single_word_profile_name_and_media():
    form = dict(
        INBOUND,
        ProfileName="Ana",
        Body="",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="image/jpeg",
    )
    event = twilio.map_inbound(form, RECEIVED)
    assert (event.traits.first_name, event.traits.last_name) == ("Ana", None)
    custom = extra(event)
    assert custom["num_media"] == 1
    assert "text" not in custom
    assert custom["media"] == [{"url": form["MediaUrl0"], "content_type": "image/jpeg"}]


def test_inbound_without_profile_name_has_no_name_traits():
    form = {key: value for key, value in INBOUND.items() if key != "ProfileName"}
    event = twilio.map_inbound(form, RECEIVED)
    assert event.traits.first_name is None


@pytest.mark.parametrize("body", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "Stop all"])
def test_opt_out_keywords_withdraw_whatsapp_consent(body):
    event = twilio.map_inbound(dict(INBOUND, Body=body), RECEIVED)
    assert extra(event)["opt_out"] is True
    assert event.traits.whatsapp_consent is False


@pytest.mark.parametrize("body", ["please stop sending me sizes", "Don't cancel my order", "stopp"])
def test_a_sentence_containing_a_keyword_is_just_a_message(body):
    event = twilio.map_inbound(dict(INBOUND, Body=body), RECEIVED)
    assert "opt_out" not in extra(event)
    assert event.traits.whatsapp_consent is None


def test_start_resubscribes():
    event = twilio.map_inbound(dict(INBOUND, Body="START"), RECEIVED)
    assert event.traits.whatsapp_consent is True
    assert extra(event)["opt_in"] is True
    assert "opt_out" not in extra(event)


def test_yes_is_not_an_opt_in():
    assert twilio.map_inbound(dict(INBOUND, Body="Yes"), RECEIVED).traits.whatsapp_consent is None


def test_received_at_is_normalised_to_utc():
    local = datetime(2024, 6, 1, 6, 30, tzinfo=timezone(timedelta(hours=-3)))
    assert twilio.map_inbound(INBOUND, local).occurred_at == RECEIVED


def test_inbound_without_sid_or_sender_names_the_field():
    for field in ("MessageSid", "From"):
        form = {key: value for key, value in INBOUND.items() if key != field}
        with pytest.raises(ValidationFailed) as caught:
            twilio.map_inbound(form, RECEIVED)
        assert caught.value.details == {"field": field}


def test_bad_num_media_names_the_field():
    with pytest.raises(ValidationFailed) as caught:
        twilio.map_inbound(dict(INBOUND, NumMedia="many"), RECEIVED)
    assert caught.value.details == {"field": "NumMedia"}


def test_sms_sender_is_a_phone_not_a_whatsapp_id():
    event = twilio.map_inbound(dict(INBOUND, From="+5511987654321"), RECEIVED)
    assert event.identifiers.phone == "+5511987654321"
    assert event.identifiers.whatsapp is None


# --- status callbacks ---------------------------------------------------------------------


def test_status_callback_maps_to_message_out():
    event = twilio.map_status(STATUS, RECEIVED)
    assert event.event_id == "SMf0e1d2c3b4a5968778695a4b3c2d1e0f:undelivered"
    assert event.source == "whatsapp"
    assert event.type == "message_out"
    assert event.occurred_at == RECEIVED
    assert event.identifiers.whatsapp == "whatsapp:+5511987654321"
    assert extra(event) == {
        "message_sid": "SMf0e1d2c3b4a5968778695a4b3c2d1e0f",
        "status": "undelivered",
        "error_code": "63016",
        "from": "whatsapp:+14155238886",
    }


def test_each_status_of_a_message_is_its_own_event():
    ok = {key: value for key, value in STATUS.items() if key != "ErrorCode"}
    sent = twilio.map_status(dict(ok, MessageStatus="sent"), RECEIVED)
    read = twilio.map_status(dict(ok, MessageStatus="read"), RECEIVED)
    assert sent.event_id != read.event_id
    assert "error_code" not in extra(read)


def test_status_callback_needs_a_status():
    form = {key: value for key, value in STATUS.items() if key != "MessageStatus"}
    with pytest.raises(ValidationFailed) as caught:
        twilio.map_status(form, RECEIVED)
    assert caught.value.details == {"field": "MessageStatus"}


def test_signed_status_callback_verifies():
    assert twilio.verify(URL, STATUS, signed_headers(STATUS), [AUTH_TOKEN]) is True
