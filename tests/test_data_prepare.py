"""prepare_all on the real files: schemas, byte-identical reruns, the checksum gate."""
import pandas as pd
import pytest

from lib.config import compose
from lib.data.prepare import prepare_all
from lib.errors import InputError

FAST = ["data.sequences.datasets=[beauty]", "data.events.sources=[otto,diginetica]", "data.max_users=300"]


@pytest.mark.realdata
def test_prepare_is_deterministic_and_typed(tmp_path):
    reports, files = [], []
    for k in range(2):
        cfg = compose("smoke", [*FAST, f"paths.processed={tmp_path / str(k)}"])
        reports.append(prepare_all(cfg))
        files.append(sorted(p.relative_to(tmp_path / str(k)) for p in (tmp_path / str(k)).rglob("*") if p.is_file()))
    assert files[0] == files[1] and len(files[0]) == 9
    for rel in files[0]:
        assert (tmp_path / "0" / rel).read_bytes() == (tmp_path / "1" / rel).read_bytes(), rel
    counts = reports[0]["row_counts"]
    assert counts["seq/beauty/sequences"] == 300 and counts["hillstrom/hillstrom"] == 3000  # smoke subsample
    assert counts["events/otto/events"] == 862 and reports[0]["warnings"] == []
    ev = pd.read_parquet(tmp_path / "0" / "events/otto/events.parquet")
    assert str(ev.ts.dtype) == "datetime64[ms, UTC]" and ev.item_id.dtype == "int64"
    sess = pd.read_parquet(tmp_path / "0" / "events/diginetica/sessions.parquet")
    assert set(sess.split) == {"train", "valid", "test"}
    assert sess[sess.split == "train"].end_ts.max() < sess[sess.split == "test"].start_ts.min()
    hs = pd.read_parquet(tmp_path / "0" / "hillstrom/hillstrom.parquet")
    assert hs.customer_id.is_monotonic_increasing and hs.customer_id.max() > 3000  # original ids kept
    seq = pd.read_parquet(tmp_path / "0" / "seq/beauty/sequences.parquet")
    assert list(seq.columns) == ["user_id", "items", "valid_item", "test_item"]


@pytest.mark.realdata
def test_checksum_mismatch_stops_unless_accepted(tmp_path):
    out = tmp_path / "processed"
    base = [*FAST, "data.events.sources=[otto]", f"paths.processed={out}", "data.datasets.otto.sha256.events=0000"]
    with pytest.raises(InputError) as err:
        prepare_all(compose("smoke", base))
    msg = str(err.value)
    assert "train.jsonl (data.datasets.otto.files.events)" in msg and "expects 0000" in msg
    assert "data.verify_checksums=false" in msg and "data.datasets.otto.sha256.events=" in msg
    assert compose("smoke").data.datasets.otto.sha256.events in msg and not out.exists()
    report = prepare_all(compose("smoke", [*base, "data.verify_checksums=false"]))
    assert len(report["warnings"]) == 1 and "data.datasets.otto.files.events" in report["warnings"][0]
    assert report["row_counts"]["events/otto/events"] == 862
