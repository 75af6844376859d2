"""Causal fitting at scale: fit time and peak memory of EconML estimators from 10k to 1M units.

Semi-synthetic data over real histories: the users of ``dataset`` (S3-Rec Beauty by
default) are embedded once by their bag of items ``items[:-2]`` (tf-idf, TruncatedSVD to
``d`` components, the project's ``bag_svd`` representation), then ``n`` users are drawn with
replacement and fresh ``T`` and ``Y`` are simulated on them, confounded through ``W``::

    T ~ Bernoulli(sigmoid(c * W[:, :4] @ a)),  Y = effect * (1 + 0.5 x0) T + c * W[:, :4] @ b + noise

Every (estimator, d, n) is fitted by :func:`lib.causal.estimators.fit_arms` in a child
process of its own, so the reported peak RSS (``ru_maxrss``: data + fit) belongs to that
configuration alone; the child runs under an address-space limit (``memory_cap_gb``) and a
wall-clock cap (``time_cap_s``), and a configuration that hits either is reported as
``does not fit`` / ``time cap`` instead of stopping the benchmark. The table ends with the
log-log slope of CPU seconds against n per estimator and d (1.0 = linear).

Knobs: ``conf/bench/causal_scale.yaml``; flags override them::

    python -m lib.bench.causal_scale --estimators linear_dml --dims 64 --sizes 10000 100000 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.bench.knobs import knobs
from lib import config
from lib.config import REPO_ROOT, compose



def embed_users(cfg: DictConfig, dataset: str, dims: list[int], seed: int) -> dict[int, np.ndarray]:
    """Bag-of-items SVD embedding of every real user of ``dataset``, one matrix per width."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from lib.data.sequences import history, read_sequences

    seqs = read_sequences(Path(cfg.paths.data_root) / config.dataset(cfg, dataset, "dataset").files.sequences,
                          min_length=cfg.data.sequences.min_length)
    bags = TfidfVectorizer(analyzer=lambda items: [str(i) for i in items]).fit_transform(history(seqs))
    out = {}
    for d in dims:
        Z = TruncatedSVD(n_components=d, random_state=seed).fit_transform(bags)
        out[d] = ((Z - Z.mean(0)) / Z.std(0)).astype(np.float64)
    return out


def simulate(users: np.ndarray, n: int, effect: float, confounding: float, seed: int) -> tuple[np.ndarray, ...]:
    """Draw ``n`` users with replacement and fresh confounded ``(Y, T, X, W)``.

    >>> Y, T, X, W = simulate(np.random.default_rng(0).normal(size=(50, 8)), 1000, 1.0, 1.0, 0)
    >>> W.shape, X.shape, sorted(np.unique(T).tolist())
    ((1000, 8), (1000, 2), [0, 1])
    """
    rng = np.random.default_rng(seed)
    W = users[rng.integers(0, len(users), size=n)]
    X = rng.normal(size=(n, 2))
    conf = confounding * W[:, :4]
    T = (rng.random(n) < 1 / (1 + np.exp(-conf @ np.array([0.5, -0.4, 0.3, 0.2])))).astype(np.int64)
    Y = effect * (1 + 0.5 * X[:, 0]) * T + conf @ np.array([1.0, 0.5, -0.5, 0.25]) + rng.normal(size=n)
    return Y, T, X, W


def fit_one(job: dict[str, Any]) -> dict[str, Any]:
    """In the child: simulate, fit once, report seconds, ATE and peak RSS."""
    from lib.causal.estimators import fit_arms

    ccfg = compose(job["preset"], job["causal_overrides"]).causal
    Y, T, X, W = simulate(np.load(job["users"], mmap_mode="r"), job["n"], job["effect"], job["confounding"],
                          job["seed"])
    before, start = _cpu_seconds(), time.perf_counter()
    res, _, _ = fit_arms(job["estimator"], Y, T, X, W, ccfg, seed=job["seed"])
    seconds, cpu_s = time.perf_counter() - start, _cpu_seconds() - before
    return {"seconds": seconds, "cpu_s": cpu_s, "ate": float(res[1][0]),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (a fit's cost independent of other load on the machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(job: dict[str, Any], time_cap_s: float, memory_cap_gb: float, threads: int) -> dict[str, Any]:
    """One configuration in its own process, under the memory and time caps."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **{v: str(threads) for v in
           ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    cap = int(memory_cap_gb * 2 ** 30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        proc = subprocess.run([sys.executable, "-m", "lib.bench.causal_scale", "--child", json.dumps(job)],
                              capture_output=True, text=True, timeout=time_cap_s, env=env, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return {"status": f"time cap ({time_cap_s:.0f} s)"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        fits = "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr or proc.returncode == -9
        return {"status": f"does not fit in {memory_cap_gb:g} GB" if fits else f"failed: {tail[0][:120]}"}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


def slopes(df: pd.DataFrame) -> pd.Series:
    """Least-squares slope of log(CPU seconds) on log(n) per (estimator, d), over the finished fits.

    CPU time rather than wall time: on a shared machine the wall time of a fit moves with the
    other jobs' load, its CPU time does not.

    >>> df = pd.DataFrame({"estimator": "e", "d": 1, "n": [10, 100, 1000], "cpu_s": [1.0, 10.0, 100.0],
    ...                    "status": "ok"})
    >>> round(float(slopes(df).iloc[0]), 6)
    1.0
    """
    ok = df[df["status"] == "ok"]
    return ok.groupby(["estimator", "d"]).apply(
        lambda g: float(np.polyfit(np.log(g["n"]), np.log(g["cpu_s"]), 1)[0]) if len(g) > 1 else np.nan,
        include_groups=False).rename("slope")


def run(bcfg: DictConfig) -> pd.DataFrame:
    """Every (d, estimator, n) of ``bcfg`` (the benchmark config); one row each, slope attached."""
    cfg = compose(bcfg.preset)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        embedded = embed_users(cfg, bcfg.dataset, list(bcfg.dims), bcfg.seed)
        for d in bcfg.dims:
            users = Path(tmp) / f"users_{d}.npy"
            np.save(users, embedded[d])
            for estimator in bcfg.estimators:
                for n in bcfg.sizes:
                    job = {"preset": bcfg.preset, "causal_overrides": list(bcfg.causal_overrides), "users": str(users),
                           "n": int(n), "estimator": estimator, "effect": bcfg.effect,
                           "confounding": bcfg.confounding, "seed": bcfg.seed}
                    out = run_child(job, bcfg.time_cap_s, bcfg.memory_cap_gb, bcfg.threads)
                    rows.append({"estimator": estimator, "d": d, "n": n, **out})
                    print(f"[causal_scale] {estimator} d={d} n={n}: {out}", flush=True)
    df = pd.DataFrame(rows)
    for col in ("seconds", "cpu_s", "peak_gb", "ate"):
        if col not in df:
            df[col] = np.nan
    return df.join(slopes(df), on=["estimator", "d"])


def main(argv: list[str] | None = None) -> pd.DataFrame | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="+", help="override the config's estimators")
    parser.add_argument("--sizes", nargs="+", type=int, help="override the config's n values")
    parser.add_argument("--dims", nargs="+", type=int, help="override the config's widths d")
    parser.add_argument("--time-cap", type=float, dest="time_cap_s", help="seconds per fit before 'time cap'")
    parser.add_argument("--memory-cap-gb", type=float, help="address-space limit per fit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(fit_one(json.loads(args.child))))
        return None
    bcfg = knobs("causal_scale", args, ("estimators", "sizes", "dims", "time_cap_s", "memory_cap_gb"))
    df = run(bcfg)
    print(df[["estimator", "d", "n", "status", "seconds", "cpu_s", "peak_gb", "ate", "slope"]]
          .to_markdown(index=False, floatfmt=".3g"))
    return df


if __name__ == "__main__":
    main()
