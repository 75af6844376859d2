"""Nuisance models (outcome regression, propensity) built from their entry in ``causal.nuisances``.

Each entry of ``causal.nuisances`` (``conf/causal/default.yaml``) holds a ``regression`` and a
``classification`` Hydra node (``_target_`` of a scikit-learn compatible class plus its
hyper-parameters); the names are the study knobs ``causal.nuisance_y`` / ``causal.nuisance_t`` and
the ``nuisance`` pair of a representation (``causal.representations.<name>.nuisance``). Shipped:

* ``lasso`` / ``logistic``: standardised LassoCV / LogisticRegressionCV (dense inputs).
* ``sparse_linear``: the same linear family on sparse inputs (no centring, max-abs scaling):
  LassoCV for outcomes, L2 LogisticRegressionCV for the propensity, penalties chosen by
  cross-validation.
* ``gbm``: scikit-learn HistGradientBoosting (regressor / classifier).
* ``lgbm``: LightGBM (regressor / classifier).

:class:`RowLookup` lets EconML cross-fit models over features it cannot hold itself (a sparse
matrix, padded item-id histories): EconML sees a single column of row numbers as ``W`` and the
wrapped model reads the matching rows of the feature table.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if

from lib.causal.registry import build, entry

TASKS = ("regression", "classification")


def scaled(scaler: Any, model: Any) -> Pipeline:
    """``make_pipeline(scaler, model)``: a scaled model as one Hydra node with named parts.

    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LassoCV
    >>> scaled(StandardScaler(), LassoCV()).steps[1][0]
    'lassocv'
    """
    return make_pipeline(scaler, model)


def make_nuisance(kind: str, task: str, seed: int, ccfg: Any) -> Any:
    """An unfitted model: the ``task`` node of ``causal.nuisances.<kind>``.

    Parameters
    ----------
    kind : str
        A name of ``causal.nuisances``.
    task : {"regression", "classification"}
    seed : int
        Set as every ``random_state`` the model exposes (same seed -> same numbers).
    ccfg : DictConfig
        ``cfg.causal`` (the registry, and ``n_jobs`` set as every ``n_jobs`` the model exposes).

    Examples
    --------
    >>> from lib.config import compose
    >>> ccfg = compose("smoke").causal
    >>> type(make_nuisance("lasso", "classification", 0, ccfg)[-1]).__name__
    'LogisticRegressionCV'
    >>> make_nuisance("lasso", "regression", 7, ccfg)[-1].random_state
    7
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    node = entry(ccfg, "nuisances", kind, TASKS, "a nuisance setting (causal.nuisance_y / nuisance_t / "
                                                   "overlap.model / representations.<name>.nuisance)")
    return build(node[task], seed, int(ccfg.n_jobs))


def nuisance_models(ccfg: Any, W: Any, n_x: int, seed: int, kinds: tuple[str, str] | None) -> tuple[Any, Any, Any]:
    """``(model_y, model_t, W for EconML)`` over ``W``: :class:`RowLookup` wrappers unless W is a dense float matrix.

    ``kinds`` = (outcome, propensity) nuisance kinds (None: ``causal.nuisance_y`` / ``nuisance_t``);
    ``n_x`` is the number of effect-modifier columns EconML puts before W.
    """
    ky, kt = kinds or (ccfg.nuisance_y, ccfg.nuisance_t)
    my = make_nuisance(ky, "regression", seed, ccfg)
    mt = make_nuisance(kt, "classification", seed, ccfg)
    if W is None or (isinstance(W, np.ndarray) and W.dtype == np.float64):
        return my, mt, W
    rows = np.arange(W.shape[0], dtype=np.float64)[:, None]
    return RowLookup(my, W, n_x), RowLookup(mt, W, n_x), rows


class RowLookup(BaseEstimator):
    """Fit ``estimator`` on rows of ``table`` selected by a row-number column of the input.

    EconML passes ``hstack([X, W, ...])`` to its nuisance models; with ``W`` a single column of
    row numbers at position ``index_col``, the model sees ``hstack([table[rows], other columns])``
    (sparse when ``table`` is). ``clone`` copies the table by reference semantics of sklearn
    (``safe=False`` deep copy of a non-estimator parameter), which is cheap for a CSR matrix.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> table = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> m = RowLookup(LinearRegression(), table, index_col=0).fit(np.array([[0], [1], [2], [3]]), [1, 3, 5, 7])
    >>> m.predict(np.array([[2]])).round(6).tolist()
    [5.0]
    """

    def __init__(self, estimator: Any, table: Any, index_col: int):
        self.estimator, self.table, self.index_col = estimator, table, index_col

    def __sklearn_tags__(self) -> Any:
        # EconML asks whether a first-stage model is a classifier: answer for the wrapped model
        tags, inner = super().__sklearn_tags__(), get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags, tags.regressor_tags = inner.classifier_tags, inner.regressor_tags
        return tags

    def _features(self, Z: np.ndarray) -> Any:
        Z = np.asarray(Z, dtype=np.float64)
        rows = Z[:, self.index_col]
        if np.any(rows != np.round(rows)) or rows.min() < 0 or rows.max() >= self.table.shape[0]:
            raise ValueError(f"RowLookup: column {self.index_col} must hold row numbers of the feature table")
        picked = self.table[rows.astype(np.int64)]
        other = np.delete(Z, self.index_col, axis=1)
        if not other.shape[1]:
            return picked
        if sparse.issparse(picked):
            return sparse.hstack([picked, sparse.csr_matrix(other)], format="csr")
        return np.hstack([picked, other])

    def fit(self, Z: np.ndarray, y: np.ndarray, **kw: Any) -> "RowLookup":
        self.estimator_ = clone(self.estimator).fit(self._features(Z), y, **kw)
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.estimator_.predict(self._features(Z))

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))   # EconML tells classifiers by this
    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(self._features(Z))
