"""Leave-one-out item-sequence data for Lightning (one ``LightningDataModule`` per source).

Splits per user, with ``items`` the full time-ordered history:

* train: the sequence ``items[:-2]`` (its last ``max_len + 1`` items); SASRec predicts every
  next item inside it, BERT4Rec masks items of its last ``max_len``;
* validation: predict ``valid_item`` from ``items[:-2]``;
* test: predict ``test_item`` from ``items[:-1]``.

So no model ever trains on a validation or test item, and the test input contains the
validation item only as past behaviour.

Sampling is explicit rather than Lightning's automatic sampler replacement: training uses a
``DistributedSampler`` seeded with ``cfg.seed`` for any world size (a single process gets
the same permutation as the union of N processes, which makes 1 x batch B and
N x batch B/N runs see the same global batches), and evaluation shards users
``rank::world`` without padding, so every user is scored exactly once.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from lib.errors import InputError


def left_pad(seqs: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    """``[N, length]`` LongTensor of the last ``length`` items of each sequence, left-padded with 0.

    >>> left_pad([[1, 2, 3], [4]], 2).tolist()
    [[2, 3], [0, 4]]
    """
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for i, seq in enumerate(seqs):
        tail = list(seq)[-length:] if length > 0 else []
        if tail:
            out[i, length - len(tail):] = tail
    return torch.from_numpy(out)


def item_id_tensor(padded: np.ndarray | torch.Tensor, n_items: int, source: str) -> torch.Tensor:
    """``[n, L]`` LongTensor of left-padded item ids, validated (0 = padding, items ``1..n_items``).

    Float arrays holding whole numbers are accepted, because EconML may cast its ``W`` to float64.

    >>> item_id_tensor(np.array([[0.0, 3.0], [1.0, 2.0]]), 3, "W").tolist()
    [[0, 3], [1, 2]]
    >>> item_id_tensor(np.array([[0, 4]]), 3, "W")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    lib.errors.InputError: W: column 'item ids' holds 4 at row 0, column 1, outside 0..3...
    """
    a = padded.numpy() if isinstance(padded, torch.Tensor) else np.asarray(padded)
    fix = "pass left-padded item ids (lib.train.datamodule.left_pad) of the catalogue the encoder was built for"
    if a.ndim != 2 or a.dtype.kind not in "iuf":
        raise InputError(source, "item ids", f"must be a 2-D numeric array [units, max_len], got shape "
                         f"{a.shape} of dtype {a.dtype}", fix)
    bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a > n_items) if a.dtype.kind == "f" \
        else (a < 0) | (a > n_items)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(source, "item ids", f"holds {a[row, col]} at row {row}, column {col}, outside "
                         f"0..{n_items} or not a whole number", fix)
    return torch.from_numpy(a.astype(np.int64))


def attribute_table(item_attributes: pd.DataFrame | None, n_items: int) -> torch.Tensor | None:
    """``[n_items + 1, A]`` attribute ids per item (row 0 = padding), 0-padded; None without attributes."""
    if item_attributes is None or len(item_attributes) == 0:
        return None
    width = max(1, int(item_attributes["attr_ids"].map(len).max()))
    table = np.zeros((n_items + 1, width), dtype=np.int64)
    for item, attrs in zip(item_attributes["item_id"].to_numpy(), item_attributes["attr_ids"]):
        if 1 <= item <= n_items and len(attrs):
            table[item, : len(attrs)] = attrs
    return torch.from_numpy(table)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every item exactly once over all ranks, in order."""

    def __init__(self, n: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


class SeqDataModule(L.LightningDataModule):
    """Train / validation / test loaders of one prepared sequence data set.

    Parameters
    ----------
    sequences : DataFrame
        ``user_id``, ``items`` (full history), ``valid_item``, ``test_item`` (the data contract).
    n_items : int
        Largest item id of the catalogue.
    max_len : int
        Model input length.
    batch_size, eval_batch_size, num_workers, seed : int
        Per-device batch sizes, loader workers and the shuffling seed.
    source : str
        Name used in error messages (the Parquet path).
    """

    def __init__(self, sequences: pd.DataFrame, n_items: int, max_len: int, *, batch_size: int,
                 eval_batch_size: int, num_workers: int, seed: int, source: str = "sequences.parquet") -> None:
        super().__init__()
        self._validate(sequences, n_items, source)
        self.n_items, self.max_len = int(n_items), int(max_len)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers, self.seed = int(num_workers), int(seed)
        items = [list(map(int, s)) for s in sequences["items"]]
        self.user_ids = torch.as_tensor(sequences["user_id"].to_numpy(np.int64))
        # max_len + 1 items: SASRec reads [:-1] and predicts [1:]; BERT4Rec uses the last max_len
        self.train_set = TensorDataset(left_pad([s[:-2] for s in items], self.max_len + 1))
        # evaluation rows: (model input, target, every item bought before the target). The third
        # tensor is the whole history, not only the max_len the model reads, for the history-removed
        # protocol of the published numbers (lib.eval.metrics.remove_seen); int32 to halve its memory
        self.valid_set = self._eval_set([s[:-2] for s in items], sequences["valid_item"])
        self.test_set = self._eval_set([s[:-1] for s in items], sequences["test_item"])
        train_items = np.concatenate([np.asarray(s[:-2], dtype=np.int64) for s in items])
        # occurrences of each id in the training sequences (popularity negatives); index 0 = padding
        self.item_counts = torch.from_numpy(np.bincount(train_items, minlength=self.n_items + 1))

    def _eval_set(self, histories: list[list[int]], targets: pd.Series) -> TensorDataset:
        seen = left_pad(histories, max(map(len, histories))).to(torch.int32)
        return TensorDataset(left_pad(histories, self.max_len), torch.as_tensor(targets.to_numpy(np.int64)), seen)

    @staticmethod
    def _validate(df: pd.DataFrame, n_items: int, source: str) -> None:
        for col in ("user_id", "items", "valid_item", "test_item"):
            if col not in df.columns:
                raise InputError(source, col, "is missing", "use seq/<dataset>/sequences.parquet from notebook 01")
        if len(df) == 0:
            raise InputError(source, None, "has no users", "check data.max_users and the preparation step")
        lengths = df["items"].map(len)
        if (lengths < 3).any():
            raise InputError(source, "items", f"has {(lengths < 3).sum()} users with fewer than 3 items",
                             "leave-one-out needs a history, a validation and a test item; drop those users")
        top = max(max(s) for s in df["items"])
        if top > n_items or min(min(s) for s in df["items"]) < 1:
            raise InputError(source, "items", f"has ids outside 1..{n_items} (n_items from meta.json)",
                             "item ids start at 1 (0 pads); regenerate meta.json with the sequences")

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        # Lightning calls sampler.set_epoch(epoch) each epoch: a new permutation per epoch
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank, shuffle=True,
                                     seed=self.seed, drop_last=False)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def _eval_loader(self, dataset: TensorDataset) -> DataLoader:
        rank, world = self._rank_world()
        return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=ShardSampler(len(dataset), rank, world),
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.valid_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)


def from_config(cfg: DictConfig, dataset: str | None = None) -> tuple[SeqDataModule, torch.Tensor | None, dict]:
    """The data module of ``dataset`` (default ``cfg.trainer.dataset``), the item-attribute table and meta."""
    from lib.data.sequences import load_prepared

    dataset = dataset or cfg.trainer.dataset
    sequences, item_attributes, meta = load_prepared(cfg, dataset)
    n_items = int(meta["n_items"])
    dm = SeqDataModule(sequences, n_items, cfg.model.max_len, batch_size=cfg.trainer.batch_size,
                       eval_batch_size=cfg.trainer.eval_batch_size, num_workers=cfg.trainer.num_workers, seed=cfg.seed,
                       source=f"{cfg.paths.processed}/seq/{dataset}/sequences.parquet")
    return dm, attribute_table(item_attributes, n_items), meta
