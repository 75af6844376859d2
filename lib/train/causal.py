"""Confounder-aware training with :class:`lib.models.heads.CausalHeads` (Lightning).

Two uses:

* :func:`fit_heads` — heads alone on fixed features (frozen embeddings); the outcome and
  propensity models of the CausalBERT-style AIPW baseline.
* :func:`finetune_sequence_encoder` — the item-sequence transformer of :mod:`lib.models.seq`
  (initialised from its next-item checkpoint when one exists) trained end to end with the
  heads on the semi-synthetic benchmark's ``T`` and ``Y`` (``level="default"``,
  ``seed=cfg.seed``). Its user vectors are the ``seq_finetuned`` embeddings: the propensity
  loss makes them keep what predicts treatment, i.e. the confounding part of the history.

Both train with a real ``lightning.Trainer`` with early stopping on a seeded validation split.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lib.errors import InputError
from lib.io import atomic_path, read_json, sha256_file
from lib.models.heads import CausalHeads, build_heads
from lib.train.datamodule import left_pad

log = logging.getLogger(__name__)


class CausalModule(L.LightningModule):
    """``encoder`` (optional, any module with ``encode(x) -> [B, H]``) followed by causal heads.

    Parameters
    ----------
    heads : CausalHeads
    encoder : nn.Module, optional
        Without it the batch inputs are the representation itself.
    lr, encoder_lr, weight_decay : AdamW settings; the encoder gets its own (smaller) rate
        so fine-tuning does not erase what next-item pretraining learnt.
    """

    def __init__(self, heads: CausalHeads, encoder: nn.Module | None = None, lr: float = 1e-3,
                 encoder_lr: float = 1e-4, weight_decay: float = 1e-4):
        super().__init__()
        self.heads, self.encoder = heads, encoder
        self.lr, self.encoder_lr, self.weight_decay = lr, encoder_lr, weight_decay

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the heads read (the user embedding)."""
        return self.encoder.encode(x) if self.encoder is not None else x

    def _step(self, batch: Sequence[torch.Tensor], stage: str) -> torch.Tensor:
        x, t, y = batch
        losses = self.heads.loss(self.heads(self.represent(x)), t, y)
        for name, value in losses.items():
            self.log(f"{stage}_{name}", value, prog_bar=name == "loss", batch_size=len(t))
        return losses["loss"]

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": self.heads.parameters(), "lr": self.lr}]
        if self.encoder is not None:
            groups.append({"params": [p for p in self.encoder.parameters() if p.requires_grad],
                           "lr": self.encoder_lr})
        return torch.optim.AdamW(groups, weight_decay=self.weight_decay)


def check_treatment(t: np.ndarray, y: np.ndarray, source: str) -> None:
    """InputError unless ``t`` is 0/1 with both arms present and ``y`` is finite and aligned."""
    t, y = np.asarray(t), np.asarray(y)
    if len(t) != len(y):
        raise InputError(source, "T/Y", f"have different lengths ({len(t)} vs {len(y)})", "pass one T and Y per unit")
    if not np.isin(t, (0, 1)).all():
        raise InputError(source, "T", f"must be 0/1, got values {np.unique(t)[:5].tolist()}",
                         "binarise the treatment (one arm against control) before fitting the causal heads")
    if len(np.unique(t)) < 2:
        raise InputError(source, "T", "has a single arm", "the heads need treated and control units")
    if not np.isfinite(np.asarray(y, dtype=np.float64)).all():
        raise InputError(source, "Y", "contains NaN or infinite values", "drop or impute those units")


def fit_module(module: CausalModule, x: torch.Tensor, t: np.ndarray, y: np.ndarray, heads_cfg: Any,
               seed: int, log_dir: str | Path | None = None) -> CausalModule:
    """Train ``module`` on ``(x, t, y)`` with a seeded validation split and early stopping.

    ``log_dir`` (optional) receives Lightning's CSV log of the per-epoch losses.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    n = len(t)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(n * float(heads_cfg.val_fraction))) if n >= 10 else 0
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    tt = torch.as_tensor(np.asarray(t), dtype=torch.float32)
    yy = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=torch.float32)
    train = DataLoader(TensorDataset(x[tr_idx], tt[tr_idx], yy[tr_idx]), batch_size=int(heads_cfg.batch_size),
                       shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[val_idx], tt[val_idx], yy[val_idx]), batch_size=1024) if n_val else None
    callbacks = [EarlyStopping("val_loss", patience=int(heads_cfg.patience), mode="min")] if n_val else []
    logger = False
    if log_dir is not None:
        from lightning.pytorch.loggers import CSVLogger
        logger = CSVLogger(str(log_dir), name="", version="")
    trainer = L.Trainer(max_epochs=int(heads_cfg.max_epochs), max_steps=int(heads_cfg.max_steps),
                        accelerator="cpu", devices=1, deterministic=True, logger=logger,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(module, train, val)
    module.eval()
    return module


def fit_heads(features: np.ndarray, t: np.ndarray, y: np.ndarray, heads_cfg: Any, seed: int) -> CausalHeads:
    """Causal heads trained on fixed ``features`` ``[n, d]``; returns them in eval mode.

    >>> from omegaconf import OmegaConf
    >>> hc = OmegaConf.create(dict(hidden=8, dropout=0.0, alpha=1.0, outcome_loss="auto", lr=1e-2,
    ...     encoder_lr=1e-4, weight_decay=0.0, batch_size=32, max_epochs=2, max_steps=-1,
    ...     val_fraction=0.2, patience=2))
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(100, 3)); T = (X[:, 0] > 0).astype(int)
    >>> fit_heads(X, T, X[:, 1] + T, hc, seed=0).predict(torch.zeros(1, 3))["e"].shape
    torch.Size([1])
    """
    check_treatment(t, y, "fit_heads")
    L.seed_everything(seed, workers=True, verbose=False)   # the heads' initial weights depend on it
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    heads = build_heads(heads_cfg, x.shape[1], y=np.asarray(y))
    module = CausalModule(heads, None, lr=heads_cfg.lr, weight_decay=heads_cfg.weight_decay)
    return fit_module(module, x, t, y, heads_cfg, seed).heads


@torch.no_grad()
def encode_histories(model: nn.Module, histories: Sequence[Sequence[int]], max_len: int,
                     batch_size: int = 512) -> np.ndarray:
    """User vectors ``model.encode(left_pad(h))`` in eval mode, float32 ``[n, H]``."""
    was_training = model.training
    model.eval()
    x = left_pad(histories, max_len)
    try:
        parts = [model.encode(x[i:i + batch_size]).float().numpy() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def best_nextitem_checkpoint(cfg: Any, dataset: str) -> Path | None:
    """Best checkpoint of the next-item runs of ``dataset`` (highest ``best/<trainer.monitor>``).

    Runs are the ``{paths.checkpoints}/<run>/metrics.json`` files written by
    :func:`lib.train.run.train`; the choice uses the validation metric only, never the test split.
    """
    key, best, best_score = f"best/{cfg.trainer.monitor}", None, -np.inf
    for metrics_path in sorted(Path(cfg.paths.checkpoints).glob("*/metrics.json")):
        m = read_json(metrics_path)
        score, ckpt = m.get(key), m.get("best_ckpt")
        if m.get("dataset") == dataset and score is not None and ckpt and Path(ckpt).is_file() and score > best_score:
            best, best_score = Path(ckpt), float(score)
    return best


def finetune_sequence_encoder(cfg: Any, dataset: str, log_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune the sequence encoder with causal heads on the semi-synthetic ``T``, ``Y`` of ``dataset``.

    Returns ``ids`` (every prepared user), ``emb`` (their fine-tuned vectors from ``items[:-2]``),
    ``checkpoint`` / ``checkpoint_sha256`` of the saved fine-tuned weights, ``init_checkpoint``
    (the next-item checkpoint it started from, None = from scratch) and ``seconds``.
    """
    from lib.data.sequences import history, load_prepared
    from lib.models.seq import build_model
    from lib.simulate.semisynth import simulate
    from lib.train.datamodule import attribute_table
    from lib.train.nextitem import load_model

    start = time.perf_counter()
    seqs, attrs, meta = load_prepared(cfg, dataset)
    data = simulate(seqs, attrs, cfg.simulate.semisynth, seed=cfg.seed, level="default")
    check_treatment(data.T, data.Y, f"semisynth {dataset}")
    hist = history(seqs)
    row_of = {int(u): k for k, u in enumerate(seqs["user_id"].to_numpy())}
    missing = [int(u) for u in data.unit_id if int(u) not in row_of]
    if missing:
        raise InputError(f"semisynth {dataset}", "unit_id", f"has {len(missing)} users not in sequences.parquet",
                         "simulate from the same prepared tables (same preset)")
    unit_hist = [hist.iloc[row_of[int(u)]] for u in data.unit_id]

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    init = best_nextitem_checkpoint(cfg, dataset)
    if init is not None:
        model = load_model(init)
    else:
        log.info("no next-item checkpoint for %s under %s: the encoder starts from scratch", dataset,
                 cfg.paths.checkpoints)
        n_items = int(meta["n_items"])
        model = build_model(cfg.model, n_items, attribute_table(attrs, n_items), int(meta.get("n_attrs", 0)))
    model.train()
    x = left_pad(unit_hist, model.max_len)
    hcfg = cfg.model.heads
    heads = build_heads(hcfg, model.hidden_size, y=np.asarray(data.Y))
    module = CausalModule(heads, model, lr=hcfg.lr, encoder_lr=hcfg.encoder_lr, weight_decay=hcfg.weight_decay)
    fit_module(module, x, data.T, data.Y, hcfg, cfg.seed, log_dir)

    path = Path(cfg.paths.checkpoints) / "causal" / f"{dataset}-seq_finetuned.pt"
    with atomic_path(path) as tmp:
        torch.save({"encoder": model.state_dict(), "heads": heads.state_dict(),
                    "init_checkpoint": str(init) if init else None}, tmp)
    emb = encode_histories(model, list(hist), model.max_len)
    return {"ids": seqs["user_id"].to_numpy(np.int64), "emb": emb, "checkpoint": path,
            "checkpoint_sha256": sha256_file(path), "init_checkpoint": str(init) if init else None,
            "init_checkpoint_sha256": sha256_file(init) if init else None,
            "seconds": time.perf_counter() - start}
