"""Effect estimators built from config: naive, OLS, EconML DML / forests / DR, meta-learners, AIPW.

:func:`estimate` is the one entry point. It validates the input, runs the overlap
diagnostic, fits the named estimator with cross-fitting, reads the ATE and 95% CI of
every treatment arm against control (``T0=0, T1=k``) and the per-unit CATE, and runs
the refuters with the same estimator. Nuisance models are ``causal.nuisance_y`` /
``causal.nuisance_t`` (see :mod:`lib.causal.nuisance`).

Examples
--------
>>> import numpy as np
>>> from omegaconf import OmegaConf
>>> rng = np.random.default_rng(0); n = 400
>>> W = rng.normal(size=(n, 2)); T = (rng.random(n) < 0.5).astype(int)
>>> Y = 2.0 * T + W[:, 0] + rng.normal(size=n)
>>> ccfg = OmegaConf.create({"alpha": 0.05, "refuters": {"enabled": False}})
>>> est = estimate("naive", Y, T, None, W, ccfg, seed=0)
>>> bool(est.ci_low < 2.0 < est.ci_high)
True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lib.causal import diagnostics
from lib.causal.nuisance import make_nuisance
from lib.errors import InputError

ESTIMATORS = ("naive", "ols", "linear_dml", "causal_forest_dml", "dr_learner", "causalbert_aipw",
              "t_learner", "x_learner")
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


def _get(ccfg: Any, key: str, default: Any) -> Any:
    node = ccfg
    for part in key.split("."):
        if node is None or part not in node:
            return default
        node = node[part]
    return node


def _welch(y1: np.ndarray, y0: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    v1, v0 = y1.var(ddof=1) / len(y1), y0.var(ddof=1) / len(y0)
    se = float(np.sqrt(v1 + v0))
    dof = (v1 + v0) ** 2 / (v1 ** 2 / (len(y1) - 1) + v0 ** 2 / (len(y0) - 1))
    q = stats.t.ppf(1 - alpha / 2, dof)
    ate = float(y1.mean() - y0.mean())
    return ate, ate - q * se, ate + q * se, se


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


def _econml(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None,
            arms: list[int], ccfg: Any, seed: int) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    from econml.dml import CausalForestDML, LinearDML
    from econml.dr import ForestDRLearner
    from econml.metalearners import TLearner, XLearner

    alpha, cv, n_jobs = _get(ccfg, "alpha", 0.05), _get(ccfg, "cv", 3), _get(ccfg, "n_jobs", 1)
    ny, nt = _get(ccfg, "nuisance_y", "lasso"), _get(ccfg, "nuisance_t", "logistic")
    my = make_nuisance(ny, "regression", seed, n_jobs)
    mt = make_nuisance(nt, "classification", seed, n_jobs)
    forest = dict(n_estimators=int(_get(ccfg, "forest.n_estimators", 200)),
                  min_samples_leaf=int(_get(ccfg, "forest.min_samples_leaf", 10)),
                  max_depth=_get(ccfg, "forest.max_depth", None), n_jobs=n_jobs, random_state=seed)
    if name == "linear_dml":
        est = LinearDML(model_y=my, model_t=mt, discrete_treatment=True, cv=cv, random_state=seed)
    elif name == "causal_forest_dml":
        est = CausalForestDML(model_y=my, model_t=mt, discrete_treatment=True, cv=cv, drate=True, **forest)
    elif name == "dr_learner":
        est = ForestDRLearner(model_regression=my, model_propensity=mt, cv=cv, **forest)
    elif name == "t_learner":
        est = TLearner(models=my)
    else:
        est = XLearner(models=my, propensity_model=mt)
    if name in ("t_learner", "x_learner"):
        # meta-learners take no separate W: the confounders join the features
        Z = np.hstack([M for M in (X, W) if M is not None]) if (X is not None or W is not None) else np.zeros((len(Y), 1))
        est.fit(Y, T, X=Z)
        res, cate = {}, {}
        for a in arms:
            cate[a] = np.asarray(est.effect(Z, T0=0, T1=a), dtype=float).ravel()
            # no analytic inference for meta-learners: ATE is the mean CATE, CI not available
            res[a] = (float(cate[a].mean()), np.nan, np.nan, np.nan)
        return res, cate, est
    est.fit(Y, T, X=X, W=W)
    res, cate = {}, {}
    for a in arms:
        if name == "causal_forest_dml":
            # doubly robust ATE over the sample (drate=True): includes the variance of the population mean
            inf = est.ate__inference()
            j = arms.index(a)
            point, se = float(np.ravel(inf.point_estimate)[j]), float(np.ravel(inf.stderr)[j])
            lo, hi = (float(np.ravel(v)[j]) for v in inf.conf_int(alpha=alpha))
        else:
            inf = est.ate_inference(X, T0=0, T1=a)
            point, se = float(inf.mean_point), float(inf.stderr_mean)
            lo, hi = (float(v) for v in inf.conf_int_mean(alpha=alpha))
        res[a] = (point, lo, hi, se)
        eff = np.asarray(est.effect(X, T0=0, T1=a), dtype=float).ravel()
        cate[a] = np.full(len(Y), eff[0]) if eff.size == 1 else eff
    return res, cate, est


def fit_arms(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None,
             ccfg: Any, seed: int) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Fit estimator ``name`` once; return ``({arm: (ate, lo, hi, se)}, {arm: cate}, model)``."""
    arms = [int(a) for a in np.unique(T) if a != 0]
    alpha = _get(ccfg, "alpha", 0.05)
    if name == "naive":
        res = {a: _welch(Y[T == a], Y[T == 0], alpha) for a in arms}
        return res, {a: np.full(len(Y), res[a][0]) for a in arms}, None
    if name == "ols":
        return _ols(Y, T, X, W, arms, alpha)
    if name == "causalbert_aipw":
        from lib.causal.aipw import aipw_heads

        return aipw_heads(Y, T, X, W, ccfg, seed)
    return _econml(name, Y, T, X, W, arms, ccfg, seed)


def estimate(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | pd.DataFrame | None,
             W: np.ndarray | pd.DataFrame | None, ccfg: Any, seed: int,
             overlap: diagnostics.OverlapReport | None = None, source: str = "causal data") -> EffectEstimate:
    """Validate, diagnose overlap, fit ``name``, refute; return an :class:`EffectEstimate`.

    Parameters
    ----------
    name : str
        One of :data:`ESTIMATORS`.
    Y, T : array
        Outcome and integer treatment (0 = control, 1..K arms).
    X : array or DataFrame, optional
        Effect modifiers (final stage). Required by ``causal_forest_dml`` and ``dr_learner``.
    W : array or DataFrame, optional
        Confounders used by the nuisance models only (the representation).
    ccfg : DictConfig
        ``cfg.causal``: nuisance_y/t, cv, n_jobs, alpha, forest.*, aipw.*, overlap.*, refuters.*.
    seed : int
        Drives folds, forests and refuter permutations.
    overlap : OverlapReport, optional
        Precomputed diagnostic for these (T, X, W), to share it between estimators.
    source : str
        Named in every error message (file or benchmark the data came from).
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {ESTIMATORS} (causal.estimators)")
    X = None if X is None or np.asarray(X).shape[1] == 0 else np.asarray(X, dtype=np.float64)
    W = None if W is None or np.asarray(W).shape[1] == 0 else np.asarray(W, dtype=np.float64)
    Y, T = diagnostics.validate(Y, T, X, W, source)
    if name in NEEDS_X and X is None:
        raise InputError(source, "X", f"is empty but {name} needs effect modifiers", "pass a few numeric effect modifiers as X")
    if overlap is None:
        overlap = diagnostics.overlap(T, X, W, seed, cv=int(_get(ccfg, "overlap.cv", 3)),
                                      max_share=float(_get(ccfg, "overlap.max_share", 0.1)), source=source)
    start = time.perf_counter()
    res, cate, model = fit_arms(name, Y, T, X, W, ccfg, seed)
    seconds = time.perf_counter() - start
    refutations = None
    if _get(ccfg, "refuters.enabled", True):
        refutations = diagnostics.refute(lambda y, t, x, w: fit_arms(name, y, t, x, w, ccfg, seed)[0], Y, T, X, W, res,
                                         seed, float(_get(ccfg, "refuters.subset_fraction", 0.8)),
                                         int(_get(ccfg, "refuters.n_subsets", 2)))
    arms = {a: dict(ate=r[0], ci_low=r[1], ci_high=r[2], se=r[3], cate=cate[a]) for a, r in res.items()}
    first = min(arms)
    return EffectEstimate(name, *res[first], cate=cate[first], arms=arms, fit_seconds=seconds,
                          overlap_share=overlap.share_outside, poor_overlap=overlap.poor,
                          refutations=refutations, model=model)
