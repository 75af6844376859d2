"""Plot functions for ablation tables (``register(..., plot="lib.report.plots:<name>")``).

Each takes the long-format frame written by :func:`lib.sweep.summary.summarise` — columns
``x`` (the varied setting), ``series`` (one line / bar group per value), ``mean``,
``std``, ``n`` and the axis labels ``xlabel``, ``ylabel`` — and returns a Figure.
"""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")  # headless and deterministic: the report never opens a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _labels(df: pd.DataFrame) -> tuple[str, str]:
    xlabel = str(df["xlabel"].iloc[0]) if "xlabel" in df and len(df) else "x"
    ylabel = str(df["ylabel"].iloc[0]) if "ylabel" in df and len(df) else "value"
    return xlabel, ylabel


def ablation_curve(df: pd.DataFrame) -> plt.Figure:
    """Mean +- one standard deviation against a numeric ``x``, one line per ``series``.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1, 2, 1, 2], "series": ["a", "a", "b", "b"],
    ...                    "mean": [1.0, 0.5, 2.0, 1.0], "std": [0.1, 0.1, 0.2, 0.2]})
    >>> ablation_curve(df).axes[0].get_xlabel()
    'x'
    """
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for series, part in df.groupby("series", sort=True):
        part = part.sort_values("x")
        x = part["x"].to_numpy(float)
        mean = part["mean"].to_numpy(float)
        std = np.nan_to_num(part["std"].to_numpy(float)) if "std" in part else np.zeros_like(mean)
        ax.plot(x, mean, marker="o", label=str(series))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    xlabel, ylabel = _labels(df)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if df["x"].min() > 0 and df["x"].max() / max(df["x"].min(), 1e-12) >= 8:
        ax.set_xscale("log")  # sample sizes span orders of magnitude
    if df["series"].nunique() > 1:
        ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def ablation_bars(df: pd.DataFrame) -> plt.Figure:
    """Grouped bars (mean, std as error bar) of a categorical ``x``, one colour per ``series``."""
    xs = list(dict.fromkeys(df["x"].astype(str)))
    series = sorted(df["series"].astype(str).unique())
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(xs) * max(1, len(series) / 2)), 3.2))
    for i, name in enumerate(series):
        part = df[df["series"].astype(str) == name].set_index(df["x"].astype(str)[df["series"].astype(str) == name])
        mean = [float(part["mean"].get(x, np.nan)) for x in xs]
        std = [float(part["std"].get(x, np.nan)) if "std" in part else 0.0 for x in xs]
        ax.bar(np.arange(len(xs)) + (i - (len(series) - 1) / 2) * width, mean, width,
               yerr=np.nan_to_num(std), capsize=2, label=name)
    xlabel, ylabel = _labels(df)
    ax.set_xticks(np.arange(len(xs)), xs, rotation=30, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


_NDCG = re.compile(r"nextitem\.(?P<ds>[a-z0-9_]+)\.history_removed\.ndcg@10")
_BIAS = re.compile(r"ate\.semisynth_(?P<ds>[a-z0-9_]+)\.seq_pretrained\.(?P<est>[^.]+)\.(?P<m>abs_bias|bias_mcse)")


def predictor_confounder(df: pd.DataFrame) -> plt.Figure:
    """|ATE bias| (±1.96 Monte-Carlo SE) against the encoder's next-item NDCG@10, one panel per data set.

    ``x`` names the encoder (e.g. ``sasrec``); the series are ``nextitem.<dataset>.history_removed.ndcg@10``
    and ``ate.semisynth_<dataset>.seq_pretrained.<estimator>.{abs_bias,bias_mcse}`` (the sweep's
    ``series_strip`` removes the encoder from the next-item names). One line per estimator joins the encoders.

    Examples
    --------
    >>> rows = [(a, s, v) for a, n, b in (("sasrec", 0.059, 0.02), ("bert4rec", 0.041, 0.05))
    ...         for s, v in (("nextitem.beauty.history_removed.ndcg@10", n),
    ...                      ("ate.semisynth_beauty.seq_pretrained.ols.abs_bias", b),
    ...                      ("ate.semisynth_beauty.seq_pretrained.ols.bias_mcse", 0.01))]
    >>> fig = predictor_confounder(pd.DataFrame(rows, columns=["x", "series", "mean"]))
    >>> [(c.get_label(), c.lines[0].get_xydata().round(3).tolist()) for c in fig.axes[0].containers]
    [('OLS', [[0.041, 0.05], [0.059, 0.02]])]
    """
    from lib.causal.plots import label

    ndcg, bias = {}, {}
    for row in df.itertuples():
        if m := _NDCG.fullmatch(str(row.series)):
            ndcg[m["ds"], str(row.x)] = float(row.mean)
        elif m := _BIAS.fullmatch(str(row.series)):
            bias[m["ds"], m["est"], str(row.x), m["m"]] = float(row.mean)
    datasets = list(dict.fromkeys(ds for ds, _ in ndcg))
    if not datasets:
        raise ValueError("predictor_confounder: no nextitem.<dataset>.history_removed.ndcg@10 series")
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        encoders = sorted((x for d, x in ndcg if d == ds), key=lambda x: ndcg[ds, x])
        for est in dict.fromkeys(e for d, e, _, _ in bias if d == ds):
            pts = [(ndcg[ds, x], bias[ds, est, x, "abs_bias"], 1.96 * bias.get((ds, est, x, "bias_mcse"), np.nan))
                   for x in encoders if (ds, est, x, "abs_bias") in bias]
            xs, ys, err = (list(v) for v in zip(*pts))
            ax.errorbar(xs, ys, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label(est))
        for x in encoders:
            ax.annotate({"sasrec": "SASRec", "bert4rec": "BERT4Rec"}.get(x, x), (ndcg[ds, x], 0), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, xycoords=("data", "axes fraction"))
        ax.set_title(ds.capitalize())
        ax.set_xlabel("encoder's next-item NDCG@10 (test)")
        ax.margins(x=0.15)
        ax.set_ylabel("|ATE bias| with pretrained user vectors")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
