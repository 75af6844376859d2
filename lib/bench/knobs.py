"""Knobs of a benchmark: its YAML file under ``conf/bench/`` with command-line flags on top.

The benchmark files are plain YAML read by the benchmark (not part of the Hydra tree); a flag
left unset keeps the file's value.

>>> import argparse
>>> args = argparse.Namespace(sizes=[10], dims=None)
>>> knobs("causal_fit", args, ("sizes", "dims")).sizes
[10]
"""
from __future__ import annotations

import argparse
from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from lib.config import CONF_DIR


def knobs(name: str, args: argparse.Namespace, keys: Iterable[str]) -> DictConfig:
    """``conf/bench/<name>.yaml`` with every non-None ``args.<key>`` of ``keys`` replacing the file's value."""
    bcfg = OmegaConf.load(CONF_DIR / "bench" / f"{name}.yaml")
    for key in keys:
        if getattr(args, key) is not None:
            bcfg[key] = getattr(args, key)
    return bcfg
