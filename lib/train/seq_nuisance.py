"""scikit-learn estimators over item-id histories: the sequence transformer as an EconML nuisance.

:class:`SequenceRegressor` (``E[Y | W]``) and :class:`SequenceClassifier` (``P(T=1 | W)``)
take left-padded item-id histories ``W`` ``[n, max_len]`` (:func:`lib.train.datamodule.left_pad`)
and train the item-sequence transformer of :mod:`lib.models.seq` (from a next-item checkpoint
or freshly initialised) end to end with a small head, with a real ``lightning.Trainer``
(seeded, deterministic, CPU, early stopping on a seeded validation split). Their constructors
only store parameters, so ``sklearn.base.clone`` works and EconML's ``LinearDML``,
``CausalForestDML`` and ``DRLearner`` can take them as ``model_y`` / ``model_t`` /
``model_regression`` / ``model_propensity`` and cross-fit them themselves: the nuisance of
every unit comes from an encoder that never saw that unit's ``T`` or ``Y``.

EconML hands its nuisances ``hstack([X, W])`` (and ``DRLearner`` appends the one-hot ``T`` for
the outcome model), cast to float64. ``history_start`` / ``history_len`` say which columns are
the item ids; every other column is a numeric feature, standardised and concatenated to the
encoder's user vector before the head.

Hyper-parameters come from ``cfg.model.heads`` (lr, encoder_lr, weight_decay, batch_size,
max_epochs, max_steps, val_fraction, patience, hidden, dropout; ``outcome_loss`` picks the
regressor's loss) and the architecture from ``cfg.model`` (ignored with a checkpoint).

Examples
--------
>>> import numpy as np
>>> from econml.dml import LinearDML
>>> hc = dict(hidden=8, dropout=0.0, outcome_loss="auto", lr=1e-2, encoder_lr=1e-2, weight_decay=0.0,
...           batch_size=32, max_epochs=1, max_steps=-1, val_fraction=0.2, patience=1)
>>> from lib.config import compose
>>> mc = compose("smoke", ["model.max_len=4", "model.dropout=0.0", "model.attn_dropout=0.0"]).model
>>> rng = np.random.default_rng(0); W = rng.integers(0, 6, size=(60, 4)); T = rng.integers(0, 2, 60)
>>> est = LinearDML(model_y=SequenceRegressor(5, hc, mc), model_t=SequenceClassifier(5, hc, mc),
...                 discrete_treatment=True, cv=2, random_state=0)
>>> bool(np.isfinite(est.fit(T + rng.normal(size=60), T, W=W).ate()))
True
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import lightning as L
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from lib.errors import InputError
from lib.models.heads import is_binary
from lib.train.causal import build_sequence_encoder, encode_padded, fit_lightning
from lib.train.datamodule import item_id_tensor


class _NuisanceModule(L.LightningModule):
    """Encoder + head on ``[user vector, numeric features]``; one output (``mse`` or ``bce`` logit)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, loss: str, lr: float, encoder_lr: float,
                 weight_decay: float):
        super().__init__()
        self.encoder, self.head, self.loss_kind = encoder, head, loss
        self.lr, self.encoder_lr, self.weight_decay = lr, encoder_lr, weight_decay

    def forward(self, ids: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.encoder.encode(ids), dense], dim=1)).squeeze(-1)

    def _step(self, batch, stage: str) -> torch.Tensor:
        ids, dense, target = batch
        out = self(ids, dense)
        loss = (F.binary_cross_entropy_with_logits(out, target) if self.loss_kind == "bce"
                else F.mse_loss(out, target))
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=len(target))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([{"params": self.head.parameters(), "lr": self.lr},
                                  {"params": self.encoder.parameters(), "lr": self.encoder_lr}],
                                 weight_decay=self.weight_decay)


class _SequenceNuisance(BaseEstimator):
    """Shared fit / forward of :class:`SequenceRegressor` and :class:`SequenceClassifier`.

    Parameters
    ----------
    n_items : int
        Largest item id of the catalogue (ids ``1..n_items``; 0 pads).
    heads_cfg : mapping
        ``cfg.model.heads`` (training knobs, head width and dropout).
    model_cfg : mapping, optional
        ``cfg.model`` (architecture and size); needed without ``init_checkpoint``.
    init_checkpoint : str or Path, optional
        Next-item checkpoint (:func:`lib.train.nextitem.load_model`) the encoder starts from.
    item_attrs : array [n_items + 1, A], optional
        Attribute ids per item (:func:`lib.train.datamodule.attribute_table`), used when
        ``model_cfg.use_attributes``.
    n_attrs : int
        Largest attribute id.
    history_start : int
        First column of the item ids in the input (the columns before it are numeric).
    history_len : int, optional
        Number of item-id columns (None = every column from ``history_start`` on).
    seed : int
        Seed of the initial weights, the validation split and the batch order.
    n_threads : int, optional
        ``torch.set_num_threads`` in fit / predict (None = leave torch's setting).
    """

    _source = "sequence nuisance"

    def __init__(self, n_items: int, heads_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any] | None = None,
                 init_checkpoint: str | Path | None = None, item_attrs: np.ndarray | None = None, n_attrs: int = 0,
                 history_start: int = 0, history_len: int | None = None, seed: int = 0,
                 n_threads: int | None = None):
        self.n_items = n_items
        self.heads_cfg = heads_cfg
        self.model_cfg = model_cfg
        self.init_checkpoint = init_checkpoint
        self.item_attrs = item_attrs
        self.n_attrs = n_attrs
        self.history_start = history_start
        self.history_len = history_len
        self.seed = seed
        self.n_threads = n_threads

    def _split(self, W: Any) -> tuple[torch.Tensor, np.ndarray]:
        """``(item ids [n, L], numeric columns [n, d])`` of an input matrix."""
        W = np.asarray(W)
        if W.ndim != 2:
            raise InputError(self._source, "W", f"must be 2-D [units, columns], got shape {W.shape}",
                             "pass left-padded item-id histories (lib.train.datamodule.left_pad)")
        stop = W.shape[1] if self.history_len is None else self.history_start + int(self.history_len)
        if not 0 <= self.history_start < stop <= W.shape[1]:
            raise InputError(self._source, "W", f"has {W.shape[1]} columns, the item ids are set to columns "
                             f"{self.history_start}..{stop - 1}", "set history_start / history_len to the "
                             "position of the padded history in hstack([X, W]) (EconML's column order)")
        ids = item_id_tensor(W[:, self.history_start:stop], int(self.n_items), self._source)
        dense = np.hstack([W[:, :self.history_start], W[:, stop:]]).astype(np.float64)
        if not np.isfinite(dense).all():
            raise InputError(self._source, "W", "has NaN or infinite values in its numeric (non-history) columns",
                             "impute or drop them before fitting")
        return ids, dense

    def _check_fit_input(self, W: Any, y: Any) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        ids, dense = self._split(W)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(y) != len(ids):
            raise InputError(self._source, "y", f"has {len(y)} values for {len(ids)} rows of W", "pass one y per row")
        if not np.isfinite(y).all():
            raise InputError(self._source, "y", "contains NaN or infinite values", "drop or impute those units")
        return ids, dense, y

    def _fit(self, ids: torch.Tensor, dense: np.ndarray, target: np.ndarray, loss: str) -> "_SequenceNuisance":
        """Train encoder + head on validated inputs (``target`` already on the loss's scale)."""
        if self.n_threads is not None:
            torch.set_num_threads(int(self.n_threads))
        hc = self.heads_cfg
        self.n_features_in_ = ids.shape[1] + dense.shape[1]
        self.dense_mean_ = dense.mean(0) if len(dense) else np.zeros(dense.shape[1])
        self.dense_std_ = np.where(dense.std(0) > 0, dense.std(0), 1.0) if len(dense) else np.ones(dense.shape[1])
        L.seed_everything(int(self.seed), workers=True, verbose=False)   # initial weights of encoder and head
        encoder = build_sequence_encoder(self.model_cfg, int(self.n_items), self.item_attrs, int(self.n_attrs),
                                         self.init_checkpoint)
        width = encoder.hidden_size + dense.shape[1]
        head = nn.Sequential(nn.Linear(width, int(hc["hidden"])), nn.ELU(), nn.Dropout(float(hc["dropout"])),
                             nn.Linear(int(hc["hidden"]), 1))
        module = _NuisanceModule(encoder, head, loss, float(hc["lr"]), float(hc["encoder_lr"]),
                                 float(hc["weight_decay"]))
        dense_t = torch.as_tensor((dense - self.dense_mean_) / self.dense_std_, dtype=torch.float32)
        fit_lightning(module, (ids, dense_t, torch.as_tensor(target, dtype=torch.float32)), hc, int(self.seed))
        self.module_ = module
        return self

    @torch.no_grad()
    def _raw(self, W: Any, batch_size: int = 1024) -> np.ndarray:
        """Head outputs (standardised outcome or logit) of every row, eval mode, float64."""
        check_is_fitted(self, "module_")
        if self.n_threads is not None:
            torch.set_num_threads(int(self.n_threads))
        if np.asarray(W).ndim == 2 and np.asarray(W).shape[1] != self.n_features_in_:
            raise InputError(self._source, "W", f"has {np.asarray(W).shape[1]} columns, fitted on "
                             f"{self.n_features_in_}", "predict on the same column layout as fit")
        ids, dense = self._split(W)
        dense_t = torch.as_tensor((dense - self.dense_mean_) / self.dense_std_, dtype=torch.float32)
        self.module_.eval()
        parts = [self.module_(ids[i:i + batch_size], dense_t[i:i + batch_size]).double().numpy()
                 for i in range(0, len(ids), batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def transform(self, W: Any) -> np.ndarray:
        """The fitted encoder's user vectors ``[n, H]`` (float32) of the histories in ``W``."""
        check_is_fitted(self, "module_")
        ids, _ = self._split(W)
        return encode_padded(self.module_.encoder, ids)


class SequenceRegressor(RegressorMixin, _SequenceNuisance):
    """``E[y | W]`` from item-id histories (EconML ``model_y`` / ``model_regression``).

    ``heads_cfg["outcome_loss"]``: ``mse`` on standardised ``y``, ``bce`` (``y`` in {0, 1};
    predictions are probabilities), or ``auto`` (``bce`` when ``y`` is 0/1). Parameters: see
    :class:`_SequenceNuisance`.
    """

    _source = "SequenceRegressor"

    def fit(self, W: Any, y: Any) -> "SequenceRegressor":
        """Train encoder + head on ``(W, y)``; ``W`` holds the padded histories (see ``history_start``)."""
        ids, dense, y = self._check_fit_input(W, y)
        loss = self.heads_cfg["outcome_loss"]
        loss = ("bce" if is_binary(y) else "mse") if loss == "auto" else loss
        if loss not in ("mse", "bce") or (loss == "bce" and not is_binary(y)):
            raise InputError(self._source, "y", f"cannot be fitted with outcome_loss={loss!r}",
                             "use outcome_loss mse | auto, or bce for 0/1 outcomes (model.heads)")
        self.loss_ = loss
        self.y_mean_, self.y_std_ = (float(y.mean()), float(y.std()) or 1.0) if loss == "mse" else (0.0, 1.0)
        return self._fit(ids, dense, (y - self.y_mean_) / self.y_std_, loss)

    def predict(self, W: Any) -> np.ndarray:
        """Predicted outcome of every row, on the scale of the training ``y``."""
        raw = self._raw(W)
        return 1.0 / (1.0 + np.exp(-raw)) if self.loss_ == "bce" else raw * self.y_std_ + self.y_mean_


class SequenceClassifier(ClassifierMixin, _SequenceNuisance):
    """``P(y = 1 | W)`` from item-id histories, ``y`` in {0, 1} (EconML ``model_t`` / ``model_propensity``).

    Parameters: see :class:`_SequenceNuisance`.
    """

    _source = "SequenceClassifier"

    def fit(self, W: Any, y: Any) -> "SequenceClassifier":
        """Train encoder + head on ``(W, y)`` with the binary cross-entropy."""
        ids, dense, y = self._check_fit_input(W, y)
        if not is_binary(y) or len(np.unique(y)) < 2:
            raise InputError(self._source, "y", f"must hold both classes 0 and 1, got {np.unique(y)[:5].tolist()}",
                             "binarise the treatment (one arm against control) and keep both arms in every fold")
        self.classes_ = np.array([0, 1])
        return self._fit(ids, dense, y, "bce")

    def predict_proba(self, W: Any) -> np.ndarray:
        """``[n, 2]`` probabilities of classes 0 and 1."""
        p1 = 1.0 / (1.0 + np.exp(-self._raw(W)))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, W: Any) -> np.ndarray:
        """The more probable class of every row."""
        return self.classes_[(self.predict_proba(W)[:, 1] > 0.5).astype(int)]
