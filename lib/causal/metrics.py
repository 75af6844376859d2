"""Accuracy of effect estimates against ground truth: bias, coverage, PEHE, CATE correlation.

Examples
--------
>>> import numpy as np
>>> pehe(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
1.4142135623730951
>>> covered(0.9, 1.1, 1.0), covered(1.2, 1.5, 1.0)
(True, False)
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def bias(ate: float, truth: float) -> float:
    """Signed bias ``ate - truth``."""
    return float(ate - truth)


def rel_bias(ate: float, truth: float) -> float:
    """``|ate - truth| / |truth|`` (NaN when the truth is 0)."""
    return float(abs(ate - truth) / abs(truth)) if truth != 0 else float("nan")


def covered(ci_low: float, ci_high: float, truth: float) -> bool:
    """Whether the interval contains the truth (False for a missing interval)."""
    return bool(np.isfinite(ci_low) and np.isfinite(ci_high) and ci_low <= truth <= ci_high)


def pehe(cate: np.ndarray, tau: np.ndarray) -> float:
    """Precision in estimating heterogeneous effects: RMSE of the per-unit CATE."""
    cate, tau = np.asarray(cate, dtype=float), np.asarray(tau, dtype=float)
    return float(np.sqrt(np.mean((cate - tau) ** 2)))


def cate_corr(cate: np.ndarray, tau: np.ndarray) -> float:
    """Pearson correlation of estimated and true CATE (NaN when either is constant)."""
    cate, tau = np.asarray(cate, dtype=float), np.asarray(tau, dtype=float)
    if cate.std() == 0 or tau.std() == 0:
        return float("nan")
    return float(np.corrcoef(cate, tau)[0, 1])


def summarise(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Aggregate per-seed rows (``ate, ci_low, ci_high, truth``, optional ``pehe``, ``cate_corr``) over seeds.

    Returns one row per group with ``n_seeds``, mean ``bias``, ``abs_bias`` (``|mean bias|``,
    the systematic error), ``mean_abs_error``, ``rel_bias`` (abs_bias / |mean truth|),
    ``coverage`` (share of seeds whose CI covers the truth; NaN without intervals),
    mean ``ci_width``, ``pehe`` and ``cate_corr``.
    """
    df = rows.copy()
    df["bias"] = df["ate"] - df["truth"]
    df["abs_error"] = df["bias"].abs()
    df["covered"] = [covered(lo, hi, t) if np.isfinite(lo) else np.nan
                     for lo, hi, t in zip(df["ci_low"], df["ci_high"], df["truth"])]
    df["ci_width"] = df["ci_high"] - df["ci_low"]
    agg = {"seed": "nunique", "bias": "mean", "abs_error": "mean", "truth": "mean", "covered": "mean", "ci_width": "mean"}
    for opt in ("pehe", "cate_corr", "fit_seconds", "overlap_share"):
        if opt in df:
            agg[opt] = "mean"
    out = df.groupby(by, sort=False, dropna=False).agg(agg).reset_index()
    out = out.rename(columns={"seed": "n_seeds", "abs_error": "mean_abs_error", "covered": "coverage"})
    out["abs_bias"] = out["bias"].abs()
    out["rel_bias"] = out["abs_bias"] / out["truth"].abs()
    return out
