"""``paper/<preset>/RESULTS.md``: one page with provenance, headline numbers, tables and figures.

Built only from saved results (manifests, metrics, registered artefacts), never from the
clock or the machine rendering it, so the page is byte-identical when re-rendered.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import pandas as pd
from omegaconf import DictConfig

TITLES = {"table": "Tables", "figure": "Figures"}


def _fmt(value: Any, float_format: str) -> str:
    if value is None:
        return "n/a"
    return float_format % value if isinstance(value, float) else str(value)


def provenance_lines(manifests: Mapping[str, dict[str, Any]]) -> list[str]:
    """Git SHA(s), hardware and packages of the runs, one Markdown bullet each."""
    shas = sorted({f"{m['git']['sha'][:12]}{' (uncommitted changes)' if m['git'].get('dirty') else ''}"
                   for m in manifests.values()})
    hosts = sorted({f"{m['host']['platform']}, {m['host']['machine']}, {m['host']['cpus']} CPU cores"
                    for m in manifests.values()})
    torch = sorted({m["packages"].get("torch", "?") for m in manifests.values()})
    python = sorted({m["packages"].get("python", "?") for m in manifests.values()})
    return [f"- git commit: {', '.join(shas) or 'n/a'}",
            f"- hardware: {'; '.join(hosts) or 'n/a'}",
            f"- python {', '.join(python) or 'n/a'}, torch {', '.join(torch) or 'n/a'} (all versions in each "
            "run's `manifest.json`)"]


def headline(metrics: Mapping[str, Any], patterns: list[str]) -> pd.DataFrame:
    """Metrics whose key fully matches one of ``patterns``, in pattern then key order."""
    rows, seen = [], set()
    for pattern in patterns:
        regex = re.compile(pattern + r"\Z")
        for key in sorted(metrics):
            if key not in seen and regex.match(key):
                seen.add(key)
                rows.append({"metric": key, "value": metrics[key]})
    return pd.DataFrame(rows, columns=["metric", "value"])


def results_markdown(cfg: DictConfig, entries: Mapping[str, tuple[str, dict[str, Any]]],
                     metrics: Mapping[str, Any], manifests: Mapping[str, dict[str, Any]]) -> str:
    """The text of RESULTS.md.

    Parameters
    ----------
    cfg : DictConfig
        Composed config (preset name, ``report.float_format``, ``report.headline``).
    entries : mapping name -> (notebook run, artefact entry with ``kind``, ``caption`` and
        ``inline``: the Markdown of a short table, shown on the page, or None)
    metrics : merged flat metrics
    manifests : mapping notebook run -> its manifest summary (:func:`lib.report.index.manifest_summary`)
        plus ``carried``: True when the run comes from the previous render
    """
    ff = cfg.report.float_format
    preset = cfg.preset_name
    lines = [f"# Results ({preset} preset)", "",
             f"Rendered by `python -m lib.report --preset {preset}` from the saved runs in `results/{preset}/`; "
             f"`metrics.json` holds every number below as flat keys.", ""]
    lines += [f"- preset: `{preset}`", *provenance_lines(manifests)]
    lines += ["", "## Wall time", "", "| notebook | status | rendered from | wall time (s) |", "|---|---|---|---:|"]
    for name, manifest in sorted(manifests.items()):
        source = "earlier render (`index.json`)" if manifest.get("carried") else f"`results/{preset}/{name}`"
        lines.append(f"| {name} | {manifest.get('status', 'n/a')} | {source} | "
                     f"{_fmt(manifest.get('wall_time_s'), '%.1f')} |")
    if "walltime.study_s" in metrics:
        lines.append(f"| **total** | | | {_fmt(metrics['walltime.study_s'], '%.1f')} |")
    lines += _resumed_lines(metrics)
    kept = sorted(name for name, manifest in manifests.items() if manifest.get("carried"))
    if kept:
        lines += ["", f"Carried from the previous render of `paper/{preset}/` (their runs are not in "
                      f"`results/{preset}/` here; numbers, captions and files unchanged): {', '.join(kept)}."]

    top = headline(metrics, list(cfg.report.headline))
    lines += ["", "## Headline numbers", ""]
    if len(top):
        lines.append(top.to_markdown(index=False, floatfmt=ff.lstrip("%")))
    else:
        lines.append("No headline metric was recorded.")

    for kind in ("table", "figure"):
        names = [n for n, (_, e) in entries.items() if e["kind"] == kind]
        if not names:
            continue
        lines += ["", f"## {TITLES[kind]}"]
        for name in sorted(names, key=lambda n: (entries[n][0], n)):
            run_name, entry = entries[name]
            lines += ["", f"### {name}", "", f"*{run_name}.* {entry['caption'].strip()}", ""]
            if kind == "table":
                if entry.get("inline"):
                    lines += [entry["inline"], ""]
                lines.append(f"Full table: [Markdown](tables/{name}.md) · [LaTeX](tables/{name}.tex)")
            else:
                lines.append(f"![{name}](figures/{name}.png)  ([PDF](figures/{name}.pdf))")
    return "\n".join(lines) + "\n"


def _resumed_lines(metrics: Mapping[str, Any]) -> list[str]:
    """What the wall-time table leaves out: blocks of a resumable notebook finished by earlier runs.

    >>> _resumed_lines({"walltime.03_x_blocks_s": 100.0, "walltime.03_x_blocks_resumed_s": 60.0})[1][:72]
    'Notebook 03_x resumes from finished blocks: they took 100 s in all, 60 s'
    """
    lines = []
    for key in sorted(metrics):
        match = re.fullmatch(r"walltime\.(.+)_blocks_s", key)
        if not match:
            continue
        name, total = match.group(1), float(metrics[key])
        resumed = float(metrics.get(f"walltime.{name}_blocks_resumed_s", 0.0))
        lines += ["", f"Notebook {name} resumes from finished blocks: they took {total:.0f} s in all, "
                      f"{resumed:.0f} s of it in earlier, interrupted runs of the same code and inputs, which the "
                      f"table above (this run's wall time) does not count."]
    return lines
