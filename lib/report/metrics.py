"""The flat ``metrics.json`` of the study: merging run metrics and checking the key scheme.

Keys (all flat, dot separated; see README "metrics.json"):

* ``nextitem.<dataset>.<model>.hr@10`` / ``.ndcg@10`` (also ``@5``, ``@20``), and the same under
  ``nextitem.<dataset>.<model>.history_removed.*`` (the published rows' protocol, :mod:`lib.eval.metrics`)
* ``ate.<benchmark>.<representation>.<estimator>.abs_bias`` / ``.rel_bias`` / ``.coverage``
* ``rct_gap.hillstrom.<outcome>.<representation>.<estimator>.abs_error`` and
  ``rct_gap.hillstrom.<outcome>.naive.abs_error``
* ``uplift.hillstrom.<outcome>.<arm>.<model>.qini`` / ``.auuc`` / ``.qini_p`` /
  ``.qini_minus_random_ci_low`` / ``.qini_minus_random_ci_high`` (arm ``mens_email`` or
  ``womens_email``; model ``random``, the permutation null's mean, has qini / auuc only), and the
  earlier ``uplift.hillstrom.<outcome>.<model>.qini`` / ``.auuc`` of the Mens E-Mail arm
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
               rf"uplift\.hillstrom\.{_SEG}\.random\.qini", rf"uplift\.hillstrom\.{_SEG}\.{_SEG}\.{_SEG}\.qini_p"),
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
     'rct_gap.hillstrom.*.naive.abs_error', 'uplift.hillstrom.*.*.auuc', 'uplift.hillstrom.*.*.*.qini_p']
    """
    missing = []
    for patterns in REQUIRED.values():
        for pattern in patterns:
            regex = re.compile(pattern + r"\Z")
            if not any(regex.match(key) for key in metrics):
                missing.append(_readable(pattern))
    return missing


def read_run_metrics(run_dir: Path) -> dict[str, Any]:
    """A run's ``metrics.json`` (empty when it recorded none)."""
    path = Path(run_dir) / "metrics.json"
    return read_json(path) if path.is_file() else {}


def merge_run_metrics(run_dirs: Mapping[str, Path]) -> dict[str, Any]:
    """:func:`merge_metrics` over run folders (``metrics.json`` and ``manifest.json`` wall time)."""
    per_run = {}
    for name, run_dir in run_dirs.items():
        manifest = Path(run_dir) / "manifest.json"
        wall = read_json(manifest).get("wall_time_s") if manifest.is_file() else None
        per_run[name] = (read_run_metrics(run_dir), wall)
    return merge_metrics(per_run)


def merge_metrics(per_run: Mapping[str, tuple[Mapping[str, Any], float | None]]) -> dict[str, Any]:
    """Merge the metrics of every run and add ``walltime.<run>_s`` and ``walltime.study_s``.

    Parameters
    ----------
    per_run : mapping of run name (e.g. ``03_estimate_effects``) to (its metrics, its wall time or None)

    Raises
    ------
    ValueError
        When two runs report different values for the same key (keys are namespaced, so
        this is a naming bug, not something to resolve silently).

    Examples
    --------
    >>> merge_metrics({"01_a": ({"x.y": 1.0}, 2.0), "02_b": ({"z.w": 3.0}, 4.5)})
    {'walltime.01_a_s': 2.0, 'walltime.02_b_s': 4.5, 'walltime.study_s': 6.5, 'x.y': 1.0, 'z.w': 3.0}
    """
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    total = 0.0
    for name in sorted(per_run):
        metrics, wall = per_run[name]
        for key, value in metrics.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"metric {key!r} is reported by both {owner[key]} ({merged[key]}) and "
                                 f"{name} ({value}); rename one of them")
            merged[key], owner[key] = value, name
        if wall is not None:
            merged[f"walltime.{name}_s"] = float(wall)
            total += float(wall)
    if any(k.startswith("walltime.") for k in merged):
        merged["walltime.study_s"] = round(total, 2)
    return dict(sorted(merged.items()))
