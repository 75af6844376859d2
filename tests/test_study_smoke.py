"""The whole study on the smoke preset, end to end, as `make reproduce` runs it.

Notebooks 01-05 go through the papermill runner into a temporary results folder, then the
report renders tables, figures, ``metrics.json`` and ``RESULTS.md``. A second run repeats, in new
processes and folders, what decides the causal numbers: notebook 01 from the raw files, then
notebooks 03 and 04 on its tables and on the first run's notebook 02 (whose embeddings check that
the tables they were built from are byte-identical). Both runs must give the same numbers.
Notebook 02 is not run twice because its MiniLM passes are most of the study's cost; its parts
have their own same-seed tests (next-item training, heads, cross-fitting, bag-of-items SVD:
``test_train_nextitem``, ``test_heads``, ``test_seq_nuisance``,
``test_embed_store``), and notebook 05 only reruns notebook 03 under other settings.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import REPO_ROOT, compose
from lib.io import read_json
from lib.report.metrics import check_metrics_schema
from lib.report.render import render
from lib.runner import run_notebook

NOTEBOOKS = ("01_prepare_data", "02_train_models", "03_estimate_effects", "04_target_interventions",
             "05_run_ablations")
FAMILIES = ("nextitem.", "ate.", "rct_gap.", "uplift.", "walltime.")
RERUN = ("01_prepare_data", "03_estimate_effects", "04_target_interventions")


def paths(root: Path) -> list[str]:
    return [f"paths.results={root / 'results'}", f"paths.processed={root / 'processed'}",
            f"paths.paper={root / 'paper'}"]


def beside(names: tuple[str, ...], root: Path) -> subprocess.Popen:
    """Run notebooks through the runner's command line in a second process, beside this one's notebooks."""
    cmd = [sys.executable, "-m", "lib.runner", "--preset", "smoke", *names]
    for override in paths(root):
        cmd += ["-o", override]
    with open(root / "runner.log", "a") as log:   # a file, not a pipe: nobody reads it while both run
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def finished(proc: subprocess.Popen, root: Path) -> None:
    assert proc.wait() == 0, (root / "runner.log").read_text()[-5000:]


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> tuple[Path, Path]:
    """The whole study in ``study_a``; in ``study_b`` (own processes, started beside it so the two
    share the cores) notebook 01, then 03 and 04 on a copy of ``study_a``'s notebook 02."""
    a, b = tmp_path_factory.mktemp("study_a"), tmp_path_factory.mktemp("study_b")
    second = beside(RERUN[:1], b)
    for name in NOTEBOOKS[:2]:
        run_notebook(name, "smoke", paths(a))
    finished(second, b)
    shutil.copytree(a / "results" / "02_train_models", b / "results" / "02_train_models")
    second = beside(RERUN[1:], b)
    for name in NOTEBOOKS[2:]:
        run_notebook(name, "smoke", paths(a))
    render(compose("smoke", paths(a)))
    finished(second, b)
    return a, b


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
def test_a_second_run_gives_the_same_tables_and_numbers(studies):
    a, b = studies
    tables = sorted(p.relative_to(a / "processed") for p in (a / "processed").rglob("*.parquet"))
    assert tables and tables == sorted(p.relative_to(b / "processed") for p in (b / "processed").rglob("*.parquet"))
    for table in tables:
        assert (a / "processed" / table).read_bytes() == (b / "processed" / table).read_bytes(), table
    for name in RERUN:
        first, second = (without_walltime(read_json(s / "results" / name / "metrics.json")) for s in studies)
        assert first and json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True), name
