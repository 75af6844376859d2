"""Compose the Hydra configuration in ``conf/`` from Python (notebooks, tests, CLIs).

``compose("smoke", ["trainer.max_epochs=2"])`` is what every entry point calls, so a
notebook, a test and a sweep run all see the same resolved tree, checked against the
schema (:mod:`lib.schema`: types from ``conf/<group>/default.yaml``, ranges and choices
from ``conf/schema.yaml``) before anything runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from lib.schema import explain_unknown_override, validate

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
PRESETS = ("smoke", "paper")

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


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
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=[f"preset={preset}", *overrides])
    except ConfigCompositionException as exc:
        raise explain_unknown_override(exc, CONF_DIR, preset, overrides) from exc
    OmegaConf.resolve(cfg)
    validate(cfg, CONF_DIR, preset, overrides)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text (what is written next to every result)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def data_file(cfg: DictConfig, key: str) -> Path:
    """Absolute path of raw data file ``cfg.data.files[key]``; a clear error if it is missing.

    The message names the file and the settings that locate it, so a user on another
    machine knows what to change.
    """
    if key not in cfg.data.files:
        raise KeyError(f"no data file {key!r} in conf/data (cfg.data.files has {sorted(cfg.data.files)})")
    path = Path(cfg.paths.data_root) / cfg.data.files[key]
    if not path.is_file():
        raise FileNotFoundError(
            f"missing data file {path} (data.files.{key}). Point paths.data_root at the folder holding "
            f"'{cfg.data.files[key]}': set the environment variable BC_DATA_ROOT or pass the override "
            f"paths.data_root=/path/to/data (now {cfg.paths.data_root})."
        )
    return path
