"""Non-neural next-item baselines scored with the same full-ranking protocol.

* :class:`Popularity`: every user gets the catalogue ranked by interaction counts.
* :class:`ItemKNN`: item-item cosine similarity of co-occurrence in training histories
  (binary user x item matrix), pruned to the ``n_neighbours`` most similar items; a user's
  score for item ``j`` is the sum of similarities between ``j`` and the items of the history.

Splits follow leave-one-out: the validation query is ``items[:-2]`` -> ``valid_item`` with the
model fitted on every user's ``items[:-2]``; the test query is ``items[:-1]`` -> ``test_item``
with the model fitted on ``items[:-1]`` (the validation item is past data at test time).

Examples
--------
>>> hist = [[1, 2], [1, 2], [2, 3]]
>>> Popularity().fit(hist, n_items=3).score(hist)[0].tolist()
[-inf, 2.0, 3.0, 1.0]
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lib.eval.metrics import rank_of_target, ranking_metrics, remove_seen
from lib.train.datamodule import left_pad


def _user_item(histories: Sequence[Sequence[int]], n_items: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else np.zeros(0, int)
    mat = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(histories), n_items + 1))
    mat.data[:] = 1.0  # binary: repeated purchases count once (sum_duplicates then clip)
    mat.sum_duplicates()
    mat.data = np.minimum(mat.data, 1.0)
    return mat


class Popularity:
    """Rank items by how many interactions they have in the training histories."""

    def fit(self, histories: Sequence[Sequence[int]], n_items: int) -> "Popularity":
        counts = np.zeros(n_items + 1, np.float64)
        np.add.at(counts, np.concatenate([np.asarray(h, np.int64) for h in histories]), 1.0)
        counts[0] = -np.inf  # padding id is never a candidate
        self.counts_ = counts
        return self

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(histories), len(self.counts_)))


class ItemKNN:
    """Item-based k-nearest-neighbours on cosine co-occurrence.

    Parameters
    ----------
    n_neighbours : int
        Similar items kept per item (sparsifies the similarity matrix).
    """

    def __init__(self, n_neighbours: int) -> None:
        self.n_neighbours = n_neighbours

    def fit(self, histories: Sequence[Sequence[int]], n_items: int) -> "ItemKNN":
        ui = _user_item(histories, n_items)
        co = (ui.T @ ui).tocsr().astype(np.float64)
        norms = np.sqrt(np.asarray(co.diagonal()))
        co.setdiag(0.0)  # an item is not its own neighbour
        co.eliminate_zeros()
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        sim = sp.diags(inv) @ co @ sp.diags(inv)
        self.sim_ = self._prune(sim.tocsr()).astype(np.float32)
        self.n_items_ = n_items
        return self

    def _prune(self, sim: sp.csr_matrix) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i in range(sim.shape[0]):
            start, end = sim.indptr[i], sim.indptr[i + 1]
            if end == start:
                continue
            v, c = sim.data[start:end], sim.indices[start:end]
            # stable order: highest similarity first, then lowest item id
            keep = np.lexsort((c, -v))[: self.n_neighbours]
            rows.append(np.full(len(keep), i)), cols.append(c[keep]), vals.append(v[keep])
        if not rows:
            return sp.csr_matrix(sim.shape)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=sim.shape)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        scores = np.asarray((_user_item(histories, self.n_items_) @ self.sim_).todense(), dtype=np.float64)
        scores[:, 0] = -np.inf
        return scores


def leave_one_out(sequences: pd.DataFrame, split: str) -> tuple[list[list[int]], np.ndarray]:
    """Query histories and targets of ``split`` ("valid": items[:-2] -> valid_item; "test": items[:-1] -> test_item)."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    cut = -2 if split == "valid" else -1
    histories = [list(map(int, items[:cut])) for items in sequences["items"]]
    return histories, sequences[f"{split}_item"].to_numpy(np.int64)


def evaluate(model: Popularity | ItemKNN, sequences: pd.DataFrame, n_items: int, split: str,
             ks: Iterable[int], batch_size: int = 1024) -> dict[str, float]:
    """Fit ``model`` on the split's histories; full-ranking HR@K / NDCG@K under both protocols.

    Keys ``hr@K`` / ``ndcg@K`` (all items are candidates) and ``history_removed/hr@K`` /
    ``history_removed/ndcg@K`` (each user's earlier items are not, :func:`lib.eval.metrics.remove_seen`).
    """
    histories, targets = leave_one_out(sequences, split)
    model.fit(histories, n_items)
    ranks, removed = [], []
    for start in range(0, len(histories), batch_size):
        chunk = histories[start:start + batch_size]
        scores = torch.from_numpy(np.ascontiguousarray(model.score(chunk)))
        target = torch.from_numpy(targets[start:start + batch_size])
        ranks.append(rank_of_target(scores, target))
        removed.append(rank_of_target(remove_seen(scores, left_pad(chunk, max(map(len, chunk)))), target))
    out = ranking_metrics(torch.cat(ranks), ks)
    out.update({f"history_removed/{key}": v for key, v in ranking_metrics(torch.cat(removed), ks).items()})
    return out
