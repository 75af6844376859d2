"""Effect estimators declared in ``causal.estimators``: naive, OLS, EconML DML / forests / DR, meta-learners, AIPW.

:func:`estimate` is the one entry point. It validates the input, runs the overlap
diagnostic, fits the named estimator with cross-fitting, reads the ATE and 95% CI of
every treatment arm against control (``T0=0, T1=k``) and the per-unit CATE, and runs
the refuters with the same estimator. Nuisance models are ``causal.nuisance_y`` /
``causal.nuisance_t`` unless a representation names its own (see :mod:`lib.causal.nuisance`).

An estimator is an entry of ``causal.estimators`` (``conf/causal/default.yaml``): either ``fit``,
a function of this project (``_partial_``), or ``model``, the Hydra node of an EconML estimator,
with ``nuisances`` (which constructor arguments take the outcome and the propensity model) and
``interval`` (how its ATE interval is read, :data:`INTERVALS`). Where each shipped ATE interval
comes from (every one is a Wald interval for the ATE of the sample):

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
* ``t_learner`` / ``x_learner`` — mean CATE, no interval (``interval: none``; the confounders
  join the features, ``confounders_as_features``).

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
from lib.causal.nuisance import make_nuisance, nuisance_models
from lib.causal.registry import build, entry, optional
from lib.causal.scale import econml_kwargs
from lib.errors import InputError

#: how the ATE interval of an EconML entry is read (``interval:``)
INTERVALS = ("mean_pred", "drate", "dr_pseudo", "none")
#: flags an entry of causal.estimators may set, and their value when it does not (conf/causal/default.yaml)
FLAGS = {"confounders_as_features": False, "needs_X": False, "dense_W": False, "uses_W": True}
ENTRY_KEYS = ("fit", "model", "nuisances", "interval", *FLAGS)

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


def _arms(T: np.ndarray) -> list[int]:
    return [int(a) for a in np.unique(T) if a != 0]


def difference_in_means(Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: Any, ccfg: Any,
                        seed: int) -> tuple[ArmResult, dict[int, np.ndarray], None]:
    """Each arm's mean outcome minus the control mean, Welch interval (``naive``: X and W unused)."""
    res = {a: _welch(Y[T == a], Y[T == 0], float(ccfg.alpha)) for a in _arms(T)}
    return res, {a: np.full(len(Y), r[0]) for a, r in res.items()}, None


def regression_adjustment(Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None, ccfg: Any,
                          seed: int) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Regression adjustment Y ~ arms + X + W + arms x (X - mean X) with HC1 errors (``ols``).

    Centring X makes each arm coefficient the ATE over the sample.
    """
    import statsmodels.api as sm

    arms, alpha = _arms(T), float(ccfg.alpha)
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


def estimator_entry(ccfg: Any, name: str) -> Any:
    """Entry ``name`` of ``causal.estimators``, checked: ``fit`` or ``model`` with ``nuisances`` and ``interval``."""
    node = entry(ccfg, "estimators", name, ENTRY_KEYS, "the estimator setting")
    where = f"causal.estimators.{name}"
    if ("fit" in node) == ("model" in node):
        raise InputError("conf/causal/default.yaml", None, f"{where} has {'both' if 'fit' in node else 'neither'} "
                         "'fit' and 'model'", "give one: fit (a _partial_ function) or model (an EconML estimator)")
    if "model" in node:
        if "interval" not in node or node.interval not in INTERVALS or "nuisances" not in node:
            raise InputError("conf/causal/default.yaml", None, f"{where} needs 'nuisances' (argument -> outcome | "
                             f"propensity) and 'interval' (one of {list(INTERVALS)})",
                             "see the comment above causal.estimators")
        roles = set(node.nuisances.values()) - {"outcome", "propensity"}
        if roles:
            raise InputError("conf/causal/default.yaml", None, f"{where}.nuisances has roles {sorted(roles)}",
                             "map each constructor argument to outcome or propensity")
    return node


def flag(node: Any, key: str) -> bool:
    """Flag ``key`` of an estimator entry (:data:`FLAGS` when the entry does not set it)."""
    return bool(optional(node, key, FLAGS))


def needs_dense_W(ccfg: Any, name: str) -> bool:
    """Whether estimator ``name`` takes W itself as a dense matrix (no nuisance models to route other W to)."""
    node = estimator_entry(ccfg, name)
    return flag(node, "dense_W") or flag(node, "confounders_as_features")


def uses_W(ccfg: Any, name: str) -> bool:
    """False for an estimator that ignores W (``naive``): a grid runs it on representation ``none`` only."""
    return flag(estimator_entry(ccfg, name), "uses_W")


def _econml(name: str, node: Any, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: Any,
            arms: list[int], ccfg: Any, seed: int,
            kinds: tuple[str, str] | None) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Build the EconML estimator of entry ``node``, fit it, read each arm's ATE interval and CATE."""
    alpha, n_jobs = float(ccfg.alpha), int(ccfg.n_jobs)
    if flag(node, "confounders_as_features"):
        # meta-learners take no separate W: the confounders join the features
        if W is not None and not (isinstance(W, np.ndarray) and W.dtype == np.float64):
            raise ValueError(f"{name} takes the confounders as features and needs a dense W")
        ky, kt = kinds or (ccfg.nuisance_y, ccfg.nuisance_t)
        models = {"outcome": make_nuisance(ky, "regression", seed, ccfg),
                  "propensity": make_nuisance(kt, "classification", seed, ccfg)}
        X = np.hstack([M for M in (X, W) if M is not None]) if (X is not None or W is not None) else np.zeros((len(Y), 1))
        fit_kw: dict[str, Any] = {}
    else:
        my, mt, W_fit = nuisance_models(ccfg, W, 0 if X is None else X.shape[1], seed, kinds)
        models = {"outcome": my, "propensity": mt}
        fit_kw = {"W": W_fit, **({"cache_values": True} if node.interval == "dr_pseudo" else {})}
    est = build(node.model, seed, n_jobs, optional=econml_kwargs(ccfg),   # causal.ray: each fold a Ray task
                **{arg: models[role] for arg, role in node.nuisances.items()})
    with warnings.catch_warnings():
        # EconML notes that the penalty-search folds of LassoCV are not its cross-fitting folds: intended
        warnings.filterwarnings("ignore", message=".*non-default cv attribute.*")
        est.fit(Y, T, X=X, **fit_kw)
    res, cate = {}, {}
    for j, a in enumerate(arms):
        eff = np.asarray(est.effect(X, T0=0, T1=a), dtype=float).ravel()
        cate[a] = np.full(len(Y), eff[0]) if eff.size == 1 else eff
        if node.interval == "drate":
            inf = est.ate__inference()
            res[a] = _wald(float(np.ravel(inf.point_estimate)[j]), float(np.ravel(inf.stderr)[j]), alpha)
        elif node.interval == "dr_pseudo":
            y_pred = est._cached_values.nuisances[0]       # DR pseudo-outcomes, one column per arm (0 = control)
            psi = y_pred[:, 1 + j] - y_pred[:, 0]
            res[a] = _wald(psi.mean(), psi.std(ddof=1) / np.sqrt(len(psi)), alpha)
        elif node.interval == "mean_pred":
            inf = est.ate_inference(X, T0=0, T1=a)
            if inf.mean_pred_stderr is None:
                raise RuntimeError(f"{name} gave no exact standard error of the mean CATE (interval: mean_pred)")
            res[a] = _wald(float(inf.mean_point), float(np.ravel(inf.mean_pred_stderr)[0]), alpha)
        else:
            res[a] = (float(cate[a].mean()), np.nan, np.nan, np.nan)   # no analytic inference (meta-learners)
    if node.interval == "dr_pseudo":
        est._cached_values = None      # the cached arrays are as large as the data
    return res, cate, est


def fit_arms(name: str, Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: Any, ccfg: Any, seed: int,
             nuisance: tuple[str, str] | None = None) -> tuple[ArmResult, dict[int, np.ndarray], Any]:
    """Fit estimator ``name`` (an entry of ``causal.estimators``) once.

    Returns ``({arm: (ate, lo, hi, se)}, {arm: cate}, model)``. ``nuisance`` = ``(kind_y, kind_t)``
    overrides ``causal.nuisance_y`` / ``nuisance_t``.
    """
    node = estimator_entry(ccfg, name)
    if needs_dense_W(ccfg, name) and W is not None and not isinstance(W, np.ndarray):
        raise ValueError(f"{name} needs a dense W; this representation is {type(W).__name__}")
    if "fit" in node:
        return build(node.fit, seed, int(ccfg.n_jobs))(Y, T, X, W, ccfg, seed)
    return _econml(name, node, Y, T, X, W, _arms(T), ccfg, seed, nuisance)


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
        A name of ``causal.estimators``.
    Y, T : array
        Outcome and integer treatment (0 = control, 1..K arms).
    X : array or DataFrame, optional
        Effect modifiers (final stage). Required by entries with ``needs_X`` (``causal_forest_dml``,
        ``dr_learner``).
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
    node = estimator_entry(ccfg, name)
    X = None if X is None or np.asarray(X).shape[1] == 0 else np.asarray(X, dtype=np.float64)
    W = _as_W(W)
    Y, T = diagnostics.validate(Y, T, X, W, source)
    if flag(node, "needs_X") and X is None:
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
