"""Turn every raw data set into the canonical Parquet tables under ``cfg.paths.processed``.

Layout written (all through the atomic writers of :mod:`lib.io`)::

    seq/<beauty|sports>/sequences.parquet, item_attributes.parquet, meta.json
    events/<yoochoose|diginetica|otto>/events.parquet, sessions.parquet
    hillstrom/hillstrom.parquet
    prepare_report.json      row counts, dropped duplicates / short pieces, checksum warnings

The same config and seed give byte-identical files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd
from omegaconf import DictConfig

from lib.config import data_file
from lib.data import event_sources, hillstrom, sequences
from lib.data.events import sessions_from_events
from lib.io import sha256_file, write_json, write_parquet

SEQ_FILES = {"beauty": ("beauty_sequences", "beauty_attributes"), "sports": ("sports_sequences", "sports_attributes")}
EVENT_FILES: dict[str, tuple[str, ...]] = {"yoochoose": ("yoochoose_train", "yoochoose_test"),
                                           "diginetica": ("diginetica",), "otto": ("otto",)}


def _event_reader(source: str) -> Callable[..., tuple[pd.DataFrame, dict]]:
    readers = {"yoochoose": lambda paths, dup: event_sources.read_yoochoose(paths, dup),
               "diginetica": lambda paths, dup: event_sources.read_diginetica(paths[0], dup),
               "otto": lambda paths, dup: event_sources.read_otto(paths[0], dup)}
    if source not in readers:
        raise ValueError(f"unknown event source {source!r} in data.events.sources; known: {sorted(readers)}")
    return readers[source]


def check_checksums(cfg: DictConfig, keys: list[str]) -> list[str]:
    """Warnings for raw files whose sha256 differs from ``cfg.data.sha256`` (never raises)."""
    warnings = []
    for key in keys:
        expected = cfg.data.sha256.get(key)
        actual = sha256_file(data_file(cfg, key))
        if expected is None:
            warnings.append(f"data.sha256.{key} is not set; got {actual}")
        elif actual != expected:
            warnings.append(f"{cfg.data.files[key]} (data.files.{key}) has sha256 {actual}, expected {expected}: "
                            "the file differs from the published data, results may not match")
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
    events, report = _event_reader(source)(paths, ecfg.on_duplicate)
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

    A raw file whose checksum differs from ``cfg.data.sha256`` is still processed and
    reported under ``warnings``; bad content raises :class:`lib.errors.InputError`.
    """
    out = Path(cfg.paths.processed)
    keys = [k for d in cfg.data.sequences.datasets for k in SEQ_FILES[d]]
    keys += [k for s in cfg.data.events.sources for k in EVENT_FILES[s]] + ["hillstrom"]
    warnings = check_checksums(cfg, keys)
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
    report = {"row_counts": {k: int(v) for k, v in counts.items()}, "warnings": warnings, "details": details}
    write_json(out / "prepare_report.json", report)
    return report


def row_counts_table(report: dict[str, Any]) -> pd.DataFrame:
    """The report's row counts as a two-column table."""
    return pd.DataFrame(sorted(report["row_counts"].items()), columns=["table", "rows"])
