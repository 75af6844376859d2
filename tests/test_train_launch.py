"""A training subprocess that dies or is killed stops the notebook with its data set, model, exit code and log;
runs launched side by side train what they would one after another, and the first failure stops the rest."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

from lib.train.run import TrainingFailed, launch, launch_many
from test_train_datamodule import write_prepared


def _overrides(tmp_path: Path) -> list[str]:
    # nothing prepared under paths.processed: the child fails while loading the data set
    return [f"paths.processed={tmp_path / 'empty'}", f"paths.checkpoints={tmp_path / 'ckpt'}",
            "trainer.dataset=sports", "model.arch=bert4rec"]


def test_a_child_that_exits_nonzero_is_reported_with_its_log(tmp_path):
    out = tmp_path / "runs" / "sports__bert4rec.json"
    out.parent.mkdir()
    out.write_text('{"stale": true}')                 # an earlier run's metrics are never returned
    with pytest.raises(TrainingFailed) as err:
        launch("smoke", _overrides(tmp_path), out)
    msg = str(err.value)
    head = re.match(r"training of sports/bert4rec failed \(exit code 1\), log: (\S+)\n", msg)
    assert head, msg
    log = Path(head.group(1))
    assert log.parent.parent == tmp_path / "ckpt" and log.name == "train.log"
    text = log.read_text()
    assert "-m lib.train" in text and f"missing {tmp_path / 'empty'}/seq/sports/sequences.parquet" in text
    assert "sequences.parquet" in msg.split("--- end of the log ---")[1]   # the cause is in the message too
    assert not out.exists()


def test_a_killed_child_is_reported_with_the_signal(tmp_path):
    # importing torch takes longer than 0.2 s, so the child is always killed mid-start
    with pytest.raises(TrainingFailed, match=r"training of sports/bert4rec failed \(exit code -9, killed by "
                                             r"SIGKILL after the 0.2 s timeout\), log: \S+train.log"):
        launch("smoke", _overrides(tmp_path), tmp_path / "m.json", timeout=0.2)


def _synthetic(tmp_path: Path, name: str, *extra: str) -> tuple[list[str], Path]:
    overrides = [f"paths.processed={tmp_path / 'processed'}", f"paths.checkpoints={tmp_path / 'ckpt'}",
                 "trainer.dataset=synthetic", "trainer.cpu_threads=1", "trainer.max_epochs=4",
                 "trainer.patience=100", f"trainer.run_name={name}", *extra]
    return overrides, tmp_path / f"{name}.json"


def _started(tmp_path: Path, name: str) -> float:
    header = (tmp_path / "ckpt" / name / "train.log").read_text().split("\n")[1]
    return time.mktime(time.strptime(header[5:24], "%Y-%m-%d %H:%M:%S"))


@pytest.mark.slow
def test_runs_side_by_side_train_the_weights_of_runs_one_after_another(tmp_path):
    write_prepared(tmp_path / "processed")
    serial = launch_many("smoke", [_synthetic(tmp_path, f"serial{i}", f"seed={i}") for i in range(2)], workers=1)
    side = launch_many("smoke", [_synthetic(tmp_path, f"side{i}", f"seed={i}") for i in range(2)], workers=2)
    assert [m["run_name"] for m in side] == ["side0", "side1"]        # results come back in the order of the jobs
    # both started (to the second) at least a second before either finished: they overlapped
    assert max(_started(tmp_path, f"side{i}") for i in range(2)) + 1 < min(
        (tmp_path / f"side{i}.json").stat().st_mtime for i in range(2))
    weights = [[torch.load(m["last_ckpt"], weights_only=False)["state_dict"] for m in ms] for ms in (serial, side)]
    for i in range(2):
        assert serial[i]["global_step"] == side[i]["global_step"] == 4   # one step per epoch
        assert serial[i]["test/ndcg@10"] == side[i]["test/ndcg@10"]
        for key, value in weights[0][i].items():
            assert torch.equal(value, weights[1][i][key]), key
    assert not torch.equal(weights[0][0]["model.items.weight"], weights[0][1]["model.items.weight"])  # seeds differ


@pytest.mark.slow
def test_the_first_failure_stops_the_runs_beside_it_and_the_runs_not_started(tmp_path):
    write_prepared(tmp_path / "processed")
    long = ["trainer.max_steps=-1", "trainer.max_epochs=300"]      # minutes, where the failure takes seconds
    jobs = [_synthetic(tmp_path, "beside", *long), (_overrides(tmp_path), tmp_path / "failing.json"),
            _synthetic(tmp_path, "queued", *long)]
    with pytest.raises(TrainingFailed, match=r"training of sports/bert4rec failed \(exit code 1\)"):
        launch_many("smoke", jobs, workers=2)
    assert (tmp_path / "ckpt" / "beside" / "train.log").is_file()       # it had started
    # launch_many returns only when every run has ended: without the stop it would have waited for both long runs
    assert not (tmp_path / "beside.json").exists() and not (tmp_path / "queued.json").exists()
