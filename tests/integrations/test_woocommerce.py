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
from starlette.datastructures import Headers

from core.errors import ValidationFailed
from core.events import CanonicalEvent
from integrations import woocommerce

SECRET = "wc_sec_Jm9#pQ2!vT8zR4@xL6&nB1"
OLD_SECRET = "wc_sec_previous_5eY7uK3wD0"
RECEIVED = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)

ORDER: dict[str, Any] = {
    "id": 727,
    "parent_id": 0,
    "status": "processing",
    "currency": "EUR",
    "version": "8.7.0",
    "prices_include_tax": False,
    "date_created": "2024-05-02T13:41:12",
    "date_modified": "2024-05-02T13:41:15",
    "discount_total": "5.00",
    "discount_tax": "0.00",
    "shipping_total": "4.90",
    "shipping_tax": "0.00",
    "cart_tax": "7.41",
    "total": "46.31",
    "total_tax": "7.41",
    "customer_id": 25,
    "order_key": "wc_order_Xk3vB2mQ9pL1n",
    "billing": {
        "first_name": "Marta",
        "last_name": "Kowalska",
        "company": "",
        "address_1": "ul. Marszałkowska 84",
        "address_2": "m. 12",
        "city": "Warszawa",
        "state": "MZ",
        "postcode": "00-514",
        "country": "PL",
        "email": "marta.kowalska@example.pl",
        "phone": "+48 601 234 567",
    },
    "shipping": {
        "first_name": "Marta",
        "last_name": "Kowalska",
        "company": "",
        "address_1": "ul. Marszałkowska 84",
        "address_2": "m. 12",
        "city": "Warszawa",
        "state": "MZ",
        "postcode": "00-514",
        "country": "PL",
        "phone": "",
    },
    "payment_method": "stripe",
    "payment_method_title": "Credit Card (Stripe)",
    "transaction_id": "pi_3PBx7kL2",
    "customer_ip_address": "198.51.100.23",
    "customer_user_agent": "Mozilla/5.0",
    "created_via": "checkout",
    "customer_note": "",
    "date_completed": None,
    "date_paid": "2024-05-02T13:41:15",
    "cart_hash": "b2f1e0d9c8",
    "number": "727",
    "meta_data": [{"id": 9901, "key": "_stripe_fee", "value": "1.64"}],
    "line_items": [
        {
            "id": 315,
            "name": "Linen Shirt - Blue, L",
            "product_id": 93,
            "variation_id": 101,
            "quantity": 2,
            "tax_class": "",
            "subtotal": "34.00",
            "subtotal_tax": "6.21",
            "total": "29.00",
            "total_tax": "6.21",
            "taxes": [{"id": 1, "total": "6.21", "subtotal": "6.21"}],
            "meta_data": [],
            "sku": "LINEN-BLU-L",
            "price": 14.5,
            "image": {"id": "88", "src": "https://shop.example.pl/wp-content/uploads/linen.jpg"},
            "parent_name": "Linen Shirt",
        },
        {
            "id": 316,
            "name": "Canvas Tote",
            "product_id": 0,
            "variation_id": 0,
            "quantity": 1,
            "tax_class": "",
            "subtotal": "7.41",
            "subtotal_tax": "1.20",
            "total": "7.41",
            "total_tax": "1.20",
            "taxes": [],
            "meta_data": [],
            "sku": "",
            "image": {"id": "", "src": ""},
            "parent_name": None,
        },
    ],
    "tax_lines": [{"id": 318, "rate_code": "PL-VAT-1", "rate_id": 1, "label": "VAT"}],
    "shipping_lines": [{"id": 317, "method_title": "InPost", "method_id": "flat_rate"}],
    "fee_lines": [],
    "coupon_lines": [{"id": 319, "code": "spring5", "discount": "5.00"}],
    "refunds": [],
    "payment_url": "https://shop.example.pl/checkout/order-pay/727/?pay_for_order=true",
    "is_editable": False,
    "needs_payment": False,
    "needs_processing": True,
    "date_created_gmt": "2024-05-02T11:41:12",
    "date_modified_gmt": "2024-05-02T11:41:15",
    "date_completed_gmt": None,
    "date_paid_gmt": "2024-05-02T11:41:15",
    "currency_symbol": "€",
}

CUSTOMER: dict[str, Any] = {
    "id": 25,
    "date_created": "2024-04-30T18:02:44",
    "date_created_gmt": "2024-04-30T16:02:44",
    "date_modified": "2024-05-02T13:41:15",
    "date_modified_gmt": "2024-05-02T11:41:15",
    "email": "marta.kowalska@example.pl",
    "first_name": "Marta",
    "last_name": "Kowalska",
    "role": "customer",
    "username": "marta.k",
    "billing": ORDER["billing"],
    "shipping": ORDER["shipping"],
    "is_paying_customer": True,
    "avatar_url": "https://secure.gravatar.com/avatar/0f1e?s=96&d=mm&r=g",
    "meta_data": [],
}


def extra(event: CanonicalEvent) -> dict[str, Any]:
    """The custom (non-reserved) properties of an event."""
    return event.properties.model_extra or {}


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers_for(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example.pl/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "14",
        "X-WC-Webhook-Delivery-ID": "a3c0b2e5f8d1c4e7b0a3d6f9c2e5b8a1",
    }


def map_all(topic: str, payload: dict) -> list[CanonicalEvent]:
    return woocommerce.map_webhook(topic, payload, received_at=RECEIVED)


# --- verification, ping, delivery id ------------------------------------------------------


def test_verify_accepts_a_valid_signature():
    body = json.dumps(ORDER).encode()
    assert woocommerce.verify(body, headers_for(body), [SECRET]) is True
    assert woocommerce.verify(body, Headers(headers_for(body)), [SECRET]) is True


def test_verify_rejects_a_tampered_body():
    body = json.dumps(ORDER).encode()
    assert woocommerce.verify(body + b" ", headers_for(body), [SECRET]) is False


def test_verify_rejects_the_wrong_secret():
    body = json.dumps(ORDER).encode()
    assert woocommerce.verify(body, headers_for(body, "guess"), [SECRET]) is False


def test_verify_accepts_either_secret_during_rotation():
    body = json.dumps(ORDER).encode()
    assert woocommerce.verify(body, headers_for(body, OLD_SECRET), [SECRET, OLD_SECRET]) is True
    assert woocommerce.verify(body, headers_for(body, OLD_SECRET), [SECRET]) is False


def test_verify_rejects_missing_and_garbage_signatures():
    body = json.dumps(ORDER).encode()
    headers = headers_for(body)
    del headers["X-WC-Webhook-Signature"]
    assert woocommerce.verify(body, headers, [SECRET]) is False
    for garbage in ("", "!!!", "ñ" * 10, sign(body, SECRET)[:-4]):
        assert woocommerce.verify(body, {"x-wc-webhook-signature": garbage}, [SECRET]) is False
    # A webhook saved without a secret must not verify against an empty configuration.
    assert woocommerce.verify(body, headers_for(body, ""), [""]) is False


@given(
    body=st.binary(max_size=1024),
    headers=st.dictionaries(
        st.sampled_from(["X-WC-Webhook-Signature", "x-wc-webhook-signature", "Other"]),
        st.text(st.characters(exclude_categories=()), max_size=100),
    ),
    secrets=st.lists(st.text(max_size=40), max_size=3),
)
def test_verify_never_raises(body, headers, secrets):
    assert woocommerce.verify(body, headers, secrets) in (True, False)


def test_ping_is_detected_from_the_form_body():
    assert woocommerce.is_ping(b"webhook_id=14", "application/x-www-form-urlencoded") is True
    assert woocommerce.is_ping(b"webhook_id=14", None) is True
    assert woocommerce.is_ping(b"webhook_id=14\n", "") is True


def test_real_deliveries_are_not_pings():
    body = json.dumps(ORDER).encode()
    assert woocommerce.is_ping(body, "application/json") is False
    assert woocommerce.is_ping(b"webhook_id=14", "application/json; charset=utf-8") is False
    assert woocommerce.is_ping(b"webhook_id=abc", None) is False
    assert woocommerce.is_ping(b"webhook_id=14&x=1", None) is False
    assert woocommerce.is_ping(b"", None) is False


def test_delivery_id_is_read_case_insensitively():
    headers = headers_for(b"{}")
    assert woocommerce.delivery_id(headers) == "a3c0b2e5f8d1c4e7b0a3d6f9c2e5b8a1"
    assert woocommerce.delivery_id({"x-wc-webhook-delivery-id": " d-1 "}) == "d-1"
    assert woocommerce.delivery_id({}) is None
    assert woocommerce.delivery_id({"X-WC-Webhook-Delivery-ID": ""}) is None


# --- orders -------------------------------------------------------------------------------


def test_processing_order_maps_to_a_purchase_field_by_field():
    (event,) = map_all("order.created", ORDER)
    assert event.event_id == "order:727"
    assert event.source == "woocommerce"
    assert event.type == "purchase"
    # date_created_gmt is UTC written without an offset.
    assert event.occurred_at == datetime(2024, 5, 2, 11, 41, 12, tzinfo=UTC)
    assert event.identifiers.email == "marta.kowalska@example.pl"
    assert event.identifiers.phone == "+48 601 234 567"
    assert event.identifiers.external_ids == {"woocommerce": "25"}
    traits = event.traits
    assert (traits.first_name, traits.last_name) == ("Marta", "Kowalska")
    assert (traits.city, traits.postcode, traits.country) == ("Warszawa", "00-514", "PL")
    assert (traits.address, traits.state) == ("ul. Marszałkowska 84", "MZ")
    props = event.properties
    assert props.order_id == "727"
    assert props.total == 46.31
    assert props.currency == "EUR"
    assert extra(event) == {
        "order_number": "727",
        "status": "processing",
        "discount_total": 5.0,
    }
    shirt, tote = props.items
    assert (shirt.product_id, shirt.sku, shirt.name, shirt.price, shirt.quantity) == (
        "93",
        "LINEN-BLU-L",
        "Linen Shirt - Blue, L",
        14.5,
        2,
    )
    # Deleted product (id 0), no sku, no unit price: name kept, price from the line total.
    assert (tote.product_id, tote.sku, tote.name, tote.price, tote.quantity) == (
        None,
        None,
        "Canvas Tote",
        7.41,
        1,
    )


def test_completed_update_of_the_same_order_is_the_same_purchase():
    completed = copy.deepcopy(ORDER)
    completed["status"] = "completed"
    (created,) = map_all("order.created", ORDER)
    (updated,) = map_all("order.updated", completed)
    assert created.event_id == updated.event_id == "order:727"


def test_unpaid_statuses_are_ignored():
    for status in ("pending", "on-hold", "failed", "cancelled", "checkout-draft", "trash"):
        order = copy.deepcopy(ORDER)
        order["status"] = status
        assert map_all("order.updated", order) == []


def test_guest_order_has_no_platform_id():
    guest = copy.deepcopy(ORDER)
    guest["customer_id"] = 0
    (event,) = map_all("order.created", guest)
    assert event.identifiers.external_ids == {}
    assert event.identifiers.email == "marta.kowalska@example.pl"


def test_partial_refund_on_a_completed_order_adds_a_refund_event():
    order = copy.deepcopy(ORDER)
    order["status"] = "completed"
    order["date_modified_gmt"] = "2024-05-06T08:30:00"
    order["refunds"] = [{"id": 730, "reason": "Tote arrived torn", "total": "-7.41"}]
    purchase, refund = map_all("order.updated", order)
    assert purchase.type == "purchase"
    assert refund.type == "refund"
    assert refund.event_id == "refund:730"
    assert refund.properties.total == 7.41
    assert refund.properties.order_id == "727"
    assert refund.properties.currency == "EUR"
    assert extra(refund) == {"refund_id": "730"}
    assert refund.occurred_at == datetime(2024, 5, 6, 8, 30, tzinfo=UTC)
    assert refund.identifiers.email == "marta.kowalska@example.pl"


def test_refunded_order_maps_to_its_refunds_only():
    order = copy.deepcopy(ORDER)
    order["status"] = "refunded"
    order["refunds"] = [
        {"id": 730, "reason": "", "total": "-7.41"},
        {"id": 731, "reason": "", "total": "-38.90"},
    ]
    events = map_all("order.updated", order)
    assert [(e.type, e.event_id, e.properties.total) for e in events] == [
        ("refund", "refund:730", 7.41),
        ("refund", "refund:731", 38.90),
    ]


def test_refunded_order_without_refund_list_refunds_the_whole_total():
    order = copy.deepcopy(ORDER)
    order["status"] = "refunded"
    del order["refunds"]
    (event,) = map_all("order.updated", order)
    assert event.type == "refund"
    assert event.event_id == "order:727:refund"
    assert event.properties.total == 46.31


def test_order_without_id_names_the_field():
    order = copy.deepcopy(ORDER)
    del order["id"]
    with pytest.raises(ValidationFailed) as caught:
        map_all("order.created", order)
    assert caught.value.details == {"field": "id"}


def test_bad_total_names_the_field():
    order = copy.deepcopy(ORDER)
    order["total"] = "forty"
    with pytest.raises(ValidationFailed) as caught:
        map_all("order.created", order)
    assert caught.value.details == {"field": "total"}


def test_missing_dates_fall_back_to_received_at():
    order = copy.deepcopy(ORDER)
    order["date_created_gmt"] = None
    order["date_paid_gmt"] = None
    (event,) = map_all("order.created", order)
    assert event.occurred_at == RECEIVED


# --- customers ----------------------------------------------------------------------------


def test_customer_maps_to_identify():
    (event,) = map_all("customer.updated", CUSTOMER)
    assert event.type == "identify"
    assert event.event_id == "customer:25:2024-05-02T11:41:15+00:00"
    assert event.occurred_at == datetime(2024, 5, 2, 11, 41, 15, tzinfo=UTC)
    assert event.identifiers.email == "marta.kowalska@example.pl"
    assert event.identifiers.phone == "+48 601 234 567"
    assert event.identifiers.external_ids == {"woocommerce": "25"}
    assert (event.traits.first_name, event.traits.city) == ("Marta", "Warszawa")


def test_new_customer_without_billing_uses_account_fields():
    customer = copy.deepcopy(CUSTOMER)
    customer["billing"] = {key: "" for key in CUSTOMER["billing"]}
    del customer["date_modified_gmt"]
    (event,) = map_all("customer.created", customer)
    assert event.event_id == "customer:25:2024-04-30T16:02:44+00:00"
    assert event.identifiers.email == "marta.kowalska@example.pl"
    assert event.identifiers.phone is None
    assert event.traits.last_name == "Kowalska"
    assert event.traits.city is None


def test_customer_without_dates_uses_the_delivery_id():
    customer = copy.deepcopy(CUSTOMER)
    del customer["date_modified_gmt"], customer["date_created_gmt"]
    (event,) = woocommerce.map_webhook(
        "customer.updated", customer, received_at=RECEIVED, delivery="d-42"
    )
    assert event.event_id == "delivery:d-42"
    with pytest.raises(ValidationFailed):
        map_all("customer.updated", customer)


# --- topics -------------------------------------------------------------------------------


def test_unknown_topic_is_a_typed_validation_error_naming_the_topic():
    with pytest.raises(woocommerce.UnknownTopic) as caught:
        map_all("product.updated", {"id": 93})
    assert isinstance(caught.value, ValidationFailed)
    assert "product.updated" in caught.value.message
