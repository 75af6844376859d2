"""DDP on CPU (2 processes, gloo) equals one process on the same global batch.

Two launchers: the CLI with Lightning spawning the second process, and the same entry point
under ``torchrun --nproc_per_node 2`` (Lightning reads the torchelastic environment).

Why exact-ish equality holds: the training sampler is a DistributedSampler seeded with
cfg.seed in both runs, so rank 0 and rank 1 draw the even and odd entries of the same
permutation and their union is the single process's batch; every synthetic sequence has the
same number of targets, so the mean of the two ranks' mean losses (DDP averages gradients)
equals the mean over the whole batch; dropout is off. What remains is float32 summation order
in the gradient all-reduce, hence a 1e-5 tolerance.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from test_train_datamodule import write_prepared

pytestmark = pytest.mark.slow


def cli_args(tmp_path, name: str, *extra: str) -> list[str]:
    args = ["-m", "lib.train", "--preset", "smoke", "--out", str(tmp_path / f"{name}.json"),
            "-o", f"paths.processed={tmp_path / 'processed'}", "-o", f"paths.checkpoints={tmp_path / 'ckpt'}",
            "-o", "trainer.dataset=synthetic", "-o", "trainer.cpu_threads=1", "-o", "model.dropout=0.0",
            "-o", "model.attn_dropout=0.0", "-o", "trainer.max_steps=8", "-o", "trainer.max_epochs=5",
            "-o", "trainer.patience=100", "-o", f"trainer.run_name={name}"]
    for item in extra:
        args += ["-o", item]
    return args


def run(tmp_path, name: str, cmd: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, global batch 16, on the synthetic prepared set."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    write_prepared(tmp_path / "processed")
    metrics = run(tmp_path, "single", [sys.executable, *cli_args(tmp_path, "single", "trainer.batch_size=16")])
    return tmp_path, metrics


def assert_same_training(ddp: dict, single: dict) -> None:
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["global_step"] == single["global_step"] == 8
    a = torch.load(single["last_ckpt"], weights_only=False)["state_dict"]
    b = torch.load(ddp["last_ckpt"], weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    # last.ckpt holds the final weights: 8 steps = 2 epochs of 4 global batches
    assert torch.load(ddp["last_ckpt"], weights_only=False)["global_step"] == 8
    assert ddp["test/loss"] == pytest.approx(single["test/loss"], abs=1e-5)
    for k in ("test/hr@10", "test/ndcg@10"):
        assert ddp[k] == pytest.approx(single[k], abs=1e-5)


DDP = ("trainer.batch_size=8", "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=2")


def test_ddp_two_cpu_processes_match_one_process(single):
    tmp_path, reference = single
    assert_same_training(run(tmp_path, "ddp", [sys.executable, *cli_args(tmp_path, "ddp", *DDP)]), reference)


def test_torchrun_two_cpu_processes_match_one_process(single):
    tmp_path, reference = single
    # --standalone: a private rendezvous on a free local port, as on one node of a cluster
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert_same_training(run(tmp_path, "torchrun", [*torchrun, *cli_args(tmp_path, "torchrun", *DDP)]), reference)
