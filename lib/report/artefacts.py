"""How a notebook run declares the tables, figures and metrics it produced.

Compute and plotting are kept apart: a notebook saves the *data* of each table or figure
into its run folder and registers it here; ``python -m lib.report`` later renders every
registered artefact into ``paper/<preset>/`` without recomputing anything.

Layout of a run folder::

    run_dir/artefacts.json        # {name: {kind, data, caption, plot}}
    run_dir/artefacts/<name>.parquet
    run_dir/metrics.json          # flat {key: number}, keys follow the README scheme
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from lib.io import read_json, write_json, write_parquet

KINDS = ("table", "figure")


def register(run_dir: str | Path, name: str, kind: str, data: pd.DataFrame, caption: str,
             plot: str | None = None) -> Path:
    """Save ``data`` and declare it as a table or figure of the study.

    Parameters
    ----------
    run_dir : path
        The notebook run folder (``run_dir`` parameter of every notebook).
    name : str
        File stem in ``paper/<preset>/tables|figures``; letters, digits, ``_`` and ``-``.
    kind : {"table", "figure"}
    data : DataFrame
        Everything needed to render it again.
    caption : str
        Two or three sentences of what it shows (copied into RESULTS.md).
    plot : str, optional
        ``"module:function"`` taking the DataFrame and returning a matplotlib Figure;
        required for figures.
    """
    if kind not in KINDS:
        raise ValueError(f"artefact kind must be one of {KINDS}, got {kind!r}")
    if kind == "figure" and not plot:
        raise ValueError(f"figure {name!r} needs plot='module:function'")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"artefact name {name!r}: use letters, digits, '_' and '-' only")
    run_dir = Path(run_dir)
    rel = Path("artefacts") / f"{name}.parquet"
    write_parquet(data.reset_index(drop=True), run_dir / rel)
    index_path = run_dir / "artefacts.json"
    index = read_json(index_path) if index_path.exists() else {}
    index[name] = {"kind": kind, "data": str(rel), "caption": caption, "plot": plot}
    write_json(index_path, index)
    return run_dir / rel


def record_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Merge flat ``{key: number}`` metrics into ``run_dir/metrics.json``.

    Non-finite values are stored as ``null`` so the JSON stays valid. Values are rounded to 10
    significant digits: parallel reductions (forest averaging, BLAS) can move the last bits of a
    float between runs, and a rerun with the same seed must give the same file.
    """
    path = Path(run_dir) / "metrics.json"
    current = read_json(path) if path.exists() else {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metric keys must be non-empty strings, got {key!r}")
        value = float(value) if value is not None else None
        current[key] = float(f"{value:.10g}") if value is not None and math.isfinite(value) else None
    return write_json(path, current)


def load(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The artefacts a run registered, with their data loaded as DataFrames."""
    run_dir = Path(run_dir)
    index_path = run_dir / "artefacts.json"
    if not index_path.exists():
        return {}
    out = {}
    for name, entry in read_json(index_path).items():
        out[name] = {**entry, "frame": pd.read_parquet(run_dir / entry["data"])}
    return out


def plot_function(spec: str) -> Callable[[pd.DataFrame], Any]:
    """Import ``"module:function"``."""
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)
