"""Fit time of LinearDML and CausalForestDML against sample size and embedding width.

Fits both estimators (linear nuisances, ``cv=2``, ``n_jobs=2``: the two-core budget of the
project machine) on synthetic confounded data with an embedding-like dense ``W`` of 64 or
384 columns and 2 effect modifiers, at n = 5k, 20k, 50k (``--quick``: 2k, 5k with 64/128
columns). Prints seconds and the growth ratio against the smallest n measured in the same
run, so the numbers compare within one machine and one load.

Scale-out path: the cross-fitting of every EconML DML / DR estimator can run its folds as
Ray tasks. Install ``ray`` and construct the estimator with ``use_ray=True`` (optionally
``ray_remote_func_options={"num_cpus": ...}``), e.g.
``LinearDML(model_y=..., model_t=..., discrete_treatment=True, cv=5, use_ray=True)``;
EconML then calls ``ray.init()`` if no cluster is connected and fits the ``cv`` nuisance
folds in parallel on the cluster. The final stage (and the forest of CausalForestDML, which
parallelises over trees with ``n_jobs``) still runs on the driver.

Run: ``python -m lib.bench.causal_bench [--quick]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from lib.causal.estimators import fit_arms
from lib.config import compose


def _data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, dim)).astype(np.float64)
    X = rng.normal(size=(n, 2))
    T = (rng.random(n) < 1 / (1 + np.exp(-W[:, :4].sum(axis=1) / 2))).astype(np.int64)
    Y = (1 + X[:, 0]) * T + W[:, :4].sum(axis=1) + rng.normal(size=n)
    return Y, T, X, W


def run(sizes: list[int], dims: list[int], n_jobs: int = 2, n_trees: int = 100) -> pd.DataFrame:
    """Seconds per fit for every (estimator, dim, n) with growth vs the smallest n of the same dim."""
    ccfg = compose("smoke", ["causal.cv=2", f"causal.n_jobs={n_jobs}", f"causal.forest.n_estimators={n_trees}",
                             "causal.forest.min_samples_leaf=10"]).causal
    for name in ("linear_dml", "causal_forest_dml"):   # warm-up: imports and first-call costs stay out of the table
        fit_arms(name, *_data(500, dims[0]), ccfg, seed=0)
    rows = []
    for dim in dims:
        for n in sizes:
            Y, T, X, W = _data(n, dim)
            for name in ("linear_dml", "causal_forest_dml"):
                start = time.perf_counter()
                fit_arms(name, Y, T, X, W, ccfg, seed=0)
                rows.append(dict(estimator=name, dim=dim, n=n, seconds=time.perf_counter() - start))
    df = pd.DataFrame(rows)
    base = df[df["n"] == min(sizes)].set_index(["estimator", "dim"])["seconds"]
    df["growth_vs_smallest_n"] = [s / base[(e, d)] for e, d, s in zip(df["estimator"], df["dim"], df["seconds"])]
    df["n_ratio"] = df["n"] / min(sizes)
    return df


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    sizes, dims = ([2000, 5000], [64, 128]) if args.quick else ([5000, 20000, 50000], [64, 384])
    df = run(sizes, dims, args.n_jobs)
    print(df.to_markdown(index=False, floatfmt=".2f"))
    return df


if __name__ == "__main__":
    main()
