"""S3-Rec reading, validation, leave-one-out split and subsampling."""
import json

import numpy as np
import pandas as pd
import pytest

from lib.config import compose, data_file
from lib.data import sequences as sq
from lib.errors import InputError

ALL_USERS = dict(max_users=None, seed=0, min_length=3)   # data.max_users: null, data.sequences.min_length: 3


def _write(tmp_path, text, attrs=None):
    seq = tmp_path / "seq.txt"
    seq.write_text(text)
    att = tmp_path / "attrs.json"
    att.write_text(json.dumps(attrs if attrs is not None else {str(i): [i % 3 + 1] for i in range(1, 20)}))
    return seq, att


def test_leave_one_out_and_history(tmp_path):
    seq, att = _write(tmp_path, "1 1 2 3 4 5\n2 6 7 8\n")
    df, attrs, meta = sq.build_tables(seq, att, **ALL_USERS)
    assert df.valid_item.tolist() == [4, 7] and df.test_item.tolist() == [5, 8]
    assert sq.history(df).tolist() == [[1, 2, 3], [6]]
    assert df.user_id.dtype == np.int64 and df.valid_item.dtype == np.int64
    assert meta == {"n_users": 2, "n_items": 19, "n_attrs": 3, "n_interactions": 8}
    assert attrs.item_id.tolist() == list(range(1, 20))


@pytest.mark.parametrize("text, where, what", [
    ("1 1 2 3\n2 4 x 6\n", "seq.txt:2", "token 3"),
    ("1 1 2 3\n2 4 0 6\n", "seq.txt:2", "token 3"),
    ("1 1 2 3\n2\n", "seq.txt:2", "empty sequence"),
    ("1 1 2 3\n1 4 5 6\n", "seq.txt:2", "user_id"),
    ("1 1 2\n", "seq.txt:1", "fewer than 3"),
])
def test_bad_sequences_raise(tmp_path, text, where, what):
    seq, att = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        sq.build_tables(seq, att, **ALL_USERS)
    assert where in str(err.value) and what in str(err.value) and "Fix:" in str(err.value)


def test_attributes_missing_items_raise(tmp_path):
    seq, att = _write(tmp_path, "1 1 2 3\n", attrs={"1": [1], "2": [2]})
    with pytest.raises(InputError, match=r"attrs.json.*item_id.*lacks 1 items.*\[3\]"):
        sq.build_tables(seq, att, **ALL_USERS)


def test_subsample_is_seeded_and_keeps_ids(tmp_path):
    seq, att = _write(tmp_path, "".join(f"{u} 1 2 3\n" for u in range(1, 101)))
    a, _, _ = sq.build_tables(seq, att, max_users=10, seed=3, min_length=3)
    b, _, _ = sq.build_tables(seq, att, max_users=10, seed=3, min_length=3)
    c, _, _ = sq.build_tables(seq, att, max_users=10, seed=4, min_length=3)
    assert a.user_id.tolist() == b.user_id.tolist() != c.user_id.tolist()
    assert len(a) == 10 and a.user_id.is_monotonic_increasing


@pytest.mark.realdata
def test_real_beauty_matches_published_shape():
    cfg = compose("paper")
    df, attrs, meta = sq.build_tables(data_file(cfg, "beauty/sequences"), data_file(cfg, "beauty/attributes"),
                                      max_users=cfg.data.max_users, seed=cfg.seed, min_length=cfg.data.sequences.min_length)
    assert meta == {"n_users": 22363, "n_items": 12101, "n_attrs": 637, "n_interactions": 198502}
    assert (df["items"].map(len) >= 5).all()
    assert all(s[-1] == t and s[-2] == v for s, v, t in zip(df["items"], df.valid_item, df.test_item))
