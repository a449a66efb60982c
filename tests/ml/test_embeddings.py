from __future__ import annotations

import numpy as np

from ml.embeddings import fit_embeddings, nearest
from ml.features import build_features

from ._data import AS_OF, small


def test_embeddings_shape_norm_and_neighbours():
    X = build_features(small().events, AS_OF, lines=small().lines, with_btyd=False)
    e = fit_embeddings(small().lines, X, seed=0)
    assert e.customers.shape == (len(set(e.customer_ids)), 32) and e.products.shape[1] == 32
    assert e.customers.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e.customers, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e.products, axis=1), 1.0, atol=1e-5)
    assert set(X.index) <= set(e.customer_ids)  # non-buyers get behaviour-only vectors
    top = nearest(e.customers, e.customer_ids, e.customers[0], 3)
    assert top[0][0] == str(e.customer_ids[0]) and top[0][1] > 0.999
    again = fit_embeddings(small().lines, X, seed=0)
    np.testing.assert_array_equal(again.customers, e.customers)
    assert len(e.customer_frame()) == len(e.customer_ids)
