"""Shared fixtures: the real composed config, and the shared data sets when present."""
from __future__ import annotations

from pathlib import Path

import pytest

from lib.config import compose


@pytest.fixture(scope="session")
def smoke_cfg():
    """The smoke preset exactly as notebooks and `make reproduce` compose it."""
    return compose("smoke")


@pytest.fixture(scope="session")
def data_root(smoke_cfg) -> Path:
    """Folder of the shared raw data; tests marked ``realdata`` skip when it is absent."""
    root = Path(smoke_cfg.paths.data_root)
    if not (root / smoke_cfg.data.files.hillstrom).is_file():
        pytest.skip(f"shared data not found under {root} (set BC_DATA_ROOT)")
    return root
