"""Embedding export at scale: users/s and peak memory of encoding 1M users' histories.

A synthetic ``sequences.parquet`` (``user_id``, ``items``) of ``n_users`` users is written once;
then each mode encodes every user with a freshly initialised encoder of the preset's size in
a child process of its own, so the reported peak RSS belongs to that mode alone:

* ``stream`` — :func:`lib.embed.stream.encode_parquet`: ``model.embed.stream.read_rows`` users
  at a time, vectors written into a ``.npy`` memory map;
* ``in_memory`` — the whole table as Python lists, then :func:`encode_histories` (what the
  export did before streaming).

Knobs: ``conf/bench/embed_stream.yaml``; ``--n-users`` and ``--modes`` override them.
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
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from lib.bench.knobs import knobs
from lib.config import REPO_ROOT, compose



def write_table(path: Path, n_users: int, n_items: int, length: tuple[int, int], row_group_size: int,
                seed: int) -> None:
    """Random histories built as Arrow list arrays (no per-user Python objects)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length[0], length[1], size=n_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    items = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.integers(1, n_items + 1, size=offsets[-1])))
    table = pa.table({"user_id": np.arange(n_users, dtype=np.int64), "items": items})
    pq.write_table(table, path, row_group_size=row_group_size)


def encode_one(job: dict[str, Any]) -> dict[str, Any]:
    """In the child: build the encoder, encode the table in ``job["mode"]``, report rate and peak RSS."""
    import torch

    from lib.data.sequences import history
    from lib.embed.stream import encode_parquet
    from lib.models.seq import build_model
    from lib.train.causal import encode_histories

    cfg = compose(job["preset"])
    torch.manual_seed(job["seed"])
    model = build_model(cfg.model, job["n_items"])
    stream = cfg.model.embed.stream
    start, cpu = time.perf_counter(), time.process_time()
    if job["mode"] == "stream":
        ids, emb = encode_parquet(model, job["table"], model.max_len, int(stream.read_rows), int(stream.batch_size),
                                  out=job["out"])
    else:
        df = pd.read_parquet(job["table"])
        df["items"] = [list(map(int, s)) for s in df["items"]]
        ids, emb = df["user_id"].to_numpy(), encode_histories(model, list(history(df)), model.max_len,
                                                              int(stream.batch_size))
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    # users per CPU-second as well: on a shared machine wall time moves with other jobs' load
    return {"users": int(len(ids)), "dim": int(emb.shape[1]), "seconds": seconds, "users_per_s": len(ids) / seconds,
            "cpu_s": cpu_s, "users_per_cpu_s": len(ids) / cpu_s,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def run(bcfg: DictConfig) -> pd.DataFrame:
    rows = []
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **{v: str(bcfg.threads) for v in
           ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "sequences.parquet"
        write_table(table, int(bcfg.n_users), int(bcfg.n_items), tuple(bcfg.length), int(bcfg.row_group_size),
                    int(bcfg.seed))
        for mode in bcfg.modes:
            job = {"preset": bcfg.preset, "table": str(table), "out": str(Path(tmp) / "emb.npy"), "mode": mode,
                   "n_items": int(bcfg.n_items), "seed": int(bcfg.seed)}
            proc = subprocess.run([sys.executable, "-m", "lib.bench.embed_stream", "--child", json.dumps(job)],
                                  capture_output=True, text=True, env=env)
            out = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                   else {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:160]})
            rows.append({"mode": mode, "n_users": int(bcfg.n_users), **out})
            print(f"[embed_stream] {mode}: {out}", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, help="override the config's n_users")
    parser.add_argument("--modes", nargs="+", choices=("stream", "in_memory"), help="override the config's modes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(encode_one(json.loads(args.child))))
        return None
    bcfg = knobs("embed_stream", args, ("n_users", "modes"))
    df = run(bcfg)
    print(df.to_markdown(index=False, floatfmt=".3g"))
    return df


if __name__ == "__main__":
    main()
