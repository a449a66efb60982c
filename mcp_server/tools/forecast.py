"""forecast_metrics: next weeks of revenue, orders or active customers, with an interval."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import numpy as np
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_server import _ets
from mcp_server import repo_analytics as ra
from mcp_server._cache import cached
from mcp_server.deps import Deps
from mcp_server.models import READ_ONLY

HISTORY_WEEKS = 156
MIN_WEEKS = 12
COLUMN = {"revenue": "revenue", "orders": "orders", "active_customers": "customers"}
UNIT = {"revenue": "brand currency", "orders": "orders", "active_customers": "distinct buyers"}


class WeekValue(BaseModel):
    week_start: date
    value: float


class WeekForecast(BaseModel):
    week_start: date
    forecast: float
    lower: float
    upper: float


class MethodScore(BaseModel):
    method: str
    mase: float = Field(
        description="Backtest MAE over the in-sample MAE of a one-week naive forecast (MASE)."
    )
    mape_percent: float | None = None


class ForecastResult(BaseModel):
    metric: str
    unit: str
    method: str = Field(description="The model used for the forecast.")
    parameters: dict[str, float]
    interval_level: int
    forecast: list[WeekForecast]
    total_forecast: float
    backtest_weeks: int
    backtest_mase: float
    backtest_mape_percent: float | None
    candidates: list[MethodScore] = Field(description="Every model tried, on the same backtest.")
    weeks_of_history: int
    recent_history: list[WeekValue] = Field(description="The last 12 complete weeks.")
    computed_at: datetime
    notes: list[str] = Field(default_factory=list)


def _week_start(now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def register(mcp: MCPServer, deps: Deps) -> None:
    @mcp.tool(title="Forecast metrics", annotations=READ_ONLY)
    async def forecast_metrics(
        metric: Annotated[
            Literal["revenue", "orders", "active_customers"],
            Field(description="Weekly gross revenue, orders, or distinct buying customers."),
        ] = "revenue",
        horizon_weeks: Annotated[int, Field(ge=1, le=26, description="Weeks ahead.")] = 8,
        interval: Annotated[
            Literal[80, 95], Field(description="Prediction interval level, percent.")
        ] = 80,
    ) -> ForecastResult:
        """Forecast weekly revenue, orders or active customers for the next N weeks, with a
        prediction interval. The model is chosen by backtest among exponential smoothing
        models (simple, damped trend, and Holt-Winters with a yearly season once two years
        of history exist) and naive benchmarks; the output names the method, its parameters
        and its backtest error (MASE and MAPE on the last weeks) next to every other model
        tried. Weeks run Monday to Sunday (UTC); the current, incomplete week is excluded."""
        caller = deps.caller()
        end = _week_start(datetime.now(UTC))

        async def compute() -> ForecastResult:
            start = end - timedelta(weeks=HISTORY_WEEKS)
            rows = await ra.fetch(deps.rt.pool, ra.WEEKLY, caller.brand_id, start, end)
            return _forecast(rows, metric, horizon_weeks, interval, start, end)

        args = {"metric": metric, "h": horizon_weeks, "level": interval, "end": end.date()}
        return await cached(
            deps.rt, caller.brand_id, "forecast", args, ForecastResult, compute, ttl=3600
        )


def _forecast(
    rows: list, metric: str, h: int, level: int, start: datetime, end: datetime
) -> ForecastResult:
    by_week = {r["week"].date(): float(r[COLUMN[metric]]) for r in rows}
    weeks = [(start + timedelta(weeks=i)).date() for i in range(HISTORY_WEEKS)]
    values = np.array([by_week.get(w, 0.0) for w in weeks])
    nonzero = np.flatnonzero(values)
    if len(nonzero) == 0 or len(values) - nonzero[0] < MIN_WEEKS:
        n = 0 if len(nonzero) == 0 else len(values) - nonzero[0]
        raise ToolError(
            f"not enough history to forecast: {n} week(s) of purchases, {MIN_WEEKS} needed"
        )
    weeks, y = weeks[nonzero[0] :], values[nonzero[0] :]
    holdout = min(8, max(4, len(y) // 6))
    model, bt, best = _ets.select(y, holdout)
    point, lower, upper = model.forecast(h, level)
    future = [end.date() + timedelta(weeks=i) for i in range(h)]
    clip = np.maximum  # counts and revenue are never negative
    _, mase, mape = bt.scores[best]
    notes = [f"backtest: models fitted on all but the last {holdout} weeks, scored on them"]
    if len(y) < 2 * _ets.SEASON + 8:
        notes.append("under two years of history: no yearly seasonality in the model")
    return ForecastResult(
        metric=metric,
        unit=UNIT[metric],
        method=model.name,
        parameters={k: round(v, 3) for k, v in model.params.items()},
        interval_level=level,
        forecast=[
            WeekForecast(
                week_start=w,
                forecast=round(float(clip(p, 0)), 2),
                lower=round(float(clip(lo, 0)), 2),
                upper=round(float(clip(hi, 0)), 2),
            )
            for w, p, lo, hi in zip(future, point, lower, upper, strict=True)
        ],
        total_forecast=round(float(clip(point, 0).sum()), 2),
        backtest_weeks=holdout,
        backtest_mase=round(mase, 3),
        backtest_mape_percent=round(mape, 1) if mape is not None else None,
        candidates=[
            MethodScore(
                method=n, mase=round(s, 3), mape_percent=round(p, 1) if p is not None else None
            )
            for n, s, p in bt.scores
        ],
        weeks_of_history=len(y),
        recent_history=[
            WeekValue(week_start=w, value=round(float(v), 2))
            for w, v in zip(weeks[-12:], y[-12:], strict=True)
        ],
        computed_at=datetime.now(UTC),
        notes=notes,
    )
