"""Training and encoding throughput of the sequence transformer: Lightning vs a plain loop.

Both sides train the same freshly initialised model (same seed, same batches drawn from the
same DistributedSampler data, AdamW, same loss function :meth:`NextItemModule.training_loss`)
for ``steps`` optimiser steps after ``warmup`` steps; the ratio
``lightning sequences/s / plain-loop sequences/s`` measures what the Trainer adds per step
(goal >= 0.95). Encoding throughput is :meth:`SeqRecModel.encode` under ``inference_mode``
over the same histories, i.e. the cost of exporting user embeddings.

:func:`recipe_table` measures what the speed work buys in the same run, as a chain of plain
training loops on Beauty-like histories (mean length 8.9, max_len padding): the old
configuration (explicit-softmax attention, every batch padded to ``max_len``, AdamW looping
over tensors), then ``sdpa`` attention, then dropping all-padding columns per batch, then the
fused AdamW kernel, then the item logits computed over the table padded to a multiple of 64 rows
(``model.logit_multiple``; the current code path), then bf16 autocast on the CPU. It reports
sequences/s, the implied seconds per Beauty epoch (22,363 users) and achieved model FLOP/s from
:func:`train_flops_per_sequence` (analytic; MFU needs a peak, which a shared CPU does not have).
:func:`allocator_table` runs the current code path once with glibc's default malloc and once with the
Makefile's ``GLIBC_TUNABLES`` (freed memory stays in the heap instead of returning to the kernel, so a
step's large logits no longer page-fault afresh), each in its own process.

On a CUDA GPU, :func:`gpu_table` trains the paper recipe in fp32 and in bf16 autocast at several batch sizes and
reports sequences/s, seconds per Sports epoch and model FLOPs utilisation (MFU: achieved model FLOP/s over the
chip's peak dense bf16 FLOP/s).

Knobs: ``conf/bench/train.yaml``; ``python -m lib.bench.train_bench [--preset P] [-o key=value ...]
[--steps N] [--tables throughput recipe allocator gpu]`` prints the tables.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from lib.bench.knobs import knobs
from lib.config import compose
from lib.models.seq import seq_config
from lib.train.datamodule import SeqDataModule
from lib.train.nextitem import NextItemModule

BEAUTY_USERS = 22363     # users of the S3-Rec Beauty file (one training sequence each per epoch)
SPORTS_USERS = 35598     # users of the S3-Rec Sports file
BEAUTY_MEAN_LENGTH = 8.9  # mean items per user there (5-core): 3 + 5.9 on average


def synthetic_module(cfg, n_users: int, n_items: int, seed: int,
                     beauty_like: bool = False) -> tuple[NextItemModule, SeqDataModule]:
    """Random item histories of length ``max_len + 3`` (every position is a target), or with
    ``beauty_like`` of geometric lengths >= 5 with Beauty's mean (most rows are padding)."""
    rng = np.random.default_rng(seed)
    full = cfg.model.max_len + 3
    lengths = (np.minimum(full, 4 + rng.geometric(1 / (BEAUTY_MEAN_LENGTH - 4), n_users)) if beauty_like
               else np.full(n_users, full))
    items = [rng.integers(1, n_items + 1, size=int(n)).tolist() for n in lengths]
    df = pd.DataFrame({"user_id": np.arange(n_users), "items": items,
                       "valid_item": [s[-2] for s in items], "test_item": [s[-1] for s in items]})
    dm = SeqDataModule(df, n_items, cfg.model.max_len, batch_size=cfg.trainer.batch_size,
                       eval_batch_size=cfg.trainer.eval_batch_size, num_workers=0, seed=seed)
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


def _timed_steps(loader, step, steps: int, warmup: int, sync=None, on_start=None) -> float:
    """Optimiser steps per second of ``step(batch)`` over ``steps`` steps after ``warmup`` untimed ones
    (``on_start()`` is called when the clock starts)."""
    done, epoch, start = 0, 0, None
    while done < warmup + steps:
        loader.sampler.set_epoch(epoch)
        for (seq,) in loader:
            if done == warmup:
                if on_start is not None:
                    on_start()
                if sync is not None:    # the warm-up steps' device work must not fall into the timed window
                    sync()
                start = time.perf_counter()
            step(seq)
            done += 1
            if done == warmup + steps:
                break
        epoch += 1
    if sync is not None:
        sync()
    return steps / (time.perf_counter() - start)


def plain_rate(cfg, steps: int, warmup: int, n_users: int, n_items: int) -> tuple[float, NextItemModule, SeqDataModule]:
    module, dm = synthetic_module(cfg, n_users, n_items, cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    module.to(device).train()
    opt = module.configure_optimizers()["optimizer"]

    def step(seq: torch.Tensor) -> None:
        loss = module.training_loss(seq.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.trainer.gradient_clip_val)
        opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return _timed_steps(dm.train_dataloader(), step, steps, warmup, sync), module, dm


def encode_rate(module: NextItemModule, dm: SeqDataModule, repeats: int) -> float:
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


def train_flops_per_sequence(model_cfg, n_items: int, tokens: float, targets: float) -> float:
    """Analytic training FLOPs (forward + backward = 3 x forward) of one sequence.

    ``tokens`` real (non-padding) input positions and ``targets`` predicted positions; a
    multiply-add is 2 FLOPs. Per token and block: QKV and output projections ``8 H^2``, the
    feed-forward ``4 H F`` (``6 H F`` for SwiGLU), attention scores and mixing ``4 T H`` over
    ``T`` attended positions (causal: ``(T + 1) / 2`` on average). The head scores every item
    (``loss=ce``) or the target and ``n_negatives`` negatives (``loss=sampled``).
    """
    cfg = seq_config(model_cfg)
    size = cfg["sizes"][cfg["size"]]
    h, layers, inner = size["hidden"], size["layers"], cfg["ff_mult"] * size["hidden"]
    attended = (tokens + 1) / 2 if cfg["arch"] == "sasrec" else tokens
    ffn = (6 if cfg["ffn"] == "swiglu" else 4) * h * inner
    per_token = layers * (8 * h * h + ffn + 4 * attended * h)
    candidates = n_items if cfg["loss"] == "ce" else cfg["n_negatives"] + 1
    return 3.0 * (tokens * per_token + targets * 2 * h * candidates)


def _recipe_rate(cfg, module: NextItemModule, dm: SeqDataModule, steps: int, warmup: int, trim: bool,
                 fused: bool, bf16: bool, on_start=None, device: str = "cpu") -> float:
    """Plain-loop optimiser steps per second of one variant on ``device`` ("cpu" or "cuda")."""
    module.to(device).train()
    mcfg = module.hparams.model_cfg
    opt = torch.optim.AdamW(module.parameters(), lr=mcfg["lr"], weight_decay=mcfg["weight_decay"],
                            betas=tuple(mcfg["adam_betas"]), fused=fused, foreach=False if not fused else None)

    def step(seq: torch.Tensor) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = module.training_loss(seq.to(device, non_blocking=True), trim=trim)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.trainer.gradient_clip_val or float("inf"))
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else None
    return _timed_steps(dm.train_dataloader(), step, steps, warmup, sync, on_start=on_start)


def _real_inputs(dm: SeqDataModule) -> float:
    """Mean real (non-padding) SASRec input tokens per training sequence; each predicts its successor."""
    seqs = dm.train_set.tensors[0]
    return float((seqs[:, :-1] != 0).sum(1).float().mean())


def matmul_tflops(n: int, repeats: int, device: str = "cuda") -> float:
    """bf16 TFLOP/s of an ``n x n x n`` matrix product on random data on ``device`` (after 3 warm-ups): the rate
    this chip attains in practice, beside its datasheet peak."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def gpu_table(bcfg: DictConfig, device: str = "cuda") -> pd.DataFrame | None:
    """The paper recipe's training throughput on a CUDA GPU, fp32 and bf16 autocast, at ``bcfg.gpu.batch_sizes``
    and ``model.logit_multiple`` in ``bcfg.gpu.logit_multiples``.

    Sequences/s of the plain loop (the current code path) on Sports-sized synthetic data, the seconds of one
    Sports epoch at that rate, model TFLOP/s from :func:`train_flops_per_sequence` and model FLOPs utilisation:
    against the chip's datasheet dense bf16 peak (``bcfg.gpu.peak_bf16_tflops`` by device name; NaN for a chip not
    listed) and against the bf16 matrix-product rate measured in the same run. ``None`` without a GPU.
    ``device="cpu"`` runs the same table on the CPU (peak looked up under ``"cpu"``), which is how it is tested.
    """
    if device == "cuda" and not torch.cuda.is_available():
        return None
    g = bcfg.gpu
    name = torch.cuda.get_device_name() if device == "cuda" else device
    peak = float(g.peak_bf16_tflops.get(name, float("nan")))
    measured = matmul_tflops(int(g.matmul_n), int(g.matmul_repeats), device)
    rows = []
    for batch, multiple, bf16 in itertools.product(g.batch_sizes, g.logit_multiples, (False, True)):
        cfg = compose(g.preset, [*g.overrides, f"trainer.batch_size={batch}", f"model.logit_multiple={multiple}"])
        module, dm = synthetic_module(cfg, int(g.n_users), int(g.n_items), cfg.seed, beauty_like=True)
        rate = _recipe_rate(cfg, module, dm, int(g.steps), int(g.warmup), True, True, bf16, device=device)
        real = _real_inputs(dm)
        tflops = rate * int(batch) * train_flops_per_sequence(cfg.model, int(g.n_items), real, real) / 1e12
        rows.append({"precision": "bf16 autocast" if bf16 else "fp32", "batch": int(batch),
                     "logit_multiple": int(multiple),
                     "sequences/s": rate * int(batch), "s per Sports epoch": SPORTS_USERS / (rate * int(batch)),
                     "model TFLOP/s": tflops, "MFU % (datasheet bf16 peak)": 100 * tflops / peak,
                     "% of measured matmul rate": 100 * tflops / measured})
        del module, dm
        if device == "cuda":
            torch.cuda.empty_cache()
    table = pd.DataFrame(rows)
    table.attrs["setup"] = (f"{name}: datasheet dense bf16 peak {peak:g} TFLOP/s, measured {measured:.0f} TFLOP/s "
                            f"({g.matmul_n}^3 bf16 matmul); preset {g.preset} {list(g.overrides)}, "
                            f"{g.n_items} items, Beauty-like lengths, steps={g.steps} (+{g.warmup} warm-up)")
    return table


def _current_rate(bcfg: DictConfig) -> tuple[float, float]:
    """Steps/s and minor page faults per timed step of the current code path on ``bcfg.allocator``'s recipe."""
    acfg = bcfg.allocator
    cfg = compose(acfg.preset, list(acfg.overrides))
    if cfg.trainer.cpu_threads:
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    module, dm = synthetic_module(cfg, int(acfg.n_users), int(acfg.n_items), cfg.seed, beauty_like=True)
    faults: list[int] = []  # at the first timed step: the warm-up grows the heap
    rate = _recipe_rate(cfg, module, dm, int(bcfg.steps), int(acfg.warmup), True, True, False,
                        on_start=lambda: faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt))
    return rate, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults[0]) / int(bcfg.steps)


def allocator_table(bcfg: DictConfig, argv: list[str]) -> pd.DataFrame | None:
    """The current code path (``bcfg.allocator``'s recipe) with glibc's default malloc and with ``GLIBC_TUNABLES``.

    glibc reads its tunables at process start, so each side is a fresh process (``--allocator-probe``),
    alternating, best of ``rounds``. ``None`` outside ``make bench`` (no ``GLIBC_TUNABLES`` to compare).
    """
    tunables = os.environ.get("GLIBC_TUNABLES")
    if not tunables:
        return None
    sides = {"glibc malloc defaults": None, f"GLIBC_TUNABLES={tunables} (Makefile)": tunables}
    best = {what: (0.0, float("nan")) for what in sides}
    for _ in range(int(bcfg.rounds)):
        for what, value in sides.items():
            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
            if value is not None:
                env["GLIBC_TUNABLES"] = value
            out = subprocess.run([sys.executable, "-m", "lib.bench.train_bench", *argv, "--allocator-probe"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            rate, faults = json.loads(out.strip().splitlines()[-1])
            if rate > best[what][0]:
                best[what] = (rate, faults)
    batch = compose(bcfg.allocator.preset, list(bcfg.allocator.overrides)).trainer.batch_size
    first = best["glibc malloc defaults"][0]
    return pd.DataFrame([{"what": what, "sequences/s": r * batch, "s per Sports epoch": SPORTS_USERS / (r * batch),
                          "minor page faults/step": f, "speed-up": r / first} for what, (r, f) in best.items()])


def recipe_table(bcfg: DictConfig) -> pd.DataFrame:
    """Sequences/s, seconds per Beauty epoch and model FLOP/s of the speed-work chain (see module doc)."""
    preset, base, steps, rounds = bcfg.preset, list(bcfg.overrides), int(bcfg.steps), int(bcfg.rounds)
    warmup, n_users, n_items = int(bcfg.recipe.warmup), int(bcfg.recipe.n_users), int(bcfg.recipe.n_items)
    cfg = compose(preset, base)
    if cfg.trainer.cpu_threads:
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    chain = [  # (what, attention, trim padding, fused AdamW, logit multiple, bf16 autocast)
        ("before: eager attention, padded batches, looped AdamW", "eager", False, False, 1, False),
        ("+ sdpa attention", "sdpa", False, False, 1, False),
        ("+ drop all-padding columns per batch", "sdpa", True, False, 1, False),
        ("+ fused AdamW", "sdpa", True, True, 1, False),
        ("+ logits over the item table padded to 64 rows (current code)", "sdpa", True, True, 64, False),
        ("+ bf16 autocast on CPU", "sdpa", True, True, 64, True),
    ]
    rates = {what: 0.0 for what, *_ in chain}
    for _ in range(rounds):  # alternate variants, keep each one's best round (shared machine)
        for what, attn, trim, fused, multiple, bf16 in chain:
            variant = compose(preset, [*base, f"model.attn_implementation={attn}", f"model.logit_multiple={multiple}"])
            module, dm = synthetic_module(variant, n_users, n_items, cfg.seed, beauty_like=True)
            rates[what] = max(rates[what], _recipe_rate(variant, module, dm, steps, warmup, trim, fused, bf16))
    real = _real_inputs(dm)
    flops = train_flops_per_sequence(cfg.model, n_items, real, real)  # every real input predicts its successor
    first = rates[chain[0][0]]
    rows = [{"what": what, "sequences/s": r * cfg.trainer.batch_size,
             "s per Beauty epoch": BEAUTY_USERS / (r * cfg.trainer.batch_size),
             "model GFLOP/s": r * cfg.trainer.batch_size * flops / 1e9, "speed-up": r / first}
            for what, r in rates.items()]
    table = pd.DataFrame(rows)
    table.attrs["setup"] = (f"{cfg.model.arch}/{cfg.model.size} loss={cfg.model.loss} max_len={cfg.model.max_len} "
                            f"batch={cfg.trainer.batch_size} n_items={n_items}, Beauty-like lengths "
                            f"({real:.1f} real input tokens/sequence), {flops / 1e6:.2f} MFLOP/sequence, "
                            f"steps={steps}, best of {rounds} rounds, threads={torch.get_num_threads()}")
    return table


def run(bcfg: DictConfig) -> pd.DataFrame:
    """Throughput table: rows lightning / plain loop / encode; ratio in the last column."""
    steps, warmup, rounds = int(bcfg.steps), int(bcfg.warmup), int(bcfg.rounds)
    n_users, n_items = int(bcfg.n_users), int(bcfg.n_items)
    cfg = compose(bcfg.preset, list(bcfg.overrides))
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
    enc = encode_rate(module, dm, int(bcfg.encode_repeats))
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


TABLES = ("throughput", "recipe", "allocator", "gpu")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m lib.bench.train_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", help="override the config's base preset")
    parser.add_argument("-o", "--override", action="append", dest="overrides", help="Hydra override (repeatable)")
    parser.add_argument("--steps", type=int, help="override the config's timed steps")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES), help="tables to measure")
    parser.add_argument("--allocator-probe", action="store_true",
                        help="print [steps/s, minor faults/step] of the current code path as JSON (allocator_table)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    bcfg = knobs("train", args, ("preset", "overrides", "steps"))
    if args.allocator_probe:
        print(json.dumps(_current_rate(bcfg)))
        return pd.DataFrame()
    fmt = {"index": False, "float_format": lambda v: f"{v:,.2f}"}
    table = pd.DataFrame()
    if "throughput" in args.tables:
        table = run(bcfg)
        print(f"sequence-model training throughput ({table.attrs['setup']})")
        print(table.to_string(**fmt))
    if "recipe" in args.tables:
        recipe = recipe_table(bcfg)
        print(f"speed work, plain training loop on the CPU ({recipe.attrs['setup']})")
        print(recipe.to_string(**fmt))
    if "allocator" in args.tables:
        alloc = allocator_table(bcfg, argv)
        if alloc is None:
            print("allocator: GLIBC_TUNABLES is unset (it comes from the Makefile): run `make bench` to compare")
        else:
            a = bcfg.allocator
            print(f"memory allocator, the current code path on preset {a.preset} {list(a.overrides)}, "
                  f"{a.n_items} items, steps={bcfg.steps} (+{a.warmup} warm-up), one process per side, "
                  f"best of {bcfg.rounds}:")
            print(alloc.to_string(**fmt))
    if "gpu" in args.tables:
        gpu = gpu_table(bcfg)
        if gpu is None:
            print("gpu: no CUDA device here, so no bf16 GPU throughput or MFU (achieved / peak bf16 FLOP/s)")
        else:
            print(f"GPU training, plain loop ({gpu.attrs['setup']})")
            print(gpu.to_string(**fmt))
    return table


if __name__ == "__main__":
    main()
