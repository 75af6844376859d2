"""Turn a collected sweep into the long table its ablation figure is drawn from.

The sweep file's ``summary:`` block says what to tabulate::

    summary:
      x: causal.hillstrom.max_units      # varied setting on the x axis (a grid / run key)
      metrics: 'rct_gap\\.hillstrom\\.visit\\.[^.]+\\.linear_dml\\.abs_error'   # regex of metric columns
      series_strip: 'text_[a-z]+\\.'      # optional regex cut from metric names to form the series
      plot: ablation_curve               # or ablation_bars (categorical x), in lib.report.plots
      xlabel: units used for estimation
      ylabel: "|ATE - RCT ATE|"
      caption: Two or three sentences for RESULTS.md.

Seeds are averaged (mean, standard deviation, count); every other varied setting that
takes more than one value at some ``x`` becomes part of the series label, so nothing is
silently pooled (settings that move together with ``x`` do not split the series).
``series_strip`` lets metrics whose names carry the ``x`` value (e.g. the representation
``text_lora`` in ``rct_gap.hillstrom.visit.text_lora.ols.abs_error``) form one series.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import pandas as pd

SUMMARY_KEYS = {"x", "metrics", "series_strip", "plot", "xlabel", "ylabel", "caption"}


def summarise(table: pd.DataFrame, summary: Mapping[str, Any], params: list[str]) -> pd.DataFrame:
    """Long frame ``x, series, mean, std, n, xlabel, ylabel`` over the ok runs of ``table``.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`lib.sweep.collect`.
    summary : mapping
        The sweep file's ``summary`` block (keys ``x``, ``metrics`` required).
    params : list of str
        Varied parameter columns of ``table`` (without the leading ``+``).

    Examples
    --------
    >>> t = pd.DataFrame({"status": "ok", "n": [10, 10, 20, 20], "seed": [0, 1, 0, 1],
    ...                   "err.a": [1.0, 3.0, 0.5, 0.5]})
    >>> summarise(t, {"x": "n", "metrics": r"err\\..*"}, ["n", "seed"])[["x", "series", "mean", "n"]]
        x series  mean  n
    0  10  err.a   2.0  2
    1  20  err.a   0.5  2

    Metrics named after the ``x`` value join one series through ``series_strip``:

    >>> t = pd.DataFrame({"status": "ok", "rep": ["a", "b"], "gap.a.ols": [0.1, None],
    ...                   "gap.b.ols": [None, 0.3]})
    >>> summarise(t, {"x": "rep", "metrics": r"gap\\..*", "series_strip": r"\\.[ab]\\b"}, ["rep"])[
    ...     ["x", "series", "mean"]]
       x   series  mean
    0  a  gap.ols   0.1
    1  b  gap.ols   0.3
    """
    unknown = set(summary) - SUMMARY_KEYS
    if unknown:
        raise ValueError(f"summary: unknown keys {sorted(unknown)}; allowed {sorted(SUMMARY_KEYS)}")
    x = str(summary["x"]).lstrip("+")
    if x not in table.columns:
        raise ValueError(f"summary.x {x!r} is not a varied setting of the sweep (columns: {params})")
    regex = re.compile(str(summary["metrics"]) + r"\Z")
    ok = table[table["status"] == "ok"]
    metric_cols = sorted(c for c in ok.columns if regex.match(str(c)))
    if not metric_cols:
        raise ValueError(f"summary.metrics {summary['metrics']!r} matches no metric of the sweep's runs")
    x_key = ok[x].astype(str)
    others = [p for p in params if p not in (x, "seed") and p in ok.columns
              and (ok[p].astype(str).groupby(x_key).nunique() > 1).any()]
    long = ok.melt(id_vars=[x, *others], value_vars=metric_cols, var_name="metric", value_name="value")
    long = long.dropna(subset=["value"])
    strip = summary.get("series_strip")
    long["series"] = long["metric"].str.replace(str(strip), "", regex=True) if strip else long["metric"]
    for col in others:
        long["series"] = long["series"] + f" | {col}=" + long[col].astype(str)
    # str(x) groups list-valued settings (e.g. [text_lora]) as well as scalars
    long["x_key"] = long[x].astype(str)
    grouped = long.groupby(["series", "x_key"], sort=False)
    out = grouped.agg(x=(x, "first"), mean=("value", "mean"), std=("value", "std"),
                      n=("value", "count")).reset_index()
    out = out[["x", "series", "mean", "std", "n"]]
    out["x"] = out["x"].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    out["xlabel"] = summary.get("xlabel", x)
    out["ylabel"] = summary.get("ylabel", "value")
    return out.sort_values(["series", "x"], key=lambda s: s.map(_sort_key)).reset_index(drop=True)


def _sort_key(value: Any) -> Any:
    # numbers in numeric order, everything else after them in text order
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))
