"""identity.normalize: table tests and hypothesis properties (RELIABILITY R7)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.events import Identifiers
from identity._bulk_email import emails as bulk_emails
from identity._bulk_phone import phones as bulk_phones
from identity._bulk_values import _address_clean, _email_clean, _phone_clean, _postcode_clean
from identity._phonefast import fast_e164
from identity.normalize import (
    DEFAULT_BLOCKLIST,
    MEDIUM,
    STRONG,
    WEAK,
    Normalized,
    external_id,
    identifiers_of,
    is_placeholder,
    normalize_address,
    normalize_city,
    normalize_email,
    normalize_id,
    normalize_name,
    normalize_name_part,
    normalize_phone,
    normalize_postcode,
    parse_dob,
    soundex,
    split_full_name,
    strength,
)
from identity.normalize import _phone_e164_slow as phone_slow

MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("raw", "value", "reason"),
    [
        ("  John.Smith@GMail.com ", "john.smith@gmail.com", None),
        ("mailto:Ann@Example.co.uk", "ann@example.co.uk", None),
        ("j.o.h.n+shop@gmail.com", "j.o.h.n+shop@gmail.com", None),  # no provider rules
        ("user@sub.domain.co.uk", "user@sub.domain.co.uk", None),
        ("josé@café.fr", "josé@café.fr", None),
        ("", None, "empty"),
        ("   ", None, "empty"),
        ("nobody", None, "missing_at"),
        ("a@b@c.com", None, "multiple_at"),
        ("john smith@gmail.com", None, "whitespace"),
        ("john@gmail", None, "bad_domain"),
        ("john@-gmail.com", None, "bad_domain"),
        ("john@gmail..com", None, "bad_domain"),
        (".john@gmail.com", None, "bad_local"),
        ("jo..hn@gmail.com", None, "bad_local"),
        ("@gmail.com", None, "bad_local"),
        ("x" * 300 + "@gmail.com", None, "too_long"),
    ],
)
def test_normalize_email(raw: str, value: str | None, reason: str | None) -> None:
    result = normalize_email(raw)
    assert (result.value, result.reason, result.valid) == (value, reason, value is not None)
    assert result.kind == "email"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("J.O.H.N+shop@GoogleMail.com", "john@gmail.com"),
        ("john.smith@gmail.com", "johnsmith@gmail.com"),
        ("ann+news@outlook.com", "ann@outlook.com"),
        ("ann.lee+news@icloud.com", "ann.lee@icloud.com"),  # dots only matter at Gmail
        ("ann+news@acme.co.uk", "ann+news@acme.co.uk"),  # unknown provider: the tag stays
        ("+tag@gmail.com", None),
    ],
)
def test_normalize_email_provider_rules(raw: str, value: str | None) -> None:
    assert normalize_email(raw, provider_rules=True).value == value


@pytest.mark.parametrize(
    "raw",
    [
        "test@test.com",
        "TEST@TEST.COM",
        "noemail@shop.co.uk",
        "no-reply@brand.com",
        "none@anything.org",
        "na@na.com",
        "someone@example.com",
        "x@example.org",
        "aaaa@gmail.com",
        "shopper@store.test",
    ],
)
def test_placeholder_emails_are_flagged_never_matchable(raw: str) -> None:
    result = normalize_email(raw)
    assert result.valid and result.placeholder and not result.matchable


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("07400 123456", "+447400123456"),
        ("+44 7400 123456", "+447400123456"),
        ("+447400123456", "+447400123456"),
        ("0044 7400 123456", "+447400123456"),
        ("(0)7700-900-123", "+447700900123"),
        ("+44 (0)7700 900123", "+447700900123"),
        ("whatsapp:+447400123456", "+447400123456"),
        ("WhatsApp: +44 7400 123456", "+447400123456"),
        ("tel:+44-20-7946-0958", "+442079460958"),
        ("07400 123456 ext 12", "+447400123456"),
        ("07400123456x3", "+447400123456"),
        ("020 7946 0958", "+442079460958"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+353 1 482 5678", "+35314825678"),
    ],
)
def test_normalize_phone_to_e164(raw: str, value: str) -> None:
    result = normalize_phone(raw)
    assert result == Normalized("phone", value, True, None, False)


def test_phone_region_reads_national_numbers() -> None:
    assert normalize_phone("(415) 555-2671", region="US").value == "+14155552671"
    assert normalize_phone("(415) 555-2671", region="GB").value != "+14155552671"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("hello", "not_a_number"), ("12", "too_short"), ("call me", "not_a_number")],
)
def test_invalid_phones_are_flagged(raw: str, reason: str) -> None:
    result = normalize_phone(raw)
    assert (result.value, result.valid, result.reason) == (None, False, reason)


@pytest.mark.parametrize(
    "raw", ["1234567890", "07000 000000", "00000000000", "+44 1234 567890", "07111 111111"]
)
def test_placeholder_phones(raw: str) -> None:
    result = normalize_phone(raw)
    assert result.placeholder and not result.matchable


def test_brand_blocklist_adds_its_own_numbers() -> None:
    store = "+441614960000"
    assert not normalize_phone("0161 496 0000").placeholder
    assert normalize_phone("0161 496 0000", blocklist=[store]).placeholder
    assert is_placeholder("email", "orders@myshop.com", extra_blocklist=["*@myshop.com"])
    assert is_placeholder("whatsapp", "+440000000000")
    assert not is_placeholder("email", None)
    assert set(DEFAULT_BLOCKLIST) >= {"email", "phone", "loyalty_id", "device_id", "external"}


def test_ids_and_external_ids() -> None:
    assert normalize_id("loyalty_id", " ab-1234 56 ").value == "AB123456"
    assert normalize_id("device_id", " AbC-123 ").value == "AbC-123"
    assert normalize_id("cookie_id", "ga1.2.3").value == "ga1.2.3"
    assert normalize_id("loyalty_id", "  ") == Normalized("loyalty_id", None, False, "empty")
    assert normalize_id("device_id", "00000000-0000-0000-0000-000000000000").placeholder
    assert normalize_id("loyalty_id", "n/a").placeholder
    with pytest.raises(ValueError, match="unknown identifier kind 'email'"):
        normalize_id("email", "x")
    assert external_id("Shopify", " 123 ").value == "shopify:123"
    assert external_id("woocommerce", "0").placeholder  # WooCommerce's guest
    assert not external_id("", "1").valid
    assert external_id("shopify", "1") != external_id("woocommerce", "1")


def test_strength() -> None:
    assert {"email", "phone", "external"} == STRONG and {"loyalty_id"} == MEDIUM
    assert {"device_id", "cookie_id"} == WEAK
    assert [strength(k) for k in ("email", "whatsapp", "external", "loyalty_id", "cookie_id")] == [
        "strong",
        "strong",
        "strong",
        "medium",
        "weak",
    ]
    with pytest.raises(ValueError, match="unknown identifier kind"):
        strength("passport")


def test_identifiers_of_extracts_everything_once() -> None:
    ids = Identifiers(
        email=" Ann@Example.co.uk ",
        phone="07400 123456",
        whatsapp="whatsapp:+447400123456",
        loyalty_id="ly-12 34",
        device_id="dev-1",
        cookie_id="ck",
        external_ids={"shopify": 123, "woocommerce": "0"},
    )
    found = identifiers_of(ids, blocklist=["ck"])
    assert [(n.kind, n.value) for n in found] == [
        ("email", "ann@example.co.uk"),
        ("phone", "+447400123456"),  # whatsapp: the same person-key, listed once
        ("loyalty_id", "LY1234"),
        ("device_id", "dev-1"),
        ("cookie_id", "ck"),
        ("external", "shopify:123"),
        ("external", "woocommerce:0"),
    ]
    assert [n.matchable for n in found] == [True, True, True, True, False, True, False]
    bad = identifiers_of(Identifiers(email="not an email", phone="n/a"))
    assert [(n.kind, n.valid, n.reason) for n in bad] == [
        ("email", False, "whitespace"),
        ("phone", False, "not_a_number"),
    ]
    assert identifiers_of(Identifiers()) == []


def test_names() -> None:
    assert normalize_name("Dr. José", "O'Brien-Smith") == "jose obrien smith"
    assert normalize_name("  MRS   Zoë ", None) == "zoe"
    assert normalize_name_part("Seán Jr.") == "sean"
    assert normalize_name_part("Müller") == "muller"
    assert normalize_name_part("Straße") == "strasse"
    assert normalize_name_part("王 小明") == "王 小明"  # other scripts are kept
    assert normalize_name_part("Mr") == ""  # a title alone is no name
    assert split_full_name("Smith, John") == ("John", "Smith")
    assert split_full_name("Dr Mary Ann Lee") == ("Mary Ann", "Lee")
    assert split_full_name("Cher") == ("Cher", "")
    assert soundex("smith") == soundex("smyth") == "S530"
    assert soundex("ashcraft") == "A261"


def test_address_postcode_city() -> None:
    assert normalize_address("Flat 2, 10 High Street") == "flat 2 10 high st"
    assert normalize_address("10 HIGH ST.", street_number=None) == "10 high st"
    assert normalize_address("High Road", street_number="12") == "12 high rd"
    assert normalize_address(None) == ""
    assert normalize_postcode("sw1a1aa") == "SW1A 1AA"
    assert normalize_postcode(" ec1a  1bb ", "United Kingdom") == "EC1A 1BB"
    assert normalize_postcode("94105-1234", "US") == "94105"
    assert normalize_postcode("k1a0b1", "Canada") == "K1A 0B1"
    assert normalize_postcode("  ") is None
    assert normalize_city("St. Albans") == normalize_city("saint albans") == "saint albans"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-07", date(1985, 3, 7)),
        ("1985-03-07T00:00:00Z", date(1985, 3, 7)),
        ("07/03/1985", date(1985, 3, 7)),  # day first by default
        ("13/03/1985", date(1985, 3, 13)),
        ("03/13/1985", date(1985, 3, 13)),  # cannot be day-first: month-first
        ("7.3.1985", date(1985, 3, 7)),
        ("19850307", date(1985, 3, 7)),
        ("7 March 1985", date(1985, 3, 7)),
        ("March 7, 1985", date(1985, 3, 7)),
        ("07-Mar-85", date(1985, 3, 7)),
        ("31/02/1985", None),
        ("1900-01-01", None),  # placeholder
        ("1970-01-01", None),
        ("2999-01-01", None),  # future
        ("1850-01-01", None),
        ("unknown", None),
        ("", None),
    ],
)
def test_parse_dob(raw: str, expected: date | None) -> None:
    assert parse_dob(raw) == expected


def test_parse_dob_month_first_and_objects() -> None:
    assert parse_dob("07/03/1985", dayfirst=False) == date(1985, 7, 3)
    assert parse_dob(date(1990, 5, 1)) == date(1990, 5, 1)
    assert parse_dob(12345) is None


# --- properties ---------------------------------------------------------------------------

emails = st.one_of(
    st.emails().map(lambda e: e.swapcase()),
    st.builds(
        lambda a, b, c, d: f"{a}{b}@{c}.{d}",
        st.text(alphabet="abcXYZ.+_-1 ", min_size=1, max_size=12),
        st.sampled_from(["", "+tag", ".x"]),
        st.sampled_from(["gmail", "googlemail", "example", "shop-1", "ÄÖ"]),
        st.sampled_from(["com", "co.uk", "io", "c"]),
    ),
    st.text(max_size=40),
)
phone_like = st.builds(
    lambda prefix, digits, seps, tail: (
        prefix + "".join(d + s for d, s in zip(digits, seps, strict=False)) + tail
    ),
    st.sampled_from(["", "+", "00", "0", "+44", "0044", "+44 (0)", "(0", "+1", "+353", "44", "+7"]),
    st.text(alphabet="0123456789", min_size=3, max_size=16),
    st.lists(st.sampled_from(["", "", "", " ", "-", ".", "(", ")"]), min_size=16, max_size=16),
    st.sampled_from(["", "", " ext 12", "x9", " ext.", ", ext 123"]),
)
regions = st.sampled_from(["GB", "US", "FR", "DE", "IT", "AR", "MX", "GG", "IN", "BR"])


@MANY
@given(emails, st.booleans())
def test_email_normalization_is_idempotent(raw: str, provider_rules: bool) -> None:
    once = normalize_email(raw, provider_rules=provider_rules)
    if once.valid:
        assert once.value is not None
        assert normalize_email(once.value, provider_rules=provider_rules) == once


@MANY
@given(phone_like, regions)
def test_phone_normalization_is_idempotent(raw: str, region: str) -> None:
    once = normalize_phone(raw, region=region)
    # Placeholders (all zeros...) never link anyone, so their exact form does not matter.
    if once.valid and not once.placeholder:
        assert once.value is not None
        assert normalize_phone(once.value, region=region) == once


@MANY
@given(phone_like, regions)
def test_whatsapp_address_is_the_phone(raw: str, region: str) -> None:
    plain = normalize_phone(raw, region=region)
    for prefix in ("whatsapp:", "WhatsApp: ", "whatsapp:"):
        assert normalize_phone(prefix + raw, region=region) == plain


@MANY
@given(phone_like, regions)
def test_fast_phone_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    fast = fast_e164(raw.strip(), region)
    if fast is not None:
        assert fast == phone_slow(raw.strip(), region)


@MANY
@given(phone_like, regions)
def test_phone_punctuation_never_changes_the_number(raw: str, region: str) -> None:
    # The bulk engine merges "07400 123-456" and "07400123456" before normalizing.
    if set(raw) <= set("+0123456789 -.()") and raw[:1] in set("+0123456789( "):
        squeezed = raw.translate(str.maketrans("", "", " -.()"))
        assert normalize_phone(squeezed, region=region).value == (
            normalize_phone(raw, region=region).value
        )


@MANY
@given(st.text(max_size=60), regions)
def test_normalizers_never_raise_on_any_text(text: str, region: str) -> None:
    for result in (
        normalize_email(text),
        normalize_email(text, provider_rules=True),
        normalize_phone(text, region=region),
        normalize_id("loyalty_id", text),
        normalize_id("device_id", text),
        external_id(text, text),
    ):
        assert isinstance(result, Normalized)
        assert result.valid == (result.value is not None)
        assert not (result.placeholder and not result.valid)
    normalize_name(text, text)
    normalize_address(text, text, street_number=text)
    normalize_postcode(text, region)
    normalize_city(text)
    parse_dob(text)
    split_full_name(text)
    identifiers_of(Identifiers(email=text[:200], phone=text[:200], whatsapp=text[:200]))


@MANY
@given(st.text(max_size=40))
def test_text_normalizers_are_idempotent(text: str) -> None:
    name = normalize_name_part(text)
    assert normalize_name_part(name) == name
    address = normalize_address(text)
    assert normalize_address(address) == address
    postcode = normalize_postcode(text)
    assert postcode is None or normalize_postcode(postcode) == postcode
    city = normalize_city(text)
    assert normalize_city(city) == city


@MANY
@given(st.lists(emails, min_size=1, max_size=20))
def test_bulk_email_path_agrees_with_the_scalar_one(values: list[str]) -> None:
    def scalar(raw: str) -> tuple[str | None, int]:
        result = normalize_email(raw)
        return result.value if result.matchable else None, 0 if result.matchable else (
            2 if result.placeholder else 1
        )

    assert bulk_emails(values, scalar) == [scalar(v) for v in values]


@MANY
@given(st.lists(phone_like, min_size=1, max_size=25), regions)
def test_bulk_phone_path_agrees_with_the_scalar_one(values: list[str], region: str) -> None:
    def scalar(raw: str) -> tuple[str | None, int]:
        result = normalize_phone(raw, region=region)
        return result.value if result.matchable else None, 0 if result.matchable else (
            2 if result.placeholder else 1
        )

    # The bulk engine hands over punctuation-free digits; try both kinds of input.
    cleaned = [v.translate(str.maketrans("", "", " -.()")) for v in values]
    for batch in (values, cleaned):
        assert bulk_phones(batch, region, scalar) == [scalar(v) for v in batch]


@MANY
@given(st.text(max_size=30), st.sampled_from(["GB", "US", "CA", "FR"]))
def test_bulk_clean_ups_never_change_an_answer(text: str, country: str) -> None:
    # The bulk engine merges spelling variants before normalizing once per variant group.
    assert normalize_postcode(_postcode_clean(text), country) == normalize_postcode(text, country)
    assert normalize_address(_address_clean(text)) == normalize_address(text)
    assert normalize_email(_email_clean(text)) == normalize_email(text)
    cleaned, raw = normalize_phone(_phone_clean(text)), normalize_phone(text)
    assert (cleaned.value, cleaned.placeholder) == (raw.value, raw.placeholder)  # not reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ann@gmial.com", "ann@gmail.com"),
        ("ann@gmail.con", "ann@gmail.com"),
        ("ann@gmail.co", "ann@gmail.com"),
        ("ann@hotmial.co.uk", "ann@hotmail.co.uk"),
        ("ann@yahooo.co.uk", "ann@yahoo.co.uk"),
        ("ann@outlok.com", "ann@outlook.com"),
        ("ann@acme.con", "ann@acme.com"),
        # Real, different services stay apart; company and short domains are not guessed.
        ("ann@hotmail.com", "ann@hotmail.com"),
        ("ann@hotmail.co.uk", "ann@hotmail.co.uk"),
        ("ann@mail.com", "ann@mail.com"),
        ("ann@outlook.de", "ann@outlook.de"),
        ("ann@acme-logistics.com", "ann@acme-logistics.com"),
        ("ann@gmx.net", "ann@gmx.net"),
    ],
)
def test_mail_domain_typos_of_known_providers_are_corrected(raw: str, expected: str) -> None:
    n = normalize_email(raw)
    assert n.valid
    assert n.value == expected


def test_bulk_email_path_corrects_domains_like_the_scalar_one() -> None:
    values = ["Ann@gmial.com", "bo@acme.con", "cy@hotmail.co.uk", "di@outllook.com", "x@mail.com"]

    def scalar(raw: str) -> tuple[str | None, int]:
        result = normalize_email(raw)
        return result.value if result.matchable else None, 0 if result.matchable else 1

    assert bulk_emails(values, scalar) == [scalar(v) for v in values]
    assert [v for v, _ in bulk_emails(values, scalar)][:2] == ["ann@gmail.com", "bo@acme.com"]


@pytest.mark.parametrize("region", ["GB", "IN", "US"])
def test_letters_in_a_phone_are_no_vanity_number(region: str) -> None:
    # phonenumbers reads letters as a keypad ("ext." -> 398): a bare extension marker is
    # dropped, other letters make the value invalid, and the result is idempotent.
    once = normalize_phone("0000000000 ext.", region=region)
    assert once.value is None or "398" not in once.value
    if once.valid and once.value is not None:
        assert normalize_phone(once.value, region=region).value == once.value
    assert not normalize_phone("1-800-FLOWERS", region=region).valid
    assert normalize_phone("+44 7700 900123 x", region=region).value == "+447700900123"
