"""Targeting quality on a randomised test split: Qini, AUUC, bootstrap CIs, policy value.

Qini coefficient and AUUC come from scikit-uplift (``sklift.metrics.qini_auc_score``,
``uplift_auc_score``, ``qini_curve``); both are normalised so that random targeting
scores about 0 and the perfect ordering 1. scikit-uplift needs a binary outcome and a
binary treatment, so multi-arm data are scored arm by arm (units with ``T in {0, k}``).

Examples
--------
>>> import numpy as np
>>> y = np.array([1, 0, 1, 0]); t = np.array([1, 1, 0, 0]); score = np.array([0.9, 0.1, 0.5, 0.3])
>>> policy_value(y, t, score, k=0.5, p_treat=0.5)
0.5
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklift.metrics import qini_auc_score, qini_curve, uplift_auc_score

from lib.errors import InputError


def _check(y: np.ndarray, t: np.ndarray, score: np.ndarray, source: str) -> None:
    if not (len(y) == len(t) == len(score)):
        raise InputError(source, "uplift", f"lengths differ (y {len(y)}, t {len(t)}, score {len(score)})",
                         "score the same test units whose outcome and treatment you pass")
    if not set(np.unique(t)) <= {0, 1} or len(np.unique(t)) < 2:
        raise InputError(source, "T", "must contain both 0 (control) and 1 (treated)", "restrict to one arm vs control")
    if not set(np.unique(y)) <= {0, 1}:
        raise InputError(source, "Y", "must be binary for Qini / AUUC", "score a 0/1 outcome (visit, conversion)")


def scores(y: np.ndarray, t: np.ndarray, score: np.ndarray, source: str = "uplift") -> dict[str, float]:
    """``{"qini": ..., "auuc": ...}`` of ranking the units by ``score`` (higher = treat first)."""
    y, t, score = np.asarray(y), np.asarray(t), np.asarray(score, dtype=float)
    _check(y, t, score, source)
    return {"qini": float(qini_auc_score(y, score, t)), "auuc": float(uplift_auc_score(y, score, t))}


def bootstrap_scores(y: np.ndarray, t: np.ndarray, score: np.ndarray, n_boot: int, seed: int,
                     alpha: float = 0.05) -> dict[str, float]:
    """Point Qini / AUUC plus percentile bootstrap CIs (units resampled with replacement)."""
    y, t, score = np.asarray(y), np.asarray(t), np.asarray(score, dtype=float)
    point = scores(y, t, score)
    rng = np.random.default_rng(seed)
    draws = {"qini": [], "auuc": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(t[idx])) < 2:
            continue
        for k, v in scores(y[idx], t[idx], score[idx]).items():
            draws[k].append(v)
    out = dict(point)
    for k, v in draws.items():
        out[f"{k}_ci_low"], out[f"{k}_ci_high"] = (float(q) for q in np.quantile(v, [alpha / 2, 1 - alpha / 2]))
    return out


def curve(y: np.ndarray, t: np.ndarray, score: np.ndarray, model: str, points: int = 50) -> pd.DataFrame:
    """Qini curve as a tidy frame ``model, share_targeted, qini`` (``points`` evenly spaced rows)."""
    x, q = qini_curve(np.asarray(y), np.asarray(score, dtype=float), np.asarray(t))
    grid = np.linspace(0, x[-1], points)
    return pd.DataFrame({"model": model, "share_targeted": grid / x[-1], "qini": np.interp(grid, x, q)})


def policy_value(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float, p_treat: float) -> float:
    """IPW value (mean outcome per unit) of treating the top ``k`` share by ``score``, the rest not.

    On a randomised split with known ``P(T=1) = p_treat``, the value of policy ``pi`` is
    ``mean(Y * 1[T = pi(x)] / P(T = pi(x)))``. Ties at the cut are broken by order.
    """
    y, t, score = np.asarray(y, dtype=float), np.asarray(t), np.asarray(score, dtype=float)
    n_treat = int(round(k * len(y)))
    pi = np.zeros(len(y), dtype=int)
    pi[np.argsort(-score, kind="mergesort")[:n_treat]] = 1
    prob = np.where(pi == 1, p_treat, 1 - p_treat)
    return float(np.mean(y * (t == pi) / prob))


def policy_values(y: np.ndarray, t: np.ndarray, score: np.ndarray, ks: list[float], p_treat: float) -> pd.DataFrame:
    """Policy value of treating the top k% for each ``k`` plus treat-all (k=1) and treat-none (k=0)."""
    ks = sorted({0.0, 1.0, *map(float, ks)})
    return pd.DataFrame({"k": ks, "value": [policy_value(y, t, score, k, p_treat) for k in ks]})
