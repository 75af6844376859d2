"""Learning curves and the quality-against-compute table read from Lightning CSV logs."""
from __future__ import annotations

import pandas as pd
import pytest

from lib.train.plots import add_test_points, compute_table, plot_quality_vs_compute, read_curves


def write_log(run_dir, version, rows):
    path = run_dir / "csv" / f"version_{version}" / "metrics.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_wall_clock_and_test_point_per_epoch(tmp_path):
    nan = float("nan")
    hr = "val/history_removed/ndcg@10"
    # first session: epochs 0-1; resumed session: epoch 1 again (newer wins) and epoch 2.
    # The monitored metric (history removed) peaks at epoch 3, the other one at epoch 2.
    write_log(tmp_path, 0, [{"epoch": 0, "val/ndcg@10": 0.01, hr: 0.011, "time/wall_s": 100.0, "train/loss_epoch": nan},
                            {"epoch": 0, "val/ndcg@10": nan, hr: nan, "time/wall_s": nan, "train/loss_epoch": 9.0},
                            {"epoch": 1, "val/ndcg@10": 0.02, hr: 0.021, "time/wall_s": 200.0, "train/loss_epoch": nan}])
    write_log(tmp_path, 1, [{"epoch": 1, "val/ndcg@10": 0.03, hr: 0.031, "time/wall_s": 210.0, "train/loss_epoch": nan},
                            {"epoch": 2, "val/ndcg@10": 0.025, hr: 0.035, "time/wall_s": 330.0, "train/loss_epoch": nan}])
    curves = read_curves(tmp_path, hr, dataset="beauty", model="sasrec")
    val = curves[curves["metric"] == "validation NDCG@10 (all items)"]
    assert val["epoch"].tolist() == [1, 2, 3] and val["value"].tolist() == [0.01, 0.03, 0.025]
    assert val["wall_s"].tolist() == [100.0, 210.0, 330.0] and not val["monitored"].any()
    assert curves.loc[curves["monitored"], "value"].tolist() == [0.011, 0.031, 0.035]
    curves = add_test_points(curves, {"best_ckpt": "/x/best-2-30.ckpt", "test/ndcg@10": 0.028,
                                      "test/history_removed/ndcg@10": 0.033}, hr, dataset="beauty", model="sasrec")
    table = compute_table(curves)
    row = table.iloc[0]
    assert (row["epochs"], row["best epoch"], row["protocol"]) == (3, 3, "history removed")
    assert row["best val NDCG@10"] == 0.035 and row["test NDCG@10"] == 0.033
    assert row["s/epoch"] == pytest.approx(110.0) and row["hours to best"] == pytest.approx(330 / 3600)
    fig = plot_quality_vs_compute(curves)
    assert [ax.get_xlabel() for ax in fig.axes] == ["training epochs", "training wall clock on this machine (hours)"]
    assert fig.axes[0].get_ylabel() == "NDCG@10 (full ranking, history removed)"
    assert len(fig.axes[0].lines) == 2   # validation curve + test star
