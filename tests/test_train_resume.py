"""Fault tolerance: SIGKILL a training run after a mid-epoch checkpoint, rerun the same command,
it continues from the mid-epoch last-step.ckpt (global step carried over, not restarted) and finishes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from test_train_datamodule import write_prepared

pytestmark = pytest.mark.slow
MAX_STEPS = 400


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    write_prepared(tmp_path / "processed")
    out = tmp_path / "metrics.json"
    cmd = [sys.executable, "-m", "lib.train", "--preset", "smoke", "--out", str(out)]
    for item in (f"paths.processed={tmp_path / 'processed'}", f"paths.checkpoints={tmp_path / 'ckpt'}",
                 "trainer.dataset=synthetic", "trainer.cpu_threads=1", "trainer.batch_size=4",
                 "trainer.ckpt_every_n_steps=5", f"trainer.max_steps={MAX_STEPS}", "trainer.max_epochs=1000",
                 "trainer.patience=1000", "trainer.run_name=killed"):
        cmd += ["-o", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "ckpt" / "killed" / "last-step.ckpt"    # every 5 steps, mid-epoch

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL, f"run ended on its own before the kill:\n{stderr[-2000:]}"
    assert last.exists() and not out.exists()
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert 0 < killed_at < MAX_STEPS

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["resumed_from"] == str(last)
    assert metrics["start_step"] >= killed_at > 0          # continued, not restarted
    assert metrics["global_step"] == MAX_STEPS              # and finished
    assert "Restoring states from the checkpoint path" in rerun.stderr + rerun.stdout
