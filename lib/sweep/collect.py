"""Gather the runs of a sweep into one table: varied parameters, status and metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lib.config import compose
from lib.io import read_json


def sweep_root(name: str, preset: str) -> Path:
    """Default folder of a sweep's runs: ``<paths.results>/sweeps/<name>``."""
    return Path(compose(preset).paths.results) / "sweeps" / name


def run_metrics(run_dir: Path, notebooks: list[str]) -> dict[str, Any]:
    """The metrics of a run: the ``metrics.json`` of each of its notebooks, merged in chain order."""
    out: dict[str, Any] = {}
    for notebook in notebooks:
        path = run_dir / notebook / "metrics.json"
        if path.is_file():
            out.update(read_json(path))
    return out


def collect(name: str, preset: str, root: str | Path | None = None) -> pd.DataFrame:
    """One row per planned run of the latest invocation of sweep ``name``.

    Columns: ``run`` (hash prefix = folder name), ``status`` (ok / failed / missing),
    ``wall_time_s``, one column per varied parameter (grid keys without a leading ``+``,
    explicit-run keys, ``seed``) and one column per metric key found in the runs' ``metrics.json``.
    Only the runs listed in ``plan.json`` are read, so folders left from an older code
    version do not mix in.

    Parameters
    ----------
    name : str
        Sweep name (``conf/sweep/<name>.yaml``).
    preset : str
    root : path, optional
        Folder of the run folders (default :func:`sweep_root`).
    """
    root = Path(root) if root is not None else sweep_root(name, preset)
    plan_path = root / "plan.json"
    if not plan_path.is_file():
        raise FileNotFoundError(f"no sweep results in {root} (missing plan.json); run "
                                f"`python -m lib.sweep {name} --preset {preset}` first")
    rows = []
    for entry in read_json(plan_path)["runs"]:
        run_dir = root / entry["run_dir"]
        status_path = run_dir / "status.json"
        status = read_json(status_path) if status_path.is_file() else {"status": "missing", "wall_time_s": None}
        row: dict[str, Any] = {"run": entry["run_dir"], "status": status["status"],
                               "wall_time_s": status.get("wall_time_s")}
        # "+key" (add a key absent from conf/) names the same setting as "key"
        row.update({k.lstrip("+~"): v for k, v in entry["params"].items()})
        if status["status"] == "ok":
            row.update(run_metrics(run_dir, entry["notebooks"]))
        rows.append(row)
    return pd.DataFrame(rows)
