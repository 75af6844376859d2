"""``paper/<preset>/index.json``: what each notebook run contributed to a rendered paper.

Every render records, per notebook run, the provenance summary of its manifest, its
metrics and its artefacts (kind, caption, inline Markdown of short tables). A later render
on a machine that holds only some of the runs (say, notebook 05 re-run alone on a fresh
clone, next to the committed ``paper/paper/``) *carries* the other notebooks from the index:
their rendered files stay, their metrics and captions are reused, and ``RESULTS.md`` says
which notebooks were carried. Runs present under ``results/<preset>/`` always win.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lib.io import read_json, write_json

INDEX = "index.json"
VERSION = 1
RECORD_KEYS = {"manifest", "metrics", "artefacts"}


def manifest_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run's ``manifest.json`` that RESULTS.md shows (git, host, versions, time)."""
    packages = manifest.get("packages", {})
    return {"git": dict(manifest.get("git", {})), "host": dict(manifest.get("host", {})),
            "packages": {k: packages[k] for k in ("python", "torch") if k in packages},
            "status": manifest.get("status"), "wall_time_s": manifest.get("wall_time_s")}


def files_of(name: str, kind: str) -> list[str]:
    """Rendered files of an artefact, relative to the paper folder."""
    if kind == "table":
        return [f"tables/{name}.md", f"tables/{name}.tex"]
    return [f"figures/{name}.png", f"figures/{name}.pdf"]


def load_index(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Notebook records of an earlier render of ``out_dir`` (empty when there is none)."""
    path = Path(out_dir) / INDEX
    if not path.is_file():
        return {}
    fix = "delete it and render from a full results folder (make paper)"
    try:
        data = read_json(path)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {fix}") from exc
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: index version {data.get('version')!r}, expected {VERSION}; {fix}")
    notebooks = data.get("notebooks")
    if not isinstance(notebooks, dict):
        raise ValueError(f"{path}: no 'notebooks' mapping; {fix}")
    bad = [name for name, record in notebooks.items() if not isinstance(record, dict) or not RECORD_KEYS <= set(record)]
    if bad:
        raise ValueError(f"{path}: notebook records {bad} lack {sorted(RECORD_KEYS)}; {fix}")
    return dict(notebooks)


def write_index(out_dir: Path, records: Mapping[str, dict[str, Any]]) -> Path:
    return write_json(Path(out_dir) / INDEX, {"version": VERSION, "notebooks": dict(sorted(records.items()))})


def carried(index: Mapping[str, dict[str, Any]], present: set[str], out_dir: Path) -> dict[str, dict[str, Any]]:
    """Records of ``index`` whose notebook has no local run, after checking their files exist.

    Raises
    ------
    FileNotFoundError
        When a carried artefact's rendered file is missing from ``out_dir`` (it cannot be
        re-drawn without the run): the message names the file and the notebook to re-run.
    """
    out = {}
    for run_name, record in index.items():
        if run_name in present:
            continue
        for name, entry in record["artefacts"].items():
            for rel in files_of(name, entry["kind"]):
                if not (Path(out_dir) / rel).is_file():
                    raise FileNotFoundError(
                        f"{Path(out_dir) / rel} is missing and {run_name} has no results to redraw it from; "
                        f"re-run notebook {run_name} (python -m lib.runner {run_name} --preset ...) "
                        f"or remove it from {Path(out_dir) / INDEX}")
        out[run_name] = {**record, "carried": True}
    return out
