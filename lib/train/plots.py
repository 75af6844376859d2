"""Learning curves of next-item runs, read back from Lightning's CSV logs.

:func:`read_curves` turns ``<run_dir>/csv/version_*/metrics.csv`` (one version per
(re)start of the run) into a long table with the cumulative fit wall clock of each epoch;
:func:`plot_learning_curves` draws training loss and validation NDCG@10 per epoch, and
:func:`plot_quality_vs_compute` validation NDCG@10 against epochs and wall-clock hours (test
NDCG@10 of the chosen checkpoint as a marker), for every dataset x model. Both are the
``plot=`` of registered figures, so ``python -m lib.report`` redraws them without retraining;
:func:`compute_table` is the matching table. Quality against compute follows the metric the
checkpoint was chosen on (``trainer.monitor``; rows flagged ``monitored``), so the star and the
curve are the same protocol.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

CURVES = {"train/loss_epoch": "train loss", "val/loss": "validation loss",
          "val/ndcg@10": "validation NDCG@10 (all items)",
          "val/history_removed/ndcg@10": "validation NDCG@10 (history removed)"}
WALL = "time/wall_s"   # cumulative fit seconds at each validation (NextItemModule)


def label(metric: str) -> str:
    """Reader's name of a logged metric key.

    >>> label("val/history_removed/ndcg@10"), label("test/ndcg@10")
    ('validation NDCG@10 (history removed)', 'test NDCG@10 (all items)')
    """
    split, key = metric.split("/", 1)
    name = CURVES.get(f"val/{key}", f"validation {key}")
    return name if split == "val" else name.replace("validation", split, 1)


def read_curves(run_dir: str | Path, monitor: str, **labels: str) -> pd.DataFrame:
    """Per-epoch ``epoch, metric, value, wall_s, monitored`` (+ ``labels`` columns) of one run.

    ``monitor`` is the run's ``trainer.monitor``: its rows get ``monitored=True`` (and are read even when
    it is not one of :data:`CURVES`). A resumed run logs into a new ``version_N``; an epoch logged twice
    keeps the newest value.
    """
    columns = {**CURVES, monitor: label(monitor)}
    frames = []
    versions = sorted((Path(run_dir) / "csv").glob("version_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[1]))
    walls = []
    for order, path in enumerate(versions):
        log = pd.read_csv(path)
        for column, name in columns.items():
            if column in log:
                part = log[["epoch", column]].dropna().groupby("epoch", as_index=False).last()
                frames.append(part.rename(columns={column: "value"}).assign(metric=name, version=order))
        if WALL in log:
            walls.append(log[["epoch", WALL]].dropna().groupby("epoch", as_index=False).last().assign(version=order))
    if not frames:
        return pd.DataFrame(columns=["epoch", "metric", "value", "wall_s", "monitored", *labels])
    curves = pd.concat(frames).sort_values("version").drop_duplicates(["epoch", "metric"], keep="last")
    curves = curves.drop(columns="version")
    if walls:
        wall = pd.concat(walls).sort_values("version").drop_duplicates("epoch", keep="last")
        curves = curves.merge(wall.drop(columns="version").rename(columns={WALL: "wall_s"}), on="epoch", how="left")
    else:  # logs written before the wall clock was logged
        curves["wall_s"] = float("nan")
    curves = curves.sort_values(["metric", "epoch"]).reset_index(drop=True)
    curves["epoch"] = curves["epoch"].astype(int) + 1  # 1-based: "after epoch n"
    return curves.assign(monitored=curves["metric"] == label(monitor), **labels)


def best_epoch(best_ckpt: str | Path) -> int:
    """1-based epoch of a ``best-{epoch}-{step}.ckpt`` checkpoint name (Lightning counts from 0).

    >>> best_epoch("/runs/x/best-11-1056.ckpt")
    12
    """
    return int(Path(best_ckpt).stem.split("-")[1]) + 1


def add_test_points(curves: pd.DataFrame, run: dict, monitor: str, **labels: str) -> pd.DataFrame:
    """``curves`` plus the test score of the tested checkpoint, on ``monitor``'s protocol, at its epoch.

    The row's metric is ``label`` of the ``test/`` twin of ``monitor`` (``test NDCG@10 (history removed)``
    for ``val/history_removed/ndcg@10``), at the checkpoint's epoch and wall clock.
    """
    epoch, test = best_epoch(run["best_ckpt"]), "test/" + monitor.split("/", 1)[1]
    at = curves[(curves["epoch"] == epoch)]
    wall = float(at["wall_s"].iloc[0]) if len(at) else float("nan")
    point = pd.DataFrame([{"epoch": epoch, "metric": label(test), "value": float(run[test]), "wall_s": wall,
                           "monitored": False, **labels}])
    return pd.concat([curves, point], ignore_index=True)


def _test_rows(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[curves["metric"].str.startswith("test ")]


def compute_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x model: epochs, seconds per epoch, best validation score of the monitored metric, when it
    was reached, and the test score of that checkpoint (same protocol; the ``protocol`` column names it)."""
    rows = []
    for (dataset, model), part in curves.groupby(["dataset", "model"], sort=True):
        val = part[part["monitored"].astype(bool)].sort_values("epoch")
        test = _test_rows(part)
        if val.empty:
            continue
        best = val.loc[val["value"].idxmax()]
        wall = val["wall_s"].to_numpy()
        rows.append({"dataset": dataset, "model": model, "protocol": val["metric"].iloc[0].split("(")[-1].rstrip(")"),
                     "epochs": int(val["epoch"].max()),
                     "s/epoch": float(wall[-1] / val["epoch"].max()) if len(wall) else float("nan"),
                     "best val NDCG@10": float(best["value"]), "best epoch": int(best["epoch"]),
                     "hours to best": float(best["wall_s"]) / 3600, "hours total": float(wall[-1]) / 3600,
                     "test NDCG@10": float(test["value"].iloc[0]) if len(test) else float("nan")})
    return pd.DataFrame(rows)


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


def plot_quality_vs_compute(curves: pd.DataFrame) -> plt.Figure:
    """The monitored validation metric against epochs (left) and fit wall-clock hours (right); stars = test.

    One run per dataset x model (one seed), so there are no error bars.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
    val = curves[curves["monitored"].astype(bool)]
    test = _test_rows(curves)
    for (dataset, model), line in val.groupby(["dataset", "model"], sort=True):
        label = f"{dataset.capitalize()} · {model}"
        line = line.sort_values("epoch")
        left = axes[0][0].plot(line["epoch"], line["value"], marker="o", markersize=2.5, label=label)[0]
        axes[0][1].plot(line["wall_s"] / 3600, line["value"], marker="o", markersize=2.5, color=left.get_color())
        point = test[(test["dataset"] == dataset) & (test["model"] == model)]
        if len(point):
            axes[0][0].plot(point["epoch"], point["value"], marker="*", markersize=10, color=left.get_color(),
                            linestyle="none")
            axes[0][1].plot(point["wall_s"] / 3600, point["value"], marker="*", markersize=10,
                            color=left.get_color(), linestyle="none")
    axes[0][0].set_xlabel("training epochs")
    axes[0][1].set_xlabel("training wall clock on this machine (hours)")
    protocol = val["metric"].iloc[0].split("(")[-1].rstrip(")") if len(val) else ""
    for ax in axes[0]:
        ax.set_ylabel(f"NDCG@10 (full ranking, {protocol})")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, title="line: validation, star: test", title_fontsize=7)
    fig.tight_layout()
    return fig
