"""Confounder matrices ``W`` for a named representation of the units.

Representation names (``causal.*.representations``):

* ``none``: no adjustment (``W`` is empty; effect modifiers ``X`` still enter the model);
* ``oracle``: the benchmark's true confounders ``CausalData.W_true``, restricted to the
  columns that form the adjustment set of ``CausalData.graph`` when the graph names them;
* ``raw``: the raw pre-treatment covariates (Hillstrom design matrix); for the
  semi-synthetic benchmark, whose raw covariate is the item history itself, ``raw`` is
  ``sparse_history`` (never the true confounders);
* ``sparse_history``: normalised bag of items + one-hots of the last items, a sparse matrix
  for CV-penalised linear nuisances (:mod:`lib.causal.history_features`);
* ``hand_gbm``: hand-made history features (length, popularity, attribute shares, recency)
  for gradient-boosted nuisances;
* ``bag_svd``: bag-of-items truncated SVD of the history; loaded from the exported file
  when present, otherwise computed here from the histories (so it always runs);
* ``seq_pretrained``, ``text_frozen``, ``text_lora``, ``text_full``: user vectors exported by
  notebook 02, aligned to the units by id. Pretrained encoders never see T or Y.
* ``seq_finetuned``: the sequence encoder fine-tuned on T and Y; it is cross-fitted per
  simulation seed by the grid (:mod:`lib.causal.experiments`), never read from a file.

Dense embeddings are optionally reduced to ``causal.pca_dim`` principal components
(PCA fitted on the units of this benchmark, fixed ``random_state``): with linear nuisance
models this keeps the cross-fitted regressions well conditioned. Which nuisance family a
representation uses is ``causal.representation_nuisance`` (:func:`nuisance_kinds`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from lib.embed.store import VARIANTS, embedding_stem, load_for

REPRESENTATIONS = ("none", "raw", "oracle", "sparse_history", "hand_gbm", "bag_svd", "seq_pretrained",
                   "seq_finetuned", "text_frozen", "text_lora", "text_full")
#: representations computed from the histories here rather than read from an exported file
FROM_HISTORIES = ("sparse_history", "hand_gbm")


class RepresentationUnavailable(FileNotFoundError):
    """The embedding file of a representation has not been exported (yet)."""


def adjustment_columns(data: Any) -> list[str]:
    """Columns of ``data.W_true`` that the causal graph names as its adjustment set.

    Falls back to all columns of ``W_true`` when the graph's adjustment set is stated in
    terms of a node (e.g. ``history``) that ``W_true`` summarises as several columns.
    """
    cols = list(data.W_true.columns)
    graph = getattr(data, "graph", None)
    if graph is None:
        return cols
    adj = set(graph.adjustment_set())
    chosen = [c for c in cols if c in adj]
    return chosen or cols


def nuisance_kinds(ccfg: Any, name: str) -> tuple[str, str] | None:
    """``(outcome, propensity)`` nuisance kinds of representation ``name``; None = the study default."""
    kinds = ccfg.representation_nuisance.get(name)
    return None if kinds is None else (str(kinds[0]), str(kinds[1]))


def build_W(data: Any, name: str, population: str, embeddings_dir: str | Path | None = None,
            pca_dim: int | None = None, seed: int = 0, histories: Sequence[Sequence[int]] | None = None,
            n_items: int | None = None, bag_dim: int = 64, bag_weighting: str = "tfidf",
            raw: np.ndarray | None = None, item_attributes: Any = None,
            history_cfg: Any = None) -> Any:
    """``W`` of representation ``name`` for ``data`` (a ``CausalData``), one row per unit in order.

    float64 ``[n_units, d]`` for dense representations, a CSR matrix for ``sparse_history``.

    Parameters
    ----------
    data : CausalData
        Supplies ``unit_id`` (alignment) and ``W_true``.
    name : str
        One of :data:`REPRESENTATIONS`.
    population : {"beauty", "sports", "hillstrom"}
        Which exported embedding files to read.
    embeddings_dir : path, optional
        ``cfg.paths.embeddings``.
    pca_dim : int, optional
        Reduce to this many principal components when ``d > pca_dim`` (0/None = keep all).
    histories, n_items : optional
        Histories ``items[:-2]`` of ``data.unit_id`` in the same order, for ``bag_svd``
        computed from data when no exported file exists.
    raw : array, optional
        Raw covariates of the units in order (Hillstrom design matrix); without them ``raw``
        means ``sparse_history``.
    item_attributes, history_cfg : optional
        Item attribute table and ``causal.history_features``, for ``sparse_history`` / ``hand_gbm``.

    Raises
    ------
    RepresentationUnavailable
        The exported file is missing (callers skip the representation with a note).
    InputError
        The file lacks vectors for some units (message names the file and the count).
    """
    if name not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {name!r}; choose one of {REPRESENTATIONS}")
    if name == "none":
        return None
    if name == "raw" and raw is not None:
        return reduce_W(np.asarray(raw, dtype=np.float64), pca_dim, seed)
    if name in ("raw", *FROM_HISTORIES):
        if histories is None or n_items is None or history_cfg is None:
            raise RepresentationUnavailable(f"representation {name!r} of {data.name} needs the item histories "
                                            "(and raw covariates for 'raw' on a tabular benchmark)")
        if len(histories) != len(data.unit_id):
            raise ValueError(f"{name}: {len(histories)} histories for {len(data.unit_id)} units; pass them in unit order")
        from lib.causal.history_features import hand_features, sparse_history

        if name == "hand_gbm":   # boosted trees take the features as they are: no scaling, no PCA
            if item_attributes is None:
                raise RepresentationUnavailable("hand_gbm needs the item attribute table")
            return hand_features(histories, item_attributes, int(history_cfg.n_attrs),
                                 int(history_cfg.recent_k)).to_numpy(np.float64)
        return sparse_history(histories, n_items, int(history_cfg.recent_k), int(history_cfg.min_count))
    if name == "oracle":
        if data.W_true is None:
            raise RepresentationUnavailable(f"{data.name} has no W_true, so representation {name!r} is undefined")
        return reduce_W(data.W_true[adjustment_columns(data)].to_numpy(dtype=np.float64), pca_dim, seed)
    if name == "seq_finetuned":
        raise RepresentationUnavailable("seq_finetuned is cross-fitted per simulation seed by the grid; "
                                        "it is never read from an exported file")
    assert name in VARIANTS
    stem = embedding_stem(embeddings_dir, population, name) if embeddings_dir is not None else None
    if stem is not None and stem.with_suffix(".npz").is_file():
        W = load_for(stem, np.asarray(data.unit_id)).astype(np.float64)
    elif name == "bag_svd" and histories is not None and n_items is not None:
        from lib.embed.bag import bag_svd

        if len(histories) != len(data.unit_id):
            raise ValueError(f"bag_svd: {len(histories)} histories for {len(data.unit_id)} units; pass them in unit order")
        W = bag_svd(histories, n_items, bag_dim, seed, bag_weighting).astype(np.float64)
    else:
        raise RepresentationUnavailable(
            f"no exported embeddings for representation {name!r} of {population} "
            f"({stem}.npz missing); run notebook 02_train_models first")
    return reduce_W(W, pca_dim, seed)


def reduce_W(W: np.ndarray, pca_dim: int | None, seed: int) -> np.ndarray:
    """Standardise and PCA-reduce ``W`` to ``pca_dim`` columns when it is wider."""
    if not pca_dim or W.shape[1] <= pca_dim:
        return W
    Z = StandardScaler().fit_transform(W)
    return PCA(n_components=int(pca_dim), svd_solver="full", random_state=seed).fit_transform(Z)
