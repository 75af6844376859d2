"""Fit time of LinearDML and CausalForestDML against sample size and embedding width.

Fits the estimators of ``conf/bench/causal_fit.yaml`` (linear nuisances, ``cv=2``, ``n_jobs=2``:
the two-core budget of the project machine) on synthetic confounded data with an embedding-like
dense ``W`` (64 or 384 columns) and 2 effect modifiers, at n = 5k, 20k, 50k (``--quick``: the
file's quick sizes). Prints seconds and the growth ratio against the smallest n measured in the
same run, so the numbers compare within one machine and one load.

Scale-out path: the cross-fitting of every EconML DML / DR estimator can run its folds as
Ray tasks. Install ``ray`` and construct the estimator with ``use_ray=True`` (optionally
``ray_remote_func_options={"num_cpus": ...}``), e.g.
``LinearDML(model_y=..., model_t=..., discrete_treatment=True, cv=5, use_ray=True)``;
EconML then calls ``ray.init()`` if no cluster is connected and fits the ``cv`` nuisance
folds in parallel on the cluster. The final stage (and the forest of CausalForestDML, which
parallelises over trees with ``n_jobs``) still runs on the driver.

Run: ``python -m lib.bench.causal_bench [--quick] [--sizes N ...] [--dims D ...]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.bench.knobs import knobs
from lib.causal.estimators import fit_arms
from lib.config import compose


def _data(n: int, dim: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, dim)).astype(np.float64)
    X = rng.normal(size=(n, 2))
    T = (rng.random(n) < 1 / (1 + np.exp(-W[:, :4].sum(axis=1) / 2))).astype(np.int64)
    Y = (1 + X[:, 0]) * T + W[:, :4].sum(axis=1) + rng.normal(size=n)
    return Y, T, X, W


def run(bcfg: DictConfig) -> pd.DataFrame:
    """Seconds per fit for every (estimator, dim, n) of ``bcfg`` with growth vs the smallest n of the same dim."""
    ccfg = compose(bcfg.preset, list(bcfg.causal_overrides)).causal
    sizes, dims, seed = list(bcfg.sizes), list(bcfg.dims), int(bcfg.seed)
    for name in bcfg.estimators:   # warm-up: imports and first-call costs stay out of the table
        fit_arms(name, *_data(int(bcfg.warmup_n), dims[0], seed), ccfg, seed=seed)
    rows = []
    for dim in dims:
        for n in sizes:
            Y, T, X, W = _data(n, dim, seed)
            for name in bcfg.estimators:
                start = time.perf_counter()
                fit_arms(name, Y, T, X, W, ccfg, seed=seed)
                rows.append(dict(estimator=name, dim=dim, n=n, seconds=time.perf_counter() - start))
    df = pd.DataFrame(rows)
    base = df[df["n"] == min(sizes)].set_index(["estimator", "dim"])["seconds"]
    df["growth_vs_smallest_n"] = [s / base[(e, d)] for e, d, s in zip(df["estimator"], df["dim"], df["seconds"])]
    df["n_ratio"] = df["n"] / min(sizes)
    return df


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick sizes and widths of the config")
    parser.add_argument("--sizes", nargs="+", type=int, help="override the config's n values")
    parser.add_argument("--dims", nargs="+", type=int, help="override the config's widths")
    args = parser.parse_args(argv)
    bcfg = knobs("causal_fit", args, ("sizes", "dims"))
    if args.quick:   # the quick sizes and widths, unless given as flags
        bcfg.sizes, bcfg.dims = args.sizes or bcfg.quick.sizes, args.dims or bcfg.quick.dims
    df = run(bcfg)
    print(df.to_markdown(index=False, floatfmt=".2f"))
    return df


if __name__ == "__main__":
    main()
