"""Execute the runs of a sweep: resumable, failure-isolated, parallel, with progress.

Every run writes ``<run_dir>/status.json`` exactly once, atomically, when it ends (``ok``
or ``failed`` with the traceback), so

* a run with ``status: ok`` is skipped on the next invocation;
* a failed run, or one without a status (killed, Ctrl-C), is cleaned and run again;
* an exception in one run is recorded and the other runs go on.

``jobs > 1`` runs that many runs at once in worker processes (each notebook also gets
its own kernel process). ``launcher="submitit"`` sends the same runs to SLURM as a job
array instead, and ``launcher="ray"`` makes each run a Ray task (see :mod:`lib.sweep`).
The sweep file's ``launcher:`` block sizes a run for both: ``cpus_per_task`` and
``gpus_per_node`` are the Ray task's ``num_cpus`` / ``num_gpus``; its ``ray:`` sub-block
(``address``) is for Ray only and every other key goes to submitit.
"""
from __future__ import annotations

import multiprocessing
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from lib.io import read_json, write_json
from lib.runner import run_notebook
from lib.sweep.procs import init_worker, stop_cleanly, threads_per_worker
from lib.sweep.spec import Run, SweepSpec, expand, load_sweep

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class SweepResult:
    """Counts and records of one invocation of :func:`run_sweep`."""

    name: str
    root: Path
    runs: list[Run]
    done: int = 0
    failed: int = 0
    skipped: int = 0
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failures(self) -> dict[str, dict[str, Any]]:
        return {h: r for h, r in self.records.items() if r.get("status") != "ok"}


def error_line(record: dict[str, Any]) -> str:
    """The last non-empty line of a failed run's error (for papermill: ``ExcName: message``)."""
    lines = [line.strip() for line in str(record.get("error") or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def run_status(run: Run) -> str:
    """``ok``, ``failed`` or ``missing`` (never finished) for a planned run."""
    path = run.run_dir / "status.json"
    if not path.is_file():
        return "missing"
    return str(read_json(path).get("status", "missing"))


def execute_run(run: Run) -> dict[str, Any]:
    """Run the notebook chain of ``run`` in its folder and write ``status.json`` at the end.

    Exceptions of the notebooks are caught and recorded; ``KeyboardInterrupt`` and
    ``SystemExit`` are not, so an interrupted run leaves no status and is redone later.
    """
    # leftovers of an interrupted or failed attempt would mix with the new outputs
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    run.run_dir.mkdir(parents=True)
    started = time.time()
    status, error, trace, failed_notebook = "ok", None, None, None
    for notebook, extra in zip(run.notebooks, run.chain_overrides):
        try:
            run_notebook(notebook, run.preset, [*run.overrides, *extra], run_dir=run.run_dir / notebook,
                         notebook_dir=run.notebook_dir)
        except Exception as exc:  # recorded in status.json; the sweep goes on with other runs
            status, failed_notebook = "failed", notebook
            error = _ANSI.sub("", f"{type(exc).__name__}: {exc}")
            trace = _ANSI.sub("", traceback.format_exc())
            break
    record = {
        "status": status,
        "sweep": run.sweep,
        "hash": run.hash,
        "preset": run.preset,
        "notebooks": list(run.notebooks),
        "params": run.params,
        "overrides": list(run.overrides),
        "failed_notebook": failed_notebook,
        "error": error,
        "traceback": trace,
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(run.run_dir / "status.json", record)
    return record


def _plan_record(run: Run) -> dict[str, Any]:
    out = asdict(run)
    out["run_dir"] = run.run_dir.name
    out["notebook_dir"] = str(run.notebook_dir)
    return out


def run_sweep(spec: SweepSpec | str | Path, preset: str | None = None, jobs: int = 1,
              root: str | Path | None = None, code_version: str | None = None, launcher: str = "local",
              progress: bool = True, on_result: Callable[[dict[str, Any]], None] | None = None,
              ray_address: str | None = None) -> SweepResult:
    """Run every unfinished run of a sweep and return the counts.

    Parameters
    ----------
    spec : SweepSpec, name in ``conf/sweep`` or path to a YAML file
    preset : str, optional
        Base preset (default: the sweep file's ``preset``).
    jobs : int
        Runs executed at once (``local`` launcher).
    root : path, optional
        Folder of the run folders (default ``results/<preset>/sweeps/<name>``).
    code_version : str, optional
        Pin the code version in the run hashes (default: the checkout's).
    launcher : {"local", "submitit", "ray"}
    progress : bool
        Show a tqdm bar with done / failed / skipped counts.
    ray_address : str, optional
        Ray cluster to join (``auto``, ``ray://head:10001``...); wins over the sweep file's
        ``launcher.ray.address``. Without either, an already connected Ray session is used,
        else ``ray.init`` joins ``$RAY_ADDRESS`` or starts a local cluster for this sweep.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    if spec.shared_paths and (jobs > 1 or launcher != "local"):
        # two runs that train one config would write one checkpoint folder of the study at once
        raise ValueError(f"sweep {spec.name!r} shares paths {list(spec.shared_paths)} with the study, so its runs "
                         f"must run one at a time; got jobs={jobs}, launcher={launcher!r}. Fix: run it with "
                         "jobs=1 and the local launcher (report.sweep_jobs=1 in notebook 05), or drop shared_paths "
                         "from its sweep file to give every run folders of its own")
    runs = expand(spec, preset, root, code_version)
    root = runs[0].run_dir.parent if runs else Path(root or ".")
    write_json(root / "plan.json", {"sweep": spec.name, "preset": preset or spec.preset,
                                    "runs": [_plan_record(r) for r in runs]})
    result = SweepResult(spec.name, root, runs)
    todo = []
    for run in runs:
        if run_status(run) == "ok":
            result.skipped += 1
            result.records[run.hash] = read_json(run.run_dir / "status.json")
        else:
            todo.append(run)
    bar = tqdm(total=len(runs), initial=result.skipped, desc=f"sweep {spec.name}", unit="run",
               disable=not progress)

    def finish(record: dict[str, Any]) -> None:
        result.records[record["hash"]] = record
        if record["status"] == "ok":
            result.done += 1
        else:
            result.failed += 1
            bar.write(f"[sweep] run {record['hash'][:16]} failed: {error_line(record)}")
        bar.update(1)
        bar.set_postfix(done=result.done, failed=result.failed, skipped=result.skipped)
        if on_result is not None:
            on_result(record)

    bar.set_postfix(done=0, failed=0, skipped=result.skipped)
    try:
        with stop_cleanly():  # Ctrl-C or SIGTERM: no kernel or worker is left running
            if launcher == "submitit":
                _run_submitit(todo, root, {k: v for k, v in spec.launcher.items() if k != "ray"}, finish)
            elif launcher == "ray":
                address = ray_address or (spec.launcher.get("ray") or {}).get("address")
                _run_ray(todo, ray_task_options(spec.launcher), address, finish)
            elif launcher != "local":
                raise ValueError(f"unknown launcher {launcher!r}; use 'local', 'submitit' or 'ray'")
            elif jobs <= 1:
                for run in todo:
                    finish(execute_run(run))
            else:
                _run_pool(todo, jobs, finish)
    finally:
        bar.close()
    return result


def _run_pool(todo: Iterable[Run], jobs: int, finish: Callable[[dict[str, Any]], None]) -> None:
    """Run in ``jobs`` spawned workers that share the cores; on Ctrl-C cancel what has not started."""
    # spawn: a fresh interpreter per worker, no forked ZMQ / thread state from the parent;
    # threads capped so `jobs` kernels do not oversubscribe the cores (torch spins on idle threads)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(threads_per_worker(jobs),))
    pending: dict[Future, Run] = {pool.submit(execute_run, run): run for run in todo}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                run = pending.pop(future)
                try:
                    finish(future.result())
                except Exception as exc:  # the worker process itself died (e.g. killed, out of memory)
                    finish(_crash_record(run, exc))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _crash_record(run: Run, exc: BaseException) -> dict[str, Any]:
    record = {"status": "failed", "sweep": run.sweep, "hash": run.hash, "preset": run.preset,
              "notebooks": list(run.notebooks), "params": run.params, "overrides": list(run.overrides),
              "failed_notebook": None, "error": f"worker crashed: {type(exc).__name__}: {exc}",
              "traceback": "".join(traceback.format_exception(exc)), "wall_time_s": None,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(run.run_dir / "status.json", record)
    return record


def _run_submitit(todo: list[Run], root: Path, params: dict[str, Any],
                  finish: Callable[[dict[str, Any]], None]) -> None:
    """Submit the runs as one SLURM job array with ``submitit.AutoExecutor`` and wait for them.

    ``params`` (the sweep file's ``launcher:`` block) go to ``executor.update_parameters``,
    e.g. ``{timeout_min: 120, slurm_partition: gpu, gpus_per_node: 1, cpus_per_task: 8}``,
    except ``cluster`` (``slurm``, ``local``...), which forces submitit's executor instead of
    the one it detects.
    """
    try:
        import submitit
    except ImportError as exc:
        raise RuntimeError("launcher 'submitit' needs the submitit package: pip install submitit") from exc
    params = dict(params)
    executor = submitit.AutoExecutor(folder=root / ".submitit" / "%j", cluster=params.pop("cluster", None))
    executor.update_parameters(**params)
    jobs = executor.map_array(execute_run, todo) if todo else []
    for job, run in zip(jobs, todo):
        try:
            finish(job.result())
        except Exception as exc:  # the SLURM job died before writing a status
            finish(_crash_record(run, exc))


def ray_task_options(params: dict[str, Any]) -> dict[str, Any]:
    """Ray task options of one run from the sweep file's ``launcher:`` block.

    The SLURM names size a run on both launchers; ``max_retries=0`` because a run whose
    worker died is recorded as failed (and redone by the next invocation), as locally.

    >>> ray_task_options({"cpus_per_task": 4, "gpus_per_node": 1, "timeout_min": 60})
    {'max_retries': 0, 'num_cpus': 4, 'num_gpus': 1}
    """
    options: dict[str, Any] = {"max_retries": 0}
    if "cpus_per_task" in params:
        options["num_cpus"] = params["cpus_per_task"]
    if "gpus_per_node" in params:
        options["num_gpus"] = params["gpus_per_node"]
    return options


def _run_ray(todo: list[Run], options: dict[str, Any], address: str | None,
             finish: Callable[[dict[str, Any]], None]) -> None:
    """Each run is a Ray task calling :func:`execute_run`; results are taken as they finish.

    On Ctrl-C the unfinished tasks are cancelled (a running one gets ``KeyboardInterrupt``, so
    papermill shuts its kernel down and no status is written); a cluster started here is shut
    down on the way out, one joined by address is left running.
    """
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("launcher 'ray' needs the ray package: pip install 'ray==2.*'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(execute_run).options(**options)
        pending = {task.remote(run): run for run in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    run = pending.pop(ref)
                    try:
                        finish(ray.get(ref))
                    except Exception as exc:  # the worker died (killed, out of memory, node lost)
                        finish(_crash_record(run, exc))
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
    finally:
        if started_here:
            ray.shutdown()
