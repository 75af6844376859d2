"""One ingestion path for raw e-commerce event logs: events -> sessions -> time split.

A log in any layout is first mapped (by a small adapter in :mod:`lib.data.event_sources`)
to raw columns, then :func:`canonical_events` validates and types it into

``events``: ``session_id`` str, ``user_id`` str (nullable), ``item_id`` int64,
``ts`` datetime64[ms, UTC], ``event_type`` in {view, cart, purchase}.

:func:`sessions_from_events` orders each session by time and splits it by time:
the cut points are quantiles (``split_quantiles``) of the event times; every event
falls in the window of its timestamp, so a session that straddles a cut point is cut into
pieces, one per window (the OTTO evaluation protocol). Nothing a model sees in ``train``
happened after anything in ``valid`` or ``test``. A row of ``sessions`` is therefore keyed by
``(session_id, split)``; labels are computed within the piece:
``converted`` (a purchase in it) and ``next_item`` (its last item; the input is items[:-1]).

Duplicates: exact duplicate events (same session, item, time and type) are dropped and
counted (``on_duplicate="drop"``, the default of ``data.events.on_duplicate``) or rejected
(``on_duplicate="raise"``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lib.data.validate import Where, not_plain_int, require_columns
from lib.errors import InputError

__all__ = ["EVENT_TYPES", "EVENT_COLUMNS", "require_columns", "check_span", "canonical_events", "time_cuts",
           "sessions_from_events"]

EVENT_TYPES = ("view", "cart", "purchase")
EVENT_COLUMNS = ("session_id", "user_id", "item_id", "ts", "event_type")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _ids(series: pd.Series, where: Where, column: str, integer: bool) -> pd.Series:
    missing = series.isna().to_numpy()
    if not integer:
        missing |= (series.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        raise InputError(where(_first(missing)), column, f"has {int(missing.sum())} missing ids",
                         "drop or fill the rows without an id before ingestion")
    if not integer:
        return series.astype(str)
    bad = not_plain_int(series)
    if bad.any():
        row = _first(bad)
        raise InputError(where(row), column, f"has non-integer values (e.g. {series.iloc[row]!r})",
                         "item ids must be plain decimal integers (ASCII digits, no sign or '_'); "
                         "map string ids to integers first")
    return pd.to_numeric(series).astype(np.int64)


def _timestamps(series: pd.Series, where: Where, column: str, unit: str | None,
                span: Sequence[str] | None) -> pd.Series:
    """Parse ``series`` to UTC milliseconds: numbers in ``unit`` since the epoch, or date strings.

    ``span`` = ``[first, last]`` plausible times (ISO dates); a time outside it means a damaged
    log or a column that holds something else (e.g. ids under a time header).
    """
    if unit is not None:
        booleans = series.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        if booleans.any():
            row = _first(booleans)
            raise InputError(where(row), column, f"has a boolean timestamp {series.iloc[row]!r}",
                             f"give numeric epoch times in '{unit}'")
        numeric = pd.to_numeric(series, errors="coerce")
        bad = (numeric.isna() | ~np.isfinite(numeric.astype(np.float64))).to_numpy()
        if bad.any():
            row = _first(bad)
            raise InputError(where(row), column, f"has unparsable timestamps (e.g. {series.iloc[row]!r})",
                             f"give numeric epoch times in '{unit}'")
        if (numeric < 0).any():
            row = _first((numeric < 0).to_numpy())
            raise InputError(where(row), column, f"has negative timestamps (e.g. {numeric.iloc[row]})",
                             "timestamps must be times since the Unix epoch; fix or drop those rows")
        scale = {"s": 1000.0, "ms": 1.0}[unit]
        ms = numeric.to_numpy(dtype=np.float64) * scale
        if (ms > 4e15).any():  # beyond the year 100 000: not an epoch time in this unit at all
            row = _first(ms > 4e15)
            raise InputError(where(row), column, f"has an impossible timestamp {series.iloc[row]!r}",
                             f"give epoch times in '{unit}'")
        ms = np.round(ms).astype(np.int64)
        parsed = pd.Series(pd.to_datetime(ms, unit="ms", utc=True), index=series.index).astype("datetime64[ms, UTC]")
    else:
        parsed = pd.to_datetime(series, errors="coerce", utc=True)
        if parsed.isna().any():
            row = _first(parsed.isna().to_numpy())
            raise InputError(where(row), column, f"has unparsable timestamps (e.g. {series.iloc[row]!r})",
                             "use ISO dates such as 2016-05-09 or 2016-05-09T10:00:00Z")
        parsed = parsed.astype("datetime64[ms, UTC]")
    if span is not None:
        check_span(parsed, where, column, span)
    return parsed


def check_span(ts: pd.Series, where: Where, column: str, span: Sequence[str]) -> None:
    """:class:`InputError` when a time lies outside ``span`` = ``[first, last]`` (ISO dates, UTC).

    The message gives the observed minimum and maximum, so a shifted or misplaced column shows.
    """
    lo, hi = (pd.Timestamp(str(v), tz="UTC") for v in span)
    outside = ((ts < lo) | (ts > hi)).to_numpy()
    if outside.any():
        row = _first(outside)
        raise InputError(where(row), column, f"has {int(outside.sum())} timestamps outside the plausible span "
                         f"[{lo.date()}, {hi.date()}] (this one {ts.iloc[row]}; observed min {ts.min()}, "
                         f"max {ts.max()})", "fix or drop those events; if the columns are in another order than "
                         "the header, reorder them; if the data really covers other dates, widen "
                         "data.datasets.<source>.ts_span (conf/data/datasets/<source>.yaml)")


def canonical_events(raw: pd.DataFrame, source: str, ts_unit: str | None = "s",
                     event_map: dict[str, str] | None = None, *, on_duplicate: str,
                     ts_span: Sequence[str] | None = None, where: Where | None = None) -> tuple[pd.DataFrame, dict]:
    """Validate and type a raw log with columns ``session_id, item_id, ts, event_type`` (+ ``user_id``).

    Parameters
    ----------
    raw : DataFrame
        One row per event; ``user_id`` optional.
    source : str
        File name used in error messages.
    ts_unit : {"s", "ms"} or None
        Unit of numeric epoch timestamps; None parses date/time strings.
    event_map : dict, optional
        Raw event label -> canonical type, e.g. ``{"clicks": "view"}``; None = already canonical.
    on_duplicate : {"drop", "raise"}
        ``data.events.on_duplicate``.
    ts_span : [first, last], optional
        Plausible event times (ISO dates, ``data.datasets.<source>.ts_span``); None = no check.
    where : Where, optional
        Maps a row of ``raw`` to its file and line for messages (default: ``source (row N)``).

    Returns
    -------
    events : DataFrame
        Canonical events sorted by session, time and input order.
    report : dict
        ``n_raw``, ``n_duplicates_dropped``.

    Examples
    --------
    >>> raw = pd.DataFrame({"session_id": [1, 1], "item_id": [5, 6], "ts": [10, 20], "event_type": ["view"] * 2})
    >>> ev, rep = canonical_events(raw, "log.csv", on_duplicate="drop")
    >>> ev.item_id.tolist(), str(ev.ts.dtype), rep["n_duplicates_dropped"]
    ([5, 6], 'datetime64[ms, UTC]', 0)
    """
    if on_duplicate not in ("drop", "raise"):
        raise ValueError(f"on_duplicate must be 'drop' or 'raise', got {on_duplicate!r}")
    require_columns(raw, ("session_id", "item_id", "ts", "event_type"), source)
    if len(raw) == 0:
        raise InputError(source, None, "holds no events", "check the file and its separator")
    where = where or Where(source)
    raw = raw.reset_index(drop=True)
    out = pd.DataFrame(index=raw.index)
    out["session_id"] = _ids(raw["session_id"], where, "session_id", integer=False)
    users = raw["user_id"] if "user_id" in raw.columns else pd.Series(pd.NA, index=raw.index)
    out["user_id"] = users.astype("string").replace({"NA": pd.NA, "": pd.NA})
    out["item_id"] = _ids(raw["item_id"], where, "item_id", integer=True)
    out["ts"] = _timestamps(raw["ts"], where, "ts", ts_unit, ts_span)
    labels = raw["event_type"].astype(str)
    mapped = labels.map(event_map) if event_map is not None else labels.where(labels.isin(EVENT_TYPES))
    if mapped.isna().any():
        unknown = sorted(labels[mapped.isna()].unique().tolist())[:5]
        known = sorted(event_map) if event_map is not None else list(EVENT_TYPES)
        raise InputError(where(_first(mapped.isna().to_numpy())), "event_type", f"has unknown event types {unknown}",
                         f"use one of {known} or extend the source's event mapping")
    out["event_type"] = mapped.astype(str)
    dup = out.duplicated(subset=["session_id", "item_id", "ts", "event_type"], keep="first")
    if dup.any() and on_duplicate == "raise":
        raise InputError(where(_first(dup.to_numpy())), "session_id,item_id,ts,event_type",
                         f"has {int(dup.sum())} exact duplicate events (this is the first)", "deduplicate the log or set data.events.on_duplicate=drop")
    out = out[~dup.to_numpy()]
    # a stable sort keeps the log's order for events with equal timestamps
    out = out.sort_values(["session_id", "ts"], kind="mergesort").reset_index(drop=True)
    return out, {"n_raw": int(len(raw)), "n_duplicates_dropped": int(dup.sum())}


def time_cuts(events: pd.DataFrame, quantiles: Sequence[float]) -> list[pd.Timestamp]:
    """Cut points = ``quantiles`` of the event times (ascending).

    Event times rather than session end times: logs such as OTTO truncate every session at
    the end of the collection window, so their session ends all coincide.
    """
    q = list(quantiles)
    if len(q) != 2 or not 0 < q[0] < q[1] < 1:
        raise ValueError(f"split_quantiles must be two increasing numbers in (0, 1), got {q}")
    times = events["ts"].astype("int64").to_numpy()
    return [pd.Timestamp(int(np.quantile(times, v, method="lower")), unit="ms", tz="UTC") for v in q]


def sessions_from_events(events: pd.DataFrame, quantiles: Sequence[float],
                         min_length: int) -> tuple[pd.DataFrame, dict]:
    """Time-ordered sessions split by time windows, with ``converted`` and ``next_item`` labels.

    An event at time ``t`` belongs to ``train`` if ``t <= cut1``, ``valid`` if ``cut1 < t <= cut2``
    and ``test`` otherwise; pieces shorter than ``min_length`` are dropped (counted in the report).
    """
    cut1, cut2 = time_cuts(events, quantiles)
    ts = events["ts"]
    split = np.where(ts <= cut1, "train", np.where(ts <= cut2, "valid", "test"))
    ev = events.assign(split=split)
    grouped = ev.groupby(["split", "session_id"], sort=False)
    table = grouped.agg(items=("item_id", list), event_types=("event_type", list),
                        start_ts=("ts", "min"), end_ts=("ts", "max"), user_id=("user_id", "first")).reset_index()
    lengths = table["items"].map(len)
    short = int((lengths < min_length).sum())
    table = table[lengths >= min_length].copy()
    table["converted"] = table["event_types"].map(lambda t: "purchase" in t).astype(bool)
    table["next_item"] = table["items"].map(lambda s: s[-1]).astype(np.int64)
    order = {"train": 0, "valid": 1, "test": 2}
    table = table.assign(_o=table["split"].map(order)).sort_values(["_o", "start_ts", "session_id"], kind="mergesort")
    cols = ["session_id", "user_id", "items", "event_types", "start_ts", "end_ts", "split", "converted", "next_item"]
    table = table[cols].reset_index(drop=True)
    report = {"cut_valid": str(cut1), "cut_test": str(cut2), "n_pieces_too_short": short,
              "n_straddling_sessions": int(ev.groupby("session_id")["split"].nunique().gt(1).sum())}
    return table, report
