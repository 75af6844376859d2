"""Nuisance models (outcome regression, propensity) built from a short name.

The names are the study knobs ``causal.nuisance_y`` / ``causal.nuisance_t``:

* ``lasso`` / ``logistic``: standardised LassoCV / LogisticRegressionCV. These are the
  defaults because, over dense embedding confounders, flexible boosted nuisances
  overfit the treatment and left a visibly biased ATE in our runs.
* ``gbm``: scikit-learn HistGradientBoosting (regressor / classifier).
* ``lgbm``: LightGBM (regressor / classifier).
"""
from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LassoCV, LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

KINDS = ("lasso", "logistic", "gbm", "lgbm")


def make_nuisance(kind: str, task: str, seed: int, n_jobs: int = 1) -> Any:
    """An unfitted scikit-learn compatible model.

    Parameters
    ----------
    kind : {"lasso", "logistic", "gbm", "lgbm"}
        ``lasso`` and ``logistic`` are the same linear family: ``lasso`` for a regression
        task gives LassoCV, for a classification task LogisticRegressionCV (and vice versa).
    task : {"regression", "classification"}
    seed : int
        ``random_state`` of every stochastic part (same seed -> same numbers).
    n_jobs : int
        Threads for LightGBM / CV searches. The linear models keep scikit-learn's default
        penalty-search folds: EconML replaces them by its own cross-fitting folds anyway.

    Examples
    --------
    >>> type(make_nuisance("lasso", "classification", seed=0)[-1]).__name__
    'LogisticRegressionCV'
    """
    if kind not in KINDS:
        raise ValueError(f"unknown nuisance model {kind!r}; choose one of {KINDS} (causal.nuisance_y / nuisance_t)")
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if kind in ("lasso", "logistic"):
        if task == "regression":
            return make_pipeline(StandardScaler(), LassoCV(n_jobs=n_jobs, random_state=seed))
        return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=6, max_iter=2000, n_jobs=n_jobs))
    if kind == "gbm":
        if task == "regression":
            return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed)
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    import lightgbm as lgb  # imported lazily: only the lgbm runs pay for it

    params = dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                  n_jobs=n_jobs, deterministic=True, force_row_wise=True, verbose=-1)
    return lgb.LGBMRegressor(**params) if task == "regression" else lgb.LGBMClassifier(**params)

