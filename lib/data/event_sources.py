"""Adapters from the layouts of YooChoose, DIGINETICA and OTTO to the generic event path.

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

from lib.data.events import canonical_events, require_columns
from lib.errors import InputError

OTTO_TYPES = {"clicks": "view", "carts": "cart", "orders": "purchase"}


def read_yoochoose(paths: Sequence[str | Path], on_duplicate: str = "drop") -> tuple[pd.DataFrame, dict]:
    """Concatenate YooChoose click files (e.g. the train and the following-day test file)."""
    frames = []
    for path in paths:
        raw = pd.read_csv(path, sep="\t", dtype=str)
        require_columns(raw, ("SessionId", "ItemId", "Time"), str(path))
        frames.append(raw.rename(columns={"SessionId": "session_id", "ItemId": "item_id", "Time": "ts"}))
    raw = pd.concat(frames, ignore_index=True).assign(event_type="view")
    return canonical_events(raw, ",".join(Path(p).name for p in paths), ts_unit="s", on_duplicate=on_duplicate)


def read_diginetica(path: str | Path, on_duplicate: str = "drop") -> tuple[pd.DataFrame, dict]:
    """DIGINETICA item views; the time of a view is its date plus its in-session offset."""
    raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    source = str(path)
    require_columns(raw, ("session_id", "user_id", "item_id", "timeframe", "eventdate"), source)
    offset = pd.to_numeric(raw["timeframe"], errors="coerce")
    if offset.isna().any() or (offset < 0).any():
        row = int(np.flatnonzero((offset.isna() | (offset < 0)).to_numpy())[0])
        raise InputError(source, "timeframe", f"has a missing or negative value {raw['timeframe'].iloc[row]!r} "
                         f"at row {row}", "timeframe must be milliseconds since the session start (>= 0)")
    day = pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", errors="coerce", utc=True)
    if day.isna().any():
        row = int(np.flatnonzero(day.isna().to_numpy())[0])
        raise InputError(source, "eventdate", f"has an unparsable date {raw['eventdate'].iloc[row]!r} at row {row}",
                         "dates must look like 2016-05-09")
    epoch_ms = day.astype("datetime64[ms, UTC]").astype("int64") + offset.astype(np.int64)
    raw = raw.assign(ts=epoch_ms, event_type="view").drop(columns=["timeframe", "eventdate"])
    raw.loc[raw["user_id"].isin(["NA", ""]), "user_id"] = None
    return canonical_events(raw, source, ts_unit="ms", on_duplicate=on_duplicate)


def read_otto(path: str | Path, on_duplicate: str = "drop") -> tuple[pd.DataFrame, dict]:
    """OTTO sessions (one JSON object per line) flattened to one row per event."""
    source = str(path)
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{source}:{lineno}", None, "is not valid JSON", "one session object per line") from None
            for key in ("session", "events"):
                if key not in obj:
                    raise InputError(f"{source}:{lineno}", key, "is missing", "lines look like "
                                     '{"session": 0, "events": [{"aid": 1, "ts": 1659304800025, "type": "clicks"}]}')
            for k, event in enumerate(obj["events"]):
                missing = [f for f in ("aid", "ts", "type") if f not in event]
                if missing:
                    raise InputError(f"{source}:{lineno}", f"events[{k}].{missing[0]}", "is missing",
                                     "every event needs aid, ts (ms) and type")
                rows.append((obj["session"], event["aid"], event["ts"], event["type"]))
    raw = pd.DataFrame(rows, columns=["session_id", "item_id", "ts", "event_type"])
    return canonical_events(raw, source, ts_unit="ms", event_map=OTTO_TYPES, on_duplicate=on_duplicate)
