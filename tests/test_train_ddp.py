"""DDP on CPU (2 processes, gloo) through the CLI equals one process on the same global batch.

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


def run_cli(tmp_path, name: str, *extra: str) -> dict:
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, "-m", "lib.train", "--preset", "smoke", "--out", str(out),
           "-o", f"paths.processed={tmp_path / 'processed'}", "-o", f"paths.checkpoints={tmp_path / 'ckpt'}",
           "-o", "trainer.dataset=synthetic", "-o", "trainer.cpu_threads=1", "-o", "model.dropout=0.0",
           "-o", "model.attn_dropout=0.0", "-o", "trainer.max_steps=8", "-o", "trainer.max_epochs=5",
           "-o", "trainer.patience=100", "-o", f"trainer.run_name={name}"]
    for item in extra:
        cmd += ["-o", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    write_prepared(tmp_path / "processed")
    single = run_cli(tmp_path, "single", "trainer.batch_size=16")
    ddp = run_cli(tmp_path, "ddp", "trainer.batch_size=8", "trainer.strategy=ddp", "trainer.accelerator=cpu",
                  "trainer.devices=2")
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
