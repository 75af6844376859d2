"""The flat ``metrics.json`` of the study: merging run metrics and checking the key scheme.

Keys (all flat, dot separated; see README "metrics.json"):

* ``nextitem.<dataset>.<model>.hr@10`` / ``.ndcg@10`` (also ``@5``, ``@20``)
* ``ate.<benchmark>.<representation>.<estimator>.abs_bias`` / ``.rel_bias`` / ``.coverage``
* ``rct_gap.hillstrom.<outcome>.<representation>.<estimator>.abs_error`` and
  ``rct_gap.hillstrom.<outcome>.naive.abs_error``
* ``uplift.hillstrom.<outcome>.<model>.qini`` / ``.auuc`` (model ``random`` included)
* ``walltime.<notebook>_s`` (from each run's ``manifest.json``) and ``walltime.study_s``
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from lib.io import read_json

_SEG = r"[^.]+"
# family -> patterns that must each match at least one key for the family to be complete
REQUIRED: dict[str, tuple[str, ...]] = {
    "nextitem": (rf"nextitem\.{_SEG}\.{_SEG}\.hr@10", rf"nextitem\.{_SEG}\.{_SEG}\.ndcg@10"),
    "ate": (rf"ate\.{_SEG}\.{_SEG}\.{_SEG}\.abs_bias", rf"ate\.{_SEG}\.{_SEG}\.{_SEG}\.rel_bias",
            rf"ate\.{_SEG}\.{_SEG}\.{_SEG}\.coverage", rf"ate\.{_SEG}\.none\.naive\.abs_bias"),
    "rct_gap": (rf"rct_gap\.hillstrom\.{_SEG}\.{_SEG}\.{_SEG}\.abs_error",
                rf"rct_gap\.hillstrom\.{_SEG}\.naive\.abs_error"),
    "uplift": (rf"uplift\.hillstrom\.{_SEG}\.{_SEG}\.qini", rf"uplift\.hillstrom\.{_SEG}\.{_SEG}\.auuc",
               rf"uplift\.hillstrom\.{_SEG}\.random\.qini"),
    "walltime": (r"walltime\.[^.]+_s",),
}


def _readable(pattern: str) -> str:
    return pattern.replace(_SEG, "*").replace("\\.", ".")


def check_metrics_schema(metrics: Mapping[str, Any]) -> list[str]:
    """Key families of the scheme with no matching key, as readable patterns.

    An empty list means every family is present.

    Examples
    --------
    >>> check_metrics_schema({"walltime.01_prepare_data_s": 3.0, "uplift.hillstrom.visit.random.qini": 0.0})
    ... # doctest: +NORMALIZE_WHITESPACE
    ['nextitem.*.*.hr@10', 'nextitem.*.*.ndcg@10', 'ate.*.*.*.abs_bias', 'ate.*.*.*.rel_bias',
     'ate.*.*.*.coverage', 'ate.*.none.naive.abs_bias', 'rct_gap.hillstrom.*.*.*.abs_error',
     'rct_gap.hillstrom.*.naive.abs_error', 'uplift.hillstrom.*.*.auuc']
    """
    missing = []
    for patterns in REQUIRED.values():
        for pattern in patterns:
            regex = re.compile(pattern + r"\Z")
            if not any(regex.match(key) for key in metrics):
                missing.append(_readable(pattern))
    return missing


def merge_run_metrics(run_dirs: Mapping[str, Path]) -> dict[str, Any]:
    """Merge ``metrics.json`` of every run and add ``walltime.<run>_s`` from its manifest.

    Parameters
    ----------
    run_dirs : mapping of run name (e.g. ``03_estimate_effects``) to its folder

    Raises
    ------
    ValueError
        When two runs report different values for the same key (keys are namespaced, so
        this is a naming bug, not something to resolve silently).
    """
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    total = 0.0
    for name in sorted(run_dirs):
        run_dir = Path(run_dirs[name])
        path = run_dir / "metrics.json"
        for key, value in (read_json(path) if path.is_file() else {}).items():
            if key in merged and merged[key] != value:
                raise ValueError(f"metric {key!r} is reported by both {owner[key]} ({merged[key]}) and "
                                 f"{name} ({value}); rename one of them")
            merged[key], owner[key] = value, name
        manifest = run_dir / "manifest.json"
        if manifest.is_file():
            wall = read_json(manifest).get("wall_time_s")
            if wall is not None:
                merged[f"walltime.{name}_s"] = float(wall)
                total += float(wall)
    if any(k.startswith("walltime.") for k in merged):
        merged["walltime.study_s"] = round(total, 2)
    return dict(sorted(merged.items()))
