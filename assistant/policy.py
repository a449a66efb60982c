"""Which tools a surface may call, and with which arguments.

Decided server-side from the AskContext before anything runs: a tool outside the surface's
allowlist is refused (the model gets an error tool_result, the call is counted, nothing
executes); for a ticket, every argument that names a customer must name the ticket's own
customer and is rewritten to its customer_ref; arguments a tool does not declare (a smuggled
`brand_id`...) are dropped. The brand is never an argument: the MCP server is built for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.safety import clean, digits_of
from assistant.types import AskContext

ALL_TOOLS = frozenset(
    {
        "lookup_customer",
        "churn_risk",
        "segments",
        "recommendations",
        "similar_customers",
        "analyze_customers",
        "analyze_segments",
        "analyze_products",
        "analyze_behavior",
        "forecast_metrics",
        "target_campaign",
    }
)
# A support agent answers one customer: tools about that person, plus segment definitions.
CUSTOMER_TOOLS = frozenset({"lookup_customer", "churn_risk", "recommendations", "segments"})
SURFACE_TOOLS: dict[str, frozenset[str]] = {
    "cli": ALL_TOOLS,
    "slack": ALL_TOOLS,
    "gorgias": CUSTOMER_TOOLS,
}
# The argument through which each tool names a customer.
CUSTOMER_ARG = {
    "lookup_customer": "query",
    "churn_risk": "customer",
    "recommendations": "customer",
    "similar_customers": "customer",
}
# Arguments that would turn a one-customer call into a list of other customers.
_LIST_ARGS = {
    "churn_risk": ("segment", "top_n", "rank_by"),
    "recommendations": ("product_id",),
    "lookup_customer": ("max_matches",),
}


@dataclass
class Decision:
    allowed: bool
    arguments: dict[str, Any]
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


def allowed_tools(ctx: AskContext) -> frozenset[str]:
    """The tools of a surface; with a pinned customer only the customer tools. A ticket whose
    customer is unknown gets no tool that looks a person up: its text must not be able to
    pick one."""
    tools = SURFACE_TOOLS.get(ctx.surface, frozenset())
    if ctx.customer_ref:
        tools = tools & CUSTOMER_TOOLS
    elif ctx.surface == "gorgias":
        tools = tools - set(CUSTOMER_ARG)
    return tools


def alias(value: Any) -> str:
    """How a customer reference compares: case- and space-insensitive, phones by their last
    9 digits (so +44 7700 900123 and 07700900123 agree)."""
    text = clean(str(value)).strip().casefold()
    digits = digits_of(text)
    if "@" not in text and len(digits) >= 7 and len(digits) >= len(text.replace(" ", "")) - 4:
        return "tel:" + digits[-9:]
    return text


class Policy:
    """Allowlist, argument hygiene and customer pinning for one question."""

    def __init__(self, ctx: AskContext, schemas: dict[str, dict[str, Any]]) -> None:
        self.ctx = ctx
        self.schemas = schemas
        self.tools = allowed_tools(ctx) & set(schemas)
        self.pinned_ref: str | None = None  # the profile id, once resolved
        self.aliases: set[str] = set()
        if ctx.customer_ref:
            self.aliases.add(alias(ctx.customer_ref))

    @property
    def pinned(self) -> bool:
        return bool(self.ctx.customer_ref)

    def pin(self, customer_ref: str, identifiers: list[str]) -> None:
        self.pinned_ref = customer_ref
        self.aliases.add(alias(customer_ref))
        self.aliases.update(alias(v) for v in identifiers if v and "*" not in v)

    def check(self, name: str, arguments: Any) -> Decision:
        if name not in self.tools:
            return Decision(
                False,
                {},
                f"the tool {name!r} is not available here; available: "
                + ", ".join(sorted(self.tools)),
            )
        if not isinstance(arguments, dict):
            return Decision(False, {}, "tool arguments must be a JSON object")
        props = (self.schemas.get(name) or {}).get("properties") or {}
        args = {k: v for k, v in arguments.items() if k in props}
        notes = [f"ignored argument {k!r}" for k in arguments if k not in props]
        if not self.pinned:
            return Decision(True, args, notes=notes)
        if name not in CUSTOMER_ARG:
            return Decision(True, args, notes=notes)
        if self.pinned_ref is None:
            return Decision(False, {}, "the ticket's customer is not known to Customer Brain")
        key = CUSTOMER_ARG[name]
        asked = args.get(key)
        if asked not in (None, "") and alias(asked) not in self.aliases:
            return Decision(
                False,
                {},
                "this conversation is about the ticket's customer only; other customers "
                f"cannot be looked up here (the ticket's customer is customer_ref {self.pinned_ref})",
            )
        for extra in _LIST_ARGS.get(name, ()):
            args.pop(extra, None)
        args[key] = self.pinned_ref
        if name == "lookup_customer":
            args["by"] = "profile_id"
        return Decision(True, args, notes=notes)
