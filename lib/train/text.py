"""Fine-tune the MiniLM text encoder on a binary Hillstrom outcome, and compare predictors.

A customer's pre-treatment covariates are rendered as an English sentence
(:func:`lib.data.text.customer_sentence`); :class:`TextClassifier` reads it with MiniLM
(``lora`` or ``full`` mode) and a linear head and is trained with a real Lightning Trainer on
the train split. :func:`hillstrom_conversion` reports test-split AUC and log-loss, on the
customers of :func:`lib.data.hillstrom.text_population` (``model.text.max_customers``), for

* ``logreg_raw`` — logistic regression on the numeric design matrix;
* ``logreg_text_frozen`` — logistic regression on frozen MiniLM vectors;
* ``text_lora`` / ``text_full`` — the fine-tuned text models (when ``model.text.finetune.enabled``).

Fine-tuned encoders are saved under ``{paths.checkpoints}/text/`` so the embedding export
can reuse them (variants ``text_lora`` / ``text_full``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

from lib.errors import InputError
from lib.io import atomic_path, sha256_file
from lib.models.text import TextEncoder, build_text_encoder


class SentenceDataModule(L.LightningDataModule):
    """Texts and 0/1 labels, tokenised per batch (dynamic padding) by ``tokenizer``."""

    def __init__(self, texts: Sequence[str], labels: np.ndarray, tokenizer: Any, max_length: int,
                 batch_size: int, seed: int):
        super().__init__()
        self.texts, self.labels = list(texts), np.asarray(labels, dtype=np.float32)
        self.tokenizer, self.max_length, self.batch_size, self.seed = tokenizer, max_length, batch_size, seed

    def _collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer([self.texts[i] for i in idx], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"],
                "label": torch.as_tensor(self.labels[idx])}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(range(len(self.texts))), batch_size=self.batch_size, shuffle=True,
                          collate_fn=self._collate, generator=torch.Generator().manual_seed(self.seed))


class TextClassifier(L.LightningModule):
    """MiniLM sentence vector -> linear logit, trained with binary cross-entropy."""

    def __init__(self, encoder: TextEncoder, lr: float, weight_decay: float):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.dim, 1)
        self.lr, self.weight_decay = lr, weight_decay

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask)).squeeze(-1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logit = self(batch["input_ids"], batch["attention_mask"])
        loss = nn.functional.binary_cross_entropy_with_logits(logit, batch["label"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(logit))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """P(label = 1) for each text (eval mode, input order)."""
        self.eval()
        w, b = self.head.weight[0].cpu().numpy(), float(self.head.bias.cpu())
        return 1.0 / (1.0 + np.exp(-(self.encoder.encode(texts, batch_size) @ w + b)))


def finetune_text(cfg: Any, texts: Sequence[str], labels: np.ndarray, mode: str, seed: int,
                  log_dir: str | Path | None = None) -> TextClassifier:
    """Fine-tune MiniLM (``mode`` = ``lora`` or ``full``) plus a linear head on ``(texts, labels)``."""
    if mode not in ("lora", "full"):
        raise ValueError(f"text fine-tuning mode must be lora or full, got {mode!r}")
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise InputError("text fine-tuning", "label", "must be 0/1", "pick a binary outcome (conversion, visit)")
    ft = cfg.model.text.finetune
    L.seed_everything(seed, workers=True, verbose=False)
    enc = build_text_encoder(cfg.model.text, mode=mode)
    enc.max_length = int(ft.max_length)
    model = TextClassifier(enc, lr=float(ft.lr), weight_decay=float(ft.weight_decay))
    # start the head at the base rate: with rare outcomes (conversion ~1%) a 0.5 start wastes
    # the few steps of a small fine-tuning budget on learning the intercept
    rate = float(np.clip(labels.mean(), 1e-4, 1 - 1e-4))
    with torch.no_grad():
        model.head.bias.fill_(float(np.log(rate / (1 - rate))))
    model.train()  # from_pretrained returns eval mode; dropout belongs to training
    data = SentenceDataModule(texts, labels, enc.tokenizer, int(ft.max_length), int(ft.batch_size), seed)
    logger = False
    if log_dir is not None:
        from lightning.pytorch.loggers import CSVLogger
        logger = CSVLogger(str(log_dir), name="", version="")
    trainer = L.Trainer(max_epochs=int(ft.max_epochs), max_steps=int(ft.max_steps), accelerator="cpu", devices=1,
                        deterministic=True, logger=logger, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False, log_every_n_steps=10)
    trainer.fit(model, datamodule=data)
    return model.cpu().eval()


def text_checkpoint_path(cfg: Any, outcome: str, mode: str) -> Path:
    """Where the fine-tuned text encoder for ``outcome`` / ``mode`` is stored."""
    return Path(cfg.paths.checkpoints) / "text" / f"hillstrom_{outcome}_{mode}.pt"


def save_text_model(model: TextClassifier, path: str | Path) -> str:
    """Save the trained weights (adapters for lora, all for full) + head atomically; returns sha256."""
    state = {"mode": model.encoder.mode, "encoder": model.encoder.trainable_state(),
             "head": {k: v.detach().clone() for k, v in model.head.state_dict().items()}}
    # to a file object: given a path, torch names the archive's records after its file name, and the temporary
    # name made the bytes (so the sha256 the embedding cache keys on) differ between identical fits
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    return sha256_file(path)


def load_text_encoder(text_cfg: Any, path: str | Path) -> TextEncoder:
    """The fine-tuned :class:`TextEncoder` saved by :func:`save_text_model`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    enc = build_text_encoder(text_cfg, mode=state["mode"])
    missing = set(state["encoder"]) - set(enc.state_dict())
    if missing:
        raise InputError(str(path), None, f"holds {len(missing)} weights the encoder does not have",
                         "retrain with the current model.text settings (LoRA rank / mode changed)")
    enc.load_state_dict(state["encoder"], strict=False)
    return enc.eval()


def _scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    auc = roc_auc_score(y, p) if len(np.unique(y)) == 2 else float("nan")
    return float(auc), float(log_loss(y, p, labels=[0, 1]))


def hillstrom_conversion(cfg: Any, run_dir: str | Path) -> pd.DataFrame:
    """Test-split AUC / log-loss of raw-feature, frozen-text and fine-tuned-text predictors.

    Registers the table ``hillstrom_prediction`` and records
    ``predict.hillstrom.<outcome>.<model>.auc`` / ``.logloss``.
    """
    from lib.data.hillstrom import design_matrix, load_prepared, text_population
    from lib.data.text import customer_sentence
    from lib.report.artefacts import record_metrics, register

    tcfg = cfg.model.text
    df = load_prepared(cfg)
    df = df[df["customer_id"].isin(text_population(df, cfg))]   # MiniLM's budget: model.text.max_customers
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise InputError("hillstrom.parquet", "split", f"has no {name} rows", "re-run notebook 01")
    texts = {name: [customer_sentence(r) for r in part.to_dict("records")] for name, part in
             (("train", train), ("test", test))}
    rows: list[dict[str, Any]] = []

    def logreg(xtr: np.ndarray, xte: np.ndarray, outcome: str) -> np.ndarray:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=float(tcfg.predict.logreg_C), max_iter=2000))
        return clf.fit(xtr, train[outcome].to_numpy()).predict_proba(xte)[:, 1]

    def add(outcome: str, model: str, p: np.ndarray, seconds: float) -> None:
        auc, ll = _scores(test[outcome].to_numpy(), p)
        rows.append({"outcome": outcome, "model": model, "auc": auc, "logloss": ll, "n_train": len(train),
                     "n_test": len(test), "base_rate": float(test[outcome].mean()), "seconds": seconds})

    t0 = time.perf_counter()
    from lib.embed.export import customer_text_embeddings
    frozen = customer_text_embeddings(cfg, df, save=True)  # one pass; the export reuses the saved vectors
    emb = {name: frozen[(df["split"] == name).to_numpy()] for name in ("train", "test")}
    embed_s = time.perf_counter() - t0
    xr_tr, xr_te = design_matrix(train).to_numpy(), design_matrix(test).to_numpy()
    for outcome in tcfg.predict.outcomes:
        t0 = time.perf_counter()
        add(outcome, "logreg_raw", logreg(xr_tr, xr_te, outcome), time.perf_counter() - t0)
        t0 = time.perf_counter()
        add(outcome, "logreg_text_frozen", logreg(emb["train"], emb["test"], outcome),
            embed_s + time.perf_counter() - t0)
    if tcfg.finetune.enabled:
        outcome = tcfg.finetune.outcome
        for mode in tcfg.finetune.modes:
            t0 = time.perf_counter()
            model = finetune_text(cfg, texts["train"], train[outcome].to_numpy(), mode, cfg.seed,
                                  log_dir=Path(run_dir) / "logs" / f"text_{mode}_{outcome}")
            save_text_model(model, text_checkpoint_path(cfg, outcome, mode))
            add(outcome, f"text_{mode}", model.predict_proba(texts["test"], int(tcfg.batch_size)),
                time.perf_counter() - t0)
    table = pd.DataFrame(rows)
    register(run_dir, "hillstrom_prediction", kind="table", data=table,
             caption=("Hillstrom outcome prediction on the test split: logistic regression on the raw covariates, "
                      "on frozen MiniLM vectors of a sentence describing the customer, and the MiniLM model "
                      "fine-tuned on that sentence. Only pre-treatment covariates enter; seconds include embedding "
                      "or fine-tuning."))
    record_metrics(run_dir, {f"predict.hillstrom.{r['outcome']}.{r['model']}.{m}": r[m]
                             for r in rows for m in ("auc", "logloss")})
    return table
