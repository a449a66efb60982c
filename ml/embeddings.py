"""32-dimensional customer and product embeddings for pgvector (cosine, HNSW).

Both live in one space so that "customers likely to buy product P" is a nearest-neighbour
query: the first ``dim - n_behaviour`` dimensions are a TruncatedSVD of the customer x
product matrix (log counts, idf-weighted) with customers as U*sqrt(S) and products as
V*sqrt(S); the last ``n_behaviour`` dimensions are scaled behavioural features for
customers, and for products the mean behaviour of their buyers. Rows are L2-normalized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

BEHAVIOUR = (
    "recency_days",
    "n_orders",
    "monetary_mean",
    "n_views_30d",
    "share_online",
    "share_store",
    "share_messaging",
    "refund_rate",
)
_LOG = {"recency_days", "n_orders", "monetary_mean", "n_views_30d"}


@dataclass
class Embeddings:
    """Unit vectors (float32) with their ids, ready for ``vector(32)`` columns."""

    customer_ids: np.ndarray
    customers: np.ndarray
    product_ids: np.ndarray
    products: np.ndarray

    def customer_frame(self) -> pd.DataFrame:
        """profile_id -> list[float] (the pgvector codec accepts lists or arrays)."""
        return pd.DataFrame({"profile_id": self.customer_ids, "embedding": list(self.customers)})

    def product_frame(self) -> pd.DataFrame:
        """product_id -> list[float]."""
        return pd.DataFrame({"product_id": self.product_ids, "embedding": list(self.products)})


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _behaviour(features: pd.DataFrame, ids: pd.Index, n: int) -> np.ndarray:
    cols = list(BEHAVIOUR)[:n]
    X = features.reindex(index=ids, columns=cols).to_numpy(dtype=float, na_value=np.nan).copy()
    for j, c in enumerate(cols):
        if c in _LOG:
            X[:, j] = np.log1p(np.maximum(X[:, j], 0.0))
    med = np.nanmedian(X, axis=0) if len(X) else np.zeros(len(cols))
    X = np.where(np.isnan(X), np.nan_to_num(med)[None, :], X)
    sd = X.std(axis=0)
    return np.clip((X - X.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0), -3, 3)


def fit_embeddings(
    lines: pd.DataFrame,
    features: pd.DataFrame | None = None,
    *,
    dim: int = 32,
    n_behaviour: int = 8,
    behaviour_weight: float = 0.5,
    seed: int = 0,
    max_fit_rows: int = 200_000,
) -> Embeddings:
    """Customer and product embeddings of size ``dim`` from line items (+ features).

    Customers in ``features`` without purchases get behaviour-only vectors; without
    ``features`` all dimensions come from the SVD. ``behaviour_weight`` is the share of
    the squared norm the behaviour block may take before normalization. The SVD is fitted
    on at most ``max_fit_rows`` customers and applied to all.
    """
    nb = n_behaviour if features is not None else 0
    k = dim - nb
    ln = lines.drop_duplicates(["order_id", "product_id"])
    cust, cust_ids = pd.factorize(ln["profile_id"].astype(str))
    prod, prod_ids = pd.factorize(ln["product_id"].astype(str))
    M = sp.csr_matrix((np.ones(len(ln)), (cust, prod)), shape=(len(cust_ids), len(prod_ids)))
    M.sum_duplicates()
    M.data = np.log1p(M.data)
    idf = np.log((1 + M.shape[0]) / (1 + np.diff(M.tocsc().indptr)))  # rare items say more
    M = M @ sp.diags(idf)
    n_comp = max(1, min(k, min(M.shape) - 1))
    svd = TruncatedSVD(n_components=n_comp, algorithm="randomized", n_iter=4, random_state=seed)
    # The item factors settle on a sample of customers; everyone is then projected onto them.
    rows = np.random.default_rng(seed).choice(
        M.shape[0], min(M.shape[0], max_fit_rows), replace=False
    )
    svd.fit(M[np.sort(rows)])
    U = svd.transform(M)  # = U * S
    s = np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    cu = np.zeros((len(cust_ids), k))
    pv = np.zeros((len(prod_ids), k))
    cu[:, :n_comp] = U / s  # U * sqrt(S)
    pv[:, :n_comp] = svd.components_.T * s  # V * sqrt(S)
    cu, pv = _unit(cu).astype(float), _unit(pv).astype(float)
    all_ids = pd.Index(cust_ids, dtype=object)
    if features is not None:
        all_ids = all_ids.append(
            pd.Index(features.index.astype(str), dtype=object).difference(all_ids)
        )
        cu = np.vstack([cu, np.zeros((len(all_ids) - len(cust_ids), k))])
        B = _behaviour(features.set_axis(features.index.astype(str)), all_ids, nb)
        B = _unit(B).astype(float) * np.sqrt(behaviour_weight / (1 - behaviour_weight))
        # A product's behaviour block is the mean behaviour of the customers who bought it.
        buyers = sp.csr_matrix(
            (np.ones(len(ln)), (prod, cust)), shape=(len(prod_ids), len(all_ids))
        )
        buyers.data[:] = 1.0
        cnt = np.asarray(buyers.sum(axis=1)).ravel()
        PB = (buyers @ B) / np.maximum(cnt, 1)[:, None]
        cu, pv = np.hstack([cu, B]), np.hstack([pv, PB])
    return Embeddings(all_ids.to_numpy(), _unit(cu), np.asarray(prod_ids, dtype=object), _unit(pv))


def nearest(
    vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int = 10
) -> list[tuple[str, float]]:
    """Cosine nearest neighbours in memory (what the HNSW index answers in Postgres)."""
    sims = vectors @ (query / max(np.linalg.norm(query), 1e-12))
    top = np.argsort(-sims, kind="stable")[:k]
    return [(str(ids[i]), float(sims[i])) for i in top]
