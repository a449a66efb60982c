from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.events import CanonicalEvent
from integrations.pos import PosTransaction, split_card_name, to_canonical

SALE: dict[str, Any] = {
    "store_id": "MUM-BANDRA-01",
    "bill_number": "B-2024-000781",
    "occurred_at": "2024-07-14T18:05:33+05:30",
    "total": 4897.0,
    "currency": "inr",
    "items": [
        {
            "product_id": "P-1182",
            "sku": "KRT-COT-M-IND",
            "name": "Cotton Kurta",
            "category": "Menswear",
            "price": 1999.0,
            "quantity": 2,
        },
        {"sku": "DUP-SLK-01", "name": "Silk Dupatta", "price": 899.0, "quantity": 1},
    ],
    "customer": {
        "phone": "+91 98200 12345",
        "email": "rohan.mehta@example.in",
        "loyalty_id": "LOY-00451872",
        "card_last4": "4242",
        "card_name": "MEHTA/ROHAN K",
    },
}


def extra(event: CanonicalEvent) -> dict[str, Any]:
    """The custom (non-reserved) properties of an event."""
    return event.properties.model_extra or {}


def test_transaction_maps_to_a_purchase_field_by_field():
    event = to_canonical(PosTransaction.model_validate(SALE))
    assert event.event_id == "MUM-BANDRA-01:B-2024-000781"
    assert event.source == "pos"
    assert event.type == "purchase"
    assert event.occurred_at == datetime(2024, 7, 14, 12, 35, 33, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.identifiers.phone == "+91 98200 12345"
    assert event.identifiers.email == "rohan.mehta@example.in"
    assert event.identifiers.loyalty_id == "LOY-00451872"
    assert (event.traits.first_name, event.traits.last_name) == ("ROHAN", "MEHTA")
    assert event.traits.card_last4 == "4242"
    props = event.properties
    assert props.order_id == "B-2024-000781"
    assert props.store_id == "MUM-BANDRA-01"
    assert props.total == 4897.0
    assert props.currency == "INR"
    kurta, dupatta = props.items
    assert (kurta.product_id, kurta.sku, kurta.name, kurta.category) == (
        "P-1182",
        "KRT-COT-M-IND",
        "Cotton Kurta",
        "Menswear",
    )
    assert (kurta.price, kurta.quantity) == (1999.0, 2)
    assert (dupatta.product_id, dupatta.sku, dupatta.price) == (None, "DUP-SLK-01", 899.0)


def test_typed_names_win_over_the_card_name():
    tx = PosTransaction.model_validate(
        {**SALE, "customer": {**SALE["customer"], "first_name": "Rohan", "last_name": "Mehta"}}
    )
    event = to_canonical(tx)
    assert (event.traits.first_name, event.traits.last_name) == ("Rohan", "Mehta")


def test_anonymous_cash_sale_needs_only_store_and_bill():
    tx = PosTransaction.model_validate({"store_id": "S1", "bill_number": "42"})
    assert tx.kind == "purchase"
    assert tx.occurred_at.tzinfo is not None
    event = to_canonical(tx)
    assert event.event_id == "S1:42"
    assert event.identifiers.is_empty()
    assert event.properties.items == []
    assert event.traits.first_name is None


def test_refund_is_a_positive_amount_with_its_own_event_id():
    tx = PosTransaction.model_validate(
        {
            "store_id": "MUM-BANDRA-01",
            "bill_number": "B-2024-000781",
            "kind": "refund",
            "total": -1999.0,
            "currency": "INR",
            "original_bill_number": "B-2024-000781",
            "items": [{"sku": "KRT-COT-M-IND", "price": 1999.0, "quantity": 1}],
        }
    )
    event = to_canonical(tx)
    assert event.type == "refund"
    assert event.event_id == "MUM-BANDRA-01:B-2024-000781:refund"
    assert event.properties.total == 1999.0
    assert extra(event)["original_order_id"] == "B-2024-000781"


def test_naive_timestamp_is_read_as_utc():
    tx = PosTransaction.model_validate({**SALE, "occurred_at": "2024-07-14T18:05:33"})
    assert to_canonical(tx).occurred_at == datetime(2024, 7, 14, 18, 5, 33, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"bill_number": "1"}, "store_id"),
        ({"store_id": "S1"}, "bill_number"),
        ({"store_id": "", "bill_number": "1"}, "store_id"),
        ({"store_id": "S1", "bill_number": "1", "cashier": "Priya"}, "cashier"),
        ({"store_id": "S1", "bill_number": "1", "kind": "exchange"}, "kind"),
        ({"store_id": "S1", "bill_number": "1", "currency": "rupees"}, "currency"),
        ({"store_id": "S1", "bill_number": "1", "customer": {"card_last4": "42"}}, "customer"),
        ({"store_id": "S1", "bill_number": "1", "customer": {"pin": "1234"}}, "customer"),
        ({"store_id": "S1", "bill_number": "1", "items": [{"price": 5}]}, "items"),
        (
            {"store_id": "S1", "bill_number": "1", "items": [{"name": "x", "colour": "red"}]},
            "items",
        ),
    ],
)
def test_bad_transactions_are_refused_naming_the_field(payload, field):
    with pytest.raises(ValidationError) as caught:
        PosTransaction.model_validate(payload)
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("card_name", "expected"),
    [
        ("MEHTA/ROHAN K", ("ROHAN", "MEHTA")),
        ("SMITH/JOHN A.MR", ("JOHN", "SMITH")),
        ("JOHN A SMITH", ("JOHN", "SMITH")),
        ("Priya Sharma", ("Priya", "Sharma")),
        ("MADONNA", ("MADONNA", None)),
        ("CARDHOLDER/VISA", (None, None)),
        ("VALUED CUSTOMER", (None, None)),
        ("  ", (None, None)),
        (None, (None, None)),
    ],
)
def test_card_name_split(card_name, expected):
    assert split_card_name(card_name) == expected


def test_placeholder_card_name_gives_no_name_traits():
    sale = {**SALE, "customer": {"card_last4": "0005", "card_name": "CARDHOLDER"}}
    event = to_canonical(PosTransaction.model_validate(sale))
    assert event.traits.first_name is None
    assert event.traits.card_last4 == "0005"
