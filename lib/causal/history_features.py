"""Non-neural representations of a purchase history: the baselines a reviewer asks for first.

* :func:`sparse_history` — the raw history as sparse features: the normalised bag of items
  (each row sums to 1) next to one-hot columns of the ``k`` most recent items and, given the item
  attribute table, the share of the history's items and of the ``k`` most recent items that carry
  each attribute (what the sequence encoders see with ``model.use_attributes``). Paired with
  sparse-capable linear nuisances whose penalty is chosen by cross-validation
  (``causal.nuisance`` kind ``sparse_linear``), it is the strong, boring baseline of the
  semi-synthetic benchmark (representation ``sparse_history``, also called ``raw`` there).
* :func:`hand_features` — a dense table of features a data scientist would write by hand:
  history length, item-popularity statistics, shares of the most frequent item attributes
  over the whole history and over the most recent items. Paired with gradient boosting
  (representation ``hand_gbm``).

Both read only the history ``items[:-2]``.

Examples
--------
>>> M = sparse_history([[1, 1, 2], [3]], n_items=3, recent_k=1, min_count=1)
>>> M.shape, M.toarray()[0, :4].tolist()
((2, 8), [0.0, 0.6666666666666666, 0.3333333333333333, 0.0])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse


def sparse_history(histories: Sequence[Sequence[int]], n_items: int, recent_k: int, min_count: int,
                   item_attributes: pd.DataFrame | None = None, attributes: bool = False) -> sparse.csr_matrix:
    """``[n_users, (1 + recent_k) * n_kept (+ 2 n_attrs)]`` CSR matrix: normalised bag, one block per recent position.

    Items seen fewer than ``min_count`` times over all histories share one "rare" column per
    block (column 0), so the width stays manageable on a large catalogue without dropping mass.
    With ``attributes`` (config ``causal.history_features.attributes``) two blocks follow, one
    column per attribute id of ``item_attributes``: the share of the history's items carrying it,
    and the share of the ``recent_k`` most recent items carrying it.

    Examples
    --------
    >>> attrs = pd.DataFrame({"item_id": [1, 2, 3], "attr_ids": [[1], [1, 2], []]})
    >>> M = sparse_history([[1, 1, 3], [2]], 3, recent_k=1, min_count=1, item_attributes=attrs, attributes=True)
    >>> M.shape, M.toarray()[0, -6:].round(3).tolist()
    ((2, 14), [0.0, 0.667, 0.0, 0.0, 0.0, 0.0])
    """
    counts = np.bincount(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]), minlength=n_items + 1)
    kept = np.flatnonzero(counts >= min_count)
    kept = kept[kept > 0]
    col = np.zeros(n_items + 1, dtype=np.int64)          # item id -> column inside a block (0 = rare)
    col[kept] = np.arange(1, len(kept) + 1)
    width = len(kept) + 1
    rows, cols, vals = [], [], []
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)
        c, n = np.unique(col[h], return_counts=True)
        rows.append(np.full(len(c), r)), cols.append(c), vals.append(n / n.sum())
        recent = col[h[::-1][:recent_k]]
        rows.append(np.full(len(recent), r)), cols.append(np.arange(1, len(recent) + 1) * width + recent)
        vals.append(np.ones(len(recent)))
    M = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(histories), (1 + recent_k) * width))
    M.sum_duplicates()
    if not attributes:
        return M
    if item_attributes is None:
        raise ValueError("sparse_history(attributes=True) needs the item attribute table (item_attributes.parquet); "
                         "pass item_attributes or set causal.history_features.attributes=false")
    A = attribute_matrix(item_attributes, n_items)
    bag = _share_matrix([np.asarray(h, dtype=np.int64) for h in histories], n_items)
    last = _share_matrix([np.asarray(h, dtype=np.int64)[::-1][:recent_k] for h in histories], n_items)
    return sparse.hstack([M, bag @ A, last @ A], format="csr")


def attribute_matrix(item_attributes: pd.DataFrame, n_items: int) -> sparse.csr_matrix:
    """``[n_items + 1, max attribute id + 1]`` 0/1 CSR matrix: item (row) carries attribute (column)."""
    pairs = [(int(i), int(a)) for i, lst in zip(item_attributes["item_id"], item_attributes["attr_ids"])
             for a in lst if int(i) <= n_items]
    n_attr = max((a for _, a in pairs), default=0) + 1
    items, attrs = (np.array([p[k] for p in pairs], dtype=np.int64) for k in (0, 1))
    A = sparse.csr_matrix((np.ones(len(pairs)), (items, attrs)), shape=(n_items + 1, n_attr))
    A.data[:] = 1.0   # an attribute listed twice for an item still counts once
    return A


def _share_matrix(rows: Sequence[np.ndarray], n_items: int) -> sparse.csr_matrix:
    """``[n_rows, n_items + 1]``: the share of each item id among the ids of each row."""
    r = np.concatenate([np.full(len(h), i) for i, h in enumerate(rows)])
    c = np.concatenate(rows)
    w = np.concatenate([np.full(len(h), 1.0 / len(h)) for h in rows])
    return sparse.csr_matrix((w, (r, c)), shape=(len(rows), n_items + 1))


def hand_features(histories: Sequence[Sequence[int]], item_attributes: pd.DataFrame, n_attrs: int,
                  recent_k: int) -> pd.DataFrame:
    """Dense hand-made features of every history (one row per history, same order).

    Columns: ``log_length``; ``pop_mean`` / ``pop_max`` / ``pop_min`` / ``pop_last`` of
    log(1 + item popularity); ``share_a<id>`` (whole history) and ``recent_a<id>`` (last
    ``recent_k`` items) for the ``n_attrs`` most frequent attributes.
    """
    flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    log_pop = np.log1p(np.bincount(flat, minlength=int(flat.max()) + 1).astype(np.float64))
    counts = pd.Series([a for lst in item_attributes["attr_ids"] for a in lst], dtype=np.int64).value_counts()
    top = [int(a) for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_attrs]]
    n_items = max(int(item_attributes["item_id"].max()), len(log_pop) - 1)
    member = np.zeros((n_items + 1, len(top)))
    pos = {a: j for j, a in enumerate(top)}
    for item, attrs in zip(item_attributes["item_id"], item_attributes["attr_ids"]):
        for a in attrs:
            if a in pos:
                member[int(item), pos[a]] = 1.0
    rows = []
    for h in histories:
        h = np.asarray(h, dtype=np.int64)
        lp = log_pop[h]
        rows.append(np.concatenate([[np.log(len(h)), lp.mean(), lp.max(), lp.min(), lp[-1]],
                                    member[h].mean(axis=0), member[h[-recent_k:]].mean(axis=0)]))
    names = (["log_length", "pop_mean", "pop_max", "pop_min", "pop_last"]
             + [f"share_a{a}" for a in top] + [f"recent_a{a}" for a in top])
    return pd.DataFrame(np.asarray(rows), columns=names)
