"""Leave-one-out splits, padding and samplers of lib.train.datamodule (plus the synthetic data the
training tests share: every user walks the catalogue in a fixed cycle, so the next item is learnable)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DistributedSampler

from lib.errors import InputError
from lib.io import write_json, write_parquet
from lib.train.datamodule import SeqDataModule, ShardSampler, attribute_table, left_pad


def cyclic_sequences(n_users: int = 64, n_items: int = 40, length: int = 12, seed: int = 0) -> pd.DataFrame:
    """Users walk 1..n_items in order from a random start: item t+1 = item t + 1 (mod n_items)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    items = [[int((s + t) % n_items + 1) for t in range(length)] for s in starts]
    return pd.DataFrame({"user_id": np.arange(n_users, dtype=np.int64) + 100, "items": items,
                         "valid_item": [s[-2] for s in items], "test_item": [s[-1] for s in items]})


def write_prepared(processed: Path, dataset: str = "synthetic", **kwargs) -> Path:
    """Write the prepared-data layout (sequences, item attributes, meta) of ``cyclic_sequences``."""
    df = cyclic_sequences(**kwargs)
    n_items = int(max(max(s) for s in df["items"]))
    folder = processed / "seq" / dataset
    write_parquet(df, folder / "sequences.parquet")
    attrs = pd.DataFrame({"item_id": np.arange(1, n_items + 1, dtype=np.int64),
                          "attr_ids": [[i % 5 + 1] for i in range(1, n_items + 1)]})
    write_parquet(attrs, folder / "item_attributes.parquet")
    write_json(folder / "meta.json", {"n_users": len(df), "n_items": n_items, "n_attrs": 5,
                                      "n_interactions": int(df["items"].map(len).sum())})
    return folder

LOADER = dict(batch_size=2, eval_batch_size=2, num_workers=0, seed=0)


def test_left_pad_keeps_most_recent_items():
    assert left_pad([[1, 2, 3, 4], [5]], 3).tolist() == [[2, 3, 4], [0, 0, 5]]


def test_splits_never_show_valid_or_test_items_to_training():
    df = pd.DataFrame({"user_id": [1, 2], "items": [[1, 2, 3, 4, 5], [6, 7, 8]],
                       "valid_item": [4, 7], "test_item": [5, 8]})
    dm = SeqDataModule(df, n_items=8, max_len=4, **LOADER)
    assert dm.train_set.tensors[0].tolist() == [[0, 0, 1, 2, 3], [0, 0, 0, 0, 6]]
    hist, target, seen = dm.valid_set.tensors
    assert hist.tolist() == [[0, 1, 2, 3], [0, 0, 0, 6]] and target.tolist() == [4, 7]
    assert seen.tolist() == [[1, 2, 3], [0, 0, 6]]
    hist, target, seen = dm.test_set.tensors
    assert hist.tolist() == [[1, 2, 3, 4], [0, 0, 6, 7]] and target.tolist() == [5, 8]


def test_history_removed_protocol_sees_the_whole_history_beyond_max_len():
    df = pd.DataFrame({"user_id": [1], "items": [[1, 2, 3, 4, 5, 6, 7]], "valid_item": [6], "test_item": [7]})
    dm = SeqDataModule(df, n_items=8, max_len=2, **LOADER)
    hist, _, seen = dm.test_set.tensors
    assert hist.tolist() == [[5, 6]] and seen.tolist() == [[1, 2, 3, 4, 5, 6]]


def test_bad_input_names_the_column():
    df = pd.DataFrame({"user_id": [1], "items": [[1, 2]], "valid_item": [1], "test_item": [2]})
    with pytest.raises(InputError, match="'items'.*fewer than 3"):
        SeqDataModule(df, n_items=5, max_len=4, **LOADER)
    with pytest.raises(InputError, match="'test_item' is missing"):
        SeqDataModule(df.drop(columns="test_item"), n_items=5, max_len=4, **LOADER)
    df = pd.DataFrame({"user_id": [1], "items": [[1, 2, 9]], "valid_item": [2], "test_item": [9]})
    with pytest.raises(InputError, match="outside 1..5"):
        SeqDataModule(df, n_items=5, max_len=4, **LOADER)


def test_shards_cover_every_user_once():
    shards = [list(ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))


def test_two_rank_batches_union_equals_single_process_batch():
    data = list(range(16))
    single = list(DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3))
    ranks = [list(DistributedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=3)) for r in range(2)]
    for step in range(4):  # global batch 4 = 2 ranks x 2
        assert sorted(single[4 * step: 4 * step + 4]) == sorted(ranks[0][2 * step: 2 * step + 2]
                                                                + ranks[1][2 * step: 2 * step + 2])


def test_attribute_table_rows_follow_item_ids():
    attrs = pd.DataFrame({"item_id": [2, 1], "attr_ids": [[3, 4], [5]]})
    assert attribute_table(attrs, 3).tolist() == [[0, 0], [5, 0], [3, 4], [0, 0]]


def test_prepared_layout_round_trips(tmp_path):
    from lib.config import compose
    from lib.train.datamodule import from_config

    write_prepared(tmp_path / "processed")
    cfg = compose("smoke", [f"paths.processed={tmp_path / 'processed'}", "trainer.dataset=synthetic"])
    dm, attrs, meta = from_config(cfg)
    assert dm.n_items == 40 and meta["n_items"] == 40 and attrs.shape == (41, 1)
    assert torch.equal(dm.user_ids, torch.arange(64) + 100)
