"""Multi-task causal heads in the style of Dragonnet (Shi et al., 2019) and CausalBERT (Veitch et al., 2020).

A representation ``z`` (user embedding, sequence-encoder output, text vector) feeds a shared
layer ``h = dropout(elu(W z))``. Three heads read ``h``:

* ``g``  — propensity logit, ``P(T=1 | z) = sigmoid(g)``;
* ``q0`` — outcome under control, ``E[Y | z, T=0]``;
* ``q1`` — outcome under treatment, ``E[Y | z, T=1]``.

Training minimises ``outcome_loss(q_T, Y) + alpha * BCE(g, T)``: the outcome loss sees only
the factual arm of each unit, the propensity loss pushes the shared layer to keep the
information that predicts treatment, i.e. the confounders (the Dragonnet argument: a
representation sufficient for the propensity is sufficient for adjustment).

Outcomes are modelled on a standardised scale for ``mse`` (``y_mean`` / ``y_std`` buffers
undo it in :meth:`CausalHeads.predict`) and as logits for ``bce`` (binary Y); ``predict``
always returns outcomes on the original scale, so ``mu1 - mu0`` is the effect estimate.

Examples
--------
>>> heads = CausalHeads(in_dim=8, hidden=16, dropout=0.1, alpha=1.0, outcome_loss="mse")
>>> out = heads(torch.zeros(4, 8))
>>> sorted(out), out["g"].shape
(['g', 'q0', 'q1'], torch.Size([4]))
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OUTCOME_LOSSES = ("mse", "bce")


def is_binary(y: np.ndarray) -> bool:
    """True when every value of ``y`` is 0 or 1."""
    y = np.asarray(y)
    return bool(y.size) and bool(np.isin(y, (0, 1)).all())


class CausalHeads(nn.Module):
    """Propensity logit ``g`` and outcomes ``q0`` / ``q1`` over a shared layer.

    Parameters
    ----------
    in_dim : int
        Size of the input representation.
    hidden : int
        Width of the shared layer and of each outcome head's hidden layer.
    dropout : float
        Dropout after the shared layer.
    alpha : float
        Weight of the propensity BCE in :meth:`loss`.
    outcome_loss : {"mse", "bce"}
        ``bce`` for binary outcomes (``q0``/``q1`` are logits), ``mse`` otherwise.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float, alpha: float, outcome_loss: str):
        super().__init__()
        if outcome_loss not in OUTCOME_LOSSES:
            raise ValueError(f"outcome_loss must be one of {OUTCOME_LOSSES}, got {outcome_loss!r}")
        self.alpha, self.outcome_loss = float(alpha), outcome_loss
        self.shared = nn.Sequential(nn.Linear(in_dim, hidden), nn.ELU(), nn.Dropout(dropout))
        self.g = nn.Linear(hidden, 1)
        # two-layer outcome heads as in Dragonnet: each arm gets its own non-linearity
        self.q0 = nn.Sequential(nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 1))
        self.q1 = nn.Sequential(nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 1))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def set_outcome_scale(self, y: np.ndarray) -> None:
        """Standardise continuous outcomes with the training ``y`` (a no-op for ``bce``)."""
        if self.outcome_loss == "mse":
            y = np.asarray(y, dtype=np.float64)
            self.y_mean.fill_(float(y.mean()))
            self.y_std.fill_(float(y.std()) if y.std() > 0 else 1.0)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs ``{"g", "q0", "q1"}``, each of shape ``[B]``."""
        h = self.shared(z)
        return {"g": self.g(h).squeeze(-1), "q0": self.q0(h).squeeze(-1), "q1": self.q1(h).squeeze(-1)}

    def loss(self, out: dict[str, torch.Tensor], t: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "outcome", "propensity"}``; the outcome term uses the factual arm only.

        Parameters
        ----------
        out : output of :meth:`forward`
        t : tensor ``[B]`` of 0/1 treatments
        y : tensor ``[B]`` of outcomes on the original scale
        """
        t = t.to(out["g"].dtype)
        q_fact = torch.where(t > 0.5, out["q1"], out["q0"])
        if self.outcome_loss == "bce":
            outcome = F.binary_cross_entropy_with_logits(q_fact, y.to(q_fact.dtype))
        else:
            outcome = F.mse_loss(q_fact, (y.to(q_fact.dtype) - self.y_mean) / self.y_std)
        propensity = F.binary_cross_entropy_with_logits(out["g"], t)
        return {"loss": outcome + self.alpha * propensity, "outcome": outcome, "propensity": propensity}

    @torch.no_grad()
    def predict(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Propensity ``e`` in (0, 1) and outcomes ``mu0`` / ``mu1`` on the original scale (eval mode)."""
        was_training = self.training
        self.eval()
        try:
            out = self(z)
        finally:
            self.train(was_training)
        if self.outcome_loss == "bce":
            mu0, mu1 = torch.sigmoid(out["q0"]), torch.sigmoid(out["q1"])
        else:
            mu0 = out["q0"] * self.y_std + self.y_mean
            mu1 = out["q1"] * self.y_std + self.y_mean
        return {"e": torch.sigmoid(out["g"]), "mu0": mu0, "mu1": mu1}


def build_heads(heads_cfg, in_dim: int, y: np.ndarray | None = None) -> CausalHeads:
    """:class:`CausalHeads` from the ``model.heads`` config; ``auto`` loss picks bce for 0/1 ``y``."""
    loss = heads_cfg["outcome_loss"]
    if loss == "auto":
        loss = "bce" if y is not None and is_binary(y) else "mse"
    heads = CausalHeads(in_dim, hidden=heads_cfg["hidden"], dropout=heads_cfg["dropout"],
                        alpha=heads_cfg["alpha"], outcome_loss=loss)
    if y is not None:
        heads.set_outcome_scale(y)
    return heads
