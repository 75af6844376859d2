"""Input validation, overlap diagnostics and refutation tests for effect estimates.

Every estimate in :mod:`lib.causal.estimators` goes through :func:`validate` first, so a
single-arm sample, NaN or constant outcome, misaligned lengths or a sample without
overlap stop with an :class:`~lib.errors.InputError` instead of a silently wrong ATE.
The refuters follow DoWhy's definitions (placebo treatment, random common cause, data
subset) and re-run the *same* estimator, so they test the whole pipeline. Their pass rules
and error rates are stated in :func:`refute`; a grid reports the pass share over seeds.

The overlap diagnostic fits a flexible cross-fitted propensity model (``causal.overlap.model``,
gradient boosting by default), so a treatment that is a deterministic but non-monotone
function of a covariate is flagged, and it refuses an estimate when positivity clearly fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.model_selection import StratifiedKFold

from lib.causal.nuisance import nuisance_models
from lib.errors import InputError

#: propensity bounds of the overlap diagnostic (Crump et al. style trimming band)
OVERLAP_BOUNDS = (0.05, 0.95)
#: propensities this close to 0/1 count as deterministic treatment assignment
NO_OVERLAP_BOUNDS = (0.01, 0.99)


def validate(Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None,
             source: str = "causal data") -> tuple[np.ndarray, np.ndarray]:
    """Check the estimation inputs; return ``Y`` as float64 and ``T`` as int64.

    Raises
    ------
    InputError
        On length mismatch, NaN/inf outcomes or covariates, a constant outcome, a single
        treatment arm, negative / non-integer arm codes, or an arm without control units.
    """
    Y = np.asarray(Y, dtype=np.float64).ravel()
    T_raw = np.asarray(T).ravel()
    n = len(Y)
    if n == 0:
        raise InputError(source, "Y", "is empty", "pass at least a few hundred units")
    if len(T_raw) != n:
        raise InputError(source, "T", f"has {len(T_raw)} rows but Y has {n}", "align T and Y on the same units")
    for name, M in (("X", X), ("W", W)):
        if M is not None and M.shape[0] != n:
            raise InputError(source, name, f"has {M.shape[0]} rows but Y has {n}",
                             f"build {name} for the same units, in the same order, as Y")
        values = M.data if sparse.issparse(M) else M
        if M is not None and not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
            raise InputError(source, name, "contains NaN or infinite values", f"impute or drop those rows of {name}")
    if not np.all(np.isfinite(Y)):
        bad = int((~np.isfinite(Y)).sum())
        raise InputError(source, "Y", f"has {bad} NaN/infinite outcomes", "drop or impute those units before estimating")
    if np.ptp(Y) == 0:
        raise InputError(source, "Y", f"is constant ({Y[0]!r}) for all units", "an effect needs a varying outcome; check the outcome column")
    if not np.all(np.isfinite(T_raw.astype(np.float64))) or np.any(T_raw.astype(np.float64) % 1 != 0) or np.any(T_raw.astype(np.float64) < 0):
        raise InputError(source, "T", "must hold integer arm codes >= 0 (0 = control)", "encode the treatment as 0, 1, ..., K")
    T_int = T_raw.astype(np.int64)
    arms = np.unique(T_int)
    if len(arms) < 2:
        raise InputError(source, "T", f"has a single arm ({arms[0]})", "an effect needs treated and control units")
    if 0 not in arms:
        raise InputError(source, "T", "has no control units (T == 0)", "code the control arm as 0")
    return Y, T_int


@dataclass
class OverlapReport:
    """Cross-fitted propensity scores and the share of units outside the overlap band."""

    propensity: np.ndarray                   # (n, K+1) P(T = k | X, W)
    treatment: np.ndarray                    # (n,) observed arm
    share_outside: dict[int, float]          # arm -> share of units with e_k/(e_k+e_0) outside bounds
    max_share: float                         # causal.overlap.max_share: poor overlap above this share
    bounds: tuple[float, float] = OVERLAP_BOUNDS
    poor: bool = field(init=False)

    def __post_init__(self) -> None:
        self.poor = any(s > self.max_share for s in self.share_outside.values())

    def histogram(self, bins: int = 20) -> pd.DataFrame:
        """Tidy histogram data: arm, treated (bool), bin_left, bin_right, count."""
        T = self.treatment
        edges = np.linspace(0, 1, bins + 1)
        rows = []
        for arm in self.share_outside:
            e = _pairwise(self.propensity, arm)
            for treated, mask in ((True, T == arm), (False, T == 0)):
                counts, _ = np.histogram(e[mask], bins=edges)
                rows += [dict(arm=arm, treated=treated, bin_left=edges[i], bin_right=edges[i + 1], count=int(c))
                         for i, c in enumerate(counts)]
        return pd.DataFrame(rows)


def _pairwise(propensity: np.ndarray, arm: int) -> np.ndarray:
    """P(T = arm | X, W, T in {0, arm}): the propensity of the arm-vs-control comparison."""
    return propensity[:, arm] / np.clip(propensity[:, arm] + propensity[:, 0], 1e-12, None)


def overlap(T: np.ndarray, X: np.ndarray | None, W: object, seed: int, ocfg: object, ccfg: object,
            source: str = "causal data", nuisance: tuple[str, str] | None = None) -> OverlapReport:
    """Cross-fitted propensity of every arm from ``(X, W)`` and the overlap check.

    Parameters
    ----------
    ocfg : DictConfig
        ``causal.overlap``: ``model`` (a name of ``causal.nuisances``, or ``representation`` to use
        the representation's own propensity family), ``cv``, ``max_share`` (flag when more units are
        outside [0.05, 0.95]) and ``refuse_share``.
    ccfg : DictConfig
        ``cfg.causal`` (the nuisance registry ``causal.nuisances``).
    nuisance : (str, str), optional
        The representation's nuisance kinds; a sparse or item-id ``W`` always uses its own family.

    Raises
    ------
    InputError
        When more than ``refuse_share`` of the units have a (pairwise) propensity outside
        [0.01, 0.99]: the arms are (nearly) separable by the covariates and no adjustment can
        compare them. The message names ``source`` and what to change.
    """
    T = np.asarray(T, dtype=np.int64)
    dense = W is None or (isinstance(W, np.ndarray) and W.dtype == np.float64)
    kind = str(ocfg.model)
    if kind == "representation" or not dense:
        kind = (nuisance or (ccfg.nuisance_y, ccfg.nuisance_t))[1]
    _, model, W_fit = nuisance_models(ccfg, W, 0 if X is None else X.shape[1], seed, ("lasso", kind))
    Z = _stack(X, W_fit, len(T))
    arms = np.unique(T)
    prop = np.zeros((len(T), arms.max() + 1))
    folds = StratifiedKFold(n_splits=int(ocfg.cv), shuffle=True, random_state=seed)
    for train, test in folds.split(Z, T):
        fitted = model.fit(Z[train], T[train])
        prop[np.ix_(test, fitted.classes_.astype(np.int64))] = fitted.predict_proba(Z[test])
    shares, deterministic = {}, {}
    for arm in arms[arms > 0]:
        e = _pairwise(prop, int(arm))[(T == arm) | (T == 0)]
        shares[int(arm)] = float(np.mean((e < OVERLAP_BOUNDS[0]) | (e > OVERLAP_BOUNDS[1])))
        deterministic[int(arm)] = float(np.mean((e < NO_OVERLAP_BOUNDS[0]) | (e > NO_OVERLAP_BOUNDS[1])))
    worst = max(deterministic, key=deterministic.get)
    if deterministic[worst] > float(ocfg.refuse_share):
        raise InputError(source, "T", f"has no overlap: {deterministic[worst]:.0%} of units have a propensity of arm {worst} "
                         f"outside [0.01, 0.99] given the covariates (causal.overlap.model={kind}); no ATE is reported",
                         "the covariates (nearly) determine the treatment: drop the deterministic covariates, restrict "
                         "the units to the region of common support, or raise causal.overlap.refuse_share knowingly")
    return OverlapReport(prop, T, shares, max_share=float(ocfg.max_share))


def _stack(X: np.ndarray | None, W: np.ndarray | None, n: int) -> np.ndarray:
    parts = [np.asarray(M, dtype=np.float64) for M in (X, W) if M is not None and np.asarray(M).shape[1] > 0]
    return np.hstack(parts) if parts else np.zeros((n, 1))


def refute(fit: Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None], dict[int, tuple]],
           Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None,
           estimates: dict[int, tuple], seed: int, subset_fraction: float, n_subsets: int) -> pd.DataFrame:
    """Run the three refuters with the estimator ``fit`` and report them per arm.

    Parameters
    ----------
    fit : callable
        ``fit(Y, T, X, W) -> {arm: (ate, ci_low, ci_high, se)}``, the estimator under test.
    estimates : dict
        The original ``{arm: (ate, ci_low, ci_high, se)}``.
    subset_fraction, n_subsets : float, int
        Size and number of the random subsets of the data-subset refuter (``causal.refuters``).

    Returns
    -------
    DataFrame
        refuter, arm, estimate, ci_low, ci_high, reference, passed.

    Notes
    -----
    Pass rules and how often a correct estimator fails them on one draw:

    * placebo treatment (T permuted): the CI covers 0 — fails ``alpha`` of the draws (5%).
    * random common cause (a noise column joins W; not applicable to item-id W): the ATE
      moves by less than one standard error — a correct estimator moves by a small fraction
      of a standard error, so this fails only when the estimate hangs on an irrelevant column.
    * data subset (refits on a random share ``f``): the mean subset ATE is within one standard
      error of the full-sample ATE — one subset differs by about ``SE sqrt(1/f - 1)``, so the
      rule fails about ``2 Phi(-1 / sqrt(1/f - 1))`` of the draws (4.6% at f = 0.8, one subset).

    A single draw therefore says little; the grids report the pass share over seeds next to
    these rates.
    """
    rng = np.random.default_rng(seed)
    rows = []
    placebo = fit(Y, rng.permutation(T), X, W)
    for arm, (ate, lo, hi, se) in placebo.items():
        rows.append(dict(refuter="placebo_treatment", arm=arm, estimate=ate, ci_low=lo, ci_high=hi,
                         reference=0.0, passed=bool(lo <= 0 <= hi) if np.isfinite(lo) else bool(abs(ate) < abs(estimates[arm][0]) / 2)))
    noise = rng.normal(size=(len(Y), 1))
    if W is None or (isinstance(W, np.ndarray) and W.dtype == np.float64):
        rcc = fit(Y, T, X, noise if W is None else np.hstack([W, noise]))
    elif sparse.issparse(W):
        rcc = fit(Y, T, X, sparse.hstack([W, sparse.csr_matrix(noise)], format="csr"))
    else:   # item-id histories take no extra column: the random cause is not applicable
        rcc = {arm: (np.nan, np.nan, np.nan, np.nan) for arm in estimates}
    for arm, (ate, lo, hi, se) in rcc.items():
        ref, ref_se = estimates[arm][0], estimates[arm][3]
        rows.append(dict(refuter="random_common_cause", arm=arm, estimate=ate, ci_low=lo, ci_high=hi, reference=ref,
                         passed=bool(abs(ate - ref) < ref_se) if np.isfinite(ref_se) else bool(abs(ate - ref) < 0.1 * abs(ref))))
    subs: dict[int, list[float]] = {arm: [] for arm in estimates}
    n = len(Y)
    for _ in range(n_subsets):
        idx = np.sort(rng.choice(n, size=int(subset_fraction * n), replace=False))
        res = fit(Y[idx], T[idx], None if X is None else X[idx], None if W is None else W[idx])
        for arm, (ate, *_rest) in res.items():
            subs[arm].append(ate)
    for arm, vals in subs.items():
        ref, ref_se = estimates[arm][0], estimates[arm][3]
        mean, sd = float(np.mean(vals)), float(np.std(vals))
        rows.append(dict(refuter="data_subset", arm=arm, estimate=mean, ci_low=mean - 2 * sd, ci_high=mean + 2 * sd,
                         reference=ref, passed=bool(abs(mean - ref) < ref_se) if np.isfinite(ref_se) else bool(abs(mean - ref) < 0.1 * abs(ref))))
    return pd.DataFrame(rows)
