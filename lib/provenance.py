"""What every run records next to its results: config, code version, data, seed, packages."""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from lib.config import REPO_ROOT, raw_files
from lib.io import sha256_file

PACKAGES = (
    "torch", "lightning", "transformers", "peft", "econml", "scikit-learn", "lightgbm",
    "scikit-uplift", "pandas", "numpy", "pyarrow", "hydra-core", "papermill", "jupytext",
)


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """HEAD commit and whether tracked files differ from it (``unknown`` outside a git checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "lib", "conf", "notebooks"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"sha": "unknown", "dirty": None}
    return {"sha": sha, "dirty": dirty}


def code_version(root: Path = REPO_ROOT, folders: Sequence[str] = ("lib", "conf", "notebooks")) -> str:
    """Version of the code a result depends on: git tree ids of ``folders`` (default lib/, conf/, notebooks/).

    Commits that touch only the README or the rendered paper keep the version (and so the
    sweep run hashes) unchanged; uncommitted changes to those folders append a hash of the diff.
    A narrower ``folders`` versions one stage's code (the embedding cache of
    :mod:`lib.embed.export` keys on the code that computes vectors).
    """
    import hashlib

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, check=True).stdout

    try:
        trees = git("rev-parse", *(f"HEAD:{folder}" for folder in folders))
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *folders)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    version = "tree." + hashlib.sha256(trees).hexdigest()[:16]
    if dirty:
        diff = git("diff", "HEAD", "--", *folders)
        version += f"+dirty.{hashlib.sha256(diff).hexdigest()[:12]}"
    return version


def data_checksums(cfg: DictConfig) -> dict[str, str]:
    """sha256 of every configured raw data file that exists under ``paths.data_root``."""
    out = {}
    for key, raw in sorted(raw_files(cfg).items()):
        path = Path(cfg.paths.data_root) / raw.path
        out[key] = sha256_file(path) if path.is_file() else "missing"
    return out


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def manifest(cfg: DictConfig, **extra: Any) -> dict[str, Any]:
    """The provenance record written as ``manifest.json`` beside a run's outputs."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "git": git_state(),
        "code_version": code_version(),
        "data_sha256": data_checksums(cfg),
        "seed": int(cfg.seed),
        "packages": package_versions(),
        "host": {"platform": platform.platform(), "machine": platform.machine(), "cpus": _cpus()},
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
