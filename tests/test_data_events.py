"""Generic event-log ingestion: validation, dedup, time split without leakage, labels, adapters."""
import json

import numpy as np
import pandas as pd
import pytest

from lib.config import compose, data_file
from lib.data import event_sources as es
from lib.data.events import canonical_events, sessions_from_events
from lib.errors import InputError


def _raw(n_sessions=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = 1_600_000_000 + s * 600 + int(rng.integers(0, 300))
        for k in range(int(rng.integers(2, 6))):
            rows.append((f"s{s}", int(rng.integers(1, 50)), start + 10 * k, "view"))
        if s % 4 == 0:
            rows.append((f"s{s}", int(rng.integers(1, 50)), start + 100, "purchase"))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts", "event_type"])


def test_canonical_schema_and_types():
    ev, rep = canonical_events(_raw(), "log.csv", on_duplicate="drop")
    assert list(ev.columns) == ["session_id", "user_id", "item_id", "ts", "event_type"]
    assert str(ev.ts.dtype) == "datetime64[ms, UTC]" and ev.item_id.dtype == np.int64
    assert set(ev.event_type) <= {"view", "cart", "purchase"} and rep["n_duplicates_dropped"] == 0


def test_time_split_has_no_leakage_and_labels():
    ev, _ = canonical_events(_raw(), "log.csv", on_duplicate="drop")
    sess, rep = sessions_from_events(ev, (0.6, 0.8), min_length=2)
    by = sess.groupby("split")
    assert set(sess.split) == {"train", "valid", "test"}
    assert by.end_ts.max()["train"] < by.start_ts.min()["valid"]
    assert by.end_ts.max()["valid"] < by.start_ts.min()["test"]
    assert (sess["items"].map(len) >= 2).all()
    assert (sess.next_item == sess["items"].map(lambda s: s[-1])).all()
    assert (sess.converted == sess.event_types.map(lambda t: "purchase" in t)).all()
    # items follow the time order of the session's events inside its split window
    shuffled, _ = canonical_events(_raw().sample(frac=1.0, random_state=1), "log.csv", on_duplicate="drop")
    resess, _ = sessions_from_events(shuffled, (0.6, 0.8), min_length=2)
    assert resess["items"].tolist() == sess["items"].tolist()


@pytest.mark.parametrize("mutate, column, what", [
    (lambda d: d.rename(columns={"item_id": "itemid"}), "item_id", "did you mean 'itemid'"),
    (lambda d: d.drop(columns=["ts"]), "ts", "is missing"),
    (lambda d: d.assign(session_id=d.session_id.where(d.index != 3, None)), "session_id", "missing ids"),
    (lambda d: d.assign(item_id=d.item_id.astype(object).where(d.index != 2, "abc")), "item_id", "non-integer"),
    (lambda d: d.assign(ts=d.ts.where(d.index != 1, -5)), "ts", "negative"),
    (lambda d: d.assign(ts=d.ts.astype(object).where(d.index != 1, "yesterday")), "ts", "unparsable"),
    (lambda d: d.assign(event_type=d.event_type.where(d.index != 0, "wishlist")), "event_type", "wishlist"),
])
def test_bad_event_logs_raise(mutate, column, what):
    with pytest.raises(InputError) as err:
        canonical_events(mutate(_raw()), "shop_log.csv", on_duplicate="drop")
    msg = str(err.value)
    assert msg.startswith("shop_log.csv") and f"'{column}'" in msg and what in msg and "Fix:" in msg


def test_duplicates_dropped_and_counted_or_raised():
    raw = _raw()
    dup = pd.concat([raw, raw.iloc[[0, 5]]], ignore_index=True)
    ev, rep = canonical_events(dup, "log.csv", on_duplicate="drop")
    assert rep["n_duplicates_dropped"] == 2 and len(ev) == len(raw)
    with pytest.raises(InputError, match="2 exact duplicate"):
        canonical_events(dup, "log.csv", on_duplicate="raise")


def test_adapters_on_generated_files(tmp_path):
    yc = tmp_path / "yc.txt"
    yc.write_text("SessionId\tItemId\tTime\n1\t10\t1396860669.277\n1\t11\t1396860886.998\n")
    ev, _ = es.read_yoochoose([yc], "drop", None)
    assert ev.ts.iloc[0] == pd.Timestamp(1396860669277, unit="ms", tz="UTC")
    yc.write_text("SesionId\tItemId\tTime\n1\t10\t1.0\n")
    with pytest.raises(InputError, match=r"yc.txt: column 'SessionId' is missing \(did you mean 'SesionId'\?\)"):
        es.read_yoochoose([yc], "drop", None)
    dg = tmp_path / "dg.csv"
    dg.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;1500;2016-05-09\n1;7;6;-3;2016-05-09")
    with pytest.raises(InputError, match="dg.csv:3: column 'timeframe'.*negative"):
        es.read_diginetica(dg, "drop", None)
    dg.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;1500;2016-05-09\n1;7;6;3000;2016-05-09")
    ev, _ = es.read_diginetica(dg, "drop", None)
    assert ev.ts.tolist() == [pd.Timestamp("2016-05-09 00:00:01.5", tz="UTC"), pd.Timestamp("2016-05-09 00:00:03", tz="UTC")]
    assert ev.user_id.isna().tolist() == [True, False]
    ot = tmp_path / "ot.jsonl"
    ot.write_text(json.dumps({"session": 0, "events": [{"aid": 1, "ts": 5, "type": "clicks"},
                                                       {"aid": 2, "ts": 6, "type": "orders"}]}) + "\n")
    ev, _ = es.read_otto(ot, "drop", None)
    assert ev.event_type.tolist() == ["view", "purchase"]
    ot.write_text(json.dumps({"session": 0, "events": [{"aid": 1, "ts": 5, "type": "likes"}]}) + "\n")
    with pytest.raises(InputError, match="ot.jsonl:1: column 'event_type' has unknown event types \\['likes'\\]"):
        es.read_otto(ot, "drop", None)


@pytest.mark.realdata
def test_real_otto_counts():
    ecfg = compose("smoke").data.events
    ev, rep = es.read_otto(data_file(compose("smoke"), "otto/events"), ecfg.on_duplicate,
                           list(compose("smoke").data.datasets.otto.ts_span))
    assert len(ev) == 862 and rep["n_duplicates_dropped"] == 0
    assert ev.event_type.value_counts().to_dict() == {"view": 800, "cart": 52, "purchase": 10}
    sess, _ = sessions_from_events(ev, list(ecfg.split_quantiles), ecfg.min_session_length)
    assert sess.groupby("split").end_ts.max()["train"] < sess.groupby("split").start_ts.min()["test"]
