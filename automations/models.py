"""What an automation is: a trigger, conditions on profile fields, one action, and safety
settings. Validated here once, stored as JSON in `automations`, read back into these models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from ml.names import RFM_SEGMENTS

STAGES = (
    "awareness",
    "consideration",
    "first_purchase",
    "retention",
    "advocacy",
    "at_risk",
    "lapsed",
)
SEGMENTS = RFM_SEGMENTS
# Channels that reach the customer: consent, quiet hours and frequency caps apply to them.
CUSTOMER_CHANNELS = frozenset({"whatsapp", "email"})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- triggers -------------------------------------------------------------------------------


class ChurnThreshold(_Spec):
    """Churn probability crosses `threshold` upwards (once per crossing; re-armed when it
    falls below threshold - hysteresis)."""

    type: Literal["churn_threshold"]
    threshold: float = Field(0.66, gt=0, lt=1)
    hysteresis: float = Field(0.05, ge=0, lt=0.5)
    include_existing: bool = False


class CartAbandoned(_Spec):
    """cart_add / checkout_start with no purchase within `window_minutes` of the last cart
    activity; carts older than `max_age_hours` are ignored."""

    type: Literal["cart_abandoned"]
    window_minutes: float = Field(60, gt=0, le=60 * 24 * 14)
    max_age_hours: float = Field(48, gt=0, le=24 * 60)


class ProductIntent(_Spec):
    """At least `min_views` product views of one product (or category, or anything) within
    `window_hours`, optionally of a named product or category."""

    type: Literal["product_intent"]
    min_views: int = Field(3, ge=1, le=1000)
    window_hours: float = Field(24, gt=0, le=24 * 90)
    per: Literal["product", "category", "any"] = "product"
    product_id: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=200)


class LtvMilestone(_Spec):
    """Lifetime spend (`total_spent`) or predicted LTV reaches `amount` (once per person)."""

    type: Literal["ltv_milestone"]
    amount: float = Field(gt=0)
    metric: Literal["total_spent", "predicted_ltv"] = "total_spent"
    include_existing: bool = False


class SegmentChanged(_Spec):
    """The person enters (or leaves) the RFM `segment`."""

    type: Literal["segment_changed"]
    segment: str = Field(min_length=1, max_length=100)
    change: Literal["entered", "left"] = "entered"
    include_existing: bool = False


class JourneyStageChanged(_Spec):
    """The journey stage changes (to `to`, from `from_stage` when given)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: Literal["journey_stage_changed"]
    to: str | None = None
    from_stage: str | None = Field(None, alias="from")
    include_existing: bool = False

    @field_validator("to", "from_stage")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGES:
            raise ValueError(f"unknown stage {value!r}; choose from {', '.join(STAGES)}")
        return value


Trigger = Annotated[
    ChurnThreshold
    | CartAbandoned
    | ProductIntent
    | LtvMilestone
    | SegmentChanged
    | JourneyStageChanged,
    Field(discriminator="type"),
]
# Triggers on a value that changes (predictions, journeys): they keep per-person state.
STATE_TRIGGERS = frozenset(
    {"churn_threshold", "ltv_milestone", "segment_changed", "journey_stage_changed"}
)

# -- conditions -----------------------------------------------------------------------------

CONDITION_FIELDS = (
    "total_spent",
    "order_count",
    "event_count",
    "country",
    "city",
    "channels",
    "tags",
    "churn",
    "churn_band",
    "ltv",
    "ltv_band",
    "segment",
    "journey_stage",
    "journey_score",
    "days_since_last_order",
    "days_since_last_seen",
)
Op = Literal[
    "=", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains", "not_contains", "exists",
    "missing",
]  # fmt: skip


class Condition(_Spec):
    """`{"field": "total_spent", "op": ">=", "value": 200}`; checked when the trigger fires
    and again just before sending."""

    field: str
    op: Op = "="
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in CONDITION_FIELDS:
            raise ValueError(f"unknown field {value!r}; choose from {', '.join(CONDITION_FIELDS)}")
        return value


# -- actions --------------------------------------------------------------------------------


class WhatsAppAction(_Spec):
    """A WhatsApp template (Twilio Content `content_sid` + variables) or a session `body`."""

    type: Literal["whatsapp"]
    content_sid: str | None = Field(None, pattern=r"^HX[0-9a-fA-F]{32}$")
    variables: dict[str, str] = Field(default_factory=dict, max_length=20)
    body: str | None = Field(None, max_length=1600)
    from_: str | None = Field(None, alias="from", max_length=64)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmailAction(_Spec):
    type: Literal["email"]
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20000)
    from_: str | None = Field(None, alias="from", max_length=300)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WebhookAction(_Spec):
    """POST JSON to the brand's URL, signed: X-CBrain-Signature: t=<unix>,v1=<hex HMAC-SHA256
    of "<t>.<body>">; the secret is sealed at rest and shown once at creation."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: str | None = Field(None, min_length=16, max_length=200)
    customer_facing: bool = False


class SlackAction(_Spec):
    type: Literal["slack"]
    channel: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=3000)


class TagAction(_Spec):
    """Add/remove profile tags (tags are also how brands keep hand-made segments)."""

    type: Literal["tag"]
    add: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )
    remove: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )


Action = Annotated[
    WhatsAppAction | EmailAction | WebhookAction | SlackAction | TagAction,
    Field(discriminator="type"),
]


class SafetySettings(_Spec):
    """Per-automation overrides of the brand's policy (docs/automations.md)."""

    cooldown_hours: float | None = Field(None, ge=0, le=24 * 365)
    quiet_hours: bool = True


class AutomationSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    action: Action
    settings: SafetySettings = Field(default_factory=lambda: SafetySettings.model_validate({}))
    enabled: bool = False
    dry_run: bool = True


class AutomationPatch(_Spec):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    conditions: list[Condition] | None = Field(None, max_length=20)
    settings: SafetySettings | None = None
    enabled: bool | None = None
    dry_run: bool | None = None


class Automation(BaseModel):
    """An automation as stored (the action's webhook secret only ever sealed)."""

    id: UUID
    brand_id: UUID
    name: str
    description: str = ""
    trigger: Trigger
    conditions: list[Condition]
    action: dict[str, Any]
    settings: SafetySettings
    enabled: bool
    dry_run: bool
    enabled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def channel(self) -> str:
        return str(self.action["type"])

    def public(self) -> dict[str, Any]:
        """The API shape: secrets never leave, only whether one is set."""
        out = self.model_dump(mode="json", by_alias=True)
        action = dict(out["action"])
        if "secret_sealed" in action:
            action.pop("secret_sealed")
            action["secret_set"] = True
        out["action"] = action
        out.pop("brand_id")
        return out
