"""Figures of the causal benchmarks (each takes the registered DataFrame, returns a Figure)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lib.simulate.graphs import graph_from_frame  # noqa: E402


def plot_causal_graphs(df: pd.DataFrame):
    """One panel per ``benchmark`` value; ``df`` stacks ``CausalGraph.to_frame()`` tables."""
    names = list(dict.fromkeys(df["benchmark"]))
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        graph_from_frame(df[df["benchmark"] == name]).draw(ax)
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return fig


def plot_propensity_overlap(df: pd.DataFrame):
    """Histograms of the true propensity by arm, one panel per confounding ``level``."""
    levels = list(dict.fromkeys(df["level"]))
    fig, axes = plt.subplots(1, len(levels), figsize=(3.6 * len(levels), 3.0), sharey=True, squeeze=False)
    bins = np.linspace(0, 1, 26)
    for ax, level in zip(axes[0], levels):
        part = df[df["level"] == level]
        for arm, colour, label in ((0, "#80b1d3", "control"), (1, "#fb8072", "treated")):
            ax.hist(part.loc[part["T"] == arm, "propensity"], bins=bins, alpha=0.6, color=colour, label=label)
        ax.set_title(f"confounding: {level}", fontsize=9)
        ax.set_xlabel("true propensity e(H)")
    axes[0][0].set_ylabel("users")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
