"""The canonical event: every source is normalized to this one shape before anything else sees it.

The shape is fixed by ARCHITECTURE.md. `brand` is never trusted from a body: the caller's API
key (or the webhook's configured secret) decides it, and a body that names another brand is
refused. Unknown fields are refused at every level but `properties`, which keeps a brand's
custom properties as Segment and Klaviyo do (reserved names there are still refused).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024

Source = Literal["shopify", "woocommerce", "whatsapp", "pos", "csv", "api", "gorgias", "web", "app"]
EventType = Literal[
    "purchase",
    "refund",
    "cart_add",
    "cart_remove",
    "checkout_start",
    "product_view",
    "page_view",
    "search",
    "message_in",
    "message_out",
    "qr_scan",
    "store_visit",
    "identify",
    "support_ticket",
    # Beyond the architecture list: a brand's own named event (Segment track calls we have no
    # type for), kept with its name in properties.event instead of being passed off as a view.
    "custom",
]
SOURCES: tuple[str, ...] = Source.__args__  # type: ignore[attr-defined]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# Names a body may never set, whatever the level: they belong to the server.
RESERVED_PROPERTY_NAMES = frozenset(
    {"brand_id", "tenant_id", "profile_id", "is_admin", "scopes", "api_key", "merged_into"}
)

Str200 = Annotated[str, Field(max_length=200)]
Str500 = Annotated[str, Field(max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Identifiers(_Strict):
    email: Str200 | None = None
    phone: Str200 | None = None
    whatsapp: Str200 | None = None
    loyalty_id: Str200 | None = None
    device_id: Str200 | None = None
    cookie_id: Str200 | None = None
    external_ids: dict[Str200, Str200] = Field(default_factory=dict, max_length=20)

    @field_validator("external_ids", mode="before")
    @classmethod
    def _stringify_ids(cls, value: Any) -> Any:
        # Platform ids arrive as numbers from Shopify and WooCommerce.
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items() if v not in (None, "")}
        return value

    def is_empty(self) -> bool:
        return not any(
            (
                self.email,
                self.phone,
                self.whatsapp,
                self.loyalty_id,
                self.device_id,
                self.cookie_id,
                self.external_ids,
            )
        )


class Traits(_Strict):
    first_name: Str200 | None = None
    last_name: Str200 | None = None
    city: Str200 | None = None
    postcode: Str200 | None = None
    country: Str200 | None = None
    # Beyond the architecture's list: what identity scoring and journeys also compare.
    address: Str500 | None = None
    state: Str200 | None = None
    dob: Str200 | None = None
    timezone: Str200 | None = None
    card_last4: Annotated[str, Field(pattern=r"^\d{4}$")] | None = None
    email_consent: bool | None = None
    whatsapp_consent: bool | None = None
    sms_consent: bool | None = None


class Item(_Strict):
    product_id: Str200 | None = None
    sku: Str200 | None = None
    name: Str500 | None = None
    category: Str200 | None = None
    price: float = Field(0.0, ge=-1e9, le=1e9)
    quantity: float = Field(1, ge=-1e6, le=1e6)

    @model_validator(mode="after")
    def _needs_a_key(self) -> Item:
        if not (self.product_id or self.sku or self.name):
            raise ValueError("an item needs product_id, sku or name")
        return self


class Properties(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    order_id: Str200 | None = None
    total: float | None = Field(None, ge=-1e10, le=1e10)
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    store_id: Str200 | None = None
    items: list[Item] = Field(default_factory=list, max_length=1000)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @model_validator(mode="after")
    def _no_reserved(self) -> Properties:
        extra = self.model_extra or {}
        bad = sorted(RESERVED_PROPERTY_NAMES & set(extra))
        if bad:
            raise ValueError(f"reserved property name(s) not allowed: {', '.join(bad)}")
        return self


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError("occurred_at must be an RFC 3339 timestamp") from exc
        return parsed
    return value


class CanonicalEvent(_Strict):
    """One touchpoint, normalized. `brand` is filled in by the server, never by the caller."""

    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    brand: Str200 | None = None
    source: Source
    type: EventType
    occurred_at: datetime
    identifiers: Identifiers = Field(default_factory=lambda: Identifiers())
    traits: Traits = Field(default_factory=lambda: Traits())
    properties: Properties = Field(default_factory=lambda: Properties.model_validate({}))

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        return _parse_time(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            # A naive timestamp is read as UTC, as Segment does, rather than refused.
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict, without empty values."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


def bind_brand(event: CanonicalEvent, brand_slug: str) -> CanonicalEvent:
    """Stamp the authenticated brand; a body naming another brand is refused."""
    if event.brand not in (None, "", brand_slug):
        raise ValueError("brand in the body does not match the authenticated brand")
    event.brand = brand_slug
    return event
