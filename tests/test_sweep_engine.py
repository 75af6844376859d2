"""Sweeps over the fixture notebooks: expansion, hashing, resume after a kill, failure isolation, jobs=2."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lib.config import REPO_ROOT
from lib.io import read_json
from lib.sweep import collect, expand, load_sweep, points, run_status, run_sweep
from lib.sweep.procs import threads_per_worker
from lib.sweep.spec import format_value
from lib.sweep.summary import SUMMARY_KEYS

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "notebooks"
CODE = "fixture-code-v1"  # pinned so commits made while the tests run do not change the hashes


def write_sweep(tmp_path: Path, body: str, name: str = "fx") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"notebook_dir: {FIXTURES}\npreset: smoke\n" + body)
    return path


CHAIN = """\
notebooks: [fx_produce, fx_consume]
overrides: ["+paths.fx_input=${paths.results}/fx_produce"]
grid:
  +extra.scale: [1, 3]
seeds: [0, 1]
"""


def test_expansion_is_a_stable_cartesian_product(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, CHAIN))
    assert points(spec) == [{"+extra.scale": 1, "seed": 0}, {"+extra.scale": 1, "seed": 1},
                            {"+extra.scale": 3, "seed": 0}, {"+extra.scale": 3, "seed": 1}]
    runs = expand(spec, root=tmp_path / "out", code_version=CODE)
    again = expand(spec, root=tmp_path / "out", code_version=CODE)
    assert [r.hash for r in runs] == [r.hash for r in again]
    assert len({r.hash for r in runs}) == 4
    # the code version is part of a run's identity
    assert expand(spec, root=tmp_path / "out", code_version="other")[0].hash != runs[0].hash
    # the first notebook writes, and the second reads, inside the same run folder
    redirect = (f"paths.fx_input={runs[0].run_dir / 'fx_produce'}",)
    assert runs[0].chain_overrides == (redirect, redirect)


def test_training_sweep_keeps_checkpoints_and_embeddings_in_its_run_folder(tmp_path):
    """A 02 -> 03 chain must not write into (or read from) the study's own notebook-02 folder."""
    path = tmp_path / "train_chain.yaml"
    path.write_text("preset: smoke\nnotebooks: [02_train_models, 03_estimate_effects]\n")
    spec = load_sweep(path)
    run = expand(spec, root=tmp_path / "out", code_version=CODE)[0]
    own = run.run_dir / "02_train_models"
    for per_notebook in run.chain_overrides:
        assert f"paths.embeddings={own}/embeddings" in per_notebook
        assert f"paths.checkpoints={own}/checkpoints" in per_notebook
    # shared_paths: the study's checkpoint folders (keyed by the training config) are reused, embeddings stay private
    path.write_text(path.read_text() + "shared_paths: [checkpoints]\n")
    run = expand(load_sweep(path), root=tmp_path / "out", code_version=CODE)[0]
    for per_notebook in run.chain_overrides:
        assert f"paths.embeddings={own}/embeddings" in per_notebook
        assert not [o for o in per_notebook if o.startswith("paths.checkpoints=")]
    path.write_text(path.read_text().replace("[checkpoints]", "checkpoints"))   # one key without brackets
    assert load_sweep(path).shared_paths == ("checkpoints",)
    # two runs training one config at once would write one study folder: parallel launches are refused up front
    for kwargs in ({"jobs": 2}, {"launcher": "ray"}, {"launcher": "submitit"}):
        with pytest.raises(ValueError, match=r"sweep 'train_chain' shares paths \['checkpoints'\] .* one at a time"):
            run_sweep(load_sweep(path), root=tmp_path / "refused", code_version=CODE, progress=False, **kwargs)
    assert not (tmp_path / "refused").exists()
    path.write_text(path.read_text().replace("shared_paths: checkpoints", "shared_paths: {a: 1}"))
    with pytest.raises(ValueError, match=r"train_chain\.yaml: shared_paths must list paths\.\* keys"):
        load_sweep(path)
    path.write_text(path.read_text().replace("{a: 1}", "[checkpoint]"))
    with pytest.raises(ValueError, match=r"sweep 'train_chain': shared_paths \['checkpoint'\] are not paths\.\* keys"):
        expand(load_sweep(path), root=tmp_path / "out", code_version=CODE)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO_ROOT / "conf" / "sweep").glob("*.yaml")))
def test_every_study_sweep_expands_and_summarises_a_varied_setting(name, tmp_path):
    spec = load_sweep(name)
    runs = expand(spec, root=tmp_path / "out", code_version=CODE)  # composes every run's config
    assert runs and len({r.hash for r in runs}) == len(runs)
    assert {"x", "metrics"} <= set(spec.summary) <= SUMMARY_KEYS
    assert spec.summary["x"] in spec.grid or any(spec.summary["x"] in run for run in spec.runs)


def test_explicit_runs_combine_with_grid_and_bad_keys_fail_before_running(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, "notebooks: fx_produce\nruns:\n  - {seed: 4}\n  - [seed=5]\n"
                                            "grid:\n  +extra.scale: [2]\n"))
    assert points(spec) == [{"seed": 4, "+extra.scale": 2}, {"seed": "5", "+extra.scale": 2}]
    bad = load_sweep(write_sweep(tmp_path, "notebooks: [fx_produce]\ngrid:\n  no_such.knob: [1, 2]\n", "bad"))
    with pytest.raises(Exception, match="no_such"):
        expand(bad, root=tmp_path / "bad", code_version=CODE)
    assert format_value(["a b", True, None]) == "['a b',true,null]"


def test_chained_parallel_sweep_and_collect(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, CHAIN))
    result = run_sweep(spec, jobs=2, root=tmp_path / "out", code_version=CODE, progress=False)
    assert (result.done, result.failed, result.skipped) == (4, 0, 0)
    table = collect("fx", "smoke", root=tmp_path / "out").sort_values(["extra.scale", "seed"])
    # fx_produce: value = scale * (seed + 1); fx_consume doubles what produce wrote in the same run
    assert table["fx.value"].tolist() == [1.0, 2.0, 3.0, 6.0]
    assert table["fx.doubled"].tolist() == [2.0, 4.0, 6.0, 12.0]
    # two workers share the cores: each run's kernel sees its share as its thread budget
    assert set(table["fx.threads"]) == {int(os.environ.get("OMP_NUM_THREADS") or threads_per_worker(2))}
    assert set(table["status"]) == {"ok"}
    again = run_sweep(spec, jobs=2, root=tmp_path / "out", code_version=CODE, progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 0, 4)


def test_failure_is_isolated_reported_and_only_it_is_retried(tmp_path):
    marker = tmp_path / "fail_now"
    marker.touch()
    spec = load_sweep(write_sweep(tmp_path, f"""\
notebooks: [fx_produce]
runs:
  - {{seed: 0}}
  - {{seed: 1, +extra.fail_when: {marker}}}
  - {{seed: 2}}
"""))
    first = run_sweep(spec, root=tmp_path / "out", code_version=CODE, progress=False)
    assert (first.done, first.failed) == (2, 1)
    (failed_hash, record), = first.failures.items()
    assert record["params"]["seed"] == 1 and record["failed_notebook"] == "fx_produce"
    assert "planted failure for seed 1" in record["traceback"]
    runs = expand(spec, root=tmp_path / "out", code_version=CODE)
    assert [run_status(r) for r in runs] == ["ok", "failed", "ok"]
    ok_times = {r.hash: (r.run_dir / "status.json").stat().st_mtime_ns for r in runs if r.hash != failed_hash}

    marker.unlink()  # the cause is fixed; the rerun retries only the failed run
    second = run_sweep(spec, root=tmp_path / "out", code_version=CODE, progress=False)
    assert (second.done, second.failed, second.skipped) == (1, 0, 2)
    assert [run_status(r) for r in runs] == ["ok", "ok", "ok"]
    assert {h: (tmp_path / "out" / h[:16] / "status.json").stat().st_mtime_ns for h in ok_times} == ok_times


def test_killed_sweep_resumes_only_missing_runs(tmp_path):
    spec_path = write_sweep(tmp_path, "notebooks: [fx_produce]\noverrides: ['+extra.sleep=2']\nseeds: [0, 1, 2]\n")
    root = tmp_path / "out"
    cmd = [sys.executable, "-m", "lib.sweep", str(spec_path), "--root", str(root), "--code-version", CODE,
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    runs = expand(load_sweep(spec_path), root=root, code_version=CODE)
    deadline = time.time() + 120
    while run_status(runs[0]) != "ok":
        assert proc.poll() is None and time.time() < deadline, "first run did not finish"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep, its kernel and everything it started
    proc.wait()
    statuses = [run_status(r) for r in runs]
    assert statuses[0] == "ok" and statuses[2] == "missing"
    first_done = (runs[0].run_dir / "status.json").stat().st_mtime_ns

    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "skipped" in rerun.stdout
    assert [run_status(r) for r in runs] == ["ok", "ok", "ok"]
    assert (runs[0].run_dir / "status.json").stat().st_mtime_ns == first_done
    assert read_json(runs[0].run_dir / "status.json")["params"] == {"seed": 0}
    skipped = int(rerun.stdout.split(" skipped")[0].rsplit(",", 1)[1].split()[0])
    assert skipped == 1 + (statuses[1] == "ok")


def cmdline(proc: psutil.Process) -> str:
    """A process's command line; "" once it has exited or is a zombie its parent has not reaped yet."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopped_sweep_leaves_no_worker_or_kernel_running(tmp_path, sig):
    """Killing only the sweep process (not its group) still stops every worker and kernel below it."""
    spec_path = write_sweep(tmp_path, "notebooks: [fx_produce]\noverrides: ['+extra.sleep=60']\nseeds: [0, 1]\n")
    cmd = [sys.executable, "-m", "lib.sweep", str(spec_path), "--root", str(tmp_path / "out"), "--jobs", "2",
           "--code-version", CODE, "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:  # two workers, each with a kernel sleeping inside the notebook
            below = psutil.Process(proc.pid).children(recursive=True)
            if sum("ipykernel" in cmdline(p) for p in below) == 2:
                break
            assert time.time() < deadline, "kernels did not start"
            time.sleep(0.5)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(below, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [cmdline(p) for p in alive]
        assert [run_status(r) for r in expand(load_sweep(spec_path), root=tmp_path / "out", code_version=CODE)] \
            == ["missing", "missing"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
