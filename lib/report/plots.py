"""Plot functions for ablation tables (``register(..., plot="lib.report.plots:<name>")``).

Each takes the long-format frame written by :func:`lib.sweep.summary.summarise` — columns
``x`` (the varied setting), ``series`` (one line / bar group per value), ``mean``,
``std``, ``n`` and the axis labels ``xlabel``, ``ylabel`` — and returns a Figure.
"""
from __future__ import annotations

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
