"""Compose the Hydra configuration in ``conf/`` from Python (notebooks, tests, CLIs).

``compose("smoke", ["trainer.max_epochs=2"])`` is what every entry point calls, so a
notebook, a test and a sweep run all see the same resolved tree, checked against the
schema (:mod:`lib.schema`: types from ``conf/<group>/default.yaml``, ranges and choices
from ``conf/schema.yaml``) before anything runs.

Data sets are the config group ``data/datasets``: every file ``conf/data/datasets/<name>.yaml``
(and ``<dir>/data/datasets/<name>.yaml`` of a directory added with the override
``hydra.searchpath=[file://<dir>]``) is composed into ``cfg.data.datasets.<name>``, so adding a
data set is adding a file; :func:`dataset` looks one up, :func:`raw_files` lists every raw file
with its expected sha256. The registries of :mod:`lib.causal` work the same way: a file
``<dir>/causal/estimators/<name>.yaml`` (``nuisances``, ``representations``) becomes the entry
``cfg.causal.estimators.<name>``, next to the entries of ``conf/causal/default.yaml``.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Iterable, NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from lib.schema import ConfigError, explain_unknown_override, missing_keys, validate

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
PRESETS = ("smoke", "paper")
DATASETS_GROUP = "data/datasets"   # one file per data set, composed into data.datasets.<file name>
#: config groups whose every option becomes an entry of a map: group -> dotted key of the map
ENTRY_GROUPS = {DATASETS_GROUP: "data.datasets", "causal/nuisances": "causal.nuisances",
                "causal/representations": "causal.representations", "causal/estimators": "causal.estimators"}
# data-set names appear in table folders, embedding files and metric keys such as
# ate.semisynth_<name>_<setting>, where '_' and '.' separate fields
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
DATASET_KEYS = ("title", "format", "files", "sha256")   # what every data-set file declares

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


_HYDRA = threading.Lock()


def compose(preset: str = "smoke", overrides: Iterable[str] = ()) -> DictConfig:
    """Return the resolved config for ``preset`` with Hydra ``overrides`` applied.

    Parameters
    ----------
    preset : str
        Name of a file in ``conf/preset/`` (``smoke`` or ``paper``).
    overrides : iterable of str
        Hydra command-line style overrides, e.g. ``["seed=3", "causal.cv=5"]``.

    Raises
    ------
    lib.schema.ConfigError
        A value of the wrong type or out of range, an unknown key (with the closest known
        one) or a deleted one; the message names the key, the value, the override or file it
        came from and what is allowed.

    Examples
    --------
    >>> cfg = compose("smoke", ["seed=7"])
    >>> cfg.seed, cfg.preset_name
    (7, 'smoke')
    >>> compose("smoke", ["causal.cv=1"])
    Traceback (most recent call last):
    ...
    lib.schema.ConfigError: override 'causal.cv=1': causal.cv=1 is out of range; allowed: an int >= 2. Fix: set causal.cv to an int >= 2, e.g. causal.cv=3 (the default)
    """
    overrides = list(overrides)
    available = sorted(p.stem for p in (CONF_DIR / "preset").glob("*.yaml"))
    if preset not in available:
        raise ValueError(f"unknown preset {preset!r}; choose one of {available} (files in {CONF_DIR / 'preset'})")
    try:
        with _HYDRA:    # Hydra's state is global to the process; lib.train.run.launch_many composes from threads
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                base = [f"preset={preset}", *overrides]
                # every option of an entry group is an entry (on the search path, hydra.searchpath included)
                loader = GlobalHydra.instance().config_loader()
                entries = {group: loader.get_group_options(group, config_name="config", overrides=base)
                           for group in ENTRY_GROUPS}
                bad = [name for name in entries[DATASETS_GROUP] if not DATASET_NAME.fullmatch(name)]
                if bad:
                    raise ValueError(f"data-set file names {bad} (in {DATASETS_GROUP}/) must be letters, digits and "
                                     "'-': the name appears in metric keys (ate.semisynth_<name>_<setting>); rename "
                                     "the file")
                cfg = hydra_compose(config_name="config", overrides=[
                    *(f"+{group}@{ENTRY_GROUPS[group]}.{name}={name}"
                      for group, names in entries.items() for name in names),
                    *base])
    except ConfigCompositionException as exc:
        raise explain_unknown_override(exc, CONF_DIR, preset, overrides) from exc
    try:
        OmegaConf.resolve(cfg)
    except InterpolationResolutionError as exc:    # e.g. a deleted key that an interpolation points at
        missing = missing_keys(cfg, CONF_DIR, preset, overrides)
        if missing:
            raise ConfigError(missing) from exc
        raise
    validate(cfg, CONF_DIR, preset, overrides)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text (what is written next to every result)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def dataset_file(name: str) -> str:
    """Where data set ``name`` is declared: ``conf/data/datasets/<name>.yaml``."""
    return f"conf/{DATASETS_GROUP}/{name}.yaml"


def dataset(cfg: DictConfig, name: str, setting: str = "the data set name") -> DictConfig:
    """The declaration ``cfg.data.datasets[name]``; an error naming the file to add when there is none.

    ``setting`` names the config key that asked for ``name`` (for the message).

    Examples
    --------
    >>> cfg = compose("smoke")
    >>> dataset(cfg, "beauty").format
    's3rec'
    >>> dataset(cfg, "books", "trainer.dataset")
    Traceback (most recent call last):
    ...
    lib.errors.InputError: conf/data/datasets/books.yaml: does not exist, so trainer.dataset names an undeclared \
data set 'books' (declared: beauty, diginetica, otto, sports, yoochoose). Fix: add that file (files, sha256, \
format; copy conf/data/datasets/beauty.yaml, README 'Adding a data set'), or fix the name in trainer.dataset
    """
    from lib.errors import InputError

    if name not in cfg.data.datasets:
        raise InputError(dataset_file(name), None, f"does not exist, so {setting} names an undeclared data set "
                         f"{name!r} (declared: {', '.join(sorted(cfg.data.datasets))})",
                         f"add that file (files, sha256, format; copy {dataset_file('beauty')}, README 'Adding a "
                         f"data set'), or fix the name in {setting}")
    entry = cfg.data.datasets[name]
    missing = [key for key in DATASET_KEYS if key not in entry]
    if missing:
        raise InputError(dataset_file(name), None, f"lacks {missing}", f"declare every one of {list(DATASET_KEYS)} "
                         f"(see {dataset_file('beauty')})")
    return entry


def titles(cfg: DictConfig, names: Iterable[str]) -> str:
    """The ``title`` of each data set, joined for a caption.

    >>> titles(compose("smoke"), ["beauty", "sports"])
    'Amazon Beauty and Amazon Sports'
    """
    out = [str(dataset(cfg, name).title) for name in names]
    return " and ".join([", ".join(out[:-1]), out[-1]] if len(out) > 2 else out)


class RawFile(NamedTuple):
    """One raw input: path relative to ``paths.data_root``, expected sha256 and the settings holding both."""

    path: str
    sha256: str | None
    setting: str       # e.g. data.datasets.beauty.files.sequences
    sha_setting: str   # e.g. data.datasets.beauty.sha256.sequences


def raw_files(cfg: DictConfig) -> dict[str, RawFile]:
    """Every configured raw file: ``data.files.<key>`` under ``key``, data-set files under ``<name>/<role>``.

    Examples
    --------
    >>> files = raw_files(compose("smoke"))
    >>> files["beauty/sequences"].path, files["beauty/sequences"].sha_setting
    ('amazon_beauty_s3rec/Beauty.txt', 'data.datasets.beauty.sha256.sequences')
    >>> files["hillstrom"].setting
    'data.files.hillstrom'
    """
    out = {key: RawFile(str(rel), cfg.data.sha256[key] if key in cfg.data.sha256 else None, f"data.files.{key}",
                        f"data.sha256.{key}") for key, rel in cfg.data.files.items()}
    for name, entry in cfg.data.datasets.items():
        sha = entry.sha256 if "sha256" in entry and entry.sha256 is not None else {}
        for role, rel in entry.files.items():
            out[f"{name}/{role}"] = RawFile(str(rel), sha[role] if role in sha else None,
                                            f"data.datasets.{name}.files.{role}", f"data.datasets.{name}.sha256.{role}")
    return out


def data_file(cfg: DictConfig, key: str) -> Path:
    """Absolute path of raw file ``key`` of :func:`raw_files` (``hillstrom``, ``beauty/sequences``, ...).

    A missing file is an error naming it and the settings that locate it, so a user on another
    machine knows what to change.
    """
    files = raw_files(cfg)
    if key not in files:
        raise KeyError(f"no raw data file {key!r} in the config (known: {sorted(files)})")
    rel, setting = files[key].path, files[key].setting
    path = Path(cfg.paths.data_root) / rel
    if not path.is_file():
        raise FileNotFoundError(
            f"missing data file {path} ({setting}). Point paths.data_root at the folder holding "
            f"'{rel}': set the environment variable BC_DATA_ROOT or pass the override "
            f"paths.data_root=/path/to/data (now {cfg.paths.data_root})."
        )
    return path
