"""Turn every raw data set into the canonical Parquet tables under ``cfg.paths.processed``.

Layout written (all through the atomic writers of :mod:`lib.io`)::

    seq/<name>/sequences.parquet, item_attributes.parquet, meta.json    for data.sequences.datasets
    events/<name>/events.parquet, sessions.parquet                      for data.events.sources
    hillstrom/hillstrom.parquet
    prepare_report.json      row counts, dropped duplicates / short pieces, checksum warnings

The folder is replaced as a unit: every table is written into a sibling staging folder,
which is renamed into place only when all of them are complete, so a failed or interrupted
preparation leaves the previous tables untouched (never tables of two configurations side
by side). Raw files are checked against their configured sha256 first. The same config and
seed give byte-identical files.

Each name is a data set declared by a file ``conf/data/datasets/<name>.yaml``
(:func:`lib.config.dataset`); its ``format`` picks the reader. Sequence formats:
``s3rec`` (files ``sequences`` and ``attributes``). Event-log formats: ``events`` (the
generic schema, :func:`lib.data.event_sources.read_events`), ``yoochoose``, ``diginetica``,
``otto``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from lib.config import data_file, dataset, dataset_file, raw_files
from lib.data import event_sources, hillstrom, sequences
from lib.data.events import sessions_from_events
from lib.errors import InputError
from lib.io import sha256_file, write_json, write_parquet

SEQUENCE_FORMATS = {"s3rec": ("sequences", "attributes")}   # format -> file roles it reads
EVENT_FORMATS = ("events", "yoochoose", "diginetica", "otto")


def dataset_keys(cfg: DictConfig, name: str, kind: str) -> list[str]:
    """Raw-file keys (``<name>/<role>``) of data set ``name`` of ``kind`` (``sequences`` | ``events``).

    The declaration must exist and its format must be one of that kind's readers; the
    message names the data-set file and the setting that selected it.
    """
    setting = "data.sequences.datasets" if kind == "sequences" else "data.events.sources"
    entry = dataset(cfg, name, setting)
    formats = sorted(SEQUENCE_FORMATS) if kind == "sequences" else sorted(EVENT_FORMATS)
    if entry.format not in formats:
        raise InputError(dataset_file(name), "format", f"is {entry.format!r}, which {setting} cannot read",
                         f"use one of {formats} there, or list {name!r} under the other setting "
                         "(data.sequences.datasets: S3-Rec sequences; data.events.sources: event logs)")
    roles = list(entry.files)
    needed = list(SEQUENCE_FORMATS[entry.format]) if kind == "sequences" else roles
    if kind == "events" and entry.format != "yoochoose" and len(roles) != 1:
        raise InputError(dataset_file(name), "files", f"lists {roles}; format {entry.format!r} reads one file",
                         "keep one entry under files (yoochoose alone concatenates several)")
    missing = [r for r in needed if r not in roles]
    if missing or not roles:
        raise InputError(dataset_file(name), "files", f"lacks {missing or 'every file'}; format {entry.format!r} "
                         f"reads {needed or 'one file'}", "add them under files, relative to paths.data_root")
    return [f"{name}/{role}" for role in needed]


def _read_events(cfg: DictConfig, source: str, paths: list[Path]) -> tuple[pd.DataFrame, dict]:
    entry, dup = cfg.data.datasets[source], cfg.data.events.on_duplicate
    span = list(entry.ts_span) if entry.ts_span is not None else None
    if entry.format == "events":
        return event_sources.read_events(paths[0], entry.ts_unit, dup, span)
    if entry.format == "yoochoose":
        return event_sources.read_yoochoose(paths, dup, span)
    reader = {"diginetica": event_sources.read_diginetica, "otto": event_sources.read_otto}[entry.format]
    return reader(paths[0], dup, span)


def check_checksums(cfg: DictConfig, keys: list[str]) -> list[str]:
    """Compare every raw file ``keys`` (of :func:`lib.config.raw_files`) with its configured sha256.

    With ``data.verify_checksums`` (the default) a difference is an :class:`InputError` naming
    the file, both hashes and how to accept a new file on purpose; with it off, the
    differences come back as warnings (written to ``prepare_report.json``).
    """
    warnings = []
    files = raw_files(cfg)
    for key in keys:
        path = data_file(cfg, key)
        actual = sha256_file(path)
        expected, setting, sha_setting = files[key].sha256, files[key].setting, files[key].sha_setting
        if expected == actual:
            continue
        problem = (f"has sha256 {actual}, but {sha_setting} is not set" if expected is None else
                   f"has sha256 {actual}, the config expects {expected}: it differs from the published file "
                   "(damaged, truncated or another version)")
        if cfg.data.verify_checksums:
            raise InputError(f"{path} ({setting})", None, problem,
                             f"restore the published file; to use this file on purpose, set {sha_setting}="
                             f"{actual} (in conf/ or as an override), or pass data.verify_checksums=false")
        warnings.append(f"{path} ({setting}) {problem}")
    return warnings


def prepare_sequences(cfg: DictConfig, dataset: str, out: Path) -> dict[str, int]:
    seq_key, attr_key = dataset_keys(cfg, dataset, "sequences")
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
    events, report = _read_events(cfg, source, [data_file(cfg, key) for key in dataset_keys(cfg, source, "events")])
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

    Raw files are checked against their configured sha256 first (see :func:`check_checksums`);
    bad content raises :class:`lib.errors.InputError`. Either way ``paths.processed`` keeps its
    previous tables unless every table of this configuration was written.
    """
    out = Path(cfg.paths.processed)
    keys = [k for d in cfg.data.sequences.datasets for k in dataset_keys(cfg, d, "sequences")]
    keys += [k for s in cfg.data.events.sources for k in dataset_keys(cfg, s, "events")] + ["hillstrom"]
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
