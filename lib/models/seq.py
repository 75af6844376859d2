"""Sequence transformers over item ids: SASRec-style (causal) and BERT4Rec-style (masked).

Token ids are ``0`` = padding, ``1..n_items`` = items and ``n_items + 1`` = ``[MASK]``.
Sequences are *left*-padded, so the most recent item always sits at the last position and
learned absolute position embeddings measure "distance from now".

* ``sasrec``: causal attention; the hidden state at position ``t`` predicts the item at ``t + 1``.
* ``bert4rec``: bidirectional attention; randomly masked items are predicted from both
  sides (masked-item modelling). At inference a ``[MASK]`` is appended after the history
  and its hidden state predicts the next item.

The blocks are written out here (not a ``transformers.BertModel``) because the recipe knobs
of the SASRec literature are not BERT options: pre- or post-LayerNorm (``norm_first``), the
feed-forward block (``ffn``: GELU / ReLU / SwiGLU, width ``ff_mult x hidden``) and untied
output embeddings. With ``norm_first=false`` and ``ffn=gelu`` a block is BERT's post-norm
block; ``norm_first=true`` is the pre-norm block of RecTools / eSASRec (with a final
LayerNorm). Scores over the catalogue are dot products with the item table (``tie_weights``)
or with a separate output table, plus a bias.

Examples
--------
>>> import torch
>>> m = SeqRecModel(n_items=20, arch="sasrec", hidden=16, layers=1, heads=2, max_len=6, dropout=0.1,
...                 attn_dropout=0.1, attn_implementation="sdpa", norm_first=True, ffn="relu", ff_mult=1,
...                 tie_weights=True, logit_multiple=1)
>>> m.encode(torch.tensor([[0, 0, 3, 4, 5, 6]])).shape
torch.Size([1, 16])
>>> m.item_logits(m.encode(torch.tensor([[0, 0, 3, 4, 5, 6]]))).shape
torch.Size([1, 21])
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("sasrec", "bert4rec")
FFNS = ("gelu", "relu", "swiglu")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
PAD = 0
# keys of the ``model`` config group that define the sequence model, its loss and its optimiser
SEQ_KEYS = ("arch", "size", "sizes", "max_len", "dropout", "attn_dropout", "use_attributes",
            "attn_implementation", "norm_first", "ffn", "ff_mult", "tie_weights", "loss", "label_smoothing",
            "train_remove_history", "n_negatives", "negatives", "mask_prob", "lr", "weight_decay", "adam_betas",
            "lr_schedule", "warmup_steps", "decay_steps", "min_lr_ratio", "ema_decay", "ks", "logit_multiple")


def seq_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The sequence-model part of the ``model`` group as a plain dict (other encoders' knobs dropped)."""
    missing = [k for k in SEQ_KEYS if k not in model_cfg]
    if missing:
        raise KeyError(f"model config lacks {missing} (conf/model/default.yaml)")
    out = {k: model_cfg[k] for k in SEQ_KEYS}
    return {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in out.items()}


class Attention(nn.Module):
    """Multi-head self-attention; ``sdpa`` and ``eager`` compute the same function."""

    def __init__(self, hidden: int, heads: int, attn_dropout: float, implementation: str) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not a multiple of heads={heads}")
        if implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"model.attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {implementation!r}")
        self.heads, self.attn_dropout, self.implementation = heads, attn_dropout, implementation
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` [B, L, H]; ``allowed`` [B, 1, L, L] bool (query row may read key column)."""
        b, length, h = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        if self.implementation == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            probs = F.dropout(scores.masked_fill(~allowed, -torch.inf).softmax(-1), p, self.training)
            ctx = probs @ v
        return self.out(ctx.transpose(1, 2).reshape(b, length, h))


class FeedForward(nn.Module):
    """Position-wise feed-forward: ``W2 act(W1 x)`` or SwiGLU ``W2 (silu(W1 x) * V x)``."""

    def __init__(self, hidden: int, inner: int, kind: str, dropout: float) -> None:
        super().__init__()
        if kind not in FFNS:
            raise ValueError(f"model.ffn must be one of {FFNS}, got {kind!r}")
        self.kind = kind
        self.inp = nn.Linear(hidden, 2 * inner if kind == "swiglu" else inner)
        self.out = nn.Linear(inner, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inp(x)
        if self.kind == "swiglu":
            gate, value = z.chunk(2, dim=-1)
            z = F.silu(gate) * value
        else:
            z = F.gelu(z) if self.kind == "gelu" else F.relu(z)
        return self.out(self.drop(z))


class Block(nn.Module):
    """One transformer block, post-norm (BERT, original SASRec paper) or pre-norm (RecTools, eSASRec)."""

    def __init__(self, hidden: int, heads: int, ff_inner: int, ffn: str, norm_first: bool, dropout: float,
                 attn_dropout: float, attn_implementation: str) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = Attention(hidden, heads, attn_dropout, attn_implementation)
        self.ffn = FeedForward(hidden, ff_inner, ffn, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), allowed))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, allowed)))
        return self.norm2(x + self.drop(self.ffn(x)))


class SeqRecModel(nn.Module):
    """Item-sequence transformer with a dot-product next-item head over the catalogue.

    Parameters
    ----------
    n_items : int
        Largest item id (ids are ``1..n_items``; ``0`` pads).
    arch : {"sasrec", "bert4rec"}
    hidden, layers, heads : int
        Transformer width, depth and attention heads.
    max_len : int
        Longest input; longer histories keep their most recent ``max_len`` items.
    dropout, attn_dropout : float
        Hidden-state and attention-probability dropout.
    item_attrs : LongTensor of shape (n_items + 1, A), optional
        Attribute ids per item (0-padded); their mean embedding is added to the item
        embedding so rare items share strength with items of the same brand / category.
    n_attrs : int
        Largest attribute id (needed when ``item_attrs`` is given).
    attn_implementation : {"eager", "sdpa"}
        Explicit softmax attention or ``torch.nn.functional.scaled_dot_product_attention``.
    norm_first : bool
        Pre-LayerNorm blocks (plus a final LayerNorm) instead of post-LayerNorm blocks.
    ffn : {"gelu", "relu", "swiglu"}
        Feed-forward block.
    ff_mult : int
        Feed-forward inner width as a multiple of ``hidden``.
    tie_weights : bool
        Score items with the input item table (true) or with a separate output table.
    """

    def __init__(self, n_items: int, *, arch: str, hidden: int, layers: int, heads: int, max_len: int,
                 dropout: float, attn_dropout: float, attn_implementation: str, norm_first: bool, ffn: str,
                 ff_mult: int, tie_weights: bool, logit_multiple: int, item_attrs: torch.Tensor | None = None,
                 n_attrs: int = 0) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {ARCHS}, got {arch!r}")
        self.arch, self.n_items, self.max_len = arch, int(n_items), int(max_len)
        self.mask_id = self.n_items + 1
        self.logit_multiple = int(logit_multiple)
        self.norm_first, self.hidden = bool(norm_first), int(hidden)
        self.items = nn.Embedding(self.n_items + 2, hidden, padding_idx=PAD)
        self.positions = nn.Embedding(self.max_len, hidden)
        # post-norm normalises the embeddings (BERT); pre-norm normalises the last block's output
        self.emb_norm = nn.Identity() if self.norm_first else nn.LayerNorm(hidden)
        self.final_norm = nn.LayerNorm(hidden) if self.norm_first else nn.Identity()
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, int(ff_mult) * hidden, ffn, self.norm_first, dropout,
                                          attn_dropout, attn_implementation) for _ in range(layers))
        self.output_items = None if tie_weights else nn.Embedding(self.n_items + 2, hidden)
        self.output_bias = nn.Parameter(torch.zeros(self.n_items + 2))
        if item_attrs is not None:
            self.register_buffer("item_attrs", item_attrs.long())
            self.attr_emb = nn.Embedding(int(n_attrs) + 1, hidden, padding_idx=0)
        else:
            self.item_attrs, self.attr_emb = None, None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # BERT's initialisation: N(0, 0.02) weights, zero biases, zero padding rows
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    @property
    def hidden_size(self) -> int:
        """Width of the user vectors returned by :meth:`encode`."""
        return self.hidden

    @property
    def item_table(self) -> nn.Embedding:
        """Input item embedding table (ids ``0..n_items + 1``)."""
        return self.items

    @property
    def output_table(self) -> nn.Embedding:
        """Item vectors the head scores against: the input table when tied."""
        return self.items if self.output_items is None else self.output_items

    def embed_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Item (+ mean attribute) embeddings of ``item_ids`` before positions are added."""
        emb = self.items(item_ids)
        if self.attr_emb is not None:
            attrs = self.item_attrs[item_ids.clamp(max=self.n_items)]            # [B, L, A]
            valid = (attrs > 0).float().unsqueeze(-1)
            attr_mean = (self.attr_emb(attrs) * valid).sum(-2) / valid.sum(-2).clamp(min=1.0)
            # [MASK] and padding carry no attributes
            emb = emb + attr_mean * (item_ids.unsqueeze(-1) != self.mask_id) * (item_ids.unsqueeze(-1) != PAD)
        return emb

    def attention_mask(self, item_ids: torch.Tensor) -> torch.Tensor:
        """``[B, 1, L, L]`` bool: real keys (causal for ``sasrec``); every position also reads itself.

        The diagonal keeps padding rows (which nothing reads) from a softmax over nothing.
        """
        length = item_ids.shape[1]
        allowed = (item_ids != PAD)[:, None, None, :].expand(-1, 1, length, -1)
        eye = torch.eye(length, dtype=torch.bool, device=item_ids.device)
        if self.arch == "sasrec":
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=item_ids.device).tril()
        return allowed | eye

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, H]`` of a left-padded batch ``[B, L]`` (``L <= max_len``)."""
        if item_ids.dim() != 2 or item_ids.shape[1] > self.max_len:
            raise ValueError(f"item_ids must be [batch, length<= {self.max_len}], got {tuple(item_ids.shape)}")
        # positions count from the right so the latest item always has position max_len - 1
        length = item_ids.shape[1]
        position_ids = torch.arange(self.max_len - length, self.max_len, device=item_ids.device)
        x = self.emb_drop(self.emb_norm(self.embed_items(item_ids) + self.positions(position_ids)))
        allowed = self.attention_mask(item_ids)
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over ids ``0..n_items``. Column 0 is padding: mask it before ranking.

        With ``logit_multiple`` > 1 the product runs over the table padded with zero rows to a multiple of
        it, and the extra columns are dropped: the same scores, but a matrix product whose output width the
        GPU's bf16 kernels accept (Sports' 18,358 columns made bf16 training 6.5x slower than 18,368).
        """
        n = self.n_items + 1
        weight = self.output_table.weight[:n]
        if self.logit_multiple > 1:
            padded = F.pad(weight, (0, 0, 0, -n % self.logit_multiple))
            return (hidden @ padded.T)[..., :n] + self.output_bias[:n]
        return hidden @ weight.T + self.output_bias[:n]

    def candidate_logits(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``[N, C]`` of the candidate ids ``items`` (``[C]``, shared) for ``hidden`` ``[N, H]``."""
        return hidden @ self.output_table(items).T + self.output_bias[items]

    def prepare_history(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Model input for "predict the next item" from left-padded histories.

        ``sasrec`` reads the history as is (last ``max_len`` items); ``bert4rec`` appends a
        ``[MASK]`` after the history (keeping the last ``max_len - 1`` items).
        """
        if self.arch == "bert4rec":
            mask_col = torch.full_like(item_ids[:, :1], self.mask_id)
            item_ids = torch.cat([item_ids, mask_col], dim=1)
        return item_ids[:, -self.max_len:]

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        """User vectors ``[B, H]`` from left-padded histories ``[B, L]`` (0 = padding).

        ``sasrec``: the hidden state at the last position (the most recent item).
        ``bert4rec``: the hidden state of a ``[MASK]`` appended after the history.
        Any ``L`` is accepted; only the most recent items that fit ``max_len`` are read.
        """
        return self.forward(self.prepare_history(item_ids))[:, -1]


def build_model(model_cfg: Mapping[str, Any], n_items: int, item_attrs: torch.Tensor | None = None,
                n_attrs: int = 0) -> SeqRecModel:
    """A :class:`SeqRecModel` from the ``model`` config group (``size`` picks ``sizes[size]``).

    ``item_attrs`` is used only when ``model.use_attributes`` is true.
    """
    sizes = model_cfg["sizes"]
    if model_cfg["size"] not in sizes:
        raise ValueError(f"model.size={model_cfg['size']!r} is not one of {sorted(sizes)} (conf/model)")
    size = sizes[model_cfg["size"]]
    use_attrs = bool(model_cfg["use_attributes"]) and item_attrs is not None
    return SeqRecModel(
        n_items=n_items, arch=model_cfg["arch"], hidden=size["hidden"], layers=size["layers"],
        heads=size["heads"], max_len=model_cfg["max_len"], dropout=model_cfg["dropout"],
        attn_dropout=model_cfg["attn_dropout"], item_attrs=item_attrs if use_attrs else None,
        n_attrs=n_attrs if use_attrs else 0, attn_implementation=model_cfg["attn_implementation"],
        norm_first=model_cfg["norm_first"], ffn=model_cfg["ffn"], ff_mult=model_cfg["ff_mult"],
        tie_weights=model_cfg["tie_weights"], logit_multiple=model_cfg["logit_multiple"],
    )
