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

from lib.eval.metrics import binomial_ci


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


def summarise(rows: pd.DataFrame, by: list[str], min_seeds: int, alpha: float) -> pd.DataFrame:
    """Aggregate per-seed rows (``ate, ci_low, ci_high, truth``, optional ``pehe``, ``cate_corr``) over seeds.

    Returns one row per group with ``n_seeds``; mean ``bias`` with its Monte-Carlo standard
    error ``bias_mcse`` (sd over seeds / sqrt(n_seeds)); ``abs_bias`` (``|mean bias|``, the
    systematic error); ``mean_abs_error``; ``rel_bias`` (abs_bias / |mean truth|);
    ``coverage`` (share of seeds whose CI covers the truth; NaN without intervals) with its
    Clopper-Pearson ``1 - alpha`` interval ``coverage_ci_low`` / ``coverage_ci_high``; mean
    ``ci_width``, ``pehe`` and ``cate_corr``; and ``headline`` (at least ``min_seeds`` seeds).

    Examples
    --------
    >>> rows = pd.DataFrame({"cell": "a", "seed": [0, 1], "ate": [1.0, 1.2], "ci_low": [0.9, 1.15],
    ...                      "ci_high": [1.1, 1.25], "truth": 1.0})
    >>> out = summarise(rows, ["cell"], min_seeds=2, alpha=0.05)
    >>> out[["n_seeds", "bias", "coverage", "headline"]].round(3).values.tolist()
    [[2, 0.1, 0.5, True]]
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
    groups = df.groupby(by, sort=False, dropna=False)
    out = groups.agg(agg).reset_index()
    out = out.rename(columns={"seed": "n_seeds", "abs_error": "mean_abs_error", "covered": "coverage"})
    sd = groups["bias"].std(ddof=1).to_numpy()
    out["bias_mcse"] = sd / np.sqrt(out["n_seeds"].to_numpy())
    hits = groups["covered"].sum(min_count=1).to_numpy()
    tried = groups["covered"].count().to_numpy()
    cis = [binomial_ci(int(k), int(m), alpha) if m else (np.nan, np.nan) for k, m in zip(np.nan_to_num(hits), tried)]
    out["coverage_ci_low"], out["coverage_ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    out["abs_bias"] = out["bias"].abs()
    out["rel_bias"] = out["abs_bias"] / out["truth"].abs()
    out["headline"] = out["n_seeds"] >= min_seeds
    return out


def semisynth_findings(summary: pd.DataFrame, setting: str, learned: list[str], transformers: list[str],
                       baseline: str, goal_share: float, coverage_band: tuple[float, float]) -> pd.DataFrame:
    """Two or three sentences per data set stating what the semi-synthetic table shows at ``setting``.

    ``learned`` are the representations that count as learned (no oracle, nothing that saw its
    own units' outcome); the best is the headline cell (enough seeds) with the smallest |mean
    bias|. The goal is |mean bias| <= ``goal_share`` x the naive bias with coverage inside
    ``coverage_band``; ``transformers`` are compared with ``baseline`` (the sparse history) by
    their best |bias| and its Monte-Carlo interval.
    """
    rows = []
    for dataset, g in summary[summary["level"] == setting].groupby("dataset", sort=False):
        naive = g[(g["estimator"] == "naive")]
        if naive.empty:
            continue
        naive_bias = float(naive["bias"].iloc[0])
        cand = g[g["representation"].isin(learned) & g["headline"] & (g["estimator"] != "naive")].dropna(subset=["bias"])
        if cand.empty:
            rows.append({"dataset": dataset, "finding": f"No learned representation has a headline cell at '{setting}'."})
            continue
        best = cand.loc[cand["abs_bias"].idxmin()]

        def cell(r: pd.Series) -> str:
            return (f"{r['representation']} / {r['estimator']}: bias {r['bias']:+.3f} ± {1.96 * r['bias_mcse']:.3f} "
                    f"(95% MC), coverage {r['coverage']:.2f} [{r['coverage_ci_low']:.2f}, {r['coverage_ci_high']:.2f}], "
                    f"{int(r['n_seeds'])} seeds")
        met = (best["abs_bias"] <= goal_share * abs(naive_bias)
               and coverage_band[0] <= best["coverage"] <= coverage_band[1])
        text = [f"Naive bias {naive_bias:+.3f}. Best learned cell: {cell(best)}, i.e. "
                f"{best['abs_bias'] / abs(naive_bias):.0%} of the naive bias; the goal (<= {goal_share:.0%}, coverage in "
                f"[{coverage_band[0]:.2f}, {coverage_band[1]:.2f}]) is {'met' if met else 'not met'}."]
        tr = cand[cand["representation"].isin(transformers)]
        base = cand[cand["representation"] == baseline]
        if len(tr) and len(base):
            t, b = tr.loc[tr["abs_bias"].idxmin()], base.loc[base["abs_bias"].idxmin()]
            gap = b["abs_bias"] - t["abs_bias"]
            se = float(np.hypot(t["bias_mcse"], b["bias_mcse"]))
            verdict = ("beats" if gap > 1.96 * se else "is beaten by" if gap < -1.96 * se else "is not distinguishable from")
            text.append(f"The best transformer cell ({cell(t)}) {verdict} the best {baseline} cell ({cell(b)}): "
                        f"difference in |bias| {gap:+.3f} ± {1.96 * se:.3f}.")
        rows.append({"dataset": dataset, "finding": " ".join(text)})
    return pd.DataFrame(rows, columns=["dataset", "finding"])


def hillstrom_findings(gap_summary: pd.DataFrame, reference: str, unadjusted: str, goal_share: float) -> pd.DataFrame:
    """Sentences per estimator: with ``reference`` is every outcome x arm error <= ``goal_share`` x naive and covered?"""
    rows = []
    for est, g in gap_summary[gap_summary["representation"] == reference].groupby("estimator", sort=False):
        ratio = (g["abs_error"] / g["naive_error"]).max()
        cover = g["covers_rct"].min()
        none = gap_summary[(gap_summary["representation"] == unadjusted) & (gap_summary["estimator"] == est)]
        text = (f"{reference} / {est}: largest error over outcome x arm is {ratio:.0%} of the naive error (goal <= "
                f"{goal_share:.0%}: {'met' if ratio <= goal_share else 'not met'}); the lowest share of seeds whose "
                f"estimate is consistent with the 64k reference (z-test) is {cover:.2f}.")
        if len(none):
            text += (f" {unadjusted} / {est}: mean error {none['abs_error'].mean():.4f} against "
                     f"{g['abs_error'].mean():.4f} with {reference}.")
        rows.append({"estimator": est, "finding": text})
    return pd.DataFrame(rows, columns=["estimator", "finding"])
