"""Bag-of-items user vectors reduced by truncated SVD: the cheap non-transformer representation.

Each user's history (``items[:-2]``; never the validation / test items) becomes a row of a
sparse user x item matrix (counts, binary, or tf-idf weighted), and ``TruncatedSVD`` with a
fixed ``random_state`` reduces it to ``dim`` columns. Same histories + same seed give the
same vectors (sklearn fixes the SVD signs).

Examples
--------
>>> emb = bag_svd([[1, 2], [2, 3], [1, 3, 3]], n_items=3, dim=2, seed=0, weighting="tfidf")
>>> emb.shape
(3, 2)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer

WEIGHTINGS = ("count", "binary", "tfidf")


def bag_matrix(histories: Sequence[Sequence[int]], n_items: int, weighting: str) -> sparse.csr_matrix:
    """Sparse ``[n_users, n_items + 1]`` matrix; column ``i`` counts item ``i`` (0 = padding, unused).

    >>> bag_matrix([[1, 1, 2]], n_items=2, weighting="count").toarray().tolist()
    [[0.0, 2.0, 1.0]]
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"bag weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    rows, cols = [], []
    for r, items in enumerate(histories):
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() > n_items):
            raise ValueError(f"history {r} has item ids outside 0..{n_items}")
        rows.append(np.full(items.size, r, dtype=np.int64))
        cols.append(items)
    rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols_a = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    mat = sparse.csr_matrix((np.ones(rows_a.size), (rows_a, cols_a)), shape=(len(histories), n_items + 1))
    mat.sum_duplicates()
    if weighting == "binary":
        mat.data[:] = 1.0
    elif weighting == "tfidf":
        mat = TfidfTransformer(sublinear_tf=True).fit_transform(mat).tocsr()
    return mat


def bag_svd(histories: Sequence[Sequence[int]], n_items: int, dim: int, seed: int, weighting: str) -> np.ndarray:
    """``[n_users, k]`` float32 SVD scores, ``k = min(dim, n_items, n_users - 1)``.

    ``k`` is capped because a truncated SVD cannot return more components than the matrix
    has columns / rows; the stored ``dim`` of the exported file tells the reader the real size.
    """
    mat = bag_matrix(histories, n_items, weighting)
    k = int(min(dim, n_items, mat.shape[0] - 1))
    if k < 1:
        raise ValueError(f"bag-of-items SVD needs at least 2 users and 1 item, got {mat.shape}")
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    return svd.fit_transform(mat).astype(np.float32)
