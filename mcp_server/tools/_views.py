"""How prediction rows (see docs/predictions-contract.md) are shown to the model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from mcp_server.models import plain

HIGH, LOW = 0.66, 0.33
NO_PREDICTIONS = (
    "no {kind} predictions for this brand yet (the ML scoring job has not run); "
    "the rest of the answer comes from purchase history"
)


class Driver(BaseModel):
    """A feature that pushed the churn probability, with its value for this customer."""

    feature: str
    contribution: float
    value: float | str | None = None


class ChurnView(BaseModel):
    """Churn prediction of one customer."""

    probability: float = Field(description="P(no purchase within horizon_days), 0..1.")
    band: str = Field(description="Low (< 0.33), Medium, High (> 0.66).")
    horizon_days: int | None = None
    drivers: list[Driver] = Field(default_factory=list, description="Top drivers, largest first.")
    suggested_action: str
    action_source: str = Field(description="'model' when ML suggested it, else 'rule'.")


class LtvView(BaseModel):
    """Expected spend over the horizon (brand currency) and the decile among customers."""

    expected_value: float
    decile: str | None = None
    horizon_days: int | None = None
    p_alive: float | None = None
    expected_next_order: str | None = None


class SegmentView(BaseModel):
    name: str = Field(description="RFM segment name, e.g. Champions, At Risk.")
    rfm: str | None = None
    cluster_name: str | None = Field(
        default=None, description="Behavioural cluster, in plain words."
    )


class RecommendedProduct(BaseModel):
    product_id: str
    name: str | None = None
    category: str | None = None
    score: float | None = None
    reason: str | None = None
    price: float | None = None


class PredictionSet(BaseModel):
    """Everything ML predicted for one customer (fields are null when not scored)."""

    as_of: datetime | None = None
    churn: ChurnView | None = None
    ltv: LtvView | None = None
    segment: SegmentView | None = None
    recommendations: list[RecommendedProduct] = Field(default_factory=list)


def band_of(p: float) -> str:
    return "High" if p > HIGH else "Low" if p < LOW else "Medium"


def rule_action(band: str, ltv: float | None) -> str:
    valuable = ltv is not None and ltv >= 200
    if band == "High":
        return (
            "personal win-back outreach (a note from the team, offer on their favourite category)"
            if valuable
            else "win-back email or WhatsApp with an incentive on their favourite category"
        )
    if band == "Medium":
        return "timely nudge: a reminder with personal recommendations before their usual reorder"
    return "no special action: keep in regular communications"


def _num(v: Any) -> float | None:
    try:
        return None if v is None else round(float(v), 4)
    except (TypeError, ValueError):
        return None


def churn_view(row: Any, ltv: float | None = None) -> ChurnView | None:
    if row is None or row["value"] is None:
        return None
    d = row["details"] if isinstance(row["details"], dict) else {}
    p = float(row["value"])
    band = row["band"] if row["band"] in ("Low", "Medium", "High") else band_of(p)
    drivers = []
    for item in (d.get("drivers") or [])[:5]:
        if isinstance(item, dict) and item.get("feature"):
            value = item.get("value")
            drivers.append(
                Driver(
                    feature=plain(item["feature"], 60) or "?",
                    contribution=_num(item.get("contribution")) or 0.0,
                    value=_num(value) if not isinstance(value, str) else plain(value, 60),
                )
            )
    model_action = plain(d.get("suggested_action"), 300)
    return ChurnView(
        probability=round(p, 4),
        band=band,
        horizon_days=d.get("horizon_days") if isinstance(d.get("horizon_days"), int) else None,
        drivers=drivers,
        suggested_action=model_action or rule_action(band, ltv),
        action_source="model" if model_action else "rule",
    )


def ltv_view(row: Any) -> LtvView | None:
    if row is None or row["value"] is None:
        return None
    d = row["details"] if isinstance(row["details"], dict) else {}
    nxt = d.get("expected_next_order")
    return LtvView(
        expected_value=round(float(row["value"]), 2),
        decile=plain(row["band"], 8),
        horizon_days=d.get("horizon_days") if isinstance(d.get("horizon_days"), int) else None,
        p_alive=_num(d.get("p_alive")),
        expected_next_order=plain(nxt, 30) if nxt else None,
    )


def segment_view(row: Any) -> SegmentView | None:
    if row is None or not row["band"]:
        return None
    d = row["details"] if isinstance(row["details"], dict) else {}
    return SegmentView(
        name=plain(row["band"], 60) or "?",
        rfm=plain(d.get("rfm"), 10),
        cluster_name=plain(d.get("cluster_name"), 80),
    )


def rec_items(row: Any, limit: int) -> list[RecommendedProduct]:
    if row is None:
        return []
    d = row["details"] if isinstance(row["details"], dict) else {}
    out = []
    for item in d.get("items") or []:
        if isinstance(item, dict) and item.get("product_id") is not None:
            out.append(
                RecommendedProduct(
                    product_id=str(item["product_id"])[:80],
                    name=plain(item.get("name")),
                    category=plain(item.get("category"), 60),
                    score=_num(item.get("score")),
                    reason=plain(item.get("reason"), 200),
                )
            )
        if len(out) >= limit:
            break
    return out


def prediction_set(rows: list[Any], rec_limit: int = 3) -> PredictionSet | None:
    """The prediction rows of one profile, by kind."""
    by = {r["kind"]: r for r in rows}
    if not by:
        return None
    ltv = ltv_view(by.get("ltv"))
    return PredictionSet(
        as_of=max(r["as_of"] for r in rows),
        churn=churn_view(by.get("churn"), ltv.expected_value if ltv else None),
        ltv=ltv,
        segment=segment_view(by.get("segment")),
        recommendations=rec_items(by.get("recommendations"), rec_limit),
    )
