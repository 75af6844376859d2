"""Adapters from the layouts of YooChoose, DIGINETICA and OTTO to the generic event path.

A log already in the generic schema (data-set format ``events``) is read by :func:`read_events`.

Each adapter only reads its file and renames / derives the raw columns
``session_id, user_id, item_id, ts, event_type``; typing, validation, deduplication and
sessionisation are shared (:mod:`lib.data.events`).

=============  ===========================================  ==========================================
source         raw layout                                   mapping
=============  ===========================================  ==========================================
YooChoose      TSV ``SessionId ItemId Time`` (Unix s)       all events are clicks -> ``view``
DIGINETICA     ``;``-CSV ``session_id;user_id;item_id;      ts = ``eventdate`` + ``timeframe`` ms;
               timeframe;eventdate`` (``NA`` user ids)      all events are views
OTTO           JSON lines ``{"session", "events": [{"aid",  clicks -> view, carts -> cart,
               "ts" (ms), "type"}]}``                       orders -> purchase
=============  ===========================================  ==========================================
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lib.data.events import canonical_events
from lib.data.validate import Where, not_plain_int, read_delimited, read_text, require_final_newline
from lib.errors import InputError

OTTO_TYPES = {"clicks": "view", "carts": "cart", "orders": "purchase"}


def read_events(path: str | Path, ts_unit: str | None = "s", on_duplicate: str = "drop",
                ts_span: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """A comma-separated log in the generic schema: header ``session_id,item_id,ts,event_type``
    (plus optional ``user_id``), event types ``view`` / ``cart`` / ``purchase``.

    ``ts_unit`` is the unit of numeric epoch times (``s`` or ``ms``; None parses date-times).

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> _ = open(p, "w").write("session_id,user_id,item_id,ts,event_type\\n7,,3,1600000000,view\\n"
    ...                        "7,,4,1600000060,purchase\\n")
    >>> ev, rep = read_events(p)
    >>> ev.item_id.tolist(), ev.event_type.tolist(), str(ev.ts.iloc[1])
    ([3, 4], ['view', 'purchase'], '2020-09-13 12:27:40+00:00')
    """
    raw, where = read_delimited(path, ",", ("session_id", "item_id", "ts", "event_type"))
    return canonical_events(raw, str(path), ts_unit=ts_unit, on_duplicate=on_duplicate, ts_span=ts_span,
                            where=where)


def read_yoochoose(paths: Sequence[str | Path], on_duplicate: str,
                   ts_span: Sequence[str] | None) -> tuple[pd.DataFrame, dict]:
    """Concatenate YooChoose click files (e.g. the train and the following-day test file)."""
    frames, counts = [], []
    for path in paths:
        raw, _ = read_delimited(path, "\t", ("SessionId", "ItemId", "Time"))
        _session_ids(raw["SessionId"], Where(str(path), [str(path)] * len(raw), range(2, len(raw) + 2)), "SessionId")
        frames.append(raw.rename(columns={"SessionId": "session_id", "ItemId": "item_id", "Time": "ts"}))
        counts.append((str(path), len(raw)))
    raw = pd.concat(frames, ignore_index=True).assign(event_type="view")
    return canonical_events(raw, ",".join(Path(p).name for p in paths), ts_unit="s", on_duplicate=on_duplicate,
                            ts_span=ts_span, where=Where.from_files(counts))


def _session_ids(series: pd.Series, where: Where, column: str) -> None:
    """Session ids of these logs are integers too: anything else means shifted columns or damage."""
    bad = not_plain_int(series)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(where(row), column, f"has a non-integer session id {series.iloc[row]!r}",
                         "session ids must be plain decimal integers; check the file's columns match its header")


def read_diginetica(path: str | Path, on_duplicate: str,
                    ts_span: Sequence[str] | None) -> tuple[pd.DataFrame, dict]:
    """DIGINETICA item views; the time of a view is its date plus its in-session offset."""
    raw, where = read_delimited(path, ";", ("session_id", "user_id", "item_id", "timeframe", "eventdate"))
    source = str(path)
    _session_ids(raw["session_id"], where, "session_id")
    users = raw["user_id"]
    bad_user = ~users.isin(["NA", ""]).to_numpy() & not_plain_int(users)
    if bad_user.any():
        row = int(np.flatnonzero(bad_user)[0])
        raise InputError(where(row), "user_id", f"has {users.iloc[row]!r}, not an integer id or NA",
                         "user ids must be plain decimal integers, or NA for anonymous sessions")
    bad = not_plain_int(raw["timeframe"])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(where(row), "timeframe", f"has a missing, negative or non-integer value "
                         f"{raw['timeframe'].iloc[row]!r}", "timeframe must be whole milliseconds since the "
                         "session start (>= 0)")
    offset = pd.to_numeric(raw["timeframe"]).astype(np.int64)
    well_formed = raw["eventdate"].str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").to_numpy(dtype=bool)
    day = pd.to_datetime(raw["eventdate"].where(well_formed), format="%Y-%m-%d", errors="coerce", utc=True)
    if day.isna().any():
        row = int(np.flatnonzero(day.isna().to_numpy())[0])
        raise InputError(where(row), "eventdate", f"has an unparsable date {raw['eventdate'].iloc[row]!r}",
                         "dates must look like 2016-05-09")
    epoch_ms = day.astype("datetime64[ms, UTC]").astype("int64") + offset
    raw = raw.assign(ts=epoch_ms, event_type="view").drop(columns=["timeframe", "eventdate"])
    raw.loc[raw["user_id"].isin(["NA", ""]), "user_id"] = None
    return canonical_events(raw, source, ts_unit="ms", on_duplicate=on_duplicate, ts_span=ts_span, where=where)


def read_otto(path: str | Path, on_duplicate: str,
              ts_span: Sequence[str] | None) -> tuple[pd.DataFrame, dict]:
    """OTTO sessions (one JSON object per line) flattened to one row per event.

    ``session``, ``aid`` and ``ts`` must be JSON integers (not strings, floats or booleans).
    """
    source = str(path)
    text = read_text(path)
    require_final_newline(path, text)
    rows, lines = [], []
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        here = f"{source}:{lineno}"
        if not line.strip():
            raise InputError(here, None, "is blank", "one session object per line; remove the empty line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(here, None, f"is not valid JSON ({exc.msg} at character {exc.colno})",
                             "one session object per line") from None
        if not isinstance(obj, dict):
            raise InputError(here, None, f"holds a JSON {type(obj).__name__}, not a session object",
                             "one session object per line")
        for key in ("session", "events"):
            if key not in obj:
                raise InputError(here, key, "is missing", "lines look like "
                                 '{"session": 0, "events": [{"aid": 1, "ts": 1659304800025, "type": "clicks"}]}')
        _json_int(obj["session"], here, "session")
        if not isinstance(obj["events"], list) or not obj["events"]:
            raise InputError(here, "events", f"must be a non-empty list, got {obj['events']!r:.60}",
                             "every session lists its events")
        for k, event in enumerate(obj["events"]):
            missing = [f for f in ("aid", "ts", "type") if not isinstance(event, dict) or f not in event]
            if missing:
                raise InputError(here, f"events[{k}].{missing[0]}", "is missing",
                                 "every event needs aid, ts (ms) and type")
            _json_int(event["aid"], here, f"events[{k}].aid")
            _json_int(event["ts"], here, f"events[{k}].ts")
            rows.append((str(obj["session"]), event["aid"], event["ts"], event["type"]))
            lines.append(lineno)
    raw = pd.DataFrame(rows, columns=["session_id", "item_id", "ts", "event_type"])
    return canonical_events(raw, source, ts_unit="ms", event_map=OTTO_TYPES, on_duplicate=on_duplicate,
                            ts_span=ts_span, where=Where(source, [source] * len(lines), lines))


def _json_int(value: object, here: str, column: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(here, column, f"is {value!r} ({type(value).__name__}), not a non-negative JSON integer",
                         "ids and ms timestamps are written as bare integers, e.g. 1659304800025")
