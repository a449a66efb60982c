"""Point-of-sale transactions posted to `POST /v1/pos/transactions`, and their canonical event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from core.errors import ValidationFailed
from core.events import CanonicalEvent, Item

Id = Annotated[str, Field(min_length=1, max_length=200)]
Str200 = Annotated[str, Field(max_length=200)]

# What terminals print when the card holds no usable name (contactless, wallets, gift cards).
# Matching a profile on these would merge strangers.
_PLACEHOLDER_CARD_NAMES = frozenset(
    {
        "CARDHOLDER",
        "CARD HOLDER",
        "VALUED CUSTOMER",
        "CUSTOMER",
        "VISA",
        "VISA CARDHOLDER",
        "MASTERCARD",
        "AMEX",
        "DEBIT",
        "CREDIT",
        "GIFT CARD",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PosCustomer(_Strict):
    """Whatever the till knows about the buyer; every field is optional."""

    phone: Str200 | None = None
    email: Str200 | None = None
    loyalty_id: Str200 | None = None
    card_last4: Annotated[str, Field(pattern=r"^\d{4}$")] | None = None
    # As read from the card: "JOHN A SMITH" or the track format "SMITH/JOHN A".
    card_name: Str200 | None = None
    first_name: Str200 | None = None
    last_name: Str200 | None = None


class PosTransaction(_Strict):
    """One till transaction (a sale or a return), identified by store and bill number."""

    store_id: Id
    bill_number: Id
    # Omitted: the time the API received it. A naive timestamp is read as UTC, as everywhere.
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    total: float | None = Field(None, ge=-1e10, le=1e10)
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    items: list[Item] = Field(default_factory=list, max_length=1000)
    customer: PosCustomer | None = None
    kind: Literal["purchase", "refund"] = "purchase"
    # For a return: the bill it reverses, so the refund can be matched to the sale.
    original_bill_number: Str200 | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def split_card_name(card_name: str | None) -> tuple[str | None, str | None]:
    """(first, last) from a card's name, or (None, None) for a blank or placeholder name.

    "SMITH/JOHN A" (the ISO 7813 track format) and "JOHN A SMITH" both give ("JOHN", "SMITH");
    middle names and initials are dropped because tills disagree about them.
    """
    if not card_name:
        return None, None
    text = " ".join(card_name.replace(".", " ").split())
    if not text or text.upper() in _PLACEHOLDER_CARD_NAMES:
        return None, None
    if "/" in text:
        last, _, given = text.partition("/")
        last, given = last.strip(), given.strip()
        first = given.split()[0] if given else None
        if last.upper() in _PLACEHOLDER_CARD_NAMES:
            return None, None
        return first, last or None
    parts = text.split()
    if len(parts) == 1:
        return parts[0], None
    return parts[0], parts[-1]


def to_canonical(tx: PosTransaction) -> CanonicalEvent:
    """The canonical purchase or refund event (source "pos") for one till transaction.

    The event id is `{store_id}:{bill_number}`, so a till that re-sends a bill is deduplicated;
    a return gets `:refund` appended, so a till that prints the return on the sale's own bill
    number does not lose it as a duplicate. Refund totals are stored as positive amounts.
    """
    customer = tx.customer or PosCustomer()
    card_first, card_last = split_card_name(customer.card_name)
    event_id = f"{tx.store_id}:{tx.bill_number}"
    total = tx.total
    if tx.kind == "refund":
        event_id += ":refund"
        total = abs(total) if total is not None else None
    properties: dict[str, Any] = {
        "order_id": tx.bill_number,
        "store_id": tx.store_id,
        "total": total,
        "currency": tx.currency,
        "items": [item.model_dump(exclude_none=True) for item in tx.items],
    }
    if tx.original_bill_number:
        properties["original_order_id"] = tx.original_bill_number
    try:
        return CanonicalEvent.model_validate(
            {
                "event_id": event_id,
                "source": "pos",
                "type": tx.kind,
                "occurred_at": tx.occurred_at,
                "identifiers": {
                    "email": customer.email,
                    "phone": customer.phone,
                    "loyalty_id": customer.loyalty_id,
                },
                "traits": {
                    # Typed names beat what the card says.
                    "first_name": customer.first_name or card_first,
                    "last_name": customer.last_name or card_last,
                    "card_last4": customer.card_last4,
                },
                "properties": properties,
            }
        )
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "event"
        raise ValidationFailed(
            f"pos: field '{field}' {error['msg']}", details={"field": field}
        ) from None
