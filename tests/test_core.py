"""Config composition, atomic artefacts, provenance and the notebook runner."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from omegaconf.errors import ReadonlyConfigError

from lib.config import REPO_ROOT, compose, data_file, raw_files
from lib.envspec import pip_requirements
from lib.io import atomic_path, read_json, write_json, write_parquet
from lib.report.artefacts import load, record_metrics, register
from lib.runner import run_notebook


def test_environment_yml_is_the_dependency_list():
    reqs = pip_requirements(REPO_ROOT / "environment.yml")
    assert "torch==2.13.0" in reqs  # an unpinned torch pulls a multi-GB CUDA build
    names = {r.split("<")[0].split(">")[0].split("=")[0] for r in reqs}
    for pkg in ("lightning", "transformers", "econml", "papermill", "hydra-core", "jupyterlab", "matplotlib"):
        assert pkg in names


def test_compose_presets_and_overrides():
    smoke = compose("smoke", ["seed=11"])
    assert smoke.preset_name == "smoke" and smoke.seed == 11
    assert compose("paper").preset_name == "paper"
    assert Path(smoke.paths.processed).is_absolute() and smoke.paths.processed.endswith("processed/smoke")
    with pytest.raises(ReadonlyConfigError):
        smoke.seed = 3
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        compose("huge")


def test_missing_data_file_names_file_and_setting(tmp_path):
    cfg = compose("smoke", [f"paths.data_root={tmp_path}"])
    with pytest.raises(FileNotFoundError) as err:
        data_file(cfg, "hillstrom")
    msg = str(err.value)
    assert "hillstrom/hillstrom.csv" in msg and "BC_DATA_ROOT" in msg and "paths.data_root" in msg


def test_atomic_write_leaves_old_file_and_no_temp_on_crash(tmp_path):
    target = tmp_path / "result.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "half": ')
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_same_content_gives_same_bytes(tmp_path):
    df = pd.DataFrame({"user_id": [3, 1, 2], "items": [[1, 2], [3], [4, 5, 6]]})
    write_parquet(df, tmp_path / "a.parquet")
    write_parquet(df, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    write_json(tmp_path / "a.json", {"b": 1.5, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1.5\n}\n'


def test_artefact_registry_roundtrip(tmp_path):
    frame = pd.DataFrame({"x": [1, 2], "y": [0.5, 0.25]})
    register(tmp_path, "tiny_table", "table", frame, "A table.")
    record_metrics(tmp_path, {"a.b": 1, "a.c": float("nan")})
    loaded = load(tmp_path)
    assert list(loaded) == ["tiny_table"] and loaded["tiny_table"]["frame"].equals(frame)
    assert read_json(tmp_path / "metrics.json") == {"a.b": 1.0, "a.c": None}
    with pytest.raises(ValueError, match="needs plot"):
        register(tmp_path, "fig", "figure", frame, "A figure.")


NOTEBOOK = '''\
# %% tags=["parameters"]
preset = "smoke"
overrides: list = []
run_dir = None
# %%
from lib.config import compose
from lib.report.artefacts import record_metrics
cfg = compose(preset, overrides)
if cfg.seed == 13:
    raise RuntimeError("seed 13 fails on purpose")
record_metrics(run_dir, {"seed": cfg.seed})
'''


@pytest.fixture(scope="module")
def notebook_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notebooks")
    (folder / "00_echo_seed.py").write_text(NOTEBOOK)
    return folder


@pytest.mark.slow
def test_runner_writes_notebook_config_and_manifest(notebook_dir, tmp_path):
    out = run_notebook("00_echo_seed", "smoke", ["seed=5"], run_dir=tmp_path, notebook_dir=notebook_dir)
    assert read_json(out / "metrics.json") == {"seed": 5.0}
    assert (out / "00_echo_seed.ipynb").is_file() and "seed: 5" in (out / "config.yaml").read_text()
    manifest = read_json(out / "manifest.json")
    assert manifest["status"] == "ok" and manifest["seed"] == 5 and manifest["overrides"] == ["seed=5"]
    assert len(manifest["git"]["sha"]) == 40
    assert set(manifest["data_sha256"]) == set(raw_files(compose("smoke")))
    assert manifest["packages"]["torch"].startswith("2.13.0")


@pytest.mark.slow
def test_runner_failure_keeps_partial_notebook_and_says_so(notebook_dir, tmp_path):
    import papermill

    run_dir = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError, match="seed 13 fails on purpose"):
        run_notebook("00_echo_seed", "smoke", ["seed=13"], run_dir=run_dir, notebook_dir=notebook_dir)
    failed = tmp_path / "run.failed"
    manifest = read_json(failed / "manifest.json")
    assert manifest["status"] == "failed" and "seed 13" in manifest["error"]
    assert (failed / "00_echo_seed.ipynb").is_file() and "seed: 13" in (failed / "config.yaml").read_text()
    assert not run_dir.exists() and not (tmp_path / "run.staging").exists()   # nothing posing as a result


def test_runner_rejects_bad_override_before_starting_a_kernel(notebook_dir, tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="trainer.no_such_knob"):
        run_notebook("00_echo_seed", "smoke", ["trainer.no_such_knob=2"], run_dir=tmp_path, notebook_dir=notebook_dir)
    assert not any(tmp_path.iterdir())


def test_runner_cli_lists_known_notebooks_on_typo(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lib.runner", "99_no_such_notebook", "--run-dir", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "no notebook" in proc.stderr


@pytest.mark.slow
def test_rerun_drops_artefacts_of_the_previous_run(notebook_dir, tmp_path):
    register(tmp_path, "left_over", "table", pd.DataFrame({"x": [1]}), "From an older run.")
    record_metrics(tmp_path, {"old.key": 1})
    run_notebook("00_echo_seed", "smoke", ["seed=2"], run_dir=tmp_path, notebook_dir=notebook_dir)
    assert load(tmp_path) == {} and read_json(tmp_path / "metrics.json") == {"seed": 2.0}


def test_metrics_are_stable_to_the_last_bits(tmp_path):
    record_metrics(tmp_path / "a", {"x": 0.43626671886704294})
    record_metrics(tmp_path / "b", {"x": 0.43626671886704305})   # same fit, another summation order
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert read_json(tmp_path / "a" / "metrics.json") == {"x": 0.4362667189}


def test_code_version_follows_code_not_docs(tmp_path):
    from lib.provenance import code_version

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    for folder in ("lib", "conf", "notebooks"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("one\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = code_version(tmp_path)
    assert first.startswith("tree.") and "dirty" not in first

    (tmp_path / "README.md").write_text("two\n")          # a docs-only commit keeps the version
    git("commit", "-qam", "docs")
    assert code_version(tmp_path) == first

    (tmp_path / "lib" / "a.py").write_text("x = 2\n")     # uncommitted code change: marked dirty
    dirty = code_version(tmp_path)
    assert dirty.startswith(first + "+dirty.")
    git("commit", "-qam", "code")                          # committed: a new clean version
    assert code_version(tmp_path) not in (first, dirty) and "dirty" not in code_version(tmp_path)
    narrow = code_version(tmp_path, folders=("lib",))
    (tmp_path / "conf" / "a.py").write_text("x = 3\n")    # outside the narrow folders: that version keeps
    assert code_version(tmp_path, folders=("lib",)) == narrow
    assert "dirty" in code_version(tmp_path)
