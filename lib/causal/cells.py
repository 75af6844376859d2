"""Finished blocks of notebook 03's loops, kept on disk so that a killed run resumes.

A block is everything one semi-synthetic (data set, setting, seed) or one Hillstrom (outcome,
subsample seed) produces: its rows and the frames behind figures. It is stored under
``paths.results/03_estimate_effects.cells/`` with a key of every input that can change it: the
code version, ``cfg.causal`` and ``cfg.simulate``, the block's coordinates and the manifests of
notebooks 01 and 02 (so a retrained encoder or re-prepared table invalidates it). Uncommitted
code has no reliable version, so it is never cached. Writes are atomic (temporary file, then
rename): a block is there whole or not at all.

Examples
--------
>>> import tempfile, pandas as pd
>>> from pathlib import Path
>>> store = CellStore(Path(tempfile.mkdtemp()), "tree.abc")
>>> key = store.key({"seed": 0})
>>> store.get("beauty/default/seed0", key) is None
True
>>> store.put("beauty/default/seed0", key, {"rows": pd.DataFrame({"ate": [1.0]})})
>>> float(store.get("beauty/default/seed0", key)["rows"]["ate"][0])
1.0
>>> store.get("beauty/default/seed0", store.key({"seed": 1})) is None
True

:class:`Blocks` is what a loop uses: it reads a finished block back or computes, times and stores it,
and sums the seconds of both kinds.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from lib.io import sha256_file
from lib.provenance import code_version


class CellStore:
    """Blocks by name; a block read back only when its key (inputs) matches."""

    def __init__(self, root: Path, version: str) -> None:
        self.root, self.version = Path(root), version

    def key(self, inputs: dict[str, Any]) -> str:
        payload = json.dumps({"code": self.version, **inputs}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def _path(self, name: str, key: str) -> Path:
        return self.root / f"{name}.{key}.pkl"

    def get(self, name: str, key: str) -> dict[str, Any] | None:
        path = self._path(name, key)
        if not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
            # a damaged block (a disk that filled up, a file from another code version) is fitted again
            print(f"[causal] ignoring unreadable block {path} ({type(err).__name__}: {err}); fitting it again")
            return None

    def put(self, name: str, key: str, block: dict[str, Any]) -> None:
        path = self._path(name, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as fh:
            pickle.dump(block, fh)
        os.replace(tmp, path)


class Blocks:
    """The blocks of one loop over a study's store (:func:`store_for`).

    ``seconds`` sums, over the blocks asked for, the seconds of those this run computed (``run``) and
    of those it read back (``read_back``, as they were measured when computed).
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.store, self.shared = store_for(cfg)
        self.seconds = {"run": 0.0, "read_back": 0.0}

    def get(self, name: str, coords: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Block ``name`` at ``coords``: read back when finished with the same inputs, else ``compute()`` it."""
        key = self.store.key({**self.shared, **coords}) if self.store else ""
        block = self.store.get(name, key) if self.store else None
        if block is not None:   # finished by an earlier, interrupted run of the same inputs
            self.seconds["read_back"] += block["seconds"]
            return block
        start = time.perf_counter()
        block = compute()
        block["seconds"] = time.perf_counter() - start
        self.seconds["run"] += block["seconds"]
        if self.store:
            self.store.put(name, key, block)
        return block


def store_for(cfg: DictConfig) -> tuple[CellStore | None, dict[str, Any]]:
    """The store of this study (None for uncommitted code) and the inputs every block key shares."""
    version = code_version()
    if version == "unknown" or "+dirty" in version:
        return None, {}
    results = Path(cfg.paths.results)
    upstream = {name: _digest(results / name / "manifest.json") for name in ("01_prepare_data", "02_train_models")}
    shared = {"causal": OmegaConf.to_container(cfg.causal, resolve=True),
              "simulate": OmegaConf.to_container(cfg.simulate, resolve=True), "seed0": int(cfg.seed),
              "upstream": upstream}
    return CellStore(results / "03_estimate_effects.cells", version), shared


def _digest(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "missing"
