"""The whole study on the smoke preset, end to end, as `make reproduce` runs it.

Notebooks 01-05 go through the papermill runner into a temporary results folder, then the
report renders tables, figures, ``metrics.json`` and ``RESULTS.md``. The study runs twice
from nothing; both runs must give the same numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.config import compose
from lib.io import read_json
from lib.report.metrics import check_metrics_schema
from lib.report.render import render
from lib.runner import run_notebook

NOTEBOOKS = ("01_prepare_data", "02_train_models", "03_estimate_effects", "04_target_interventions",
             "05_run_ablations")
FAMILIES = ("nextitem.", "ate.", "rct_gap.", "uplift.", "walltime.")


def run_study(root: Path) -> Path:
    overrides = [f"paths.results={root / 'results'}", f"paths.processed={root / 'processed'}",
                 f"paths.paper={root / 'paper'}"]
    for name in NOTEBOOKS:
        run_notebook(name, "smoke", overrides)
    render(compose("smoke", overrides))
    return root


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> tuple[Path, Path]:
    return run_study(tmp_path_factory.mktemp("study_a")), run_study(tmp_path_factory.mktemp("study_b"))


def without_walltime(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("walltime.")}


@pytest.mark.slow
def test_every_notebook_ran_with_provenance(studies):
    root = studies[0]
    for name in NOTEBOOKS:
        run_dir = root / "results" / name
        manifest = read_json(run_dir / "manifest.json")
        assert manifest["status"] == "ok" and (run_dir / f"{name}.ipynb").is_file(), name
        assert manifest["seed"] == 0 and manifest["config"]["preset_name"] == "smoke"
        assert all(v != "missing" for v in manifest["data_sha256"].values())


@pytest.mark.slow
def test_metrics_json_has_every_key_family_of_the_scheme(studies):
    metrics = read_json(studies[0] / "paper" / "metrics.json")
    assert check_metrics_schema(metrics) == []
    for family in FAMILIES:
        assert any(k.startswith(family) for k in metrics), family
    for dataset in ("beauty", "sports"):
        for model in ("popularity", "sasrec", "bert4rec"):
            assert 0.0 <= metrics[f"nextitem.{dataset}.{model}.ndcg@10"] <= metrics[f"nextitem.{dataset}.{model}.hr@10"] <= 1.0
    assert metrics["ate.semisynth_beauty.none.naive.rel_bias"] > 0.2  # the benchmark is confounded upwards
    assert "uplift.hillstrom.visit.random.qini" in metrics
    assert list(metrics) == sorted(metrics)


@pytest.mark.slow
def test_paper_folder_lists_every_artefact(studies):
    paper = studies[0] / "paper"
    text = (paper / "RESULTS.md").read_text()
    for table in ("row_counts", "nextitem_beauty", "semisynth_effects", "hillstrom_rct_gap", "hillstrom_uplift"):
        assert (paper / "tables" / f"{table}.md").is_file() and (paper / "tables" / f"{table}.tex").is_file()
        assert f"### {table}" in text
    for figure in ("causal_graphs", "semisynth_bias_by_setting", "hillstrom_qini_curves", "policy_tree"):
        assert (paper / "figures" / f"{figure}.png").is_file() and (paper / "figures" / f"{figure}.pdf").is_file()


@pytest.mark.slow
def test_two_runs_from_nothing_give_the_same_numbers(studies):
    a, b = (without_walltime(read_json(s / "paper" / "metrics.json")) for s in studies)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    for table in ("row_counts", "nextitem_beauty", "benchmark_summary"):
        assert (studies[0] / "paper" / "tables" / f"{table}.md").read_bytes() == \
               (studies[1] / "paper" / "tables" / f"{table}.md").read_bytes()
