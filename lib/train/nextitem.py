"""``LightningModule`` for next-item prediction with a full softmax over the catalogue.

Training objective: cross-entropy over all ``n_items`` items (no sampled negatives).
SASRec predicts the next item at every non-padding position of the training sequence;
BERT4Rec replaces a random ``mask_prob`` share of items by ``[MASK]`` (at least one per
sequence) and predicts the originals. Validation and test rank *all* items for every user
(padding and ``[MASK]`` are never candidates; history items stay candidates) and report
HR@K / NDCG@K for ``model.ks`` plus the cross-entropy of the held-out item. Metric sums are
all-reduced across processes before dividing, so DDP reports the exact dataset means.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from lib.eval.metrics import metric_sums, rank_of_target
from lib.models.seq import PAD, SeqRecModel, build_model, seq_config


class NextItemModule(L.LightningModule):
    """Next-item training of a :class:`~lib.models.seq.SeqRecModel`.

    Parameters
    ----------
    model_cfg : mapping
        The ``model`` config group (architecture, size, optimiser, ``ks``).
    n_items : int
        Largest item id.
    item_attrs : LongTensor [n_items + 1, A], optional
        Attribute ids per item (used when ``model_cfg.use_attributes``).
    n_attrs : int
        Largest attribute id.
    """

    def __init__(self, model_cfg: Mapping[str, Any], n_items: int, item_attrs: torch.Tensor | None = None,
                 n_attrs: int = 0) -> None:
        super().__init__()
        if isinstance(model_cfg, DictConfig):
            model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
        model_cfg = seq_config(model_cfg)
        attr_shape = list(item_attrs.shape) if item_attrs is not None else None
        self.save_hyperparameters({"model_cfg": model_cfg, "n_items": int(n_items), "n_attrs": int(n_attrs),
                                   "attr_shape": attr_shape})
        if item_attrs is None and attr_shape is None and model_cfg["use_attributes"]:
            raise ValueError("model.use_attributes=true needs item attributes (item_attributes.parquet)")
        self.model: SeqRecModel = build_model(model_cfg, n_items, item_attrs, n_attrs)
        self.ks = tuple(int(k) for k in model_cfg["ks"])
        self.start_step: int | None = None
        self._sums: dict[str, torch.Tensor] = {}

    # ---- training -------------------------------------------------------------------------
    def _masked_inputs(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT4Rec corruption: random items -> [MASK]; targets are -100 where nothing was masked."""
        real = seq != PAD
        masked = (torch.rand(seq.shape, device=seq.device) < self.hparams.model_cfg["mask_prob"]) & real
        # every sequence predicts at least its most recent item (also the inference situation)
        none = ~masked.any(1)
        masked[none, -1] = real[none, -1]
        inputs = torch.where(masked, torch.full_like(seq, self.model.mask_id), seq)
        return inputs, torch.where(masked, seq, torch.full_like(seq, -100))

    def training_loss(self, seq: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over predicted positions of a ``[B, max_len + 1]`` training batch."""
        if self.model.arch == "sasrec":
            inputs, targets = seq[:, :-1], seq[:, 1:]
            targets = torch.where((inputs != PAD) & (targets != PAD), targets, torch.full_like(targets, -100))
        else:
            inputs, targets = self._masked_inputs(seq[:, 1:])
        hidden = self.model(inputs)
        keep = targets != -100
        logits = self.model.item_logits(hidden[keep])
        logits[:, PAD] = -torch.inf  # padding is never a next item
        return F.cross_entropy(logits, targets[keep])

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def on_train_start(self) -> None:
        # global step at the start of this fit call: > 0 when resumed from a checkpoint
        self.start_step = int(self.trainer.global_step)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.hparams.model_cfg
        return torch.optim.AdamW(self.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])

    # ---- evaluation -----------------------------------------------------------------------
    def scores(self, history: torch.Tensor) -> torch.Tensor:
        """``[B, n_items + 1]`` next-item scores of left-padded histories; column 0 is -inf."""
        logits = self.model.item_logits(self.model.encode(history))
        logits[:, PAD] = -torch.inf
        return logits

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        history, target = batch
        logits = self.scores(history)
        ranks = rank_of_target(logits, target, exclude=(PAD,))
        sums = metric_sums(ranks, self.ks)
        sums["loss"] = F.cross_entropy(logits, target, reduction="sum")
        sums["n"] = torch.tensor(float(len(target)), device=logits.device)
        for key, value in sums.items():
            self._sums[key] = self._sums.get(key, 0.0) + value.detach().double()

    def _eval_end(self, prefix: str) -> None:
        totals = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._sums.items()}
        n = totals.pop("n")
        for key, value in totals.items():
            self.log(f"{prefix}/{key}", (value / n).float(), prog_bar=key in ("ndcg@10", "loss"))
        self._sums = {}

    def on_validation_epoch_start(self) -> None:
        self._sums = {}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._sums = {}

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")


def load_model(ckpt_path: str | Path, map_location: str = "cpu") -> SeqRecModel:
    """The trained :class:`SeqRecModel` of a checkpoint written by :func:`lib.train.run.train`."""
    ckpt = torch.load(ckpt_path, map_location=map_location, weights_only=False)
    hp = ckpt["hyper_parameters"]
    attrs = torch.zeros(hp["attr_shape"], dtype=torch.long) if hp["attr_shape"] else None
    module = NextItemModule(hp["model_cfg"], hp["n_items"], attrs, hp["n_attrs"])
    module.load_state_dict(ckpt["state_dict"])
    return module.model.eval()
