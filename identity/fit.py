"""`cbrain identity fit`: reviewers' answers re-fit the scoring weights of a brand.

Labels: approved review items (same person), rejected ones (different people) and merges
that were rolled back (different people). The m-probabilities are re-estimated with
`scoring.fit_from_labels`; the report compares the old and new model on the labels with
leave-one-out style honesty (each label is scored by a model fitted without it when there
are few labels, in folds otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from identity._compare import PairFeatures
from identity.scoring import ScoringModel, fit_from_labels

LABELS = """
SELECT features, status = 'approved' AS same FROM merge_review_queue
WHERE brand_id = $1 AND status IN ('approved', 'rejected') AND features <> '{}'::jsonb
UNION ALL
SELECT features, false FROM identity_merge_log
WHERE brand_id = $1 AND rolled_back_at IS NOT NULL AND features <> '{}'::jsonb"""
SAVE_MODEL = """
UPDATE brands SET settings = jsonb_set(settings, '{identity}',
    coalesce(settings->'identity', '{}'::jsonb) || jsonb_build_object('model', $2::jsonb))
WHERE id = $1"""


@dataclass
class FitReport:
    labels: int
    positives: int
    before: dict[str, float]
    after: dict[str, float]
    model: ScoringModel
    applied: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "positives": self.positives,
            "before": self.before,
            "after": self.after,
            "applied": self.applied,
        }


def _pairs(rows: list[asyncpg.Record]) -> tuple[list[PairFeatures], list[bool]]:
    feats, labels = [], []
    for r in rows:
        f = r["features"] or {}
        feats.append(PairFeatures(f.get("levels", {}), f.get("freq", {})))
        labels.append(bool(r["same"]))
    return feats, labels


def quality(model: ScoringModel, feats: list[PairFeatures], labels: list[bool]) -> dict[str, float]:
    """Log loss, and how the auto-merge/review/no-merge bands treat the labelled pairs."""
    loss = 0.0
    auto_wrong = auto_right = 0
    for f, y in zip(feats, labels, strict=True):
        p = min(max(model.score(f).probability, 1e-6), 1 - 1e-6)
        loss -= math.log(p if y else 1 - p)
        if p >= model.auto_merge_threshold:
            auto_right += y
            auto_wrong += not y
    n = max(1, len(labels))
    positives = max(1, sum(labels))
    return {
        "log_loss": round(loss / n, 4),
        "auto_merge_precision": round(auto_right / max(1, auto_right + auto_wrong), 4),
        "auto_merge_recall": round(auto_right / positives, 4),
    }


def _cross_validated(
    base: ScoringModel, feats: list[PairFeatures], labels: list[bool], folds: int = 5
) -> dict[str, float]:
    """Quality of re-fitting, each fold scored by a model fitted on the other folds."""
    k = min(folds, len(labels))
    scored_f: list[PairFeatures] = []
    scored_y: list[bool] = []
    totals = {"log_loss": 0.0, "auto_merge_precision": 0.0, "auto_merge_recall": 0.0}
    for i in range(k):
        train = [j for j in range(len(labels)) if j % k != i]
        test = [j for j in range(len(labels)) if j % k == i]
        model = fit_from_labels([feats[j] for j in train], [labels[j] for j in train], base)
        q = quality(model, [feats[j] for j in test], [labels[j] for j in test])
        for key in totals:
            totals[key] += q[key] * len(test)
        scored_f += [feats[j] for j in test]
        scored_y += [labels[j] for j in test]
    return {key: round(v / max(1, len(scored_y)), 4) for key, v in totals.items()}


async def fit_brand(
    conn: asyncpg.Connection, brand_id: UUID, current: ScoringModel, *, apply: bool
) -> FitReport:
    feats, labels = _pairs(await conn.fetch(LABELS, brand_id))
    if len(labels) < 2 or all(labels) or not any(labels):
        return FitReport(
            len(labels),
            sum(labels),
            quality(current, feats, labels),
            quality(current, feats, labels),
            current,
            False,
        )
    before = quality(current, feats, labels)
    after = _cross_validated(current, feats, labels)
    model = fit_from_labels(feats, labels, current)
    better = after["log_loss"] <= before["log_loss"]
    if apply and better:
        await conn.execute(SAVE_MODEL, brand_id, model.to_dict())
    return FitReport(len(labels), sum(labels), before, after, model, apply and better)
