"""Names shared beyond ml/ without importing its numerical stack: the RFM segment names
the segment model assigns (docs/ml.md), which automations, the assistant and the dashboard
match user input against."""

from __future__ import annotations

RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential Loyalists",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)
