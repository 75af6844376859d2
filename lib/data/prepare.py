"""Turn every raw data set into the canonical Parquet tables under ``cfg.paths.processed``.

Layout written (all through the atomic writers of :mod:`lib.io`)::

    seq/<beauty|sports>/sequences.parquet, item_attributes.parquet, meta.json
    events/<yoochoose|diginetica|otto>/events.parquet, sessions.parquet
    hillstrom/hillstrom.parquet
    prepare_report.json      row counts, dropped duplicates / short pieces, checksum warnings

The folder is replaced as a unit: every table is written into a sibling staging folder,
which is renamed into place only when all of them are complete, so a failed or interrupted
preparation leaves the previous tables untouched (never tables of two configurations side
by side). Raw files are checked against ``data.sha256`` first. The same config and seed give
byte-identical files.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from omegaconf import DictConfig

from lib.config import data_file
from lib.data import event_sources, hillstrom, sequences
from lib.data.events import sessions_from_events
from lib.errors import InputError
from lib.io import sha256_file, write_json, write_parquet

SEQ_FILES = {"beauty": ("beauty_sequences", "beauty_attributes"), "sports": ("sports_sequences", "sports_attributes")}
EVENT_FILES: dict[str, tuple[str, ...]] = {"yoochoose": ("yoochoose_train", "yoochoose_test"),
                                           "diginetica": ("diginetica",), "otto": ("otto",)}


def _event_reader(source: str) -> Callable[..., tuple[pd.DataFrame, dict]]:
    readers = {"yoochoose": lambda paths, dup, span: event_sources.read_yoochoose(paths, dup, span),
               "diginetica": lambda paths, dup, span: event_sources.read_diginetica(paths[0], dup, span),
               "otto": lambda paths, dup, span: event_sources.read_otto(paths[0], dup, span)}
    if source not in readers:
        raise ValueError(f"unknown event source {source!r} in data.events.sources; known: {sorted(readers)}")
    return readers[source]


def check_checksums(cfg: DictConfig, keys: list[str]) -> list[str]:
    """Compare every raw file with its ``data.sha256`` entry.

    With ``data.verify_checksums`` (the default) a difference is an :class:`InputError` naming
    the file, both hashes and how to accept a new file on purpose; with it off, the
    differences come back as warnings (written to ``prepare_report.json``).
    """
    warnings = []
    for key in keys:
        path = data_file(cfg, key)
        actual = sha256_file(path)
        expected = cfg.data.sha256[key] if key in cfg.data.sha256 else None
        if expected == actual:
            continue
        problem = (f"has sha256 {actual}, but data.sha256.{key} is not set" if expected is None else
                   f"has sha256 {actual}, conf/data expects {expected}: it differs from the published file "
                   "(damaged, truncated or another version)")
        if cfg.data.verify_checksums:
            raise InputError(f"{path} (data.files.{key})", None, problem,
                             f"restore the published file; to use this file on purpose, set data.sha256.{key}="
                             f"{actual} (in conf/data or as an override), or pass data.verify_checksums=false")
        warnings.append(f"{path} (data.files.{key}) {problem}")
    return warnings


def prepare_sequences(cfg: DictConfig, dataset: str, out: Path) -> dict[str, int]:
    seq_key, attr_key = SEQ_FILES[dataset]
    seqs, attrs, meta = sequences.build_tables(data_file(cfg, seq_key), data_file(cfg, attr_key),
                                               max_users=cfg.data.max_users, seed=cfg.seed,
                                               min_length=cfg.data.sequences.min_length)
    folder = out / "seq" / dataset
    write_parquet(seqs, folder / "sequences.parquet")
    write_parquet(attrs, folder / "item_attributes.parquet")
    write_json(folder / "meta.json", meta)
    return {f"seq/{dataset}/sequences": len(seqs), f"seq/{dataset}/item_attributes": len(attrs)}


def prepare_events(cfg: DictConfig, source: str, out: Path) -> tuple[dict[str, int], dict[str, Any]]:
    ecfg = cfg.data.events
    paths = [data_file(cfg, key) for key in EVENT_FILES[source]]
    events, report = _event_reader(source)(paths, ecfg.on_duplicate, list(ecfg.ts_span[source]))
    sessions, split_report = sessions_from_events(events, list(ecfg.split_quantiles), ecfg.min_session_length)
    folder = out / "events" / source
    write_parquet(events, folder / "events.parquet")
    write_parquet(sessions, folder / "sessions.parquet")
    counts = {f"events/{source}/events": len(events), f"events/{source}/sessions": len(sessions)}
    for split in ("train", "valid", "test"):
        counts[f"events/{source}/sessions[{split}]"] = int((sessions["split"] == split).sum())
    return counts, {**report, **split_report}


def prepare_all(cfg: DictConfig) -> dict[str, Any]:
    """Prepare every table; return ``{"row_counts": {table: rows}, "warnings": [...], "details": {...}}``.

    Raw files are checked against ``cfg.data.sha256`` first (see :func:`check_checksums`);
    bad content raises :class:`lib.errors.InputError`. Either way ``paths.processed`` keeps its
    previous tables unless every table of this configuration was written.
    """
    out = Path(cfg.paths.processed)
    keys = [k for d in cfg.data.sequences.datasets for k in SEQ_FILES[d]]
    keys += [k for s in cfg.data.events.sources for k in EVENT_FILES[s]] + ["hillstrom"]
    warnings = check_checksums(cfg, keys)
    stage = _sibling(out, "staging")
    shutil.rmtree(stage, ignore_errors=True)  # leftovers of an interrupted preparation
    try:
        report = _prepare_into(cfg, stage, warnings)
        _swap_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def _sibling(folder: Path, tag: str) -> Path:
    return folder.with_name(f".{folder.name}.{tag}")


def _swap_in(stage: Path, out: Path) -> None:
    """Replace ``out`` by ``stage`` with two renames; the old tables are deleted only afterwards."""
    old = _sibling(out, "old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def _prepare_into(cfg: DictConfig, out: Path, warnings: list[str]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    details: dict[str, Any] = {}
    for dataset in cfg.data.sequences.datasets:
        counts.update(prepare_sequences(cfg, dataset, out))
    for source in cfg.data.events.sources:
        c, details[source] = prepare_events(cfg, source, out)
        counts.update(c)
    hs = hillstrom.read_hillstrom(data_file(cfg, "hillstrom"), cfg.data.hillstrom.test_size, cfg.seed)
    cap = cfg.data.hillstrom.smoke_max_customers
    if cap is not None and len(hs) > int(cap):
        # smoke preset only (study presets keep all customers): drawn after the stratified split,
        # so split labels are those of the full experiment
        hs = hs.sample(n=int(cap), random_state=cfg.seed).sort_values("customer_id").reset_index(drop=True)
    write_parquet(hs, out / "hillstrom" / "hillstrom.parquet")
    counts["hillstrom/hillstrom"] = len(hs)
    counts.update({f"hillstrom/hillstrom[{s}]": int((hs["split"] == s).sum()) for s in ("train", "test")})
    empty = sorted(k for k, v in counts.items() if v == 0 and "[" not in k)
    if empty:
        raise InputError(str(Path(cfg.paths.processed)), None, f"would get empty tables {empty}",
                         "check data.max_users / data.hillstrom.max_customers (>= 1, or null for all) and the "
                         "raw files")
    report = {"row_counts": {k: int(v) for k, v in counts.items()}, "warnings": warnings, "details": details}
    write_json(out / "prepare_report.json", report)
    return report


def row_counts_table(report: dict[str, Any]) -> pd.DataFrame:
    """The report's row counts as a two-column table."""
    return pd.DataFrame(sorted(report["row_counts"].items()), columns=["table", "rows"])
