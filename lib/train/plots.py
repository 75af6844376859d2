"""Learning curves of next-item runs, read back from Lightning's CSV logs.

:func:`read_curves` turns ``<run_dir>/csv/version_*/metrics.csv`` (one version per
(re)start of the run) into a long table; :func:`plot_learning_curves` draws training loss and
validation NDCG@10 per epoch for every dataset x model and is the ``plot=`` of the registered
figure, so ``python -m lib.report`` redraws it without retraining.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

CURVES = {"train/loss_epoch": "train loss", "val/loss": "validation loss", "val/ndcg@10": "validation NDCG@10"}


def read_curves(run_dir: str | Path, **labels: str) -> pd.DataFrame:
    """Per-epoch ``epoch, metric, value`` (+ ``labels`` columns) of one run; later versions win.

    A resumed run logs into a new ``version_N``; an epoch logged twice keeps the newest value.
    """
    frames = []
    versions = sorted((Path(run_dir) / "csv").glob("version_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[1]))
    for order, path in enumerate(versions):
        log = pd.read_csv(path)
        for column, name in CURVES.items():
            if column in log:
                part = log[["epoch", column]].dropna().groupby("epoch", as_index=False).last()
                frames.append(part.rename(columns={column: "value"}).assign(metric=name, version=order))
    if not frames:
        return pd.DataFrame(columns=["epoch", "metric", "value", *labels])
    curves = pd.concat(frames).sort_values("version").drop_duplicates(["epoch", "metric"], keep="last")
    curves = curves.drop(columns="version").sort_values(["metric", "epoch"]).reset_index(drop=True)
    curves["epoch"] = curves["epoch"].astype(int) + 1  # 1-based: "after epoch n"
    return curves.assign(**labels)


def plot_learning_curves(curves: pd.DataFrame) -> plt.Figure:
    """One column per metric, one line per dataset x model."""
    metrics = [m for m in CURVES.values() if m in set(curves["metric"])]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4 * max(1, len(metrics)), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        part = curves[curves["metric"] == metric]
        for (dataset, model), line in part.groupby(["dataset", "model"], sort=True):
            ax.plot(line["epoch"], line["value"], marker="o", markersize=3, label=f"{dataset} · {model}")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
