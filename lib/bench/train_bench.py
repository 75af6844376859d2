"""Training and encoding throughput of the sequence transformer: Lightning vs a plain loop.

Both sides train the same freshly initialised model (same seed, same batches drawn from the
same DistributedSampler data, AdamW, same loss function :meth:`NextItemModule.training_loss`)
for ``steps`` optimiser steps after ``warmup`` steps; the ratio
``lightning sequences/s / plain-loop sequences/s`` measures what the Trainer adds per step
(goal >= 0.95). Encoding throughput is :meth:`SeqRecModel.encode` under ``inference_mode``
over the same histories, i.e. the cost of exporting user embeddings.

``python -m lib.bench.train_bench [--preset smoke] [-o key=value ...]`` prints one table.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from lib.config import compose
from lib.train.datamodule import SeqDataModule
from lib.train.nextitem import NextItemModule


def synthetic_module(cfg, n_users: int, n_items: int, seed: int) -> tuple[NextItemModule, SeqDataModule]:
    """Random-walk histories of length ``max_len + 3`` (every position is a target)."""
    rng = np.random.default_rng(seed)
    items = rng.integers(1, n_items + 1, size=(n_users, cfg.model.max_len + 3)).tolist()
    df = pd.DataFrame({"user_id": np.arange(n_users), "items": items,
                       "valid_item": [s[-2] for s in items], "test_item": [s[-1] for s in items]})
    dm = SeqDataModule(df, n_items, cfg.model.max_len, cfg.trainer.batch_size, cfg.trainer.eval_batch_size, 0, seed)
    torch.manual_seed(seed)
    return NextItemModule(cfg.model, n_items), dm


class _Timer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()


def lightning_rate(cfg, steps: int, warmup: int, n_users: int, n_items: int) -> float:
    module, dm = synthetic_module(cfg, n_users, n_items, cfg.seed)
    timer = _Timer(warmup)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=str(cfg.trainer.precision),
                        max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        gradient_clip_val=cfg.trainer.gradient_clip_val, use_distributed_sampler=False,
                        callbacks=[timer])
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return steps / (timer.end - timer.start)


def plain_rate(cfg, steps: int, warmup: int, n_users: int, n_items: int) -> tuple[float, NextItemModule, SeqDataModule]:
    module, dm = synthetic_module(cfg, n_users, n_items, cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    module.to(device).train()
    opt = module.configure_optimizers()
    loader, done, epoch, start = dm.train_dataloader(), 0, 0, None
    while done < warmup + steps:
        loader.sampler.set_epoch(epoch)
        for (seq,) in loader:
            if done == warmup:
                start = time.perf_counter()
            loss = module.training_loss(seq.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.trainer.gradient_clip_val:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            done += 1
            if done == warmup + steps:
                break
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start), module, dm


def encode_rate(module: NextItemModule, dm: SeqDataModule, repeats: int = 3) -> float:
    """Histories encoded per second by ``SeqRecModel.encode`` (evaluation batches)."""
    model = module.model.eval()
    hist = dm.test_set.tensors[0].to(next(model.parameters()).device)
    bs = dm.eval_batch_size
    with torch.inference_mode():
        model.encode(hist[:bs])
        start = time.perf_counter()
        for _ in range(repeats):
            for i in range(0, len(hist), bs):
                model.encode(hist[i:i + bs])
    return repeats * len(hist) / (time.perf_counter() - start)


def run(preset: str = "smoke", overrides: list[str] | None = None, steps: int = 20, warmup: int = 5,
        n_users: int = 2048, n_items: int = 12000, rounds: int = 2) -> pd.DataFrame:
    """Throughput table: rows lightning / plain loop / encode; ratio in the last column."""
    cfg = compose(preset, list(overrides or []))
    if cfg.trainer.cpu_threads:
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    seqs_per_step, tokens_per_seq = cfg.trainer.batch_size, cfg.model.max_len
    # alternate the two sides and keep each one's best round, so a busy neighbour on a shared
    # machine or one-off allocator warm-up does not decide the ratio
    plain, light = 0.0, 0.0
    for _ in range(rounds):
        rate, module, dm = plain_rate(cfg, steps, warmup, n_users, n_items)
        plain = max(plain, rate)
        light = max(light, lightning_rate(cfg, steps, warmup, n_users, n_items))
    enc = encode_rate(module, dm)
    rows: list[dict[str, Any]] = [
        {"what": "train: plain PyTorch loop", "sequences/s": plain * seqs_per_step,
         "tokens/s": plain * seqs_per_step * tokens_per_seq, "ratio": 1.0},
        {"what": "train: Lightning Trainer", "sequences/s": light * seqs_per_step,
         "tokens/s": light * seqs_per_step * tokens_per_seq, "ratio": light / plain},
        {"what": "encode (inference)", "sequences/s": enc, "tokens/s": enc * tokens_per_seq, "ratio": float("nan")},
    ]
    table = pd.DataFrame(rows)
    table.attrs["setup"] = (f"{cfg.model.arch}/{cfg.model.size} max_len={cfg.model.max_len} batch={seqs_per_step} "
                            f"n_items={n_items} steps={steps} (+{warmup} warm-up), best of {rounds} rounds, threads={torch.get_num_threads()}")
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m lib.bench.train_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("-o", "--override", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    table = run(args.preset, args.override, steps=args.steps)
    print(f"sequence-model training throughput ({table.attrs['setup']})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return table


if __name__ == "__main__":
    main()
