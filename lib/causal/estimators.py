"""Effect estimators built from config: naive, OLS, EconML DML / forests / DR, meta-learners, AIPW.

:func:`estimate` is the one entry point. It validates the input, runs the overlap
diagnostic, fits the named estimator with cross-fitting, reads the ATE and 95% CI of
every treatment arm against control (``T0=0, T1=k``) and the per-unit CATE, and runs
the refuters with the same estimator. Nuisance models are ``causal.nuisance_y`` /
``causal.nuisance_t`` unless a representation names its own (see :mod:`lib.causal.nuisance`).

Where each ATE interval comes from (every one is a Wald interval for the ATE of the sample):

* ``naive`` — difference in means, Welch standard error.
* ``ols`` — regression adjustment ``Y ~ arms + X + W + arms x (X - mean X)``, HC1 standard
  error of the arm coefficient (the ATE when the outcome model is linear).
* ``linear_dml`` — mean of the linear CATE ``theta(X)`` over the sample with the exact
  standard error of that mean from the final-stage coefficient covariance (EconML's
  ``mean_pred_stderr``; never the conservative ``sqrt(mean(stderr^2))`` bound).
* ``causal_forest_dml`` — EconML's doubly robust ATE (``drate=True``, ``ate__inference``):
  mean of the DR score with its standard error.
* ``dr_learner`` — mean of the cross-fitted doubly robust pseudo-outcome
  ``Y_pred[:, k] - Y_pred[:, 0]`` that EconML's DR learner builds (cached at fit), with
  standard error ``sd / sqrt(n)``; the forest final stage only gives the CATE.
* ``causalbert_aipw`` — mean of the cross-fitted AIPW score, ``sd / sqrt(n)``.
* ``t_learner`` / ``x_learner`` — mean CATE, no interval.

``W`` may be dense, sparse (``scipy.sparse``) or padded item-id histories: anything that is not
a dense float matrix reaches EconML's nuisances through :class:`lib.causal.nuisance.RowLookup`.

Examples
--------
>>> import numpy as np
>>> from lib.config import compose
>>> rng = np.random.default_rng(0); n = 400
>>> W = rng.normal(size=(n, 2)); T = (rng.random(n) < 0.5).astype(int)
>>> Y = 2.0 * T + W[:, 0] + rng.normal(size=n)
>>> ccfg = compose("smoke", ["causal.refuters.enabled=false"]).causal
>>> est = estimate("naive", Y, T, None, W, ccfg, seed=0)
>>> bool(est.ci_low < 2.0 < est.ci_high)
True
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from lib.causal import diagnostics
from lib.causal.nuisance import nuisance_models
from lib.causal.scale import econml_kwargs
from lib.errors import InputError

ESTIMATORS = ("naive", "ols", "linear_dml", "causal_forest_dml", "dr_learner", "causalbert_aipw",
              "t_learner", "x_learner")
#: estimators that need W as a dense matrix of their own (no nuisance models to route other features to)
DENSE_ONLY = ("ols", "causalbert_aipw")
#: estimators whose final stage needs effect modifiers X
NEEDS_X = ("causal_forest_dml", "dr_learner")

ArmResult = dict[int, tuple[float, float, float, float]]   # arm -> (ate, ci_low, ci_high, se)


@dataclass
class EffectEstimate:
    """One fitted estimate. Top-level numbers are arm 1 vs control; ``arms`` holds every arm."""

    estimator: str
    ate: float
    ci_low: float
    ci_high: float
    se: float
    cate: np.ndarray                       # per-unit effect of arm 1 vs control
    arms: dict[int, dict[str, Any]]        # arm -> {ate, ci_low, ci_high, se, cate}
    fit_seconds: float
    overlap_share: dict[int, float]        # arm -> share of propensities outside [0.05, 0.95]
    poor_overlap: bool
    refutations: pd.DataFrame | None = None
    model: Any = field(default=None, repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows, one per arm, with the refuter summaries as columns."""
        out = []
        for arm, r in self.arms.items():
            row = dict(estimator=self.estimator, arm=arm, ate=r["ate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                       se=r["se"], fit_seconds=self.fit_seconds, overlap_share=self.overlap_share.get(arm, np.nan),
                       poor_overlap=self.poor_overlap)
            if self.refutations is not None and len(self.refutations):
                for ref in self.refutations[self.refutations.arm == arm].itertuples():
                    row[f"{ref.refuter}_estimate"] = ref.estimate
                    row[f"{ref.refuter}_passed"] = ref.passed
            out.append(row)
        return out


def _welch(y1: np.ndarray, y0: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    v1, v0 = y1.var(ddof=1) / len(y1), y0.var(ddof=1) / len(y0)
    se = float(np.sqrt(v1 + v0))
    dof = (v1 + v0) ** 2 / (v1 ** 2 / (len(y1) - 1) + v0 ** 2 / (len(y0) - 1))
    q = stats.t.ppf(1 - alpha / 2, dof)
    ate = float(y1.mean() - y0.mean())
    return ate, ate - q * se, ate + q * se, se


def _wald(point: float, se: float, alpha: float) -> tuple[float, float, float, float]:
    q = stats.norm.ppf(1 - alpha / 2)
    return float(point), float(point - q * se), float(point + q * se), float(se)


def _ols(Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None, arms: list[int],
         alpha: float) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Regression adjustment Y ~ arms + X + W + arms x (X - mean X) with HC1 errors.

    Centring X makes each arm coefficient the ATE over the sample.
    """
    import statsmodels.api as sm

    n = len(Y)
    D = np.column_stack([(T == a).astype(float) for a in arms])
    Xc = np.zeros((n, 0)) if X is None else X - X.mean(axis=0)
    inter = np.hstack([D[:, [j]] * Xc for j in range(len(arms))]) if Xc.shape[1] else np.zeros((n, 0))
    parts = [np.ones((n, 1)), D, Xc, inter] + ([W] if W is not None else [])
    fit = sm.OLS(Y, np.hstack(parts)).fit(cov_type="HC1")
    ci = fit.conf_int(alpha)
    res, cate, k = {}, {}, Xc.shape[1]
    for j, a in enumerate(arms):
        i = 1 + j
        res[a] = (float(fit.params[i]), float(ci[i, 0]), float(ci[i, 1]), float(fit.bse[i]))
        start = 1 + len(arms) + k + j * k
        cate[a] = fit.params[i] + Xc @ fit.params[start:start + k] if k else np.full(n, fit.params[i])
    return res, cate, fit


def _econml(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: Any,
            arms: list[int], ccfg: Any, seed: int,
            kinds: tuple[str, str] | None) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    from econml.dml import CausalForestDML, LinearDML
    from econml.dr import ForestDRLearner
    from econml.metalearners import TLearner, XLearner

    alpha, cv = float(ccfg.alpha), int(ccfg.cv)
    my, mt, W_fit = nuisance_models(ccfg, W, 0 if X is None else X.shape[1], seed, kinds)
    forest = dict(n_estimators=int(ccfg.forest.n_estimators), min_samples_leaf=int(ccfg.forest.min_samples_leaf),
                  max_depth=ccfg.forest.max_depth, n_jobs=int(ccfg.n_jobs), random_state=seed)
    if name in ("t_learner", "x_learner"):
        if W_fit is not W:
            raise ValueError(f"{name} takes the confounders as features and needs a dense W")
        est = TLearner(models=my) if name == "t_learner" else XLearner(models=my, propensity_model=mt)
        # meta-learners take no separate W: the confounders join the features
        Z = np.hstack([M for M in (X, W) if M is not None]) if (X is not None or W is not None) else np.zeros((len(Y), 1))
        est.fit(Y, T, X=Z)
        res, cate = {}, {}
        for a in arms:
            cate[a] = np.asarray(est.effect(Z, T0=0, T1=a), dtype=float).ravel()
            res[a] = (float(cate[a].mean()), np.nan, np.nan, np.nan)   # no analytic inference for meta-learners
        return res, cate, est
    scale = econml_kwargs(ccfg)     # causal.ray: each cross-fitting fold a Ray task
    if name == "linear_dml":
        est = LinearDML(model_y=my, model_t=mt, discrete_treatment=True, cv=cv, random_state=seed, **scale)
    elif name == "causal_forest_dml":
        est = CausalForestDML(model_y=my, model_t=mt, discrete_treatment=True, cv=cv, drate=True, **forest, **scale)
    else:
        est = ForestDRLearner(model_regression=my, model_propensity=mt, cv=cv, **forest, **scale)
    with warnings.catch_warnings():
        # EconML notes that the penalty-search folds of LassoCV are not its cross-fitting folds: intended
        warnings.filterwarnings("ignore", message=".*non-default cv attribute.*")
        est.fit(Y, T, X=X, W=W_fit, cache_values=name == "dr_learner")
    res, cate = {}, {}
    for j, a in enumerate(arms):
        if name == "causal_forest_dml":
            inf = est.ate__inference()
            res[a] = _wald(float(np.ravel(inf.point_estimate)[j]), float(np.ravel(inf.stderr)[j]), alpha)
        elif name == "dr_learner":
            y_pred = est._cached_values.nuisances[0]       # DR pseudo-outcomes, one column per arm (0 = control)
            psi = y_pred[:, 1 + j] - y_pred[:, 0]
            res[a] = _wald(psi.mean(), psi.std(ddof=1) / np.sqrt(len(psi)), alpha)
        else:
            inf = est.ate_inference(X, T0=0, T1=a)
            if inf.mean_pred_stderr is None:
                raise RuntimeError("LinearDML gave no exact standard error of the mean CATE")
            res[a] = _wald(float(inf.mean_point), float(np.ravel(inf.mean_pred_stderr)[0]), alpha)
        eff = np.asarray(est.effect(X, T0=0, T1=a), dtype=float).ravel()
        cate[a] = np.full(len(Y), eff[0]) if eff.size == 1 else eff
    if name == "dr_learner":
        est._cached_values = None      # the cached arrays are as large as the data
    return res, cate, est


def fit_arms(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: Any, ccfg: Any, seed: int,
             nuisance: tuple[str, str] | None = None) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Fit estimator ``name`` once; return ``({arm: (ate, lo, hi, se)}, {arm: cate}, model)``.

    ``nuisance`` = ``(kind_y, kind_t)`` overrides ``causal.nuisance_y`` / ``nuisance_t``.
    """
    arms = [int(a) for a in np.unique(T) if a != 0]
    alpha = float(ccfg.alpha)
    if name == "naive":
        res = {a: _welch(Y[T == a], Y[T == 0], alpha) for a in arms}
        return res, {a: np.full(len(Y), res[a][0]) for a in arms}, None
    if name in DENSE_ONLY and W is not None and not isinstance(W, np.ndarray):
        raise ValueError(f"{name} needs a dense W; this representation is {type(W).__name__}")
    if name == "ols":
        return _ols(Y, T, X, W, arms, alpha)
    if name == "causalbert_aipw":
        from lib.causal.aipw import aipw_heads

        return aipw_heads(Y, T, X, W, ccfg, seed)
    return _econml(name, Y, T, X, W, arms, ccfg, seed, nuisance)


def _as_W(W: Any) -> Any:
    """Dense inputs become float64 matrices; sparse matrices and integer histories pass unchanged."""
    if W is None:
        return None
    if sparse.issparse(W):
        return W.tocsr() if W.shape[1] else None
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[1] == 0:
        return None
    return W if np.issubdtype(W.dtype, np.integer) else W.astype(np.float64)


def estimate(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | pd.DataFrame | None,
             W: Any, ccfg: Any, seed: int, overlap: diagnostics.OverlapReport | None = None,
             source: str = "causal data", nuisance: tuple[str, str] | None = None,
             check_overlap: bool = True) -> EffectEstimate:
    """Validate, diagnose overlap, fit ``name``, refute; return an :class:`EffectEstimate`.

    Parameters
    ----------
    name : str
        One of :data:`ESTIMATORS`.
    Y, T : array
        Outcome and integer treatment (0 = control, 1..K arms).
    X : array or DataFrame, optional
        Effect modifiers (final stage). Required by ``causal_forest_dml`` and ``dr_learner``.
    W : array, sparse matrix or integer array, optional
        Confounders used by the nuisance models only (the representation): a dense matrix, a
        sparse one (e.g. :func:`lib.causal.history_features.sparse_history`) or padded item ids.
    ccfg : DictConfig
        ``cfg.causal``.
    seed : int
        Drives folds, forests and refuter permutations.
    overlap : OverlapReport, optional
        Precomputed diagnostic for these (T, X, W), to share it between estimators.
    source : str
        Named in every error message (file or benchmark the data came from).
    nuisance : (str, str), optional
        Nuisance kinds ``(outcome, propensity)`` of this representation.
    check_overlap : bool
        Run the overlap diagnostic when ``overlap`` is not given (a grid checks the first seeds of a cell).

    Raises
    ------
    InputError
        Invalid inputs (:func:`lib.causal.diagnostics.validate`), or positivity clearly fails.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {ESTIMATORS} (causal.estimators)")
    X = None if X is None or np.asarray(X).shape[1] == 0 else np.asarray(X, dtype=np.float64)
    W = _as_W(W)
    Y, T = diagnostics.validate(Y, T, X, W, source)
    if name in NEEDS_X and X is None:
        raise InputError(source, "X", f"is empty but {name} needs effect modifiers", "pass a few numeric effect modifiers as X")
    if overlap is None and check_overlap:
        overlap = diagnostics.overlap(T, X, W, seed, ccfg.overlap, ccfg, source=source, nuisance=nuisance)
    start = time.perf_counter()
    res, cate, model = fit_arms(name, Y, T, X, W, ccfg, seed, nuisance)
    seconds = time.perf_counter() - start
    refutations = None
    if ccfg.refuters.enabled:
        refutations = diagnostics.refute(lambda y, t, x, w: fit_arms(name, y, t, x, w, ccfg, seed, nuisance)[0],
                                         Y, T, X, W, res, seed, float(ccfg.refuters.subset_fraction),
                                         int(ccfg.refuters.n_subsets))
    arms = {a: dict(ate=r[0], ci_low=r[1], ci_high=r[2], se=r[3], cate=cate[a]) for a, r in res.items()}
    first = min(arms)
    return EffectEstimate(name, *res[first], cate=cate[first], arms=arms, fit_seconds=seconds,
                          overlap_share=overlap.share_outside if overlap else {a: np.nan for a in arms},
                          poor_overlap=bool(overlap.poor) if overlap else False,
                          refutations=refutations, model=model)
