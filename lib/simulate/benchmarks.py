"""Summaries of both benchmarks for notebook 01: naive vs true effects, overlap, graphs, metrics."""
from __future__ import annotations

from typing import Any

import pandas as pd
from omegaconf import DictConfig

from lib.causal.diagnostics import validate
from lib.simulate import hillstrom_obs, semisynth

LEVELS = ("low", "default", "high")


def _row(benchmark: str, setting: str, truth: float, naive: dict[str, float]) -> dict[str, Any]:
    return {"benchmark": benchmark, "setting": setting, "true_ate": truth, "naive_ate": naive["ate"],
            "naive_ci_low": naive["ci_low"], "naive_ci_high": naive["ci_high"], "abs_bias": abs(naive["ate"] - truth),
            "rel_bias": (naive["ate"] - truth) / abs(truth) if truth else float("nan"),
            "covered": bool(naive["ci_low"] <= truth <= naive["ci_high"]), "n": naive["n_treated"] + naive["n_control"]}


def summarise(sequences: pd.DataFrame, item_attributes: pd.DataFrame, hillstrom: pd.DataFrame,
              cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Build both benchmarks and return ``(summary, overlap, graphs, metrics)``.

    ``summary`` has one row per semi-synthetic level and per Hillstrom outcome; ``overlap``
    the true propensities by level (figure data); ``graphs`` both causal graphs as edge
    tables; ``metrics`` the naive estimate of this one seed
    (``benchmark.*`` keys; notebook 03 reports the ``ate.*`` / ``rct_gap.*`` families over seeds).
    A constant outcome or a single treatment arm is an :class:`lib.errors.InputError`, not a
    perfect estimate.
    """
    rows, overlap, metrics = [], [], {}
    for level in LEVELS:
        data = semisynth.simulate(sequences, item_attributes, cfg.simulate.semisynth, cfg.seed, level)
        validate(data.Y, data.T, None, None, source=f"{data.name} (level={level})")  # no estimate of nothing
        row = _row(data.name, f"level={level}", data.ate_true, data.meta["naive"])
        rows.append(row)
        overlap.append(pd.DataFrame({"level": level, "T": data.T, "propensity": data.propensity}))
        metrics.update({f"benchmark.{data.name}.seed{cfg.seed}.naive_abs_bias": row["abs_bias"],
                        f"benchmark.{data.name}.seed{cfg.seed}.naive_rel_bias": row["rel_bias"],
                        f"benchmark.{data.name}.seed{cfg.seed}.naive_covers_truth": float(row["covered"])})
    hcfg = cfg.simulate.hillstrom_obs
    for outcome in hcfg.outcomes:
        data = hillstrom_obs.confounded_subsample(hillstrom, hcfg, cfg.seed, outcome)
        validate(data.Y, data.T, None, None, source=f"{data.name} (outcome {outcome})")
        row = _row(data.name, f"{outcome}, arm={data.meta['arm']}, strength={hcfg.strength}", data.ate_true,
                   data.meta["naive"][data.meta["arm"]])
        ref = data.meta["rct_reference"][data.meta["arm"]]
        row.update({"true_ci_low": ref["ci_low"], "true_ci_high": ref["ci_high"]})
        rows.append(row)
        metrics[f"benchmark.hillstrom_obs.{outcome}.seed{cfg.seed}.naive_abs_error"] = row["abs_bias"]
    graphs = pd.concat([semisynth.semisynth_graph().to_frame().assign(benchmark=f"semisynth_{cfg.simulate.semisynth.dataset}"),
                        hillstrom_obs.hillstrom_graph().to_frame().assign(benchmark="hillstrom_obs")],
                       ignore_index=True)
    return pd.DataFrame(rows), pd.concat(overlap, ignore_index=True), graphs, metrics
