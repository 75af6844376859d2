"""Sequence transformers over item ids: SASRec-style (causal) and BERT4Rec-style (masked).

Both variants are a ``transformers.BertModel`` built from a ``BertConfig`` (nothing is
downloaded). Token ids are ``0`` = padding, ``1..n_items`` = items and ``n_items + 1`` =
``[MASK]``. Sequences are *left*-padded, so the most recent item always sits at the last
position and absolute position embeddings measure "distance from now".

* ``sasrec``: ``is_decoder=True`` gives a causal attention mask; the hidden state at
  position ``t`` predicts the item at ``t + 1``.
* ``bert4rec``: bidirectional attention; randomly masked items are predicted from both
  sides (masked-item modelling). At inference a ``[MASK]`` is appended after the history
  and its hidden state predicts the next item.

The next-item head is a full softmax over the catalogue whose weights are tied to the item
embedding table (plus a bias), as in both original papers.

Examples
--------
>>> import torch
>>> m = SeqRecModel(n_items=20, arch="sasrec", hidden=16, layers=1, heads=2, max_len=6)
>>> m.encode(torch.tensor([[0, 0, 3, 4, 5, 6]])).shape
torch.Size([1, 16])
>>> m.item_logits(m.encode(torch.tensor([[0, 0, 3, 4, 5, 6]]))).shape
torch.Size([1, 21])
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from transformers import BertConfig, BertModel

ARCHS = ("sasrec", "bert4rec")
PAD = 0
# keys of the ``model`` config group that define the sequence model and its optimiser
SEQ_KEYS = ("arch", "size", "sizes", "max_len", "dropout", "attn_dropout", "use_attributes",
            "attn_implementation", "mask_prob", "lr", "weight_decay", "ks")


def seq_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The sequence-model part of the ``model`` group as a plain dict (other encoders' knobs dropped)."""
    missing = [k for k in SEQ_KEYS if k not in model_cfg]
    if missing:
        raise KeyError(f"model config lacks {missing} (conf/model/default.yaml)")
    out = {k: model_cfg[k] for k in SEQ_KEYS}
    return {k: (v.copy() if isinstance(v, dict) else v) for k, v in out.items()}


class SeqRecModel(nn.Module):
    """Item-sequence transformer with a tied full-softmax next-item head.

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
    attn_implementation : str
        ``"eager"`` (deterministic, default) or ``"sdpa"`` (faster on GPU).
    """

    def __init__(self, n_items: int, arch: str = "sasrec", hidden: int = 64, layers: int = 2, heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2, attn_dropout: float = 0.2,
                 item_attrs: torch.Tensor | None = None, n_attrs: int = 0,
                 attn_implementation: str = "eager") -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {ARCHS}, got {arch!r}")
        self.arch, self.n_items, self.max_len = arch, int(n_items), int(max_len)
        self.mask_id = self.n_items + 1
        config = BertConfig(
            vocab_size=self.n_items + 2, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=4 * hidden, hidden_act="gelu",
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=attn_dropout,
            max_position_embeddings=self.max_len, type_vocab_size=1, pad_token_id=PAD,
            is_decoder=(arch == "sasrec"), add_cross_attention=False, use_cache=False,
        )
        config._attn_implementation = attn_implementation
        self.bert = BertModel(config, add_pooling_layer=False)
        self.output_bias = nn.Parameter(torch.zeros(self.n_items + 2))
        if item_attrs is not None:
            self.register_buffer("item_attrs", item_attrs.long())
            self.attr_emb = nn.Embedding(int(n_attrs) + 1, hidden, padding_idx=0)
        else:
            self.item_attrs, self.attr_emb = None, None

    @property
    def hidden_size(self) -> int:
        """Width of the user vectors returned by :meth:`encode`."""
        return self.bert.config.hidden_size

    @property
    def item_table(self) -> nn.Embedding:
        """Item embedding table (ids ``0..n_items + 1``), shared with the output head."""
        return self.bert.embeddings.word_embeddings

    def embed_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Item (+ mean attribute) embeddings of ``item_ids`` before positions are added."""
        emb = self.item_table(item_ids)
        if self.attr_emb is not None:
            attrs = self.item_attrs[item_ids.clamp(max=self.n_items)]            # [B, L, A]
            valid = (attrs > 0).float().unsqueeze(-1)
            attr_mean = (self.attr_emb(attrs) * valid).sum(-2) / valid.sum(-2).clamp(min=1.0)
            # [MASK] and padding carry no attributes
            emb = emb + attr_mean * (item_ids.unsqueeze(-1) != self.mask_id) * (item_ids.unsqueeze(-1) != PAD)
        return emb

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, H]`` of a left-padded batch ``[B, L]`` (``L <= max_len``)."""
        if item_ids.dim() != 2 or item_ids.shape[1] > self.max_len:
            raise ValueError(f"item_ids must be [batch, length<= {self.max_len}], got {tuple(item_ids.shape)}")
        attention_mask = (item_ids != PAD).long()
        # positions count from the right so the latest item always has position max_len - 1
        length = item_ids.shape[1]
        position_ids = torch.arange(self.max_len - length, self.max_len, device=item_ids.device).unsqueeze(0)
        out = self.bert(inputs_embeds=self.embed_items(item_ids), attention_mask=attention_mask,
                        position_ids=position_ids)
        return out.last_hidden_state

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over ids ``0..n_items`` (tied weights). Column 0 is padding: mask it before ranking."""
        weight = self.item_table.weight[: self.n_items + 1]
        return hidden @ weight.T + self.output_bias[: self.n_items + 1]

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
    )
