"""Stream users from a Parquet sequences table through a sequence encoder, chunk by chunk.

:func:`encode_histories` needs every history in memory at once (a Python list per user);
for a million users that is the largest object of an export. :func:`encode_parquet` reads
``read_rows`` users at a time (``pyarrow`` ``iter_batches``), encodes each user's history
``items[:-2]`` and writes the vectors of the chunk into a preallocated float32 array, in
memory or, with ``out``, a ``.npy`` file opened as a memory map; so only one chunk of
histories and, with ``out``, one chunk of vectors are resident at a time. The result equals
:func:`lib.train.causal.encode_histories` over the whole table (tests/test_embed_stream.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from torch import nn

from lib.train.causal import encode_histories


def encode_parquet(model: nn.Module, path: str | Path, max_len: int, read_rows: int, batch_size: int,
                   out: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(user_id, vectors)`` of every row of ``path``, encoded from ``items[:-2]``.

    Parameters
    ----------
    model : nn.Module
        Has ``encode(x) -> [B, H]`` (:class:`lib.models.seq.SeqRecModel`).
    path : path
        Parquet table with ``user_id`` and ``items`` (list of item ids, valid and test last).
    max_len : int
        Most recent items read per history.
    read_rows : int
        Users read from the file per chunk (bounds the histories in memory).
    batch_size : int
        Users per forward pass inside a chunk.
    out : path, optional
        ``.npy`` file receiving the vectors through a memory map (then returned memory-mapped).

    Examples
    --------
    >>> import pandas as pd, tempfile, torch
    >>> from lib.models.seq import SeqRecModel
    >>> m = SeqRecModel(n_items=9, arch="sasrec", hidden=8, layers=1, heads=2, max_len=4, dropout=0.0,
    ...                 attn_dropout=0.0, attn_implementation="sdpa", norm_first=True, ffn="relu", ff_mult=1,
    ...                 tie_weights=True, logit_multiple=1)
    >>> f = Path(tempfile.mkdtemp()) / "s.parquet"
    >>> pd.DataFrame({"user_id": [3, 5, 7], "items": [[1, 2, 3, 4], [5, 6, 7], [8, 9, 1, 2, 3]]}).to_parquet(f)
    >>> ids, emb = encode_parquet(m, f, 4, read_rows=2, batch_size=2)
    >>> ids.tolist(), emb.shape, emb.dtype
    ([3, 5, 7], (3, 8), dtype('float32'))
    """
    table = pq.ParquetFile(path)
    n = table.metadata.num_rows
    ids = np.empty(n, dtype=np.int64)
    emb: np.ndarray | None = None
    start = 0
    for batch in table.iter_batches(batch_size=read_rows, columns=["user_id", "items"]):
        histories = [items[:-2] for items in batch.column("items").to_pylist()]
        vectors = encode_histories(model, histories, max_len, batch_size)
        if emb is None:  # the width is known once the first chunk is encoded
            shape = (n, vectors.shape[1])
            emb = (np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=shape) if out is not None
                   else np.empty(shape, dtype=np.float32))
        stop = start + len(vectors)
        ids[start:stop] = batch.column("user_id").to_numpy()
        emb[start:stop] = vectors
        start = stop
    if emb is None:
        raise ValueError(f"{path}: no users to encode")
    if isinstance(emb, np.memmap):
        emb.flush()
    return ids, emb
