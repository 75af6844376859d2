"""Execute a numbered notebook with papermill from a composed Hydra config.

The one runner used by Make, tests and sweeps::

    python -m lib.runner 01_prepare_data --preset smoke [-o seed=3 ...] [--run-dir DIR]

Notebooks are stored as jupytext percent ``.py`` files in ``notebooks/``. The runner
converts one to ``.ipynb``, lets papermill inject ``preset``, ``overrides`` and
``run_dir`` into its ``parameters`` cell, and writes the executed notebook, the resolved
config and ``manifest.json`` (git SHA, data checksums, seed, package versions, wall time)
into ``results/<preset>/<notebook>/`` (or ``run_dir``).

A run is a transaction. The notebook runs in the staging folder ``<run_dir>.staging/``
(papermill's ``run_dir`` points there, so everything it registers lands there); only when
it succeeds are its outputs moved into ``run_dir``, the executed notebook (Make's target)
last. A failed, interrupted (Ctrl-C, SIGTERM) or killed run leaves the last good results
untouched and becomes ``<run_dir>.failed/`` (partial notebook, ``manifest.json`` with
``status: failed``); a SIGKILLed run's staging folder is marked so by the next run. Caches
that a notebook writes under configured paths (checkpoints, embeddings) are not staged.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

import jupytext
import nbformat
import papermill

from lib.config import REPO_ROOT, compose, to_yaml
from lib.io import read_json, write_json, write_text
from lib.provenance import manifest

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: what a run declares from scratch: entries of an earlier run missing from a new one are removed
RESULT_ENTRIES = ("artefacts.json", "artefacts", "metrics.json", "manifest.json", "config.yaml")


def notebook_path(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    path = Path(notebook_dir) / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in Path(notebook_dir).glob("*.py"))
        raise FileNotFoundError(f"no notebook {path}; known notebooks: {known}")
    return path


def staging_dir(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".staging")


def failed_dir(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".failed")


def run_notebook(name: str, preset: str = "smoke", overrides: Sequence[str] = (),
                 run_dir: str | Path | None = None, progress: bool = False,
                 notebook_dir: str | Path = NOTEBOOK_DIR) -> Path:
    """Run ``notebooks/<name>.py`` and return the run directory holding its outputs.

    Raises papermill's ``PapermillExecutionError`` (with the cell's traceback) on failure,
    after moving the partial run to ``<run_dir>.failed/`` with ``manifest.json`` saying
    ``status: failed``; ``run_dir`` keeps the previous good results.
    """
    overrides = list(overrides)
    cfg = compose(preset, overrides)  # fail fast on a bad override, before starting a kernel
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.paths.results) / name
    source = jupytext.read(notebook_path(name, Path(notebook_dir)))
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    stage, failed = staging_dir(run_dir), failed_dir(run_dir)
    _retire_interrupted(stage, failed)
    stage.mkdir(parents=True)
    write_text(stage / "config.yaml", to_yaml(cfg))
    start = time.time()

    def record(status: str, error: str | None) -> None:
        write_json(stage / "manifest.json", manifest(cfg, notebook=name, overrides=overrides, status=status,
                                                     error=error, wall_time_s=round(time.time() - start, 2)))

    record("running", "the run has not finished; if no runner is executing it, it was killed")
    nb_in = stage / f".{name}.in.ipynb"
    nbformat.write(source, nb_in)
    try:
        papermill.execute_notebook(
            str(nb_in), str(stage / f"{name}.ipynb"), kernel_name="python3", cwd=str(REPO_ROOT),
            parameters={"preset": preset, "overrides": overrides, "run_dir": str(stage)},
            progress_bar=progress, log_output=False,
        )
    except BaseException as exc:  # record, keep the partial run beside the good one, re-raise
        nb_in.unlink(missing_ok=True)
        record("failed", f"{type(exc).__name__}: {exc}")
        _replace(stage, failed)
        raise
    nb_in.unlink()
    record("ok", None)
    _commit(stage, run_dir, f"{name}.ipynb")
    shutil.rmtree(failed, ignore_errors=True)  # it belonged to an earlier attempt
    return run_dir


def _retire_interrupted(stage: Path, failed: Path) -> None:
    """A staging folder at start-up is a run whose runner died: keep it as the failed run."""
    if not stage.exists():
        return
    path = stage / "manifest.json"
    record = read_json(path) if path.is_file() else {}
    record.update(status="failed", error="interrupted: the runner was killed before the run finished")
    write_json(path, record)
    _replace(stage, failed)


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` (file or folder) to ``dst``, replacing what is there; the old copy is deleted last."""
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        os.replace(src, dst)


def _commit(stage: Path, run_dir: Path, notebook: str) -> None:
    """Move a successful run's outputs into ``run_dir``; the executed notebook goes out first, comes in last.

    Make rebuilds a notebook whose ``.ipynb`` is missing, so a kill during the moves only
    costs a rerun; other entries of ``run_dir`` (caches, checkpoints) are kept.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / notebook).unlink(missing_ok=True)
    fresh = {p.name for p in stage.iterdir()}
    for entry in RESULT_ENTRIES:
        if entry not in fresh:
            old = run_dir / entry
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    for path in sorted(stage.iterdir()):
        if path.name != notebook:
            _replace(path, run_dir / path.name)
    os.replace(stage / notebook, run_dir / notebook)
    stage.rmdir()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="+", help="notebook name(s), e.g. 01_prepare_data")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("-o", "--override", action="append", default=[], help="Hydra override, repeatable")
    parser.add_argument("--run-dir", default=None, help="output folder (default results/<preset>/<notebook>)")
    parser.add_argument("--notebook-dir", default=str(NOTEBOOK_DIR), help="folder of the notebook .py files")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the partial run is kept as <run_dir>.failed
    for name in args.notebook:
        t0 = time.time()
        out = run_notebook(name, args.preset, args.override, args.run_dir, progress=sys.stderr.isatty(),
                           notebook_dir=args.notebook_dir)
        print(f"[runner] {name} ({args.preset}) ok in {time.time() - t0:.1f}s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
