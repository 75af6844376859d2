"""Sweep configs (``conf/sweep/<name>.yaml``) and their expansion into hashed runs.

A sweep file is plain YAML (it is not part of the Hydra tree, so it can name any
notebook and any override)::

    description: Sample-size learning curve of the ATE error.
    notebooks: [03_estimate_effects]     # run in this order inside one run folder
    preset: paper                        # default base preset (the CLI --preset wins)
    overrides: [causal.cv=3]             # applied to every run
    grid:                                # cartesian product of value lists
      causal.hillstrom.max_units: [1000, 4000, 16000]
    runs:                                # and/or explicit override sets (product with grid)
      - {model.size: tiny}
      - [model.size=small, causal.cv=2]
    seeds: [0, 1, 2]                     # or {start: 0, count: 20}; each point x each seed
    notebook_dir: notebooks              # relative to the repository root
    summary: {...}                       # how notebook 05 tabulates the sweep (lib.sweep.summary)
    shared_paths: [checkpoints]          # paths.* kept where the study has them (see below)

Each run is identified by the sha256 of its resolved config (without the machine
dependent ``paths`` group), the notebook chain, the code version and the data checksums.
``__RUN_DIR__`` in an override value is replaced by the run's folder (e.g.
``paths.processed=__RUN_DIR__/processed`` keeps a run's re-prepared data private), and
``paths.*`` entries that point into an earlier notebook of the chain are redirected into
the run folder automatically (:func:`chain_overrides`), except those named in ``shared_paths``.
Sharing ``checkpoints`` is safe because a next-item training's folder is named by a hash of
everything that shapes its weights (:func:`lib.train.run.run_name`): a run whose model and trainer
config the study's notebook 02 has trained tests that checkpoint again instead of retraining, and
any other config trains into a folder of its own. Two runs of one sweep that train the same config
must then not run at once, or they would write the same folder: :func:`lib.sweep.engine.run_sweep` refuses
such a sweep with ``jobs > 1`` or another launcher than ``local``.

A changed knob, commit or data file therefore gives a new run folder, and an unchanged
run is found again and skipped.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf

from lib.config import CONF_DIR, REPO_ROOT, compose, raw_files
from lib.provenance import code_version as checkout_code_version
from lib.provenance import data_checksums

SWEEP_DIR = CONF_DIR / "sweep"
KNOWN_KEYS = {"description", "notebooks", "preset", "overrides", "grid", "runs", "seeds", "notebook_dir",
              "summary", "launcher", "shared_paths"}
RUN_DIR = "__RUN_DIR__"  # placeholder in override values, replaced by the run's folder
_PLAIN = re.compile(r"^[\w.\-/@:+]+$")


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file."""

    name: str
    notebooks: tuple[str, ...]
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    grid: dict[str, list[Any]] = field(default_factory=dict)
    runs: tuple[dict[str, Any], ...] = ()
    seeds: tuple[int, ...] = ()
    notebook_dir: Path = REPO_ROOT / "notebooks"
    description: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    launcher: dict[str, Any] = field(default_factory=dict)
    shared_paths: tuple[str, ...] = ()   # paths.* keys a chain does not redirect into its run folder


@dataclass(frozen=True)
class Run:
    """One point of a sweep: notebooks, overrides and where its outputs go."""

    sweep: str
    preset: str
    notebooks: tuple[str, ...]
    overrides: tuple[str, ...]
    params: dict[str, Any]
    hash: str
    run_dir: Path
    notebook_dir: Path
    chain_overrides: tuple[tuple[str, ...], ...]  # extra overrides per notebook (earlier outputs)


def format_value(value: Any) -> str:
    """A YAML value as Hydra override syntax (``true``, ``null``, ``[a,b]``, quoted strings).

    >>> format_value(True), format_value(None), format_value([1, "a b"]), format_value(0.5)
    ('true', 'null', "[1,'a b']", '0.5')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, ListConfig)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, (dict, DictConfig)):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return text if _PLAIN.match(text) else "'" + text.replace("'", "\\'") + "'"


def _as_mapping(entry: Any, where: str) -> dict[str, Any]:
    """An explicit run given as ``{key: value}`` or ``["key=value", ...]``."""
    if isinstance(entry, (dict, DictConfig)):
        return dict(OmegaConf.to_container(OmegaConf.create(dict(entry))) if isinstance(entry, DictConfig)
                    else entry)
    if isinstance(entry, (list, tuple, ListConfig)):
        out: dict[str, Any] = {}
        for item in entry:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ValueError(f"{where}: run entry {item!r} is not key=value")
            out[key] = value
        return out
    raise ValueError(f"{where}: each entry of 'runs' must be a mapping or a list of key=value, got {entry!r}")


def _seeds(raw: Any, where: str) -> tuple[int, ...]:
    if raw is None:
        return ()
    if isinstance(raw, int):
        return (raw,)
    if isinstance(raw, dict):
        return tuple(range(int(raw.get("start", 0)), int(raw.get("start", 0)) + int(raw["count"])))
    if isinstance(raw, list):
        return tuple(int(s) for s in raw)
    raise ValueError(f"{where}: seeds must be an int, a list or {{start, count}}, got {raw!r}")


def _shared_paths(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(k, str) for k in raw):
        return tuple(raw)
    raise ValueError(f"{where}: shared_paths must list paths.* keys, e.g. [checkpoints], got {raw!r}")


def load_sweep(name_or_path: str | Path) -> SweepSpec:
    """Read ``conf/sweep/<name>.yaml`` (or a YAML file path) into a :class:`SweepSpec`."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SWEEP_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no sweep config {path}; known sweeps: {known}")
    # interpolations such as ${paths.results} belong to the composed config, not to this file
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(KNOWN_KEYS)}")
    notebooks = raw.get("notebooks")
    if isinstance(notebooks, str):
        notebooks = [notebooks]
    if not notebooks:
        raise ValueError(f"{path}: 'notebooks' must list at least one notebook name")
    grid = raw.get("grid") or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid.{key} must be a non-empty list of values, got {values!r}")
    notebook_dir = Path(raw.get("notebook_dir") or "notebooks")
    return SweepSpec(
        name=path.stem,
        notebooks=tuple(notebooks),
        preset=raw.get("preset"),
        overrides=tuple(str(o) for o in raw.get("overrides") or ()),
        grid=dict(grid),
        runs=tuple(_as_mapping(r, str(path)) for r in raw.get("runs") or ()),
        seeds=_seeds(raw.get("seeds"), str(path)),
        notebook_dir=notebook_dir if notebook_dir.is_absolute() else REPO_ROOT / notebook_dir,
        description=str(raw.get("description", "")),
        summary=dict(raw.get("summary") or {}),
        launcher=dict(raw.get("launcher") or {}),
        shared_paths=_shared_paths(raw.get("shared_paths"), str(path)),
    )


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The varied parameters of every run, in a stable order (explicit runs x grid x seeds)."""
    keys = list(spec.grid)
    grid_points = [dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys))]
    out = []
    for explicit in spec.runs or ({},):
        for grid_point in grid_points:
            point = {**explicit, **grid_point}
            for seed in spec.seeds or (None,):
                out.append(point if seed is None else {**point, "seed": seed})
    return out


def run_hash(cfg: DictConfig, notebooks: Iterable[str], overrides: Iterable[str], code_version: str,
             data_sha256: dict[str, str]) -> str:
    """sha256 over what determines a run's results.

    The ``paths`` group is left out because it holds absolute, machine-specific
    locations; explicit ``paths.*`` overrides are hashed instead so that pointing a run at
    other inputs still changes its identity.
    """
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("paths", None)
    payload = {
        "config": config,
        "notebooks": list(notebooks),
        "paths_overrides": sorted(o for o in overrides if o.lstrip("+~").startswith("paths.")),
        "code_version": code_version,
        "data_sha256": data_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def chain_overrides(cfg: DictConfig, notebooks: tuple[str, ...], run_dir: Path,
                    shared: tuple[str, ...] = ()) -> tuple[tuple[str, ...], ...]:
    """Per notebook, ``paths.*`` overrides that keep a run's outputs inside its folder.

    A ``paths`` entry whose default lives under ``<paths.results>/<notebook>/`` for this or
    an earlier notebook of the chain is redirected to ``<run_dir>/<notebook>/``: notebook 02
    of a run writes its checkpoints and embeddings there (not into the study's own
    ``results/<preset>/02_train_models``), and notebook 03 of the same run reads them.
    Entries named in ``shared`` stay where they are.
    """
    results = str(cfg.paths.results).rstrip("/")
    out = []
    for i in range(len(notebooks)):
        extra = []
        for key, value in cfg.paths.items():
            if key in shared:
                continue
            for earlier in notebooks[:i + 1]:
                prefix = f"{results}/{earlier}"
                if str(value) == prefix or str(value).startswith(prefix + "/"):
                    extra.append(f"paths.{key}={run_dir / earlier}{str(value)[len(prefix):]}")
        out.append(tuple(extra))
    return tuple(out)


def expand(spec: SweepSpec, preset: str | None = None, root: str | Path | None = None,
           code_version: str | None = None) -> list[Run]:
    """All runs of ``spec``; every override set is composed (a bad key fails here, before any run).

    Parameters
    ----------
    spec : SweepSpec
    preset : str, optional
        Base preset; defaults to ``spec.preset``.
    root : path, optional
        Folder holding the run folders; default ``<paths.results>/sweeps/<name>``.
    code_version : str, optional
        Pin the code version used in the hash (default: the checkout's
        :func:`lib.provenance.code_version`).
    """
    preset = preset or spec.preset
    if not preset:
        raise ValueError(f"sweep {spec.name!r} names no preset; pass --preset")
    code_version = code_version or checkout_code_version()
    base = compose(preset, spec.overrides)
    unknown = sorted(set(spec.shared_paths) - set(base.paths))
    if unknown:
        raise ValueError(f"sweep {spec.name!r}: shared_paths {unknown} are not paths.* keys; known: "
                         f"{sorted(base.paths)} (fix shared_paths in its sweep file)")
    root = Path(root) if root is not None else Path(base.paths.results) / "sweeps" / spec.name
    checksum_cache: dict[str, dict[str, str]] = {}
    runs = []
    for params in points(spec):
        overrides = (*spec.overrides, *(f"{k}={format_value(v)}" for k, v in params.items()))
        cfg = compose(preset, overrides)
        data_key = json.dumps([str(cfg.paths.data_root), {k: f.path for k, f in raw_files(cfg).items()}],
                              sort_keys=True)
        if data_key not in checksum_cache:
            checksum_cache[data_key] = data_checksums(cfg)
        digest = run_hash(cfg, spec.notebooks, overrides, code_version, checksum_cache[data_key])
        run_dir = root / digest[:16]
        # the hash saw the placeholder, so it does not depend on where the results live
        overrides = tuple(o.replace(RUN_DIR, str(run_dir)) for o in overrides)
        runs.append(Run(sweep=spec.name, preset=preset, notebooks=spec.notebooks, overrides=overrides,
                        params=params, hash=digest, run_dir=run_dir, notebook_dir=spec.notebook_dir,
                        chain_overrides=chain_overrides(cfg, spec.notebooks, run_dir, spec.shared_paths)))
    hashes = [r.hash for r in runs]
    if len(set(hashes)) != len(hashes):
        dup = sorted({h[:16] for h in hashes if hashes.count(h) > 1})
        raise ValueError(f"sweep {spec.name!r}: several points resolve to the same config (runs {dup}); "
                         "a grid key probably does not exist or is overwritten by another")
    return runs
