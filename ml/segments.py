"""Segments: the standard RFM grid and behavioural KMeans clusters named in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

NO_ORDERS = "Prospects"

# Rows: R score 5..1 (5 = most recent); columns: FM score 1..5. The usual R x FM map
# (Putler/Klaviyo style), made a full grid so every customer lands in exactly one cell.
_GRID = {
    5: ("New", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "At Risk", "Can't Lose Them"),
}


def rfm_segment(r: int, f: int, m: int) -> str:
    """Segment of one customer from quintile scores (1-5); FM is the rounded-up mean of F, M."""
    fm = (int(f) + int(m) + 1) // 2
    return _GRID[int(r)][fm - 1]


def quintile_score(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """1-5 by quintile of rank; ties share the lowest score they reach.

    Ties matter: most customers of a new brand have one order, and ``pd.qcut`` would either
    fail on duplicate edges or split identical customers across scores.
    """
    v = values if higher_is_better else -values
    rank = v.rank(method="min")
    return (1 + np.floor(5 * (rank - 1) / len(v))).clip(1, 5).astype(int)


def rfm(features: pd.DataFrame) -> pd.DataFrame:
    """R, F, M scores and the RFM segment per customer (``Prospects`` when no order yet).

    Scores are quintiles over the brand's buyers: R from ``recency_days`` (lower is better),
    F from ``n_orders``, M from ``monetary_total``.
    """
    buyers = features["n_orders"] > 0
    b = features.loc[buyers]
    out = pd.DataFrame(index=features.index, columns=["r", "f", "m", "segment"], dtype=object)
    out["segment"] = NO_ORDERS
    if len(b):
        r = quintile_score(b["recency_days"], higher_is_better=False)
        f = quintile_score(b["n_orders"])
        m = quintile_score(b["monetary_total"])
        out.loc[b.index, "r"], out.loc[b.index, "f"], out.loc[b.index, "m"] = r, f, m
        out.loc[b.index, "segment"] = [rfm_segment(*x) for x in zip(r, f, m, strict=True)]
    return out


CLUSTER_COLUMNS = (
    "recency_days",
    "n_orders",
    "monetary_mean",
    "monetary_total",
    "n_views_30d",
    "n_cart_30d",
    "n_messages_30d",
    "share_online",
    "share_store",
    "share_messaging",
    "refund_rate",
)
_LOG = {
    "recency_days",
    "n_orders",
    "monetary_mean",
    "monetary_total",
    "n_views_30d",
    "n_cart_30d",
    "n_messages_30d",
}


@dataclass
class Clusters:
    """Fitted behavioural clusters: scaler, centroids, names, and the silhouette per k."""

    columns: list[str]
    mean: np.ndarray
    std: np.ndarray
    fill: np.ndarray
    centroids: np.ndarray
    names: list[str]
    silhouette: dict[int, float] = field(default_factory=dict)

    def _z(self, features: pd.DataFrame) -> np.ndarray:
        return _standardize(features, self.columns, self.mean, self.std, self.fill)[0]

    def assign(self, features: pd.DataFrame) -> pd.Series:
        """Nearest-centroid cluster name for each customer."""
        z = self._z(features)
        d = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return pd.Series(
            np.asarray(self.names, dtype=object)[d.argmin(axis=1)],
            index=features.index,
            name="cluster",
        )

    def to_dict(self) -> dict:
        """JSON-safe form for ``model_versions.artifact``/params."""
        return {
            "columns": self.columns,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "fill": self.fill.tolist(),
            "centroids": self.centroids.tolist(),
            "names": self.names,
            "silhouette": {str(k): v for k, v in self.silhouette.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Clusters:
        """Inverse of ``to_dict``."""
        return cls(
            d["columns"],
            np.array(d["mean"]),
            np.array(d["std"]),
            np.array(d["fill"]),
            np.array(d["centroids"]),
            list(d["names"]),
            {int(k): v for k, v in d["silhouette"].items()},
        )


def _standardize(features: pd.DataFrame, cols: Sequence[str], mean=None, std=None, fill=None):
    X = features.reindex(columns=list(cols)).to_numpy(dtype=float, na_value=np.nan).copy()
    for j, c in enumerate(cols):
        if c in _LOG:
            X[:, j] = np.log1p(np.maximum(X[:, j], 0.0))
    if fill is None:
        # Never-bought customers have no recency: treat them as the most lapsed.
        fill = np.array(
            [np.nanmax(X[:, j]) if c == "recency_days" else 0.0 for j, c in enumerate(cols)]
        )
        fill = np.nan_to_num(fill)
    X = np.where(np.isnan(X), fill[None, :], X)
    if mean is None:
        mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 1e-9, std, 1.0)
    return np.clip((X - mean) / std, -5, 5), mean, std, fill


def _name(z: dict[str, float], raw: dict[str, float]) -> str:
    """Plain-words name from a centroid: z are standardized values, raw the original scale."""
    if raw["n_orders"] < 0.5:
        return (
            "Browsers who haven't bought" if z["n_views_30d"] > 0.3 else "Sign-ups with no orders"
        )
    lapsed = z["recency_days"] > 0.5
    recent = z["recency_days"] < -0.5
    if raw["n_orders"] < 1.5:
        who = "one-time buyers"
    elif z["n_orders"] > 0.5:
        who = "frequent buyers"
    else:
        who = "occasional buyers"
    spend = "high spenders" if z["monetary_total"] > 0.7 or z["monetary_mean"] > 0.9 else None
    low = z["monetary_mean"] < -0.9
    if spend and who == "frequent buyers":
        base = "Frequent high spenders"
    elif spend:
        base = f"{who.capitalize()}, high spenders"
    else:
        base = ("Low-basket " + who) if low else who.capitalize()
    if lapsed:
        base = "Lapsed " + base[0].lower() + base[1:]
    elif recent and who != "frequent buyers":
        base = "Recent " + base[0].lower() + base[1:]
    if z["n_views_30d"] > 0.8 and raw["n_orders"] < 3:
        return "Web browsers, few orders"
    extras = []
    # A channel names a cluster only where it sets it apart (not for an all-store brand).
    if raw["share_store"] > 0.6 and z["share_store"] > 0.5:
        extras.append("mostly in store")
    elif raw["share_messaging"] > 0.4 and z["share_messaging"] > 0.5:
        extras.append("chat on WhatsApp")
    elif raw["share_online"] > 0.8 and z["n_views_30d"] > 0.3:
        extras.append("active online")
    if z["refund_rate"] > 1.0:
        extras.append("return a lot")
    return ", ".join([base, *extras])


def fit_clusters(
    features: pd.DataFrame,
    k_range: Sequence[int] = range(3, 9),
    *,
    seed: int = 0,
    sample: int = 3_000,
    fit_sample: int = 200_000,
) -> Clusters:
    """KMeans on standardized behaviour, k chosen by silhouette on a sample.

    Silhouette is quadratic in rows, so k is chosen on ``sample`` customers; the final model
    is fitted on up to ``fit_sample`` customers (the centroids are stable long before 1M).
    Clusters are ordered by spend then named; identical names get a numeric suffix, so the
    result is deterministic for a given seed and data.
    """
    cols = [c for c in CLUSTER_COLUMNS if c in features.columns]
    Z, mean, std, fill = _standardize(features, cols)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(Z), min(sample, len(Z)), replace=False)
    scores: dict[int, float] = {}
    ks = [k for k in k_range if k < len(pick)]
    for k in ks:
        labels = KMeans(k, n_init=4, random_state=seed).fit_predict(Z[pick])
        scores[k] = (
            float(silhouette_score(Z[pick], labels, random_state=seed))
            if len(set(labels)) > 1
            else -1.0
        )
    best_k = max(scores, key=lambda k: (round(scores[k], 4), -k))
    fit_idx = rng.choice(len(Z), min(fit_sample, len(Z)), replace=False)
    km = KMeans(best_k, n_init=4, random_state=seed).fit(Z[fit_idx])
    cent = km.cluster_centers_
    raw = cent * std + mean
    for j, c in enumerate(cols):
        if c in _LOG:
            raw[:, j] = np.expm1(raw[:, j])
    order = np.lexsort(
        (
            cent[:, 0],
            -cent[:, cols.index("monetary_total")] if "monetary_total" in cols else cent[:, 0],
        )
    )
    cent, raw = cent[order], raw[order]
    names: list[str] = []
    defaults = dict.fromkeys(CLUSTER_COLUMNS, 0.0)
    for i in range(len(cent)):
        z = defaults | dict(zip(cols, cent[i], strict=True))
        r = defaults | dict(zip(cols, raw[i], strict=True))
        name = _name(z, r)
        if name in names:
            name = f"{name} ({sum(n.startswith(name) for n in names) + 1})"
        names.append(name)
    return Clusters(cols, mean, std, fill, cent, names, scores)
