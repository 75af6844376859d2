"""Notebook 05 runs a configured sweep, then registers its summary table, figure and metrics."""
from __future__ import annotations

from lib.config import REPO_ROOT
from lib.io import read_json
from lib.report.artefacts import load
from lib.runner import run_notebook

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "notebooks"


def test_notebook_05_summarises_a_fixture_sweep(tmp_path):
    sweep = tmp_path / "fx_curve.yaml"
    sweep.write_text(f"""\
notebooks: [fx_produce]
notebook_dir: {FIXTURES}
preset: smoke
grid:
  +extra.scale: [1, 2]
seeds: [0, 1]
summary:
  x: extra.scale
  metrics: 'fx\\.value'
  plot: ablation_curve
  caption: Fixture value against its scale.
""")
    run_dir = run_notebook("05_run_ablations", "smoke",
                           [f"paths.results={tmp_path / 'results'}", f"report.ablation_sweeps=['{sweep}']"],
                           run_dir=tmp_path / "results" / "05_run_ablations")
    frames = load(run_dir)
    assert set(frames) == {"ablation_fx_curve", "ablation_fx_curve_plot"}
    table = frames["ablation_fx_curve"]["frame"]
    # fx.value = scale * (seed + 1): mean over seeds 0, 1 is 1.5 * scale, sd is scale / sqrt(2)
    assert table["x"].tolist() == [1, 2] and table["mean"].tolist() == [1.5, 3.0]
    assert table["std"].round(6).tolist() == [0.707107, 1.414214] and table["n"].tolist() == [2, 2]
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["ablation.fx_curve.fx.value.1.mean"] == 1.5
    assert metrics["ablation.fx_curve.runs_ok"] == 4 and metrics["ablation.fx_curve.runs_failed"] == 0
    assert (tmp_path / "results" / "sweeps" / "fx_curve" / "plan.json").is_file()
