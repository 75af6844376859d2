"""Embedding files: ``<stem>.npz`` (``ids`` int64, ``emb`` float32) plus a ``<stem>.json`` sidecar.

The sidecar records what produced the vectors (variant, population, dim, n, the config
section, the sha256 of the checkpoint they came from) and the sha256 of the ``.npz``, so a
reader can tell which model a file belongs to and that the arrays were not swapped.
Both files are written atomically; the JSON is written last, so a file set with a sidecar
is complete.

Examples
--------
>>> import tempfile, numpy as np
>>> stem = Path(tempfile.mkdtemp()) / "beauty__bag_svd"
>>> _ = save_embeddings(stem, np.array([3, 1]), np.ones((2, 4)), {"variant": "bag_svd", "population": "beauty"})
>>> ids, emb, meta = load_embeddings(stem)
>>> ids.tolist(), emb.dtype.name, meta["dim"], meta["n"]
([3, 1], 'float32', 4, 2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lib.errors import InputError
from lib.io import read_json, sha256_file, write_json, write_npz

POPULATIONS = ("beauty", "sports", "hillstrom")
VARIANTS = ("bag_svd", "seq_pretrained", "seq_finetuned", "text_frozen", "text_lora", "text_full")
REQUIRED_META = ("variant", "population")


def embedding_stem(root: str | Path, population: str, variant: str) -> Path:
    """``{root}/{population}__{variant}`` with both names checked against the known sets."""
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")
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


def save_embeddings(path_stem: str | Path, ids: np.ndarray, emb: np.ndarray, meta: dict[str, Any]) -> list[Path]:
    """Write ``<stem>.npz`` and ``<stem>.json``; returns both paths.

    Parameters
    ----------
    path_stem : path without extension, e.g. ``embeddings/beauty__seq_pretrained``.
    ids : int array ``[n]`` of user / customer ids, unique.
    emb : float array ``[n, dim]``; stored as float32.
    meta : dict
        Must hold ``variant`` and ``population``; typically also ``config`` (the config
        section that produced the vectors) and ``checkpoint_sha256`` (None when no
        checkpoint is involved). ``dim``, ``n`` and ``npz_sha256`` are added here.
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
    npz = write_npz(stem.with_suffix(".npz"), ids=ids, emb=emb)
    side = {**meta, "dim": int(emb.shape[1]), "n": int(emb.shape[0]), "npz_sha256": sha256_file(npz)}
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
