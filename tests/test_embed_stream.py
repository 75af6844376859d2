"""Streaming export: chunked Parquet reads give the in-memory ``encode_histories`` vectors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lib.data.sequences import history
from lib.embed.stream import encode_parquet
from lib.models.seq import SeqRecModel
from lib.train.causal import encode_histories
from _data_fixtures import SEQ_BLOCK


def test_streamed_vectors_equal_in_memory_encoding(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 40
    df = pd.DataFrame({"user_id": rng.permutation(10 * n_users)[:n_users],
                       "items": [rng.integers(1, n_items + 1, size=int(rng.integers(3, 15))).tolist()
                                 for _ in range(n_users)]})
    path = tmp_path / "sequences.parquet"
    pq.write_table(pa.Table.from_pandas(df), path, row_group_size=70)  # chunks cross row groups
    torch.manual_seed(0)
    model = SeqRecModel(n_items=n_items, arch="sasrec", hidden=16, layers=2, heads=2, max_len=8, dropout=0.0,
                        attn_dropout=0.0, **SEQ_BLOCK)
    expected = encode_histories(model, list(history(df)), 8)

    ids, emb = encode_parquet(model, path, 8, read_rows=64, batch_size=16, out=tmp_path / "emb.npy")
    assert ids.tolist() == df["user_id"].tolist()
    assert isinstance(emb, np.memmap) and emb.shape == (n_users, 16)
    np.testing.assert_allclose(emb, expected, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), expected, atol=1e-6)
    # users whose histories differ get different vectors: the comparison is not vacuous
    assert np.abs(expected[0] - expected[1]).max() > 1e-3
    in_ram_ids, in_ram = encode_parquet(model, path, 8, read_rows=1000, batch_size=512)
    assert in_ram_ids.tolist() == ids.tolist() and not isinstance(in_ram, np.memmap)
    np.testing.assert_allclose(in_ram, expected, atol=1e-6)
