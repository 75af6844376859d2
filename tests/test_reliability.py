"""Damaged inputs stop with a message naming file, line and column, and never touch good outputs.

Every case of the table damages one small generated raw file (or one setting), runs the whole
preparation (checksum gate, readers, staging) on it and checks (1) the message names the
file, its line and column, and (2) the previously prepared tables are byte-identical
afterwards. The runner tests kill a notebook run with SIGTERM and SIGKILL and check that the
last good results survive and a rerun completes.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from _data_fixtures import raw_hillstrom
from lib.config import REPO_ROOT, compose, raw_files
from lib.data.prepare import prepare_all
from lib.errors import InputError
from lib.io import sha256_file
from lib.runner import run_notebook

SOURCES = {"sequences.datasets": ["beauty"], "events.sources": ["yoochoose", "diginetica", "otto"]}
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "notebooks"


def _raw_files(cfg) -> dict[str, str]:
    """Small valid raw files in the published layouts, keyed by their path under ``paths.data_root``."""
    rng = np.random.default_rng(0)
    seq = "".join(f"{u} " + " ".join(str(i) for i in rng.integers(1, 31, rng.integers(3, 8))) + "\n"
                  for u in range(1, 41))
    attrs = json.dumps({str(i): sorted({int(a) for a in rng.integers(1, 9, 2)}) for i in range(1, 31)})

    def yoochoose(first_session: int, start: float) -> str:
        rows = [f"{s}\t{214000000 + int(rng.integers(1, 40))}\t{start + 600 * s + 7.25 * k:.3f}"
                for s in range(first_session, first_session + 15) for k in range(3)]
        return "SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n"

    dig = ["session_id;user_id;item_id;timeframe;eventdate"]
    dig += [f"{s};{'NA' if s % 2 else s + 100};{int(rng.integers(1, 40))};{1000 * k};2016-05-{1 + s % 9:02d}"
            for s in range(1, 16) for k in range(3)]
    otto = "".join(json.dumps({"session": s, "events": [
        {"aid": int(rng.integers(1, 40)), "ts": 1659600000000 + 3_600_000 * s + 1000 * k,
         "type": ["clicks", "carts", "orders"][k % 3]} for k in range(3)]}) + "\n" for s in range(15))
    hill = raw_hillstrom(1000).to_csv(index=False, lineterminator="\n").rstrip("\n")  # like the real file
    texts = {"beauty/sequences": seq, "beauty/attributes": attrs, "yoochoose/train": yoochoose(1, 1396310400.5),
             "yoochoose/test": yoochoose(16, 1396310400.5 + 600 * 16), "diginetica/events": "\n".join(dig),
             "otto/events": otto, "hillstrom": hill}
    return {raw_files(cfg)[k].path: t for k, t in texts.items()}


def _accepted(base, root: Path) -> dict[str, str]:
    """``sha256 setting -> hash`` of every configured raw file present under ``root``."""
    return {f.sha_setting: sha256_file(root / f.path) for f in raw_files(base).values() if (root / f.path).is_file()}


def _cfg(base, root: Path, processed: Path, **data):
    """``base`` pointed at ``root`` with hashes of the files there (accepted on purpose)."""
    over = {"paths": {"data_root": str(root), "processed": str(processed)},
            "data": {"sequences": {"datasets": SOURCES["sequences.datasets"]},
                     "events": {"sources": SOURCES["events.sources"]}, **data}}
    for setting, sha in _accepted(base, root).items():     # nested dicts: a hash is never parsed as a number
        node = over
        for part in setting.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[setting.split(".")[-1]] = sha
    return OmegaConf.merge(base, over)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Good raw files, their prepared tables and a byte snapshot of those tables."""
    base = compose("smoke")
    root = tmp_path_factory.mktemp("raw")
    files = _raw_files(base)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    processed = tmp_path_factory.mktemp("data") / "processed"
    report = prepare_all(_cfg(base, root, processed))
    assert report["row_counts"]["seq/beauty/sequences"] == 40 and report["row_counts"]["hillstrom/hillstrom"] == 1000
    return base, files, processed, _snapshot(processed)


def _line(text: str, k: int, edit) -> str:
    """``text`` with its 1-based line ``k`` replaced by ``edit(line)``."""
    lines = text.split("\n")
    lines[k - 1] = edit(lines[k - 1])
    return "\n".join(lines)


def _field(text: str, k: int, col: int, value: str, sep: str = ",") -> str:
    def edit(line: str) -> str:
        fields = next(csv.reader([line], delimiter=sep))      # Hillstrom quotes "7) $1,000 +"
        fields[col] = value
        buf = io.StringIO()
        csv.writer(buf, delimiter=sep, lineterminator="").writerow(fields)
        return buf.getvalue()
    return _line(text, k, edit)


def _swap_columns(text: str, a: int, b: int, sep: str) -> str:
    """Swap the content of two columns under an unchanged header (times written as whole seconds)."""
    lines = text.rstrip("\n").split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        f = line.split(sep)
        f[2] = str(int(float(f[2])))
        f[a], f[b] = f[b], f[a]
        out.append(sep.join(f))
    return "\n".join(out) + "\n"


def _hill_cut(text: str) -> str:
    return text.rsplit(",", 2)[0]        # the last record loses its last two fields, no newline


SEQ, ATT = "amazon_beauty_s3rec/Beauty.txt", "amazon_beauty_s3rec/Beauty_item2attributes.json"
YC_TRAIN = "yoochoose_clicks_100k_sessionrec/yoochoose-clicks-100k_train_full.txt"
YC_TEST = "yoochoose_clicks_100k_sessionrec/yoochoose-clicks-100k_test.txt"
DIG, OTTO, HILL = "diginetica_sample_srgnn/sample_train-item-views.csv", "otto_sample/train.jsonl", "hillstrom/hillstrom.csv"
_attr = lambda value: (lambda t: t.replace('"5": [', f'"5": {value}, "x5": [', 1))  # noqa: E731

# (case, file damaged, damage of its text, fragments the message must contain)
CASES = [
    ("seq_cut_last_line", SEQ, lambda t: t[:-3], ["Beauty.txt:40", "no newline", "cut off"]),
    ("seq_id_underscore", SEQ, lambda t: _line(t, 3, lambda s: s.replace(" ", " 1_0 ", 1)), ["Beauty.txt:3", "'token 2'", "'1_0'"]),
    ("seq_id_plus_sign", SEQ, lambda t: _line(t, 5, lambda s: s + " +7"), ["Beauty.txt:5", "'+7'", "plain decimal"]),
    ("seq_id_arabic_digits", SEQ, lambda t: _line(t, 2, lambda s: s + " ١٢"), ["Beauty.txt:2", "'١٢'"]),
    ("seq_id_zero", SEQ, lambda t: _line(t, 7, lambda s: s + " 0"), ["Beauty.txt:7", "ids must be >= 1"]),
    ("seq_duplicate_user", SEQ, lambda t: _line(t, 9, lambda s: "1" + s[s.index(" "):]), ["Beauty.txt:9", "'user_id'", "line 1"]),
    ("seq_short_history", SEQ, lambda t: _line(t, 4, lambda s: "4 1 2"), ["Beauty.txt:4", "'items'", "fewer than 3"]),
    ("seq_empty_file", SEQ, lambda t: "", ["Beauty.txt", "is empty"]),
    ("attr_string_of_digits", ATT, _attr('"123"'), ["Beauty_item2attributes.json:1", "'item '5''", "not a list"]),
    ("attr_dict", ATT, _attr('{"1": 2}'), ["Beauty_item2attributes.json:1", "item '5'", "(dict)"]),
    ("attr_floats", ATT, _attr("[1.0, 2.5]"), ["Beauty_item2attributes.json:1", "item '5'", "[1.0, 2.5]"]),
    ("attr_booleans", ATT, _attr("[true]"), ["Beauty_item2attributes.json:1", "item '5'", "[True]"]),
    ("attr_key_not_an_id", ATT, lambda t: t.replace('"7":', '"0_7":', 1), ["Beauty_item2attributes.json:1", "item '0_7'"]),
    ("attr_cut_json", ATT, lambda t: t[: len(t) // 2], ["Beauty_item2attributes.json:1", "not valid JSON"]),
    ("attr_repeated_key", ATT, lambda t: t.replace('"7":', '"8":', 1), ["Beauty_item2attributes.json:1", "item '8'", "twice"]),
    ("yc_future_timestamp", YC_TEST, lambda t: _field(t, 4, 2, "4102444800.0", "\t"),
     ["yoochoose-clicks-100k_test.txt:4", "'ts'", "outside the plausible span", "observed min", "2100-01-01"]),
    ("yc_time_column_holds_ids", YC_TRAIN, lambda t: _swap_columns(t, 1, 2, "\t"),
     ["yoochoose-clicks-100k_train_full.txt:2", "'ts'", "outside the plausible span", "1976", "other order"]),
    ("yc_cut_last_line", YC_TRAIN, lambda t: t.rstrip("\n").rsplit("\t", 1)[0],
     ["yoochoose-clicks-100k_train_full.txt:46", "2 fields, the header has 3", "cut off"]),
    ("yc_item_plus_sign", YC_TEST, lambda t: _field(t, 3, 1, "+7", "\t"), ["yoochoose-clicks-100k_test.txt:3", "'item_id'", "'+7'"]),
    ("yc_unparsable_time", YC_TRAIN, lambda t: _field(t, 6, 2, "yesterday", "\t"),
     ["yoochoose-clicks-100k_train_full.txt:6", "'ts'", "unparsable", "'yesterday'"]),
    ("yc_session_is_text", YC_TRAIN, lambda t: _field(t, 8, 0, "s8", "\t"), ["yoochoose-clicks-100k_train_full.txt:8", "'SessionId'"]),
    ("yc_empty_file", YC_TEST, lambda t: "", ["yoochoose-clicks-100k_test.txt", "is empty"]),
    ("yc_header_only", YC_TEST, lambda t: t.split("\n")[0] + "\n", ["yoochoose-clicks-100k_test.txt", "no records"]),
    ("dig_cut_date", DIG, lambda t: t[:-1], ["sample_train-item-views.csv:46", "'eventdate'", "unparsable date"]),
    ("dig_timeframe_underscore", DIG, lambda t: _field(t, 5, 3, "1_000", ";"), ["sample_train-item-views.csv:5", "'timeframe'"]),
    ("dig_date_outside_span", DIG, lambda t: _field(t, 10, 4, "2019-05-09", ";"),
     ["sample_train-item-views.csv:10", "'ts'", "outside the plausible span", "2019-05-09"]),
    ("dig_user_is_text", DIG, lambda t: _field(t, 3, 1, "anon", ";"), ["sample_train-item-views.csv:3", "'user_id'", "'anon'"]),
    ("otto_aid_string", OTTO, lambda t: _line(t, 2, lambda s: s.replace('"aid": ', '"aid": "', 1).replace(', "ts"', '", "ts"', 1)),
     ["train.jsonl:2", "'events[0].aid'", "(str)"]),
    ("otto_ts_float", OTTO, lambda t: _line(t, 3, lambda s: s.replace('000, "type"', '000.5, "type"', 1)),
     ["train.jsonl:3", "'events[0].ts'", "(float)"]),
    ("otto_aid_boolean", OTTO, lambda t: _line(t, 4, lambda s: s.replace('"aid": ', '"aid": true, "x": ', 1)),
     ["train.jsonl:4", "'events[0].aid'", "(bool)"]),
    ("otto_future_timestamp", OTTO, lambda t: _line(t, 6, lambda s: s.replace("16596", "19596", 1)),
     ["train.jsonl:6", "'ts'", "outside the plausible span", "observed min"]),
    ("otto_cut_last_line", OTTO, lambda t: t[:-6], ["train.jsonl:15", "no newline"]),
    ("hill_spend_inf", HILL, lambda t: _field(t, 5, 11, "inf"), ["hillstrom.csv:5", "'spend'", "non-finite"]),
    ("hill_negative_money", HILL, lambda t: _field(t, 8, 2, "-12.50"), ["hillstrom.csv:8", "'history'", "cannot be negative"]),
    ("hill_negative_count", HILL, lambda t: _field(t, 9, 0, "-3"), ["hillstrom.csv:9", "'recency'", "cannot be negative"]),
    ("hill_string_code_for_number", HILL, lambda t: _field(t, 11, 9, "yes"), ["hillstrom.csv:11", "'visit'", "non-numeric"]),
    ("hill_count_underscore", HILL, lambda t: _field(t, 12, 0, "1_0"), ["hillstrom.csv:12", "'recency'", "'1_0'"]),
    ("hill_cut_last_record", HILL, _hill_cut, ["hillstrom.csv:1001", "10 fields, the header has 12", "cut off"]),
    ("hill_empty_file", HILL, lambda t: "", ["hillstrom.csv", "is empty"]),
]


@pytest.mark.parametrize("case, rel, damage, fragments", CASES, ids=[c[0] for c in CASES])
def test_damaged_input_is_named_and_leaves_prepared_tables(prepared, tmp_path, case, rel, damage, fragments):
    base, files, processed, before = prepared
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(damage(text) if name == rel else text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        prepare_all(_cfg(base, tmp_path, processed))
    msg = str(err.value)
    assert all(f in msg for f in fragments), msg
    assert "Fix:" in msg
    assert _snapshot(processed) == before
    assert sorted(p.name for p in processed.parent.iterdir()) == ["processed"]   # no staging left over


def test_checksum_gate_names_both_hashes_and_the_override(prepared, tmp_path):
    base, files, processed, before = prepared
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    good = sha256_file(tmp_path / HILL)
    cfg = _cfg(base, tmp_path, processed)
    (tmp_path / HILL).write_text(files[HILL] + "\n")               # another version of the file
    with pytest.raises(InputError) as err:
        prepare_all(cfg)
    msg = str(err.value)
    assert "hillstrom.csv (data.files.hillstrom)" in msg and good in msg and sha256_file(tmp_path / HILL) in msg
    assert "data.verify_checksums=false" in msg and f"data.sha256.hillstrom={sha256_file(tmp_path / HILL)}" in msg
    assert _snapshot(processed) == before
    with pytest.raises(ValueError, match="data.max_users must be >= 1"):
        prepare_all(_cfg(base, tmp_path, processed, max_users=0))
    assert _snapshot(processed) == before


def test_processed_folder_is_swapped_in_as_a_unit(prepared, tmp_path):
    base, files, processed, before = prepared
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = tmp_path / "processed"
    (out / "stale_table.parquet").parent.mkdir(parents=True)
    (out / "stale_table.parquet").write_bytes(b"from another configuration")
    prepare_all(_cfg(base, tmp_path, out, max_users=10))
    assert not (out / "stale_table.parquet").exists()             # nothing of the old configuration kept
    assert json.loads((out / "seq/beauty/meta.json").read_text())["n_users"] == 10
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- runs are transactions: kill the runner mid-notebook, rerun ----

def _runner(run_dir: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lib.runner", "fx_produce", "--run-dir", str(run_dir), "--notebook-dir", str(FIXTURES)]
    for o in overrides:
        cmd += ["-o", o]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_keeps_the_last_good_results(tmp_path, sig):
    run_dir = tmp_path / "fx_produce"
    run_notebook("fx_produce", "smoke", ["+extra.scale=2"], run_dir=run_dir, notebook_dir=FIXTURES)
    good = _snapshot(run_dir)
    assert json.loads(good["metrics.json"])["fx.value"] == 2.0 and "fx_produce.ipynb" in good

    proc = _runner(run_dir, "+extra.scale=5", "+extra.sleep=120")
    stage = tmp_path / "fx_produce.staging"
    deadline = time.monotonic() + 90
    while not (stage / "fx_produce.ipynb").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)                                   # let the kernel get into the sleeping cell
    proc.send_signal(sig)
    proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    assert proc.returncode != 0, stderr[-2000:]
    assert _snapshot(run_dir) == good                 # the last good results, byte for byte
    if sig == signal.SIGTERM:                         # handled like Ctrl-C: the partial run is set aside
        failed = tmp_path / "fx_produce.failed"
        manifest = json.loads((failed / "manifest.json").read_text())
        assert manifest["status"] == "failed" and "SIGTERM" in manifest["error"] and not stage.exists()
        assert (failed / "fx_produce.ipynb").is_file() and "scale: 5" in (failed / "config.yaml").read_text()
    else:                                             # no chance to clean up: the staging folder says so
        assert json.loads((stage / "manifest.json").read_text())["status"] == "running"
        marker = tmp_path / "fail"
        marker.touch()                                # a rerun that fails retires the killed one first
        with pytest.raises(Exception, match="planted failure"):
            run_notebook("fx_produce", "smoke", ["+extra.scale=5", f"+extra.fail_when={marker}"],
                         run_dir=run_dir, notebook_dir=FIXTURES)
        assert _snapshot(run_dir) == good and not stage.exists()
        assert json.loads((tmp_path / "fx_produce.failed" / "manifest.json").read_text())["status"] == "failed"

    run_notebook("fx_produce", "smoke", ["+extra.scale=5"], run_dir=run_dir, notebook_dir=FIXTURES)
    after = _snapshot(run_dir)
    assert json.loads(after["metrics.json"])["fx.value"] == 5.0
    assert json.loads(after["manifest.json"])["status"] == "ok"
    assert set(after) == set(good)                    # complete: every output of a good run is there
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "fail") == ["fx_produce"]


def test_report_with_nothing_to_render_exits_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lib.report", "--results", str(tmp_path / "results"),
                           "--out", str(tmp_path / "paper")], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 1 and "nothing to render" in proc.stderr


@pytest.mark.slow
def test_notebook_01_refuses_damage_and_keeps_its_results(prepared, tmp_path):
    """Two cases end to end: a cut raw file (stops in the readers) and a constant outcome (stops
    the benchmark summary instead of reporting a perfect estimate)."""
    import papermill

    base, files, _, _ = prepared

    def overrides(root: Path) -> list[str]:
        return [f"paths.data_root={root}", f"paths.processed={tmp_path / 'processed'}",
                f"paths.results={tmp_path / 'results'}", "data.sequences.datasets=[beauty]",
                *(f"{setting}='{sha}'" for setting, sha in _accepted(base, root).items())]

    def raw(name: str, damaged: dict[str, str]) -> Path:
        root = tmp_path / name
        for rel, text in {**files, **damaged}.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        return root

    run_notebook("01_prepare_data", "smoke", overrides(raw("good", {})))
    results, processed = tmp_path / "results" / "01_prepare_data", tmp_path / "processed"
    good_results, good_tables = _snapshot(results), _snapshot(processed)
    assert "metrics.json" in good_results and "01_prepare_data.ipynb" in good_results

    with pytest.raises(papermill.PapermillExecutionError, match=r"hillstrom.csv:1001.*cut off"):
        run_notebook("01_prepare_data", "smoke", overrides(raw("cut", {HILL: _hill_cut(files[HILL])})))
    assert _snapshot(results) == good_results and _snapshot(processed) == good_tables

    lines = files[HILL].split("\n")
    flat = "\n".join([lines[0], *(line.rsplit(",", 1)[0] + ",0" for line in lines[1:])])
    with pytest.raises(papermill.PapermillExecutionError, match=r"hillstrom_obs \(outcome spend\).*'Y' is constant"):
        run_notebook("01_prepare_data", "smoke", overrides(raw("flat", {HILL: flat})))
    assert _snapshot(results) == good_results
    failed = json.loads((tmp_path / "results" / "01_prepare_data.failed" / "manifest.json").read_text())
    assert failed["status"] == "failed" and "is constant" in failed["error"]
