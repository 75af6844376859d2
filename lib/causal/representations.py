"""Confounder matrices ``W`` for a representation of the units, as declared in ``causal.representations``.

Each entry of ``causal.representations`` (``conf/causal/default.yaml``) says where its ``W``
comes from (``source``), optionally how it is transformed, whether PCA applies and which
nuisance family it uses. Sources:

* ``none``: no adjustment (``W`` is empty; effect modifiers ``X`` still enter the model);
* ``oracle``: the benchmark's true confounders ``CausalData.W_true``, restricted to the
  columns that form the adjustment set of ``CausalData.graph`` when the graph names them;
* ``raw``: the raw pre-treatment covariates (Hillstrom design matrix); on a benchmark without
  them (the semi-synthetic one, whose raw covariate is the item history itself) the entry
  named by ``on_histories`` is used instead (``raw`` -> ``sparse_history``; never the true confounders);
* ``histories``: computed from the item histories by ``features``, a ``_partial_`` function
  (``sparse_history``: normalised bag of items + one-hots of the last items, a sparse matrix
  for CV-penalised linear nuisances; ``hand_gbm``: hand-made history features for
  gradient-boosted nuisances; :mod:`lib.causal.history_features`);
* ``embedding``: user vectors exported by notebook 02 (``<population>__<name>.npz``), aligned to
  the units by id; with ``features`` (``bag_svd``) computed from the histories when no file
  is exported, so it always runs. Pretrained encoders never see T or Y;
* ``crossfit``: the sequence encoder fine-tuned on T and Y (``seq_finetuned``); it is
  cross-fitted per simulation seed by the grid (:mod:`lib.causal.experiments`), never read from a file.

``transform`` (a scikit-learn transformer, e.g. ``TruncatedSVD``) is fitted on ``W`` alone, never
on T or Y. With ``pca: true`` a dense ``W`` is reduced to ``causal.pca_dim`` principal components
(PCA fitted on the units of this benchmark, fixed ``random_state``): with linear nuisance models
this keeps the cross-fitted regressions well conditioned. ``nuisance: [outcome, propensity]``
names the representation's own nuisance family (:func:`nuisance_kinds`).
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from lib.causal.registry import build, call, entry, optional, parameters
from lib.embed.store import VARIANTS, embedding_stem, load_for
from lib.errors import InputError

SOURCES = ("none", "oracle", "raw", "histories", "embedding", "crossfit")
#: keys an entry of causal.representations may hold besides ``source``, and their value when it leaves them out
OPTIONAL = {"features": None, "transform": None, "pca": False, "nuisance": None, "on_histories": None}


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


def representation_entry(ccfg: Any, name: str) -> Any:
    """Entry ``name`` of ``causal.representations``, with a known ``source``."""
    node = entry(ccfg, "representations", name, ("source", *OPTIONAL), "the representation setting")
    where = f"causal.representations.{name}"
    if "source" not in node or node.source not in SOURCES:
        raise InputError("conf/causal/default.yaml", None, f"{where} has no source of {list(SOURCES)}",
                         "set source (see the comment above causal.representations)")
    if node.source == "embedding" and name not in VARIANTS:
        raise InputError("conf/causal/default.yaml", None, f"{where} reads an exported embedding file, but notebook "
                         f"02 exports only {list(VARIANTS)} (lib.embed.store.VARIANTS)",
                         "compute it from the histories (source: histories, features: ...) or export that variant")
    if node.source == "histories" and optional(node, "features", OPTIONAL) is None:
        raise InputError("conf/causal/default.yaml", None, f"{where} has source histories but no features",
                         "set features to the _target_ (_partial_: true) of a function of the histories")
    return node


def nuisance_kinds(ccfg: Any, name: str) -> tuple[str, str] | None:
    """``(outcome, propensity)`` nuisance kinds of representation ``name``; None = the study default."""
    kinds = optional(representation_entry(ccfg, name), "nuisance", OPTIONAL)
    return None if kinds is None else (str(kinds[0]), str(kinds[1]))


def source(ccfg: Any, name: str) -> str:
    """Where representation ``name`` comes from (one of :data:`SOURCES`)."""
    return str(representation_entry(ccfg, name).source)


def on_histories(ccfg: Any, name: str) -> str:
    """The entry that stands for ``name`` on a history benchmark (``raw`` -> ``sparse_history``), else ``name``."""
    node = representation_entry(ccfg, name)
    other = optional(node, "on_histories", OPTIONAL)
    return str(other) if node.source == "raw" and other else name


def build_W(data: Any, name: str, population: str, cfg: Any, histories: Sequence[Sequence[int]] | None = None,
            n_items: int | None = None, raw: np.ndarray | None = None, item_attributes: Any = None) -> Any:
    """``W`` of representation ``name`` for ``data`` (a ``CausalData``), one row per unit in order.

    float64 ``[n_units, d]`` for dense representations, a CSR matrix for a sparse one
    (``sparse_history``).

    Parameters
    ----------
    data : CausalData
        Supplies ``unit_id`` (alignment) and ``W_true``.
    name : str
        A name of ``causal.representations``.
    population : {"beauty", "sports", "hillstrom"}
        Which exported embedding files to read.
    cfg : DictConfig
        The config: ``causal.representations``, ``causal.pca_dim``, ``paths.embeddings`` (the
        exported files), ``seed`` (PCA, transforms, computed SVDs) and ``causal.n_jobs``.
    histories, n_items : optional
        Histories ``items[:-2]`` of ``data.unit_id`` in the same order, for representations
        computed from the histories.
    raw : array, optional
        Raw covariates of the units in order (Hillstrom design matrix); without them ``raw``
        means its ``on_histories`` entry (``sparse_history``).
    item_attributes : optional
        Item attribute table, for ``hand_gbm``.

    Raises
    ------
    RepresentationUnavailable
        The exported file is missing, or an input it needs was not given (callers skip the
        representation with a note).
    InputError
        The file lacks vectors for some units (message names the file and the count), or the
        name is not declared.
    """
    ccfg, seed = cfg.causal, int(cfg.seed)
    node = representation_entry(ccfg, name)
    src = node.source
    if src == "none":
        return None
    if src == "raw" and raw is None:
        if on_histories(ccfg, name) == name:
            raise RepresentationUnavailable(f"representation {name!r} of {data.name} needs the raw covariates")
        return build_W(data, on_histories(ccfg, name), population, cfg, histories, n_items, raw, item_attributes)
    if src == "crossfit":
        raise RepresentationUnavailable(f"{name} is cross-fitted per simulation seed by the grid; "
                                        "it is never read from an exported file")
    if src == "raw":
        W = np.asarray(raw, dtype=np.float64)
    elif src == "oracle":
        if data.W_true is None:
            raise RepresentationUnavailable(f"{data.name} has no W_true, so representation {name!r} is undefined")
        W = data.W_true[adjustment_columns(data)].to_numpy(dtype=np.float64)
    elif src == "histories":
        W = _from_histories(data, name, node, seed, histories, n_items, item_attributes)
    else:
        stem = embedding_stem(cfg.paths.embeddings, population, name)
        if stem.with_suffix(".npz").is_file():
            W = load_for(stem, np.asarray(data.unit_id)).astype(np.float64)
        elif optional(node, "features", OPTIONAL) is not None and histories is not None and n_items is not None:
            W = _from_histories(data, name, node, seed, histories, n_items, item_attributes)
        else:
            raise RepresentationUnavailable(
                f"no exported embeddings for representation {name!r} of {population} "
                f"({stem}.npz missing); run notebook 02_train_models first")
    return finish_W(W, ccfg, name, seed)


def finish_W(W: Any, ccfg: Any, name: str, seed: int) -> Any:
    """The ``transform`` (fitted on ``W`` alone: no T, no Y) and ``pca`` steps of representation ``name``."""
    node = representation_entry(ccfg, name)
    transform = optional(node, "transform", OPTIONAL)
    if transform is not None:
        W = build(transform, seed, int(ccfg.n_jobs)).fit_transform(W)
        W = W if sparse.issparse(W) else np.asarray(W, dtype=np.float64)
    return reduce_W(W, ccfg.pca_dim, seed) if optional(node, "pca", OPTIONAL) else W


def _from_histories(data: Any, name: str, node: Any, seed: int, histories: Sequence[Sequence[int]] | None,
                    n_items: int | None, item_attributes: Any) -> Any:
    """``features`` of entry ``node`` over the histories: a CSR matrix stays sparse, anything else is float64."""
    if histories is None or n_items is None:
        raise RepresentationUnavailable(f"representation {name!r} of {data.name} needs the item histories "
                                        "(and raw covariates for 'raw' on a tabular benchmark)")
    if len(histories) != len(data.unit_id):
        raise ValueError(f"{name}: {len(histories)} histories for {len(data.unit_id)} units; pass them in unit order")
    available = dict(histories=histories, n_items=n_items, item_attributes=item_attributes, seed=seed)
    if item_attributes is None and needs_attributes(node.features):
        raise RepresentationUnavailable(f"{name} needs the item attribute table")
    W = call(node.features, available)
    if sparse.issparse(W):
        return W.tocsr()
    return W.to_numpy(np.float64) if isinstance(W, pd.DataFrame) else np.asarray(W, dtype=np.float64)


def needs_attributes(features: Any) -> bool:
    """Whether the ``features`` function of an entry will read the item attribute table.

    It will when its ``item_attributes`` argument has no default, or when an optional one is switched
    on by the entry's ``attributes`` argument (``sparse_history`` with ``causal.history_features.attributes``).
    """
    param = parameters(features).get("item_attributes")
    if param is None:
        return False
    return param.default is inspect.Parameter.empty or bool(features.get("attributes", False))


def reduce_W(W: np.ndarray, pca_dim: int | None, seed: int) -> np.ndarray:
    """Standardise and PCA-reduce ``W`` to ``pca_dim`` columns when it is wider."""
    if not pca_dim or W.shape[1] <= pca_dim:
        return W
    Z = StandardScaler().fit_transform(W)
    return PCA(n_components=int(pca_dim), svd_solver="full", random_state=seed).fit_transform(Z)
