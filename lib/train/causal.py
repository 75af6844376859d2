"""Confounder-aware training with :class:`lib.models.heads.CausalHeads` (Lightning).

Two uses:

* :func:`fit_heads` — heads alone on fixed features (frozen embeddings); the outcome and
  propensity models of the CausalBERT-style AIPW baseline.
* :func:`crossfit_finetuned_vectors` — the item-sequence transformer of :mod:`lib.models.seq`
  (initialised from a next-item checkpoint when given) trained end to end with the heads on
  K-1 folds of one simulation's ``T`` and ``Y``, encoding the held-out fold: the cross-fitted
  ``seq_finetuned`` representation of the causal study. The propensity loss makes the vectors
  keep what predicts treatment, i.e. the confounding part of the history; cross-fitting keeps
  any unit's own outcome out of its vector.

All train with a real ``lightning.Trainer`` with early stopping on a seeded validation split.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lib.errors import InputError
from lib.io import read_json
from lib.models.heads import CausalHeads, build_heads
from lib.train.datamodule import item_id_tensor, left_pad



class CausalModule(L.LightningModule):
    """``encoder`` (optional, any module with ``encode(x) -> [B, H]``) followed by causal heads.

    Parameters
    ----------
    heads : CausalHeads
    encoder : nn.Module, optional
        Without it the batch inputs are the representation itself.
    lr, weight_decay : AdamW settings of the heads (``model.heads``).
    encoder_lr : float, optional
        The encoder's own (smaller) rate, so fine-tuning does not erase what next-item
        pretraining learnt; required with an encoder.
    """

    def __init__(self, heads: CausalHeads, encoder: nn.Module | None, *, lr: float, weight_decay: float,
                 encoder_lr: float | None = None):
        super().__init__()
        if encoder is not None and encoder_lr is None:
            raise ValueError("fine-tuning an encoder needs its learning rate (model.heads.encoder_lr)")
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


class RestoreBest(L.Callback):
    """Keep the weights of the epoch with the lowest ``monitor`` and load them when training ends.

    Early stopping alone leaves the weights of the last epoch, ``patience`` epochs past the best.
    """

    def __init__(self, monitor: str = "val_loss"):
        self.monitor, self.best, self.state = monitor, float("inf"), None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best = float(value)
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


def fit_lightning(module: L.LightningModule, tensors: Sequence[torch.Tensor], heads_cfg: Any, seed: int,
                  log_dir: str | Path | None = None) -> L.LightningModule:
    """Train ``module`` on the rows of ``tensors`` with a seeded validation split and early stopping.

    ``tensors`` are aligned ``[n, ...]`` tensors; each batch is their row slice, in order, and the
    module logs ``val_loss``. The weights of the best validation epoch are restored at the end. ``heads_cfg`` supplies batch_size, max_epochs, max_steps,
    val_fraction and patience (``cfg.model.heads``). ``log_dir`` (optional) receives Lightning's
    CSV log of the per-epoch losses. Returns the module in eval mode.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    n = len(tensors[0])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * float(heads_cfg["val_fraction"]))) if n >= 10 else 0
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    train = DataLoader(TensorDataset(*(a[tr_idx] for a in tensors)), batch_size=int(heads_cfg["batch_size"]),
                       shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(*(a[val_idx] for a in tensors)), batch_size=1024) if n_val else None
    callbacks = [EarlyStopping("val_loss", patience=int(heads_cfg["patience"]), mode="min"),
                 RestoreBest("val_loss")] if n_val else []
    logger = False
    if log_dir is not None:
        from lightning.pytorch.loggers import CSVLogger
        logger = CSVLogger(str(log_dir), name="", version="")
    trainer = L.Trainer(max_epochs=int(heads_cfg["max_epochs"]), max_steps=int(heads_cfg["max_steps"]),
                        accelerator="cpu", devices=1, deterministic=True, logger=logger,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(module, train, val)
    module.eval()
    return module


def fit_module(module: CausalModule, x: torch.Tensor, t: np.ndarray, y: np.ndarray, heads_cfg: Any,
               seed: int, log_dir: str | Path | None = None) -> CausalModule:
    """Train ``module`` on ``(x, t, y)`` with :func:`fit_lightning`."""
    tt = torch.as_tensor(np.asarray(t), dtype=torch.float32)
    yy = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=torch.float32)
    return fit_lightning(module, (x, tt, yy), heads_cfg, seed, log_dir)


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
    module = CausalModule(heads, None, lr=heads_cfg["lr"], weight_decay=heads_cfg["weight_decay"])
    return fit_module(module, x, t, y, heads_cfg, seed).heads


@torch.no_grad()
def encode_padded(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """User vectors ``model.encode(x)`` of left-padded ids ``x`` ``[n, L]`` in eval mode, float32 ``[n, H]``."""
    was_training = model.training
    model.eval()
    try:
        parts = [model.encode(x[i:i + batch_size]).float().numpy() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def encode_histories(model: nn.Module, histories: Sequence[Sequence[int]], max_len: int,
                     batch_size: int = 512) -> np.ndarray:
    """User vectors ``model.encode(left_pad(h))`` in eval mode, float32 ``[n, H]``."""
    return encode_padded(model, left_pad(histories, max_len), batch_size)


def build_sequence_encoder(model_cfg: Any, n_items: int, item_attrs: Any = None, n_attrs: int = 0,
                           init_checkpoint: str | Path | None = None) -> nn.Module:
    """The item-sequence transformer to fine-tune, in train mode.

    From the next-item checkpoint ``init_checkpoint`` when given (its catalogue must have
    ``n_items`` items), else freshly initialised from ``model_cfg`` (the ``model`` group; the
    caller seeds torch first). ``item_attrs`` ``[n_items + 1, A]`` are used when
    ``model_cfg.use_attributes``.
    """
    from lib.models.seq import build_model
    from lib.train.nextitem import load_model

    if init_checkpoint is not None:
        model = load_model(init_checkpoint)
        if model.n_items != int(n_items):
            raise InputError(str(init_checkpoint), "n_items", f"is {model.n_items}, the histories have ids "
                             f"up to {n_items}", "fine-tune from a checkpoint trained on the same prepared data set")
    else:
        if model_cfg is None:
            raise InputError("build_sequence_encoder", "model_cfg", "is missing and no init_checkpoint was given",
                             "pass the model config group (cfg.model) or a next-item checkpoint")
        attrs = torch.as_tensor(np.asarray(item_attrs), dtype=torch.long) if item_attrs is not None else None
        model = build_model(model_cfg, int(n_items), attrs, int(n_attrs))
    return model.train()


def finetune_with_heads(encoder: nn.Module, x: torch.Tensor, t: np.ndarray, y: np.ndarray, heads_cfg: Any,
                        seed: int, log_dir: str | Path | None = None) -> CausalModule:
    """``encoder`` + fresh :class:`CausalHeads` trained end to end on ``(x, t, y)`` (the Dragonnet loss)."""
    check_treatment(t, y, "finetune_with_heads")
    L.seed_everything(seed, workers=True, verbose=False)   # the heads' initial weights
    heads = build_heads(heads_cfg, encoder.hidden_size, y=np.asarray(y))
    module = CausalModule(heads, encoder, lr=heads_cfg["lr"], encoder_lr=heads_cfg["encoder_lr"],
                          weight_decay=heads_cfg["weight_decay"])
    return fit_module(module, x, t, y, heads_cfg, seed, log_dir)


def stratified_folds(t: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id ``0..k-1`` of every unit: seeded folds stratified by the treatment ``t``.

    >>> stratified_folds(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2, seed=0).tolist().count(0)
    4
    """
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(t), dtype=np.int64)
    for f, (_, te) in enumerate(StratifiedKFold(n_splits=int(k), shuffle=True, random_state=seed)
                                .split(np.zeros(len(t)), t)):
        fold[te] = f
    return fold


@dataclass(frozen=True)
class CrossFitted:
    """Out-of-fold outputs of :func:`crossfit_finetuned_vectors`, in unit order.

    ``vectors`` ``[n, H]`` (float32) are the fine-tuned encoder's user vectors; ``e``, ``mu0``,
    ``mu1`` ``[n]`` the heads' propensity and arm outcomes (original scale), ready for
    :func:`lib.causal.aipw.aipw_scores`. Unit ``i`` gets them from the model of the fold
    ``folds[i]`` was held out of, i.e. one that never saw its ``T`` or ``Y``.
    """

    vectors: np.ndarray
    e: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray
    folds: np.ndarray
    seconds: float


def crossfit_finetuned_vectors(histories: np.ndarray | torch.Tensor, T: np.ndarray, Y: np.ndarray,
                               folds: int | np.ndarray, seed: int, model_cfg: Any, heads_cfg: Any, n_items: int,
                               item_attrs: Any = None, n_attrs: int = 0,
                               init_checkpoint: str | Path | None = None, n_threads: int | None = None,
                               log_dir: str | Path | None = None) -> CrossFitted:
    """Cross-fitted Dragonnet fine-tuning of the sequence encoder (the ``seq_finetuned`` representation).

    For each fold ``f`` a fresh encoder (:func:`build_sequence_encoder`) plus causal heads is
    trained on the units of the other folds (:func:`finetune_with_heads`, seed ``seed + f``) and
    encodes / predicts the units of fold ``f``. No unit's vector depends on its own ``T`` or ``Y``.

    Parameters
    ----------
    histories : array [n, L]
        Left-padded item ids (:func:`lib.train.datamodule.left_pad`), one row per unit.
    T, Y : array [n]
        Binary treatment and outcome of the simulation seed / level being estimated.
    folds : int or array [n]
        Number of folds ``K`` (seeded, stratified by ``T``: :func:`stratified_folds`; config
        ``causal.crossfit.folds``), or a fold id ``0..K-1`` per unit.
    seed : int
        Seed of the folds, the initial weights, the validation splits and the batch order.
    model_cfg, heads_cfg : mappings
        ``cfg.model`` (architecture and size, used without a checkpoint) and ``cfg.model.heads``.
    n_items, item_attrs, n_attrs :
        Catalogue the ids come from (see :func:`build_sequence_encoder`).
    init_checkpoint : path, optional
        Next-item checkpoint every fold starts from (None = from scratch).
    n_threads : int, optional
        ``torch.set_num_threads`` for the training (None = leave torch's setting).
    log_dir : path, optional
        Per-fold CSV training logs go to ``log_dir/fold<f>``.
    """
    start = time.perf_counter()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    x = item_id_tensor(histories, n_items, "crossfit_finetuned_vectors histories")
    T, Y = np.asarray(T), np.asarray(Y, dtype=np.float64)
    if len(x) != len(T):
        raise InputError("crossfit_finetuned_vectors", "histories", f"has {len(x)} rows for {len(T)} units",
                         "pass one history per unit, in the order of T and Y")
    check_treatment(T, Y, "crossfit_finetuned_vectors")
    fold = stratified_folds(T, folds, seed) if np.ndim(folds) == 0 else np.asarray(folds, dtype=np.int64)
    k = int(fold.max()) + 1 if len(fold) else 0
    if len(fold) != len(T) or k < 2 or set(np.unique(fold).tolist()) != set(range(k)):
        raise InputError("crossfit_finetuned_vectors", "folds", "must be K >= 2 or one fold id 0..K-1 per unit, "
                         "every fold non-empty", "pass causal.crossfit.folds or stratified_folds(T, K, seed)")
    vectors, e, mu0, mu1 = None, np.empty(len(T)), np.empty(len(T)), np.empty(len(T))
    for f in range(k):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        L.seed_everything(seed + f, workers=True, verbose=False)   # the encoder's initial weights
        encoder = build_sequence_encoder(model_cfg, n_items, item_attrs, n_attrs, init_checkpoint)
        module = finetune_with_heads(encoder, x[tr], T[tr], Y[tr], heads_cfg, seed + f,
                                     Path(log_dir) / f"fold{f}" if log_dir is not None else None)
        z = encode_padded(module.encoder, x[te])
        if vectors is None:
            vectors = np.empty((len(T), z.shape[1]), np.float32)
        vectors[te] = z
        pred = module.heads.predict(torch.from_numpy(z))
        e[te], mu0[te], mu1[te] = (pred[key].double().numpy() for key in ("e", "mu0", "mu1"))
    return CrossFitted(vectors, e, mu0, mu1, fold, time.perf_counter() - start)


def best_nextitem_checkpoint(cfg: Any, dataset: str) -> Path | None:
    """Best checkpoint of this config's next-item runs of ``dataset`` (highest ``best/<trainer.monitor>``).

    The candidates are the runs notebook 02 trains for ``dataset``: one per architecture of
    ``model.compare`` (restricted by ``model.compare_datasets``), found under ``paths.checkpoints``
    by their run name (:func:`lib.train.run.run_name`), so a run of another config left in the folder
    (an experiment, an older recipe) is never chosen. The choice uses the validation metric only,
    never the test split.
    """
    from omegaconf import OmegaConf

    from lib.train.run import run_name

    archs = [a for a in cfg.model.compare if dataset in (cfg.model.compare_datasets or {}).get(a, [dataset])]
    key, best, best_score = f"best/{cfg.trainer.monitor}", None, -np.inf
    for arch in archs:
        run_cfg = OmegaConf.merge(cfg, {"trainer": {"dataset": dataset}, "model": {"arch": arch}})
        metrics_path = Path(cfg.paths.checkpoints) / run_name(run_cfg) / "metrics.json"
        m = read_json(metrics_path) if metrics_path.is_file() else {}
        score, ckpt = m.get(key), m.get("best_ckpt")
        if score is not None and ckpt and Path(ckpt).is_file() and score > best_score:
            best, best_score = Path(ckpt), float(score)
    return best
