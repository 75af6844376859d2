"""A training subprocess that dies or is killed stops the notebook with its data set, model, exit code and log."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib.train.run import TrainingFailed, launch


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
