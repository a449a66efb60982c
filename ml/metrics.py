"""Model-quality metrics: classification, value ranking, calibration, drift and top-k lists.

Pure numpy/pandas so the registry can store the numbers next to each model version and the
bench prints the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr


def _xy(y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray):
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"shape mismatch: {y.shape} vs {s.shape}")
    return y, s


def auc(y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula; ties count one half."""
    y, s = _xy(y_true, y_score)
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(y_true: Sequence[float] | np.ndarray, y_prob: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of probabilities against 0/1 outcomes."""
    y, p = _xy(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


def lift_at(
    y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray, frac: float = 0.1
) -> float:
    """Positive rate in the top ``frac`` by score over the overall positive rate."""
    y, s = _xy(y_true, y_score)
    if y.mean() == 0:
        return float("nan")
    n_top = max(1, round(len(y) * frac))
    order = np.argsort(-s, kind="stable")
    return float(y[order[:n_top]].mean() / y.mean())


def normalized_gini(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> float:
    """Gini of the actual values ordered by prediction, over the Gini of the perfect order.

    The value-ranking measure of Wang, Liu & Miao (2019, ZILN): 1 is a perfect ranking, 0 is
    random. Ties in prediction keep input order (stable sort), as in the Kaggle reference.
    """
    y, p = _xy(y_true, y_pred)

    def gini(order_by: np.ndarray) -> float:
        order = np.argsort(-order_by, kind="stable")
        total = y.sum()
        if total == 0:
            return float("nan")
        cum = np.cumsum(y[order]).sum() / total
        return float((cum - (len(y) + 1) / 2.0) / len(y))

    return gini(p) / gini(y)


def spearman(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation."""
    y, p = _xy(y_true, y_pred)
    return float(spearmanr(y, p).statistic)


def aggregate_error(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> float:
    """Relative error of the total: (sum(pred) - sum(actual)) / sum(actual)."""
    y, p = _xy(y_true, y_pred)
    return float((p.sum() - y.sum()) / y.sum())


def decile_table(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray, bins: int = 10
) -> pd.DataFrame:
    """Mean predicted vs mean actual per prediction decile (1 = highest predictions)."""
    y, p = _xy(y_true, y_pred)
    order = np.argsort(-p, kind="stable")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.arange(len(p)) * bins // max(len(p), 1) + 1
    df = pd.DataFrame({"decile": decile, "pred": p, "actual": y})
    out = df.groupby("decile").agg(
        n=("pred", "size"), mean_pred=("pred", "mean"), mean_actual=("actual", "mean")
    )
    return out.reset_index()


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """Population stability index of ``actual`` against the ``expected`` (reference) sample.

    Bins are the reference's quantiles (deduplicated, so a feature with many ties gets fewer
    bins); empty bins are floored at 1e-4 so the log stays finite. Rule of thumb: < 0.1
    stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_frac = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1) / len(e)
    a_frac = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    e_frac, a_frac = np.maximum(e_frac, 1e-4), np.maximum(a_frac, 1e-4)
    return float(np.sum((a_frac - e_frac) * np.log(a_frac / e_frac)))


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, bins: int = 10
) -> dict[str, float]:
    """PSI per numeric column shared by both frames (the per-run drift report)."""
    cols = [c for c in reference.columns if c in current.columns]
    out: dict[str, float] = {}
    for c in cols:
        if pd.api.types.is_numeric_dtype(reference[c]) and pd.api.types.is_numeric_dtype(
            current[c]
        ):
            out[c] = psi(reference[c].to_numpy(float), current[c].to_numpy(float), bins)
    return out


def precision_at_k(recommended: Sequence[object], relevant: Iterable[object], k: int = 10) -> float:
    """Hits in the first k recommendations over k."""
    rel = set(relevant)
    return sum(1 for r in list(recommended)[:k] if r in rel) / k


def recall_at_k(recommended: Sequence[object], relevant: Iterable[object], k: int = 10) -> float:
    """Hits in the first k recommendations over the number of relevant items."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return sum(1 for r in list(recommended)[:k] if r in rel) / len(rel)


def ndcg_at_k(recommended: Sequence[object], relevant: Iterable[object], k: int = 10) -> float:
    """Binary-relevance NDCG@k: DCG with 1/log2(rank + 1) over the ideal DCG."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    dcg = sum(1.0 / np.log2(i + 2) for i, r in enumerate(list(recommended)[:k]) if r in rel)
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(len(rel), k)))
    return float(dcg / idcg)


def ranking_report(
    recommendations: Mapping[object, Sequence[object]],
    truth: Mapping[object, Iterable[object]],
    k: int = 10,
) -> dict[str, float]:
    """Mean precision/recall/NDCG@k over the users in ``truth`` (missing lists score 0)."""
    p, r, n = [], [], []
    for user, rel in truth.items():
        rel = set(rel)
        if not rel:
            continue
        recs = list(recommendations.get(user, []))
        p.append(precision_at_k(recs, rel, k))
        r.append(recall_at_k(recs, rel, k))
        n.append(ndcg_at_k(recs, rel, k))
    return {
        f"precision@{k}": float(np.mean(p)),
        f"recall@{k}": float(np.mean(r)),
        f"ndcg@{k}": float(np.mean(n)),
        "users": float(len(p)),
    }
