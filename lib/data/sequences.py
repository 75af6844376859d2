"""Interaction sequences in the S3-Rec format, validated, split leave-one-out.

Raw format ``s3rec`` of a data set declared in ``conf/data/datasets/<name>.yaml`` (Amazon
Beauty / Sports as released with S3-Rec)::

    Beauty.txt                   one line per user: ``user_id item_1 item_2 ...`` (time order)
    Beauty_item2attributes.json  ``{"item_id": [attr_id, ...], ...}``

Canonical tables (``seq/<dataset>/`` under ``cfg.paths.processed``):

- ``sequences.parquet``: ``user_id`` int64, ``items`` list<int64> (full history, ids 1..n_items,
  0 reserved for padding), ``valid_item`` (= items[-2]), ``test_item`` (= items[-1]).
- ``item_attributes.parquet``: ``item_id`` int64, ``attr_ids`` list<int64>.
- ``meta.json``: ``n_users, n_items, n_attrs, n_interactions``.

Leave-one-out as in SASRec / BERT4Rec / S3-Rec: the last item is the test target, the
second last the validation target, and ``items[:-2]`` is the training history.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.data.validate import PLAIN_INT, read_text, require_final_newline
from lib.errors import InputError
from lib.io import read_json


def read_sequences(path: str | Path, min_length: int) -> pd.DataFrame:
    """Parse a ``user item1 item2 ...`` file into ``user_id`` / ``items`` columns.

    Parameters
    ----------
    path : path
        The S3-Rec sequence file.
    min_length : int
        Fewest items a user may have (leave-one-out needs 3: history, valid, test).

    Raises
    ------
    InputError
        An empty file, a last line without a newline (a cut file), tokens that are not plain
        ASCII decimal integers, ids <= 0, users without items, short sequences or duplicate
        user ids; the message names the file, line and token position.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.txt")
    >>> _ = open(p, "w").write("1 5 6 7\\n2 8 9 5 6\\n")
    >>> read_sequences(p, min_length=3)["items"].tolist()
    [[5, 6, 7], [8, 9, 5, 6]]
    """
    path = Path(path)
    users: list[int] = []
    seqs: list[list[int]] = []
    seen: dict[int, int] = {}
    text = read_text(path)
    require_final_newline(path, text)
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        tokens = line.split()
        if not tokens:
            continue  # blank lines (e.g. a trailing one) carry nothing
        ids = []
        for pos, tok in enumerate(tokens, start=1):
            if not PLAIN_INT.fullmatch(tok):
                raise InputError(f"{path}:{lineno}", f"token {pos}", f"is {tok!r}, not a plain decimal integer id",
                                 "each line must be 'user_id item_id item_id ...', ASCII digits separated by "
                                 "spaces")
            value = int(tok)
            if value <= 0:
                raise InputError(f"{path}:{lineno}", f"token {pos}", f"is {value}; ids must be >= 1 (0 pads)",
                                 "remap ids to start at 1")
            ids.append(value)
        user, items = ids[0], ids[1:]
        if not items:
            raise InputError(f"{path}:{lineno}", "items", f"user {user} has an empty sequence",
                             "drop users without interactions before export")
        if len(items) < min_length:
            raise InputError(f"{path}:{lineno}", "items", f"user {user} has {len(items)} items, "
                             f"fewer than {min_length}", "leave-one-out needs a history item plus valid and "
                             "test items; filter short users (e.g. a 5-core filter)")
        if user in seen:
            raise InputError(f"{path}:{lineno}", "user_id", f"user {user} already appeared on line {seen[user]}",
                             "merge the user's lines into one time-ordered sequence")
        seen[user] = lineno
        users.append(user)
        seqs.append(items)
    if not users:
        raise InputError(str(path), None, "holds no sequences", "check data.files points at the S3-Rec .txt file")
    return pd.DataFrame({"user_id": np.asarray(users, dtype=np.int64), "items": seqs})


def read_item_attributes(path: str | Path, required_items: np.ndarray | None = None) -> pd.DataFrame:
    """Parse the ``item -> [attribute ids]`` JSON into ``item_id`` / ``attr_ids`` (sorted by item).

    Raises
    ------
    InputError
        An empty or unparsable file, repeated keys, keys that are not plain decimal item ids
        >= 1, values that are not lists of JSON integers >= 1 (strings of digits, dicts, floats
        and booleans are refused), or items of ``required_items`` missing.
    """
    path = Path(path)
    text = read_text(path)

    def line_of(key: str) -> int:
        pos = text.find(json.dumps(key))
        return text.count("\n", 0, pos) + 1 if pos >= 0 else 1

    def unique_keys(pairs: list) -> dict:
        counts = Counter(k for k, _ in pairs)
        dup = next((k for k, n in counts.items() if n > 1), None)
        if dup is not None:
            raise InputError(f"{path}:{line_of(dup)}", f"item {dup!r}", "appears twice",
                             "keep one attribute list per item")
        return dict(pairs)

    try:
        raw = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}", None, f"is not valid JSON ({exc.msg} at character {exc.colno})",
                         "restore the original item2attributes file (its sha256 is listed in conf/data)") from None
    if not isinstance(raw, dict):
        raise InputError(str(path), None, "must hold one JSON object {item_id: [attr ids]}", "use the S3-Rec file")
    rows = []
    for key, attrs in raw.items():
        if not PLAIN_INT.fullmatch(key) or int(key) <= 0:
            raise InputError(f"{path}:{line_of(key)}", f"item {key!r}", "is not a plain decimal item id >= 1",
                             "keys must be item ids written with ASCII digits, e.g. \"83\"")
        if not isinstance(attrs, list) or not all(type(a) is int and a >= 1 for a in attrs):
            raise InputError(f"{path}:{line_of(key)}", f"item {key!r}", f"has {attrs!r:.80} ({type(attrs).__name__}), not a list of "
                             "integer attribute ids >= 1", "values must be JSON lists of bare integers, e.g. [1, 2, 3]")
        rows.append((int(key), sorted(set(attrs))))
    if not rows:
        raise InputError(str(path), None, "holds no items", "use the S3-Rec item2attributes file")
    rows.sort()
    df = pd.DataFrame({"item_id": np.asarray([r[0] for r in rows], dtype=np.int64), "attr_ids": [r[1] for r in rows]})
    if required_items is not None:
        missing = np.setdiff1d(np.asarray(required_items, dtype=np.int64), df.item_id.to_numpy())
        if len(missing):
            raise InputError(str(path), "item_id", f"lacks {len(missing)} items used in the sequences "
                             f"(first: {missing[:5].tolist()})", "use the attribute file that matches the sequences")
    return df


def leave_one_out(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``valid_item`` (= items[-2]) and ``test_item`` (= items[-1]).

    Examples
    --------
    >>> out = leave_one_out(pd.DataFrame({"user_id": [1], "items": [[3, 4, 5, 6]]}))
    >>> int(out.valid_item[0]), int(out.test_item[0]), history(out)[0]
    (5, 6, [3, 4])
    """
    out = df[["user_id", "items"]].copy()
    out["valid_item"] = np.asarray([s[-2] for s in out["items"]], dtype=np.int64)
    out["test_item"] = np.asarray([s[-1] for s in out["items"]], dtype=np.int64)
    return out


def history(df: pd.DataFrame) -> pd.Series:
    """The training / pre-treatment history ``items[:-2]`` of every user (never valid or test items)."""
    return pd.Series([list(s[:-2]) for s in df["items"]], index=df.index, name="history")


def subsample_users(df: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of ``max_users`` users in their original order (ids unchanged); all if None."""
    if max_users is not None and int(max_users) < 1:
        raise ValueError(f"data.max_users must be >= 1 or null (all users), got {max_users}")
    if max_users is None or max_users >= len(df):
        return df.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(df), size=int(max_users), replace=False))
    return df.iloc[keep].reset_index(drop=True)


def build_tables(seq_path: str | Path, attr_path: str | Path, *, max_users: int | None, seed: int,
                 min_length: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read, validate and split one S3-Rec data set: ``(sequences, item_attributes, meta)``.

    ``n_items`` and ``n_attrs`` describe the whole catalogue, so a subsample keeps the id space.
    """
    seqs = read_sequences(seq_path, min_length=min_length)
    all_items = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs["items"]]))
    attrs = read_item_attributes(attr_path, required_items=all_items)
    seqs = leave_one_out(subsample_users(seqs, max_users, seed))
    attr_ids = [a for lst in attrs.attr_ids for a in lst]
    meta = {
        "n_users": int(len(seqs)),
        "n_items": int(max(all_items.max(), attrs.item_id.max())),
        "n_attrs": int(max(attr_ids)) if attr_ids else 0,
        "n_interactions": int(sum(len(s) for s in seqs["items"])),
    }
    return seqs, attrs, meta


def validate_prepared(df: pd.DataFrame, source: str) -> None:
    """Check a prepared ``sequences.parquet`` against its schema."""
    for col in ("user_id", "items", "valid_item", "test_item"):
        if col not in df.columns:
            raise InputError(source, col, "is missing", "re-run notebook 01_prepare_data")
    if df.user_id.duplicated().any():
        raise InputError(source, "user_id", "has duplicate ids", "re-run notebook 01_prepare_data")


def load_prepared(cfg: DictConfig, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(sequences_df, item_attributes_df, meta)`` of a data set prepared by notebook 01.

    Prepared tables on disk are read as they are; a name with neither tables nor a data-set file
    (``conf/data/datasets/<name>.yaml``) fails naming the file to add.
    """
    from lib.config import dataset as declared

    folder = Path(cfg.paths.processed) / "seq" / dataset
    path = folder / "sequences.parquet"
    if not path.is_file():
        declared(cfg, dataset, "a sequence data-set setting")
        listed = "" if dataset in cfg.data.sequences.datasets else f" with {dataset!r} in data.sequences.datasets"
        raise FileNotFoundError(f"missing {path}: run `python -m lib.runner 01_prepare_data "
                                f"--preset {cfg.preset_name}`{listed} first (paths.processed = {cfg.paths.processed})")
    seqs = pd.read_parquet(path)
    seqs["items"] = [list(map(int, s)) for s in seqs["items"]]
    validate_prepared(seqs, str(path))
    attrs = pd.read_parquet(folder / "item_attributes.parquet")
    attrs["attr_ids"] = [list(map(int, a)) for a in attrs["attr_ids"]]
    return seqs, attrs, read_json(folder / "meta.json")
