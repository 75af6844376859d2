"""Render ``paper/<preset>/`` from saved notebook runs, without recomputing anything.

For every run folder ``results/<preset>/<NN_name>/``: each registered table becomes
``tables/<name>.md`` and ``.tex``, each registered figure ``figures/<name>.png`` and
``.pdf`` (drawn by its plot function from the saved data); all ``metrics.json`` merge into
one flat ``metrics.json`` with ``walltime.<notebook>_s`` from the manifests; and
``RESULTS.md`` lists it all on one page. Outputs depend only on the saved results, so
re-rendering gives byte-identical files; files of artefacts no longer registered are
removed. ``index.json`` records what each notebook contributed, so notebooks whose runs
are not on this machine are carried from the previous render (:mod:`lib.report.index`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lib.io import read_json, save_figure, write_json, write_text  # noqa: E402
from lib.report import artefacts  # noqa: E402
from lib.report.index import carried, files_of, load_index, manifest_summary, write_index  # noqa: E402
from lib.report.metrics import check_metrics_schema, merge_metrics, read_run_metrics  # noqa: E402
from lib.report.results_md import results_markdown  # noqa: E402

RUN_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+$")


@dataclass
class Rendered:
    """What one :func:`render` call wrote."""

    out_dir: Path
    tables: list[str]
    figures: list[str]
    metrics: dict[str, Any]
    missing_families: list[str]
    carried: list[str]


def find_runs(results_dir: Path) -> dict[str, Path]:
    """Notebook run folders (``NN_name``) under ``results_dir`` that finished (have a manifest)."""
    if not results_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(results_dir.iterdir())
            if p.is_dir() and RUN_NAME.match(p.name) and (p / "manifest.json").is_file()}


def table_text(frame: pd.DataFrame, float_format: str, name: str = "table", caption: str = "") -> tuple[str, str]:
    """Markdown and LaTeX text of a table (numbers formatted with ``float_format``).

    The LaTeX is a floating ``table`` with the caption and label ``tab:<name>``; cell
    text is escaped (names such as ``seq_pretrained`` hold underscores). A missing value (NaN, NA) is a
    blank cell in Markdown and ``--`` in LaTeX.

    >>> print(table_text(pd.DataFrame({"HR@5": [0.031, float("nan")], "n_seeds": pd.array([3, None], "Int64")}),
    ...                  "%.4g")[0])
    |   HR@5 |   n_seeds |
    |-------:|----------:|
    |  0.031 |         3 |
    |        |           |
    <BLANKLINE>
    """
    fmt = float_format.lstrip("%")
    cells = frame.astype(object).where(frame.notna(), None)    # tabulate prints NaN as "nan" and NA as "<NA>"
    markdown = cells.to_markdown(index=False, floatfmt=fmt, missingval="") + "\n"
    latex = frame.to_latex(index=False, float_format=lambda v: float_format % v, na_rep="--", escape=True,
                           caption=_latex_escape(caption) or None, label=f"tab:{name}")
    return markdown, latex


def _latex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text.strip()


def render(cfg: DictConfig, results_dir: str | Path | None = None, out_dir: str | Path | None = None) -> Rendered:
    """Write tables, figures, ``metrics.json`` and ``RESULTS.md`` for ``cfg.preset_name``.

    Parameters
    ----------
    cfg : DictConfig
        Composed config; ``cfg.report`` sets number format and headline keys.
    results_dir : path, optional
        Default ``cfg.paths.results``.
    out_dir : path, optional
        Default ``cfg.paths.paper``.
    """
    results_dir = Path(results_dir or cfg.paths.results)
    out_dir = Path(out_dir or cfg.paths.paper)
    runs = find_runs(results_dir)
    kept = carried(load_index(out_dir), set(runs), out_dir)
    if not runs and not kept:
        raise FileNotFoundError(f"no results in {results_dir} and no earlier render in {out_dir}; "
                                "run the notebooks first (make reproduce)")
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    sources = {run_name: artefacts.load(run_dir) for run_name, run_dir in runs.items()}
    sources.update({run_name: record["artefacts"] for run_name, record in kept.items()})
    for run_name in sorted(sources):
        for name, entry in sources[run_name].items():
            if name in entries:
                raise ValueError(f"artefact {name!r} is registered by both {entries[name][0]} and {run_name}; "
                                 "artefact names must be unique across notebooks")
            entries[name] = (run_name, entry)

    tables, figures = [], []
    fmt, max_rows = cfg.report.float_format, int(cfg.report.max_inline_rows)
    for name, (run_name, entry) in entries.items():
        if run_name in kept:  # rendered earlier; its data is not on this machine
            (tables if entry["kind"] == "table" else figures).append(name)
        elif entry["kind"] == "table":
            frame = entry["frame"]
            markdown, latex = table_text(frame, fmt, name, entry["caption"])
            write_text(out_dir / "tables" / f"{name}.md", markdown)
            write_text(out_dir / "tables" / f"{name}.tex", latex)
            entry["inline"] = frame.to_markdown(index=False, floatfmt=fmt.lstrip("%")) if len(frame) <= max_rows else None
            tables.append(name)
        else:
            try:
                fig = artefacts.plot_function(entry["plot"])(entry["frame"])
            except Exception as exc:  # name the artefact: the saved data may predate the plot code
                raise RuntimeError(f"figure {name!r} of {run_name}: {entry['plot']} failed on the saved data "
                                   f"({type(exc).__name__}: {exc}); re-run notebook {run_name} if its results "
                                   "are older than the plot function") from exc
            save_figure(fig, out_dir / "figures" / name)
            plt.close(fig)
            entry["inline"] = None
            figures.append(name)
    _remove_stale(out_dir / "tables", {Path(f).name for n in tables for f in files_of(n, "table")})
    _remove_stale(out_dir / "figures", {Path(f).name for n in figures for f in files_of(n, "figure")})

    records = {name: {"manifest": manifest_summary(read_json(path / "manifest.json")),
                      "metrics": read_run_metrics(path),
                      "artefacts": {a: {"kind": e["kind"], "caption": e["caption"], "inline": e["inline"]}
                                    for a, (r, e) in entries.items() if r == name}}
               for name, path in runs.items()}
    records.update(kept)
    metrics = merge_metrics({name: (r["metrics"], r["manifest"].get("wall_time_s")) for name, r in records.items()})
    write_json(out_dir / "metrics.json", metrics)
    write_index(out_dir, records)
    manifests = {name: {**r["manifest"], "carried": bool(r.get("carried"))} for name, r in records.items()}
    write_text(out_dir / "RESULTS.md", results_markdown(cfg, entries, metrics, manifests))
    return Rendered(out_dir, sorted(tables), sorted(figures), metrics, check_metrics_schema(metrics), sorted(kept))


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete rendered files whose artefact is no longer registered (the folder mirrors the results)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()
