"""Nuisance models (outcome regression, propensity) built from a short name and their config.

The names are the study knobs ``causal.nuisance_y`` / ``causal.nuisance_t`` and the per-
representation choices of ``causal.representation_nuisance``; every hyper-parameter lives in
``causal.nuisance_params.<kind>``:

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
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LassoCV, LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

KINDS = ("lasso", "logistic", "sparse_linear", "gbm", "lgbm")


def make_nuisance(kind: str, task: str, seed: int, params: Any, n_jobs: int = 1) -> Any:
    """An unfitted scikit-learn compatible model.

    Parameters
    ----------
    kind : {"lasso", "logistic", "sparse_linear", "gbm", "lgbm"}
        ``lasso`` and ``logistic`` are the same linear family: ``lasso`` for a regression
        task gives LassoCV, for a classification task LogisticRegressionCV (and vice versa).
    task : {"regression", "classification"}
    seed : int
        ``random_state`` of every stochastic part (same seed -> same numbers).
    params : mapping
        ``cfg.causal.nuisance_params`` (one block per kind).
    n_jobs : int
        Threads for LightGBM / CV searches.

    Examples
    --------
    >>> from lib.config import compose
    >>> p = compose("smoke").causal.nuisance_params
    >>> type(make_nuisance("lasso", "classification", 0, p)[-1]).__name__
    'LogisticRegressionCV'
    """
    if kind not in KINDS:
        raise ValueError(f"unknown nuisance model {kind!r}; choose one of {KINDS} (causal.nuisance_y / nuisance_t)")
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if kind in ("lasso", "logistic", "sparse_linear"):
        p = params["sparse_linear" if kind == "sparse_linear" else "linear"]
        scaler = MaxAbsScaler() if kind == "sparse_linear" else StandardScaler()
        if task == "regression":
            return make_pipeline(scaler, LassoCV(alphas=int(p.n_alphas), cv=int(p.cv), max_iter=int(p.max_iter),
                                                 n_jobs=n_jobs, random_state=seed))
        return make_pipeline(scaler, LogisticRegressionCV(Cs=int(p.n_Cs), cv=int(p.cv), max_iter=int(p.max_iter),
                                                          n_jobs=n_jobs))
    if kind == "gbm":
        p = params.gbm
        kw = dict(max_iter=int(p.max_iter), learning_rate=float(p.learning_rate), max_leaf_nodes=int(p.max_leaf_nodes),
                  min_samples_leaf=int(p.min_samples_leaf), random_state=seed)
        return HistGradientBoostingRegressor(**kw) if task == "regression" else HistGradientBoostingClassifier(**kw)
    import lightgbm as lgb  # imported lazily: only the lgbm runs pay for it

    kw = dict(**params.lgbm, random_state=seed, n_jobs=n_jobs, deterministic=True, force_row_wise=True, verbose=-1)
    return lgb.LGBMRegressor(**kw) if task == "regression" else lgb.LGBMClassifier(**kw)


def nuisance_models(ccfg: Any, W: Any, n_x: int, seed: int, kinds: tuple[str, str] | None) -> tuple[Any, Any, Any]:
    """``(model_y, model_t, W for EconML)`` over ``W``: :class:`RowLookup` wrappers unless W is a dense float matrix.

    ``kinds`` = (outcome, propensity) nuisance kinds (None: ``causal.nuisance_y`` / ``nuisance_t``);
    ``n_x`` is the number of effect-modifier columns EconML puts before W.
    """
    ky, kt = kinds or (ccfg.nuisance_y, ccfg.nuisance_t)
    my = make_nuisance(ky, "regression", seed, ccfg.nuisance_params, int(ccfg.n_jobs))
    mt = make_nuisance(kt, "classification", seed, ccfg.nuisance_params, int(ccfg.n_jobs))
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
