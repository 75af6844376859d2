"""Embedding files: ``<stem>.npz`` (``ids`` int64, ``emb`` float32) plus a ``<stem>.json`` sidecar.

The sidecar records what produced the vectors (variant, population, dim, n, the config
section, the sha256 of the checkpoint they came from), the sha256 of the ``.npz`` and of the
ids, and, for exported representations, the prepared table the units came from (its path
relative to the sidecar, its sha256 and id column). :func:`load_for` uses that provenance:
vectors are handed out only for the table they were built from (same content, ids in the
table's order), so embeddings of other or re-prepared data fail loudly instead of being
aligned to the wrong units. Both files are written atomically; the JSON is written last, so
a file set with a sidecar is complete.

Examples
--------
>>> import tempfile, numpy as np
>>> stem = Path(tempfile.mkdtemp()) / "beauty__bag_svd"
>>> _ = save_embeddings(stem, np.array([3, 1]), np.ones((2, 4)), {"variant": "bag_svd", "population": "beauty"})
>>> ids, emb, meta = load_embeddings(stem)
>>> ids.tolist(), emb.dtype.name, meta["dim"], meta["n"]
([3, 1], 'float32', 4, 2)
>>> import pandas as pd
>>> table = stem.parent / "users.parquet"
>>> pd.DataFrame({"user_id": [3, 1, 2]}).to_parquet(table)
>>> _ = save_embeddings(stem, np.array([3, 1]), np.eye(2), {"variant": "bag_svd", "population": "beauty",
...                     "config": {}}, table=table, id_column="user_id")
>>> load_for(stem, np.array([1, 3])).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.config import DATASET_NAME, dataset
from lib.errors import InputError
from lib.io import read_json, sha256_file, write_json, write_npz

TABULAR_POPULATIONS = ("hillstrom",)   # populations that are not sequence data sets of conf/data/datasets
VARIANTS = ("bag_svd", "seq_pretrained", "text_frozen", "text_lora", "text_full")
REQUIRED_META = ("variant", "population")
PROVENANCE = ("config", "ids_sha256", "table", "table_sha256", "id_column")
REEXPORT = "re-export the embeddings for this data (notebook 02_train_models, after notebook 01)"


def ids_sha256(ids: np.ndarray) -> str:
    """sha256 of the ids as int64 bytes (order matters)."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def _check_ids_in_table(source: str, ids: np.ndarray, table: Path, id_column: str) -> None:
    """Every id is a unit of ``table`` and the ids follow the table's row order."""
    table_ids = pd.read_parquet(table, columns=[id_column])[id_column].to_numpy(np.int64)
    pos = {int(u): k for k, u in enumerate(table_ids)}
    absent = [int(i) for i in ids if int(i) not in pos]
    if absent:
        raise InputError(source, "ids", f"hold {len(absent)} ids that are not units of {table} (e.g. {absent[:5]})",
                         REEXPORT)
    rows = np.array([pos[int(i)] for i in ids], dtype=np.int64)
    if len(rows) > 1 and (np.diff(rows) <= 0).any():
        k = int(np.flatnonzero(np.diff(rows) <= 0)[0]) + 1
        raise InputError(source, "ids", f"are not in the row order of {table} (row {k} of the file holds id "
                         f"{int(ids[k])}, table row {int(rows[k])}, after table row {int(rows[k - 1])}): the vectors "
                         "were built for another ordering of the units, or the id column was shifted", REEXPORT)


def check_population(cfg: Any, population: str, setting: str = "the population") -> str:
    """``population`` when it is Hillstrom or a declared sequence data set, else an error naming the file to add.

    Examples
    --------
    >>> from lib.config import compose
    >>> check_population(compose("smoke"), "sports")
    'sports'
    >>> check_population(compose("smoke"), "books", "model.embed.datasets")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lib.errors.InputError: conf/data/datasets/books.yaml: does not exist, so model.embed.datasets names ...
    """
    if population not in TABULAR_POPULATIONS:
        dataset(cfg, population, setting)
    return population


def embedding_stem(root: str | Path, population: str, variant: str) -> Path:
    """``{root}/{population}__{variant}``; the population name must be usable in a file name
    (check it against the config with :func:`check_population`), the variant a known one."""
    if not DATASET_NAME.fullmatch(population):
        raise ValueError(f"population {population!r} cannot name an embedding file: it is the name of a data-set "
                         "file (conf/data/datasets/<population>.yaml), letters, digits and '-'")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return Path(root) / f"{population}__{variant}"


def _check(source: str, ids: np.ndarray, emb: np.ndarray) -> None:
    if ids.ndim != 1:
        raise InputError(source, "ids", f"must be 1-D, got shape {ids.shape}", "pass one id per row of emb")
    if emb.ndim != 2:
        raise InputError(source, "emb", f"must be 2-D [n, dim], got shape {emb.shape}", "stack one vector per id")
    if len(ids) != len(emb):
        raise InputError(source, "ids", f"has {len(ids)} ids for {len(emb)} embedding rows",
                         "pass exactly one id per embedding row, in the same order")
    if len(ids) == 0:
        raise InputError(source, "ids", "is empty", "embed at least one user")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise InputError(source, "ids", f"has {int((counts > 1).sum())} duplicated ids (e.g. {dup})",
                         "embed each user once; drop repeated rows before saving")
    if not np.isfinite(emb).all():
        raise InputError(source, "emb", "contains NaN or infinite values",
                         "check the encoder output (a diverged fine-tuning run gives NaN)")


def save_embeddings(path_stem: str | Path, ids: np.ndarray, emb: np.ndarray, meta: dict[str, Any],
                    table: str | Path | None = None, id_column: str | None = None) -> list[Path]:
    """Write ``<stem>.npz`` and ``<stem>.json``; returns both paths.

    Parameters
    ----------
    path_stem : path without extension, e.g. ``embeddings/beauty__seq_pretrained``.
    ids : int array ``[n]`` of user / customer ids, unique.
    emb : float array ``[n, dim]``; stored as float32.
    meta : dict
        Must hold ``variant`` and ``population``; typically also ``config`` (the config
        section that produced the vectors) and ``checkpoint_sha256`` (None when no
        checkpoint is involved). ``dim``, ``n``, ``npz_sha256`` and ``ids_sha256`` are added here.
    table, id_column : optional
        The prepared table (Parquet) whose units were embedded and its id column; the ids
        must be units of it in its row order. Recorded (path relative to the sidecar,
        sha256, column) so that :func:`load_for` can refuse the vectors for other data.
    """
    stem = Path(path_stem)
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise InputError(str(stem), "ids", f"must be integers, got dtype {ids.dtype}", "pass user_id / customer_id")
    ids = ids.astype(np.int64)
    emb = np.asarray(emb, dtype=np.float32)
    _check(str(stem), ids, emb)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"embedding meta for {stem} lacks {missing}")
    side = {**meta, "ids_sha256": ids_sha256(ids)}
    if table is not None:
        if id_column is None:
            raise ValueError("save_embeddings: pass id_column together with table")
        table = Path(table)
        _check_ids_in_table(str(stem), ids, table, id_column)
        side.update({"table": os.path.relpath(table.resolve(), stem.parent.resolve()),
                     "table_sha256": sha256_file(table), "id_column": id_column})
    npz = write_npz(stem.with_suffix(".npz"), ids=ids, emb=emb)
    side.update({"dim": int(emb.shape[1]), "n": int(emb.shape[0]), "npz_sha256": sha256_file(npz)})
    side.setdefault("checkpoint_sha256", None)
    js = write_json(stem.with_suffix(".json"), side)
    return [npz, js]


def load_embeddings(path_stem: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(ids int64 [n], emb float32 [n, dim], meta)``; InputError when the files disagree."""
    stem = Path(path_stem)
    npz_path, js_path = stem.with_suffix(".npz"), stem.with_suffix(".json")
    for p in (npz_path, js_path):
        if not p.is_file():
            raise FileNotFoundError(f"missing embedding file {p}; run notebook 02_train_models "
                                    f"(lib.embed.export.export_all) for this preset first")
    meta = read_json(js_path)
    if meta.get("npz_sha256") not in (None, sha256_file(npz_path)):
        raise InputError(str(npz_path), None, "does not match the sha256 in its .json sidecar",
                         "re-export the embeddings; the arrays were replaced after export")
    with np.load(npz_path) as data:
        if "ids" not in data or "emb" not in data:
            raise InputError(str(npz_path), "ids/emb", f"arrays missing (found {sorted(data.files)})",
                             "write the file with lib.embed.store.save_embeddings")
        ids, emb = data["ids"].astype(np.int64), data["emb"].astype(np.float32)
    _check(str(npz_path), ids, emb)
    if meta.get("dim") != emb.shape[1] or meta.get("n") != emb.shape[0]:
        raise InputError(str(js_path), "dim/n", f"say {meta.get('n')} x {meta.get('dim')} but the arrays are "
                         f"{emb.shape[0]} x {emb.shape[1]}", "re-export the embeddings")
    return ids, emb, meta


def load_for(path_stem: str | Path, unit_id: np.ndarray, table: str | Path | None = None) -> np.ndarray:
    """Vectors of ``path_stem`` for the units ``unit_id`` (rows in that order), checked against their data.

    The file must carry its provenance (config, ids and prepared table); the table (default:
    the one recorded, relative to the sidecar) must be byte-identical to the one embedded
    and the file's ids must be its units in its row order; then rows are aligned by id.

    Raises
    ------
    InputError
        No provenance (an old export), ids changed since export, a stale or re-ordered table,
        or units without a vector; each message names the file and the fix.
    """
    stem = Path(path_stem)
    ids, emb, meta = load_embeddings(stem)
    js = str(stem.with_suffix(".json"))
    missing = [k for k in PROVENANCE if k not in meta]
    if missing:
        raise InputError(js, None, f"lacks the provenance {missing} (exported before embeddings recorded their "
                         "data)", REEXPORT)
    if meta["ids_sha256"] != ids_sha256(ids):
        raise InputError(js, "ids", "differ from the ids recorded at export", REEXPORT)
    table = Path(table) if table is not None else (stem.parent / meta["table"]).resolve()
    if not table.is_file():
        raise InputError(js, "table", f"names the prepared table {table}, which does not exist",
                         "run notebook 01 for this preset, then " + REEXPORT)
    actual = sha256_file(table)
    if actual != meta["table_sha256"]:
        raise InputError(js, "table_sha256", f"says the vectors were built from {table} with sha256 "
                         f"{meta['table_sha256']}, but it now has sha256 {actual}: the data was prepared again "
                         "(other ids, order or content) after the export", REEXPORT)
    _check_ids_in_table(str(stem.with_suffix(".npz")), ids, table, meta["id_column"])
    return align(ids, emb, np.asarray(unit_id), str(stem.with_suffix(".npz")))


def align(ids: np.ndarray, emb: np.ndarray, unit_id: np.ndarray, source: str = "embeddings") -> np.ndarray:
    """Rows of ``emb`` in the order of ``unit_id``; InputError naming the ids without a vector.

    >>> align(np.array([5, 7]), np.array([[0.], [1.]]), np.array([7, 5])).ravel().tolist()
    [1.0, 0.0]
    """
    pos = {int(i): k for k, i in enumerate(ids)}
    missing = [int(u) for u in unit_id if int(u) not in pos]
    if missing:
        raise InputError(source, "ids", f"lack {len(missing)} of {len(unit_id)} requested units (e.g. {missing[:5]})",
                         "export embeddings for the same population and preset as the benchmark")
    return emb[np.array([pos[int(u)] for u in unit_id], dtype=np.int64)]
