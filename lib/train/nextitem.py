"""``LightningModule`` for next-item prediction.

Training objective (``model.loss``): ``ce`` is the cross-entropy of a full softmax over all
``n_items`` items; ``sampled`` is a sampled softmax over the target and ``model.n_negatives``
negatives drawn once per batch (shared by every position, uniformly or by training
popularity, ``model.negatives``), with accidental hits (a negative equal to the target)
removed, as in gSASRec / eSASRec. SASRec predicts the next item at every non-padding position
of the training sequence; BERT4Rec replaces a random ``mask_prob`` share of items by
``[MASK]`` (at least one per sequence) and predicts the originals. ``model.label_smoothing``
moves that share of the full-softmax target mass evenly onto all candidate items.
``model.train_remove_history`` leaves the user's earlier items (those before the target's position, other
than the target itself) out of the full softmax, as the ``history_removed/`` evaluation below leaves them out
of the candidates. The learning rate follows ``model.lr_schedule`` (linear warm-up over ``warmup_steps``,
then constant, cosine or linear decay to ``min_lr_ratio x lr`` at ``decay_steps``). Validation and test rank
*all* items for every user (padding and ``[MASK]`` are never candidates; history items stay candidates) and report
HR@K / NDCG@K for ``model.ks`` plus the cross-entropy of the held-out item; ``history_removed/``
metrics repeat HR / NDCG with the user's earlier items removed from the candidates, the protocol
of the published rows (:mod:`lib.eval.metrics`). Early stopping reads ``trainer.monitor``. Metric sums are
all-reduced across processes before dividing, so DDP reports the exact dataset means.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from lib.config import CONF_DIR
from lib.eval.metrics import metric_sums, rank_of_target, remove_seen
from lib.models.seq import PAD, SEQ_KEYS, SeqRecModel, build_model, seq_config


LOSSES = ("ce", "sampled")
NEGATIVES = ("uniform", "popularity")
SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(step: int, schedule: str, warmup_steps: int, decay_steps: int | None, min_ratio: float) -> float:
    """Multiplier of ``model.lr`` at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then
    ``constant`` (1), or ``cosine`` / ``linear`` decay from 1 to ``min_ratio`` at step
    ``decay_steps`` (counted from 0, warm-up included), then ``min_ratio``.

    >>> [round(lr_factor(s, "cosine", 2, 6, 0.0), 3) for s in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    >>> [round(lr_factor(s, "linear", 0, 4, 0.2), 2) for s in range(5)]
    [1.0, 0.8, 0.6, 0.4, 0.2]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"model.lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, int(decay_steps) - warmup_steps))
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * shape


def sampled_softmax_loss(model: SeqRecModel, hidden: torch.Tensor, targets: torch.Tensor,
                         negatives: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each target against ``negatives`` (``[N]`` ids shared by all rows).

    A negative equal to a row's target (an accidental hit) is left out of that row's softmax,
    so sampling every item once gives exactly the full-softmax cross-entropy.
    """
    pos = (hidden * model.output_table(targets)).sum(-1) + model.output_bias[targets]
    neg = model.candidate_logits(hidden, negatives).masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([pos[:, None], neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def earlier_items(items: torch.Tensor, inclusive: bool) -> torch.Tensor:
    """``[B, T, T]``: row ``t`` of sequence ``b`` holds ``items[b, :t]`` (``:t + 1`` when ``inclusive``), then padding.

    >>> earlier_items(torch.tensor([[0, 4, 7]]), inclusive=False).tolist()
    [[[0, 0, 0], [0, 0, 0], [0, 4, 0]]]
    >>> earlier_items(torch.tensor([[0, 4, 7]]), inclusive=True)[0, 2].tolist()
    [0, 4, 7]
    """
    pos = torch.arange(items.shape[1], device=items.device)
    before = pos[None, :] <= pos[:, None] if inclusive else pos[None, :] < pos[:, None]
    return torch.where(before[None], items[:, None, :], PAD)


def trim_padding(seq: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are padding in every row of a left-padded batch.

    Exact for :class:`SeqRecModel`: padding is never attended to and positions count from the right.

    >>> trim_padding(torch.tensor([[0, 0, 1, 2], [0, 0, 0, 3]])).tolist()
    [[1, 2], [0, 3]]
    """
    real = (seq != PAD).any(0)
    first = int(real.to(torch.int8).argmax()) if bool(real.any()) else seq.shape[1] - 1
    return seq[:, first:]


class NextItemModule(L.LightningModule):
    """Next-item training of a :class:`~lib.models.seq.SeqRecModel`.

    Parameters
    ----------
    model_cfg : mapping
        The ``model`` config group (architecture, size, loss, optimiser, ``ks``).
    n_items : int
        Largest item id.
    item_attrs : LongTensor [n_items + 1, A], optional
        Attribute ids per item (used when ``model_cfg.use_attributes``).
    n_attrs : int
        Largest attribute id.
    item_counts : Tensor [n_items + 1], optional
        Training counts per item id; needed by ``model.negatives=popularity`` (not saved).
    """

    def __init__(self, model_cfg: Mapping[str, Any], n_items: int, item_attrs: torch.Tensor | None = None,
                 n_attrs: int = 0, item_counts: torch.Tensor | None = None) -> None:
        super().__init__()
        if isinstance(model_cfg, DictConfig):
            model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
        model_cfg = seq_config(model_cfg)
        attr_shape = list(item_attrs.shape) if item_attrs is not None else None
        self.save_hyperparameters({"model_cfg": model_cfg, "n_items": int(n_items), "n_attrs": int(n_attrs),
                                   "attr_shape": attr_shape})
        if item_attrs is None and attr_shape is None and model_cfg["use_attributes"]:
            raise ValueError("model.use_attributes=true needs item attributes (item_attributes.parquet)")
        if model_cfg["loss"] not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {model_cfg['loss']!r}")
        if model_cfg["label_smoothing"] and model_cfg["loss"] != "ce":
            raise ValueError("model.label_smoothing needs model.loss=ce (the full softmax); set it to 0.0 "
                             f"for model.loss={model_cfg['loss']}")
        if model_cfg["train_remove_history"] and model_cfg["loss"] != "ce":
            raise ValueError("model.train_remove_history needs model.loss=ce (the full softmax); set it to false "
                             f"for model.loss={model_cfg['loss']}")
        if model_cfg["negatives"] not in NEGATIVES:
            raise ValueError(f"model.negatives must be one of {NEGATIVES}, got {model_cfg['negatives']!r}")
        self.model: SeqRecModel = build_model(model_cfg, n_items, item_attrs, n_attrs)
        self.ks = tuple(int(k) for k in model_cfg["ks"])
        self.neg_weights = item_counts.double().clone() if item_counts is not None else None
        if self.neg_weights is not None:
            self.neg_weights[PAD] = 0.0
        self.start_step: int | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._wall_offset, self._fit_start = 0.0, None

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

    def sample_negatives(self, device: torch.device) -> torch.Tensor:
        """``model.n_negatives`` item ids for one batch, uniform or by training popularity."""
        cfg, n = self.hparams.model_cfg, int(self.hparams.model_cfg["n_negatives"])
        if cfg["negatives"] == "uniform":
            return torch.randint(1, self.model.n_items + 1, (n,), device=device)
        if self.neg_weights is None:
            raise ValueError("model.negatives=popularity needs item_counts (SeqDataModule.item_counts)")
        return torch.multinomial(self.neg_weights, n, replacement=True).to(device)

    def training_loss(self, seq: torch.Tensor, trim: bool = True) -> torch.Tensor:
        """Mean loss over predicted positions of a ``[B, max_len + 1]`` training batch.

        ``trim=False`` runs the model on the full padded width (same loss; the benchmark's baseline).
        """
        cut = trim_padding if trim else (lambda x: x)
        if self.model.arch == "sasrec":
            seq = cut(seq)
            inputs, targets = seq[:, :-1], seq[:, 1:]
            targets = torch.where((inputs != PAD) & (targets != PAD), targets, torch.full_like(targets, -100))
            before, inclusive = inputs, True           # the target at t follows inputs[:, :t + 1]
        else:  # the last max_len items (trimmed afterwards, so no real item is cut)
            before, inclusive = cut(seq[:, 1:]), False  # the masked item at t follows those items[:, :t]
            inputs, targets = self._masked_inputs(before)
        hidden = self.model(inputs)
        keep = targets != -100
        hidden, targets = hidden[keep], targets[keep]
        cfg = self.hparams.model_cfg
        if cfg["loss"] == "sampled":
            return sampled_softmax_loss(self.model, hidden, targets, self.sample_negatives(seq.device))
        logits = self.model.item_logits(hidden)
        logits[:, PAD] = -torch.inf  # padding is never a next item
        if cfg["train_remove_history"]:
            # a repeat of the target stays its target; padding in `history` hits the column masked above
            history = earlier_items(before, inclusive)[keep]
            logits = logits.scatter(1, history.masked_fill(history == targets[:, None], PAD), -torch.inf)
        eps = float(cfg["label_smoothing"])
        if not eps:
            return F.cross_entropy(logits, targets)
        # eps spread uniformly over the candidates (the finite logits): torch's own label_smoothing would
        # also put mass on padding and removed history, whose log-probability is -inf
        logp = logits.log_softmax(-1)
        candidate = torch.isfinite(logp)
        smooth = logp.where(candidate, 0.0).sum(-1) / candidate.sum(-1)
        return (1.0 - eps) * F.nll_loss(logp, targets) - eps * smooth.mean()

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def on_train_start(self) -> None:
        # global step at the start of this fit call: > 0 when resumed from a checkpoint
        self.start_step = int(self.trainer.global_step)
        self._fit_start = time.perf_counter()

    def wall_seconds(self) -> float:
        """Seconds spent in ``fit`` (training + validation) so far, summed over resumed sessions."""
        now = time.perf_counter() - self._fit_start if self._fit_start is not None else 0.0
        return self._wall_offset + now

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fit_wall_s"] = self.wall_seconds()
        # dropout, negatives and BERT4Rec's masks draw from torch's global generator: a run resumed at an
        # epoch boundary continues its stream instead of the one seed_everything restarted, so a run split
        # over sessions gives the numbers of one uninterrupted run (the shuffle has its own seed and epoch)
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before the wall-clock log (or the generator state) existed start from 0 (or the seed)
        self._wall_offset = float(checkpoint.get("fit_wall_s", 0.0))
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.hparams.model_cfg
        # fused: one kernel for all parameters (CPU and CUDA) instead of a Python loop over tensors. Under mixed
        # precision Lightning refuses to clip a fused optimizer's gradients (it cannot unscale fp16 gradients
        # first), so there the multi-tensor (foreach) kernels do the update in a few launches instead
        trainer = getattr(self, "_trainer", None)    # None when called outside a Trainer (lib.bench)
        mixed = trainer is not None and str(trainer.precision).endswith("-mixed")
        opt = torch.optim.AdamW(self.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                                betas=tuple(cfg["adam_betas"]), fused=not mixed, foreach=True if mixed else None)
        decay = cfg["decay_steps"]
        if cfg["lr_schedule"] != "constant" and decay is None:
            decay = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(
            step, cfg["lr_schedule"], int(cfg["warmup_steps"]), decay, float(cfg["min_lr_ratio"])))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- evaluation -----------------------------------------------------------------------
    def scores(self, history: torch.Tensor) -> torch.Tensor:
        """``[B, n_items + 1]`` next-item scores of left-padded histories; column 0 is -inf."""
        logits = self.model.item_logits(self.model.encode(trim_padding(history)))
        logits[:, PAD] = -torch.inf
        return logits

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        history, target, seen = batch
        logits = self.scores(history)
        ranks = rank_of_target(logits, target, exclude=(PAD,))
        sums = metric_sums(ranks, self.ks)
        # the published rows' protocol too: the user's earlier items are not candidates
        removed = rank_of_target(remove_seen(logits, seen), target, exclude=(PAD,))
        sums.update({f"history_removed/{key}": v for key, v in metric_sums(removed, self.ks).items()})
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
        if self._fit_start is not None:
            # cumulative wall clock per validation: quality against compute (lib/train/plots.py)
            self.log("time/wall_s", self.wall_seconds())

    def on_test_epoch_start(self) -> None:
        self._sums = {}

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")


def load_model(ckpt_path: str | Path, map_location: str = "cpu") -> SeqRecModel:
    """The trained :class:`SeqRecModel` of a checkpoint written by :func:`lib.train.run.train`.

    A checkpoint saved before a knob of the model group existed gets that knob's value in
    ``conf/model/default.yaml``, which is the behaviour from before the knob (each is added switched off).
    """
    ckpt = torch.load(ckpt_path, map_location=map_location, weights_only=False)
    hp = ckpt["hyper_parameters"]
    attrs = torch.zeros(hp["attr_shape"], dtype=torch.long) if hp["attr_shape"] else None
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "default.yaml"))
    model_cfg = {**{k: defaults[k] for k in SEQ_KEYS if k not in hp["model_cfg"]}, **hp["model_cfg"]}
    module = NextItemModule(model_cfg, hp["n_items"], attrs, hp["n_attrs"])
    module.load_state_dict(ckpt["state_dict"])
    return module.model.eval()
