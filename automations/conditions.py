"""Conditions on profile fields, and the fields themselves as conditions and messages see
them (`facts`): profile aggregates, predictions and the journey stage of one person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from automations.models import Automation, Condition


def facts_of(row: asyncpg.Record | dict[str, Any], now: datetime) -> dict[str, Any]:
    """A person's fields as conditions and messages see them."""
    f = dict(row)
    for name, col in (
        ("days_since_last_order", "last_order_at"),
        ("days_since_last_seen", "last_seen"),
    ):
        at = f.get(col)
        f[name] = (now - at).total_seconds() / 86400 if at is not None else None
    for name in ("total_spent",):
        if f.get(name) is not None:
            f[name] = float(f[name])
    return f


def check_condition(c: Condition, facts: dict[str, Any]) -> bool:
    """One condition against a person's fields; a missing value fails every comparison."""
    value = facts.get(c.field)
    if c.op == "exists":
        return value not in (None, [], "")
    if c.op == "missing":
        return value in (None, [], "")
    if value is None:
        return c.op in ("!=", "not_in", "not_contains")
    try:
        if c.op == "=":
            return value == c.value
        if c.op == "!=":
            return value != c.value
        if c.op == ">":
            return float(value) > float(c.value)
        if c.op == ">=":
            return float(value) >= float(c.value)
        if c.op == "<":
            return float(value) < float(c.value)
        if c.op == "<=":
            return float(value) <= float(c.value)
        if c.op == "in":
            return value in (c.value or [])
        if c.op == "not_in":
            return value not in (c.value or [])
        if c.op == "contains":
            return c.value in (value or [])
        if c.op == "not_contains":
            return c.value not in (value or [])
    except (TypeError, ValueError):
        return False
    return False


def failed_conditions(automation: Automation, facts: dict[str, Any] | None) -> list[str]:
    """The conditions that do not hold (all of them when the person is unknown)."""
    if facts is None:
        return [f"{c.field} {c.op} {c.value!r}" for c in automation.conditions] or ["no profile"]
    return [
        f"{c.field} {c.op} {c.value!r} (is {facts.get(c.field)!r})"
        for c in automation.conditions
        if not check_condition(c, facts)
    ]
