"""Execute a numbered notebook with papermill from a composed Hydra config.

The one runner used by Make, tests and sweeps::

    python -m lib.runner 01_prepare_data --preset smoke [-o seed=3 ...] [--run-dir DIR]

Notebooks are stored as jupytext percent ``.py`` files in ``notebooks/``. The runner
converts one to ``.ipynb``, lets papermill inject ``preset``, ``overrides`` and
``run_dir`` into its ``parameters`` cell, and writes the executed notebook, the resolved
config and ``manifest.json`` (git SHA, data checksums, seed, package versions, wall time)
into ``results/<preset>/<notebook>/`` (or ``run_dir``). The executed notebook lands
atomically; a failed run keeps its partial notebook as ``<name>.failed.ipynb``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import jupytext
import nbformat
import papermill

from lib.config import REPO_ROOT, compose, to_yaml
from lib.io import atomic_path, write_json, write_text
from lib.provenance import manifest

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebook_path(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    path = Path(notebook_dir) / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in Path(notebook_dir).glob("*.py"))
        raise FileNotFoundError(f"no notebook {path}; known notebooks: {known}")
    return path


def run_notebook(name: str, preset: str = "smoke", overrides: Sequence[str] = (),
                 run_dir: str | Path | None = None, progress: bool = False,
                 notebook_dir: str | Path = NOTEBOOK_DIR) -> Path:
    """Run ``notebooks/<name>.py`` and return the run directory holding its outputs.

    Raises papermill's ``PapermillExecutionError`` (with the cell's traceback) on failure,
    after writing ``manifest.json`` with ``status: failed``.
    """
    overrides = list(overrides)
    cfg = compose(preset, overrides)  # fail fast on a bad override, before starting a kernel
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.paths.results) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    # A run re-declares its tables, figures and metrics from scratch: outputs of an earlier run of
    # this notebook must not mix with the new ones (caches such as checkpoints are kept).
    for stale in ("artefacts.json", "metrics.json"):
        (run_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "artefacts", ignore_errors=True)
    write_text(run_dir / "config.yaml", to_yaml(cfg))

    source = jupytext.read(notebook_path(name, Path(notebook_dir)))
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    executed = run_dir / f"{name}.ipynb"
    failed = run_dir / f"{name}.failed.ipynb"
    params = {"preset": preset, "overrides": overrides, "run_dir": str(run_dir)}
    start = time.time()
    status, error = "ok", None
    with atomic_path(executed) as tmp_out:
        tmp_in = tmp_out.with_name(tmp_out.stem + ".in.ipynb")
        nbformat.write(source, tmp_in)
        try:
            papermill.execute_notebook(
                str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
                cwd=str(REPO_ROOT), progress_bar=progress, log_output=False,
            )
        except BaseException as exc:  # record, keep the partial notebook, re-raise
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            if tmp_out.exists():
                tmp_out.replace(failed)
            raise
        finally:
            tmp_in.unlink(missing_ok=True)
            write_json(run_dir / "manifest.json", manifest(
                cfg, notebook=name, overrides=overrides, status=status, error=error,
                wall_time_s=round(time.time() - start, 2)))
    failed.unlink(missing_ok=True)
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="+", help="notebook name(s), e.g. 01_prepare_data")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("-o", "--override", action="append", default=[], help="Hydra override, repeatable")
    parser.add_argument("--run-dir", default=None, help="output folder (default results/<preset>/<notebook>)")
    args = parser.parse_args(argv)
    for name in args.notebook:
        t0 = time.time()
        out = run_notebook(name, args.preset, args.override, args.run_dir, progress=sys.stderr.isatty())
        print(f"[runner] {name} ({args.preset}) ok in {time.time() - t0:.1f}s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
