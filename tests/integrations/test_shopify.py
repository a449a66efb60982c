from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import shopify

SECRET = "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"
OLD_SECRET = "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"
RECEIVED = datetime(2024, 3, 10, 19, 22, 30, tzinfo=UTC)
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"

CUSTOMER: dict[str, Any] = {
    "id": 7145378349223,
    "email": "jon.snow@example.com",
    "created_at": "2023-11-02T09:14:12-04:00",
    "updated_at": "2024-03-10T14:22:05-05:00",
    "first_name": "Jon",
    "last_name": "Snow",
    "state": "enabled",
    "note": None,
    "verified_email": True,
    "multipass_identifier": None,
    "tax_exempt": False,
    "phone": "+16135550135",
    "email_marketing_consent": {
        "state": "subscribed",
        "opt_in_level": "single_opt_in",
        "consent_updated_at": "2023-11-02T09:14:12-04:00",
    },
    "sms_marketing_consent": {
        "state": "not_subscribed",
        "opt_in_level": "single_opt_in",
        "consent_updated_at": None,
        "consent_collected_from": "OTHER",
    },
    "tags": "",
    "currency": "USD",
    "tax_exemptions": [],
    "admin_graphql_api_id": "gid://shopify/Customer/7145378349223",
    "default_address": {
        "id": 9302384750183,
        "customer_id": 7145378349223,
        "first_name": "Jon",
        "last_name": "Snow",
        "company": None,
        "address1": "12 Wall Street",
        "address2": "Apt 4",
        "city": "Ottawa",
        "province": "Ontario",
        "country": "Canada",
        "zip": "K2P 1L4",
        "phone": "+16135550135",
        "name": "Jon Snow",
        "province_code": "ON",
        "country_code": "CA",
        "country_name": "Canada",
        "default": True,
    },
}

ORDER: dict[str, Any] = {
    "id": 5638428901543,
    "admin_graphql_api_id": "gid://shopify/Order/5638428901543",
    "app_id": 580111,
    "browser_ip": "203.0.113.7",
    "buyer_accepts_marketing": True,
    "cancel_reason": None,
    "cancelled_at": None,
    "checkout_id": 36711028506791,
    "checkout_token": "f7d3b2c1a0e9d8c7b6a5f4e3d2c1b0a9",
    "confirmation_number": "QH7KX2JMF",
    "confirmed": True,
    "contact_email": "jon.snow@example.com",
    "created_at": "2024-03-10T14:22:05-05:00",
    "currency": "USD",
    "current_total_price": "219.50",
    "email": "jon.snow@example.com",
    "financial_status": "paid",
    "fulfillment_status": None,
    "name": "#1042",
    "order_number": 1042,
    "phone": None,
    "presentment_currency": "USD",
    "processed_at": "2024-03-10T14:22:04-05:00",
    "source_name": "web",
    "subtotal_price": "209.00",
    "tags": "",
    "test": False,
    "total_discounts": "10.00",
    "total_line_items_price": "219.00",
    "total_price": "219.50",
    "total_price_set": {
        "shop_money": {"amount": "219.50", "currency_code": "USD"},
        "presentment_money": {"amount": "219.50", "currency_code": "USD"},
    },
    "total_tax": "10.50",
    "updated_at": "2024-03-10T14:22:06-05:00",
    "billing_address": {
        "first_name": "Jon",
        "address1": "12 Wall Street",
        "phone": "613-555-0135",
        "city": "Ottawa",
        "zip": "K2P 1L4",
        "province": "Ontario",
        "country": "Canada",
        "last_name": "Snow",
        "address2": "Apt 4",
        "company": None,
        "latitude": 45.4215,
        "longitude": -75.6972,
        "name": "Jon Snow",
        "country_code": "CA",
        "province_code": "ON",
    },
    "customer": {
        "id": 7145378349223,
        "email": "jon.snow@example.com",
        "created_at": "2023-11-02T09:14:12-04:00",
        "updated_at": "2024-03-10T14:22:05-05:00",
        "first_name": "Jon",
        "last_name": "Snow",
        "state": "enabled",
        "phone": "+16135550135",
        "currency": "USD",
        "default_address": CUSTOMER["default_address"],
    },
    "line_items": [
        {
            "id": 13929842786471,
            "admin_graphql_api_id": "gid://shopify/LineItem/13929842786471",
            "fulfillable_quantity": 1,
            "gift_card": False,
            "grams": 900,
            "name": "Wool Overcoat - Charcoal / M",
            "price": "199.00",
            "price_set": {
                "shop_money": {"amount": "199.00", "currency_code": "USD"},
                "presentment_money": {"amount": "199.00", "currency_code": "USD"},
            },
            "product_exists": True,
            "product_id": 8012345678901,
            "properties": [],
            "quantity": 1,
            "requires_shipping": True,
            "sku": "COAT-CHAR-M",
            "taxable": True,
            "title": "Wool Overcoat",
            "total_discount": "10.00",
            "variant_id": 44012345678901,
            "variant_title": "Charcoal / M",
            "vendor": "North Outfitters",
        },
        {
            "id": 13929842819239,
            "admin_graphql_api_id": "gid://shopify/LineItem/13929842819239",
            "fulfillable_quantity": 2,
            "gift_card": False,
            "grams": 80,
            "name": "Merino Socks",
            "price": "10.00",
            "product_exists": True,
            "product_id": 8012345679999,
            "product_type": "Accessories",
            "properties": [],
            "quantity": 2,
            "requires_shipping": True,
            "sku": "",
            "taxable": True,
            "title": "Merino Socks",
            "total_discount": "0.00",
            "variant_id": 44012345679999,
            "variant_title": None,
            "vendor": "North Outfitters",
        },
    ],
    "shipping_address": {
        "first_name": "Arya",
        "address1": "1 Gift Lane",
        "phone": "+16135550199",
        "city": "Kingston",
        "zip": "K7L 2N8",
        "province": "Ontario",
        "country": "Canada",
        "last_name": "Stark",
        "name": "Arya Stark",
        "country_code": "CA",
        "province_code": "ON",
    },
}

REFUND: dict[str, Any] = {
    "id": 930452619431,
    "order_id": 5638428901543,
    "created_at": "2024-03-15T10:01:44-04:00",
    "note": "Too small",
    "user_id": 81234567,
    "processed_at": "2024-03-15T10:01:44-04:00",
    "restock": True,
    "duties": [],
    "additional_fees": [],
    "admin_graphql_api_id": "gid://shopify/Refund/930452619431",
    "return": None,
    "refund_line_items": [
        {
            "id": 547223290023,
            "line_item_id": 13929842819239,
            "location_id": 61234567,
            "quantity": 1,
            "restock_type": "return",
            "subtotal": 10.0,
            "subtotal_set": {
                "shop_money": {"amount": "10.00", "currency_code": "USD"},
                "presentment_money": {"amount": "10.00", "currency_code": "USD"},
            },
            "total_tax": 0.5,
            "total_tax_set": {
                "shop_money": {"amount": "0.50", "currency_code": "USD"},
                "presentment_money": {"amount": "0.50", "currency_code": "USD"},
            },
            "line_item": ORDER["line_items"][1],
        }
    ],
    "transactions": [
        {
            "id": 6934501238951,
            "order_id": 5638428901543,
            "kind": "refund",
            "gateway": "shopify_payments",
            "status": "success",
            "message": "Transaction approved",
            "created_at": "2024-03-15T10:01:43-04:00",
            "test": False,
            "authorization": "ch_3Otp2x",
            "parent_id": 6934411112222,
            "processed_at": "2024-03-15T10:01:43-04:00",
            "source_name": "1830279",
            "amount": "10.50",
            "currency": "USD",
            "admin_graphql_api_id": "gid://shopify/OrderTransaction/6934501238951",
        }
    ],
    "order_adjustments": [],
}

GUEST_CHECKOUT: dict[str, Any] = {
    "id": 36711028506791,
    "token": "f7d3b2c1a0e9d8c7b6a5f4e3d2c1b0a9",
    "cart_token": "Z2NwLXVzLWVhc3QxOjAxSFJNN1",
    "email": "guest.buyer@example.org",
    "gateway": None,
    "buyer_accepts_marketing": False,
    "created_at": "2024-03-10T14:10:00-05:00",
    "updated_at": "2024-03-10T14:12:31-05:00",
    "landing_site": "/products/wool-overcoat",
    "note": None,
    "referring_site": "https://www.google.com/",
    "taxes_included": False,
    "total_weight": 900,
    "currency": "USD",
    "presentment_currency": "USD",
    "completed_at": None,
    "phone": None,
    "customer_locale": "en-CA",
    "line_items": [
        {
            "key": "44012345678901:7ef1a2",
            "fulfillment_service": "manual",
            "gift_card": False,
            "grams": 900,
            "presentment_title": "Wool Overcoat",
            "presentment_variant_title": "Charcoal / M",
            "product_id": 8012345678901,
            "quantity": 1,
            "requires_shipping": True,
            "sku": "COAT-CHAR-M",
            "taxable": True,
            "title": "Wool Overcoat",
            "variant_id": 44012345678901,
            "variant_title": "Charcoal / M",
            "variant_price": "199.00",
            "vendor": "North Outfitters",
            "line_price": "199.00",
            "price": "199.00",
            "applied_discounts": [],
        }
    ],
    "name": "#36711028506791",
    "abandoned_checkout_url": "https://north-outfitters.myshopify.com/58012/checkouts/ac/f7d3b2c1/recover?key=1a2b3c",
    "subtotal_price": "199.00",
    "total_discounts": "0.00",
    "total_line_items_price": "199.00",
    "total_price": "208.95",
    "total_tax": "9.95",
    "billing_address": {
        "first_name": "Sansa",
        "address1": "4 Rue Principale",
        "phone": "+15145550177",
        "city": "Montréal",
        "zip": "H2X 1Y4",
        "province": "Quebec",
        "country": "Canada",
        "last_name": "Stark",
        "country_code": "CA",
        "province_code": "QC",
    },
    "shipping_address": None,
}

SHOP: dict[str, Any] = {"shop_id": 58012345, "shop_domain": "north-outfitters.myshopify.com"}


def extra(event: CanonicalEvent) -> dict[str, Any]:
    """The custom (non-reserved) properties of an event."""
    return event.properties.model_extra or {}


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers_for(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": "north-outfitters.myshopify.com",
        "X-Shopify-Webhook-Id": WEBHOOK_ID,
        "X-Shopify-API-Version": "2024-01",
    }


def map_one(topic: str, payload: dict) -> CanonicalEvent:
    result = shopify.map_webhook(topic, payload, webhook_id=WEBHOOK_ID, received_at=RECEIVED)
    assert isinstance(result, list) and len(result) == 1
    return result[0]


# --- verification -------------------------------------------------------------------------


def test_verify_accepts_a_valid_signature():
    body = json.dumps(ORDER).encode()
    assert shopify.verify(body, headers_for(body), [SECRET]) is True


def test_verify_reads_the_header_case_insensitively():
    body = json.dumps(ORDER).encode()
    lower = {key.lower(): value for key, value in headers_for(body).items()}
    assert shopify.verify(body, lower, [SECRET]) is True


def test_verify_rejects_a_tampered_body():
    body = json.dumps(ORDER).encode()
    headers = headers_for(body)
    assert shopify.verify(body.replace(b"219.50", b"2.50"), headers, [SECRET]) is False


def test_verify_rejects_the_wrong_secret():
    body = json.dumps(ORDER).encode()
    assert shopify.verify(body, headers_for(body, "not-the-secret"), [SECRET]) is False


def test_verify_accepts_old_and_new_secret_during_rotation():
    body = json.dumps(ORDER).encode()
    assert shopify.verify(body, headers_for(body, OLD_SECRET), [SECRET, OLD_SECRET]) is True
    assert shopify.verify(body, headers_for(body, SECRET), [SECRET, OLD_SECRET]) is True
    assert shopify.verify(body, headers_for(body, OLD_SECRET), [SECRET]) is False


def test_verify_rejects_missing_and_garbage_headers():
    body = json.dumps(ORDER).encode()
    headers = headers_for(body)
    del headers["X-Shopify-Hmac-Sha256"]
    assert shopify.verify(body, headers, [SECRET]) is False
    for garbage in ("", "%%%", "sha256=abc", "é"):
        assert shopify.verify(body, {"X-Shopify-Hmac-Sha256": garbage}, [SECRET]) is False


@given(
    body=st.binary(max_size=1024),
    headers=st.dictionaries(
        st.sampled_from(["X-Shopify-Hmac-Sha256", "x-shopify-hmac-sha256", "Other"]),
        st.text(st.characters(exclude_categories=()), max_size=100),
    ),
    secrets=st.lists(st.text(max_size=40), max_size=3),
)
def test_verify_never_raises(body, headers, secrets):
    assert shopify.verify(body, headers, secrets) in (True, False)


# --- orders -------------------------------------------------------------------------------


def test_order_create_maps_to_a_purchase_field_by_field():
    event = map_one("orders/create", ORDER)
    assert event.event_id == "order:5638428901543"
    assert event.source == "shopify"
    assert event.type == "purchase"
    assert event.occurred_at == datetime(2024, 3, 10, 19, 22, 5, tzinfo=UTC)
    ids = event.identifiers
    assert ids.email == "jon.snow@example.com"
    assert ids.phone == "+16135550135"  # the customer's own phone wins over the address's
    assert ids.external_ids == {"shopify": "7145378349223"}
    traits = event.traits
    assert (traits.first_name, traits.last_name) == ("Jon", "Snow")
    assert traits.city == "Ottawa"
    assert traits.postcode == "K2P 1L4"
    assert traits.country == "CA"
    assert traits.address == "12 Wall Street"
    assert traits.state == "Ontario"
    props = event.properties
    assert props.order_id == "5638428901543"
    assert props.total == 219.50
    assert props.currency == "USD"
    assert extra(event)["order_name"] == "#1042"
    assert extra(event)["financial_status"] == "paid"
    assert extra(event)["discount_total"] == 10.0
    assert "test" not in extra(event)
    coat, socks = props.items
    assert (coat.product_id, coat.sku, coat.name, coat.price, coat.quantity) == (
        "8012345678901",
        "COAT-CHAR-M",
        "Wool Overcoat",
        199.0,
        1,
    )
    assert coat.category is None
    assert (socks.sku, socks.category, socks.price, socks.quantity) == (
        None,
        "Accessories",
        10.0,
        2,
    )


def test_shipping_address_never_becomes_the_buyers_traits():
    event = map_one("orders/create", ORDER)
    assert event.traits.city != "Kingston"
    assert event.traits.first_name != "Arya"


def test_orders_create_and_paid_share_one_event_id_so_revenue_counts_once():
    paid = copy.deepcopy(ORDER)
    paid["financial_status"] = "paid"
    paid["updated_at"] = "2024-03-10T14:25:00-05:00"
    created = map_one("orders/create", ORDER)
    settled = map_one("orders/paid", paid)
    assert created.event_id == settled.event_id == "order:5638428901543"
    assert created.type == settled.type == "purchase"


def test_guest_order_without_customer_still_maps():
    guest = copy.deepcopy(ORDER)
    del guest["customer"]
    guest["email"] = "guest@example.org"
    guest["contact_email"] = "guest@example.org"
    event = map_one("orders/create", guest)
    assert event.identifiers.email == "guest@example.org"
    assert event.identifiers.phone == "613-555-0135"  # from the billing address
    assert event.identifiers.external_ids == {}
    assert event.traits.first_name == "Jon"  # from the billing address


def test_guest_order_falls_back_to_contact_email_and_shipping_phone():
    guest = copy.deepcopy(ORDER)
    guest["customer"] = None
    guest["email"] = ""
    guest["contact_email"] = "contact@example.org"
    guest["billing_address"]["phone"] = None
    event = map_one("orders/create", guest)
    assert event.identifiers.email == "contact@example.org"
    assert event.identifiers.phone == "+16135550199"


def test_test_orders_are_flagged():
    order = copy.deepcopy(ORDER)
    order["test"] = True
    assert extra(map_one("orders/create", order))["test"] is True


def test_order_without_created_at_uses_processed_at_then_received_at():
    order = copy.deepcopy(ORDER)
    del order["created_at"]
    assert map_one("orders/create", order).occurred_at == datetime(
        2024, 3, 10, 19, 22, 4, tzinfo=UTC
    )
    del order["processed_at"]
    assert map_one("orders/create", order).occurred_at == RECEIVED


def test_order_without_id_names_the_field():
    order = copy.deepcopy(ORDER)
    del order["id"]
    with pytest.raises(ValidationFailed) as caught:
        shopify.map_webhook("orders/create", order, webhook_id=WEBHOOK_ID, received_at=RECEIVED)
    assert "'id'" in caught.value.message
    assert caught.value.details == {"field": "id"}
    assert caught.value.status == 422


def test_bad_price_names_the_line_item_field():
    order = copy.deepcopy(ORDER)
    order["line_items"][1]["price"] = "ten dollars"
    with pytest.raises(ValidationFailed) as caught:
        map_one("orders/create", order)
    assert caught.value.details == {"field": "line_items[1].price"}


def test_invalid_canonical_field_is_named_without_its_value():
    order = copy.deepcopy(ORDER)
    order["customer"]["email"] = "x" * 300 + "@example.com"
    with pytest.raises(ValidationFailed) as caught:
        map_one("orders/create", order)
    assert caught.value.details == {"field": "identifiers.email"}
    assert "xxxx" not in caught.value.message


def test_bad_timestamp_names_the_field():
    order = copy.deepcopy(ORDER)
    order["created_at"] = "yesterday"
    with pytest.raises(ValidationFailed) as caught:
        map_one("orders/create", order)
    assert caught.value.details == {"field": "created_at"}


def test_non_object_payload_is_refused():
    with pytest.raises(ValidationFailed):
        shopify.map_webhook("orders/create", [], webhook_id=WEBHOOK_ID, received_at=RECEIVED)  # type: ignore[arg-type]


# --- refunds ------------------------------------------------------------------------------


def test_refund_maps_to_a_positive_refund_total():
    event = map_one("refunds/create", REFUND)
    assert event.type == "refund"
    assert event.event_id == "refund:930452619431"
    assert event.occurred_at == datetime(2024, 3, 15, 14, 1, 44, tzinfo=UTC)
    assert event.properties.order_id == "5638428901543"
    assert extra(event)["refund_id"] == "930452619431"
    assert event.properties.total == 10.50
    assert event.properties.currency == "USD"
    (item,) = event.properties.items
    assert (item.product_id, item.name, item.price, item.quantity) == (
        "8012345679999",
        "Merino Socks",
        10.0,
        1,
    )
    # A Refund carries no customer; identity links it through the order id.
    assert event.identifiers.is_empty()


def test_refund_ignores_failed_transactions_and_sums_the_rest():
    refund = copy.deepcopy(REFUND)
    extra = dict(refund["transactions"][0], id=1, amount="5.00")
    failed = dict(refund["transactions"][0], id=2, amount="99.00", status="failure")
    not_a_refund = dict(refund["transactions"][0], id=3, amount="50.00", kind="sale")
    refund["transactions"] += [extra, failed, not_a_refund]
    assert map_one("refunds/create", refund).properties.total == 15.50


def test_refund_without_transactions_key_sums_line_items():
    refund = copy.deepcopy(REFUND)
    del refund["transactions"]
    event = map_one("refunds/create", refund)
    assert event.properties.total == 10.50
    assert event.properties.currency == "USD"


def test_restock_only_refund_moves_no_money():
    refund = copy.deepcopy(REFUND)
    refund["transactions"] = []
    assert map_one("refunds/create", refund).properties.total == 0.0


def test_refund_without_order_id_names_the_field():
    refund = copy.deepcopy(REFUND)
    del refund["order_id"]
    with pytest.raises(ValidationFailed) as caught:
        map_one("refunds/create", refund)
    assert caught.value.details == {"field": "order_id"}


# --- customers ----------------------------------------------------------------------------


def test_customer_create_maps_to_identify_with_traits_and_consent():
    event = map_one("customers/create", CUSTOMER)
    assert event.type == "identify"
    assert event.event_id == "customer:7145378349223:2024-03-10T19:22:05+00:00"
    assert event.occurred_at == datetime(2024, 3, 10, 19, 22, 5, tzinfo=UTC)
    assert event.identifiers.email == "jon.snow@example.com"
    assert event.identifiers.phone == "+16135550135"
    assert event.identifiers.external_ids == {"shopify": "7145378349223"}
    traits = event.traits
    assert (traits.first_name, traits.last_name) == ("Jon", "Snow")
    assert (traits.city, traits.postcode, traits.country) == ("Ottawa", "K2P 1L4", "CA")
    assert (traits.address, traits.state) == ("12 Wall Street", "Ontario")
    assert traits.email_consent is True
    assert traits.sms_consent is False


def test_customer_update_is_one_event_per_version():
    later = copy.deepcopy(CUSTOMER)
    later["updated_at"] = "2024-04-01T08:00:00-04:00"
    later["email_marketing_consent"]["state"] = "unsubscribed"
    first = map_one("customers/create", CUSTOMER)
    again = map_one("customers/update", CUSTOMER)
    second = map_one("customers/update", later)
    assert first.event_id == again.event_id
    assert second.event_id != first.event_id
    assert second.traits.email_consent is False


def test_customer_without_consent_fields_leaves_consent_unknown():
    # Since API 2025-01 webhook customer payloads carry no marketing consent.
    customer = copy.deepcopy(CUSTOMER)
    del customer["email_marketing_consent"]
    del customer["sms_marketing_consent"]
    customer["default_address"] = None
    event = map_one("customers/update", customer)
    assert event.traits.email_consent is None
    assert event.traits.sms_consent is None
    assert event.traits.city is None


def test_pending_consent_is_no_decision():
    customer = copy.deepcopy(CUSTOMER)
    customer["email_marketing_consent"]["state"] = "pending"
    assert map_one("customers/update", customer).traits.email_consent is None


def test_customer_without_updated_at_falls_back_to_the_webhook_id():
    customer = copy.deepcopy(CUSTOMER)
    del customer["updated_at"]
    event = map_one("customers/update", customer)
    assert event.event_id == f"webhook:{WEBHOOK_ID}"
    assert event.occurred_at == datetime(2023, 11, 2, 13, 14, 12, tzinfo=UTC)


# --- checkouts ----------------------------------------------------------------------------


def test_guest_checkout_maps_to_checkout_start_with_items():
    event = map_one("checkouts/create", GUEST_CHECKOUT)
    assert event.type == "checkout_start"
    assert event.event_id == "checkout:36711028506791"
    assert event.occurred_at == datetime(2024, 3, 10, 19, 10, tzinfo=UTC)
    assert event.identifiers.email == "guest.buyer@example.org"
    assert event.identifiers.phone == "+15145550177"
    assert event.identifiers.external_ids == {}
    assert (event.traits.first_name, event.traits.last_name) == ("Sansa", "Stark")
    assert (event.traits.city, event.traits.country, event.traits.state) == (
        "Montréal",
        "CA",
        "Quebec",
    )
    assert event.properties.total == 208.95
    assert event.properties.currency == "USD"
    assert event.properties.order_id is None
    (item,) = event.properties.items
    assert (item.product_id, item.sku, item.name, item.price, item.quantity) == (
        "8012345678901",
        "COAT-CHAR-M",
        "Wool Overcoat",
        199.0,
        1,
    )
    custom = extra(event)
    assert custom["checkout_token"] == "f7d3b2c1a0e9d8c7b6a5f4e3d2c1b0a9"
    assert custom["recovery_url"].startswith("https://north-outfitters.myshopify.com/")


def test_logged_in_checkout_carries_the_shopify_customer_id():
    checkout = copy.deepcopy(GUEST_CHECKOUT)
    checkout["customer"] = ORDER["customer"]
    event = map_one("checkouts/create", checkout)
    assert event.identifiers.external_ids == {"shopify": "7145378349223"}
    assert event.identifiers.email == "jon.snow@example.com"


# --- privacy ------------------------------------------------------------------------------


def test_customers_redact_is_a_delete_request():
    payload = {
        **SHOP,
        "customer": {"id": 7145378349223, "email": "jon.snow@example.com", "phone": "613-555-0135"},
        "orders_to_redact": [5638428901543, 5638428909999],
    }
    request = shopify.map_webhook(
        "customers/redact", payload, webhook_id=WEBHOOK_ID, received_at=RECEIVED
    )
    assert isinstance(request, shopify.PrivacyRequest)
    assert request.kind == "delete"
    assert request.shop_domain == "north-outfitters.myshopify.com"
    assert request.shop_id == "58012345"
    assert request.customer_id == "7145378349223"
    assert request.email == "jon.snow@example.com"
    assert request.phone == "613-555-0135"
    assert request.order_ids == ["5638428901543", "5638428909999"]
    assert request.webhook_id == WEBHOOK_ID
    assert request.received_at == RECEIVED
    # Logging the request must not log the person.
    assert "jon.snow" not in repr(request)
    assert "613-555" not in repr(request)


def test_customers_data_request_is_an_export_request():
    payload = {
        **SHOP,
        "orders_requested": [5638428901543],
        "customer": {"id": 7145378349223, "email": "jon.snow@example.com", "phone": None},
        "data_request": {"id": 9999},
    }
    request = shopify.map_webhook(
        "customers/data_request", payload, webhook_id=WEBHOOK_ID, received_at=RECEIVED
    )
    assert isinstance(request, shopify.PrivacyRequest)
    assert request.kind == "export"
    assert request.order_ids == ["5638428901543"]
    assert request.data_request_id == "9999"
    assert request.phone is None


def test_shop_redact_is_a_shop_redact_request():
    request = shopify.map_webhook("shop/redact", SHOP, webhook_id=WEBHOOK_ID, received_at=RECEIVED)
    assert isinstance(request, shopify.PrivacyRequest)
    assert request.kind == "shop_redact"
    assert request.shop_domain == "north-outfitters.myshopify.com"
    assert request.customer_id is None


def test_privacy_request_needs_shop_domain_and_a_customer():
    with pytest.raises(ValidationFailed) as caught:
        shopify.map_webhook(
            "shop/redact", {"shop_id": 1}, webhook_id=WEBHOOK_ID, received_at=RECEIVED
        )
    assert caught.value.details == {"field": "shop_domain"}
    with pytest.raises(ValidationFailed) as caught:
        shopify.map_webhook("customers/redact", SHOP, webhook_id=WEBHOOK_ID, received_at=RECEIVED)
    assert caught.value.details == {"field": "customer"}


# --- topics -------------------------------------------------------------------------------


def test_unknown_topic_is_a_typed_validation_error_naming_the_topic():
    with pytest.raises(shopify.UnknownTopic) as caught:
        shopify.map_webhook(
            "products/update", {"id": 1}, webhook_id=WEBHOOK_ID, received_at=RECEIVED
        )
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.code == "unknown_topic"
    assert "products/update" in caught.value.message


def test_supported_topics_are_listed():
    assert {
        "orders/create",
        "orders/paid",
        "refunds/create",
        "customers/create",
        "customers/update",
        "checkouts/create",
        "customers/redact",
        "customers/data_request",
        "shop/redact",
    } == shopify.SUPPORTED_TOPICS


def test_naive_received_at_is_read_as_utc():
    order = copy.deepcopy(ORDER)
    del order["created_at"], order["processed_at"]
    result = shopify.map_webhook(
        "orders/create", order, webhook_id=WEBHOOK_ID, received_at=datetime(2024, 3, 10, 19, 0)
    )
    assert isinstance(result, list)
    assert result[0].occurred_at == datetime(2024, 3, 10, 19, 0, tzinfo=UTC)
