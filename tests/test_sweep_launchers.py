"""The cluster launchers run a fixture sweep with the local launcher's semantics.

Ray: each run a task on a local Ray cluster (shared fixture ``ray_cluster``); submitit:
a job array through submitit's local executor. Both must give the local launcher's
metrics, record a failure with its traceback and, rerun, skip the finished run.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lib.sweep import collect, expand, load_sweep, run_status, run_sweep
from lib.sweep.engine import ray_task_options

from test_sweep_engine import CODE, FIXTURES

COLUMNS = ["seed", "status", "fx.value"]


def write_sweep(folder: Path, launcher: str, marker: Path) -> Path:
    """Two runs of the produce notebook; the one of seed 1 fails while ``marker`` exists."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fxl.yaml"
    path.write_text(f"""\
notebook_dir: {FIXTURES}
preset: smoke
notebooks: [fx_produce]
overrides: ["+extra.scale=3"]
runs:
  - {{seed: 0}}
  - {{seed: 1, +extra.fail_when: {marker}}}
launcher: {launcher}
""")
    return path


def table(root: Path):
    return collect("fxl", "smoke", root=root).sort_values("seed")[COLUMNS].reset_index(drop=True)


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    """The same sweep through the local launcher (no failure planted)."""
    folder = tmp_path_factory.mktemp("local")
    spec = load_sweep(write_sweep(folder, "{}", folder / "absent"))
    result = run_sweep(spec, root=folder / "out", code_version=CODE, jobs=2, progress=False)
    assert (result.done, result.failed) == (2, 0)
    return table(folder / "out")


def check_launcher(tmp_path: Path, launcher: str, block: str, local_table) -> None:
    marker = tmp_path / "fail_now"
    marker.touch()
    spec = load_sweep(write_sweep(tmp_path, block, marker))
    root = tmp_path / launcher
    first = run_sweep(spec, root=root, code_version=CODE, launcher=launcher, progress=False)
    assert (first.done, first.failed, first.skipped) == (1, 1, 0)
    (record,) = first.failures.values()
    assert record["params"]["seed"] == 1 and "planted failure for seed 1" in record["traceback"]
    marker.unlink()  # the cause is fixed: the rerun redoes only the failed run
    second = run_sweep(spec, root=root, code_version=CODE, launcher=launcher, progress=False)
    assert (second.done, second.failed, second.skipped) == (1, 0, 1)
    assert [run_status(r) for r in expand(spec, root=root, code_version=CODE)] == ["ok", "ok"]
    assert table(root).equals(local_table)
    assert table(root)["fx.value"].tolist() == [3.0, 6.0]  # scale * (seed + 1)


def test_ray_launcher_matches_local_and_resumes(tmp_path, ray_cluster, local_table):
    check_launcher(tmp_path, "ray", "{cpus_per_task: 1, ray: {address: null}}", local_table)


def test_ray_task_options_come_from_the_launcher_block():
    assert ray_task_options({"cpus_per_task": 2, "gpus_per_node": 1, "slurm_partition": "gpu"}) == \
        {"max_retries": 0, "num_cpus": 2, "num_gpus": 1}


def test_submitit_launcher_end_to_end_on_its_local_executor(tmp_path, local_table):
    # the ray block is dropped before submitit sees the parameters
    check_launcher(tmp_path, "submitit", "{cluster: local, timeout_min: 10, cpus_per_task: 1, ray: {address: null}}",
                   local_table)
