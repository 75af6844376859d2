"""Shared fixtures: the real composed config, and the shared data sets when present."""
from __future__ import annotations

from pathlib import Path

import pytest

from lib.config import compose


LONGEST = "tests/test_study_smoke.py"


def pytest_collection_modifyitems(items):
    """The smoke study first: `make test` hands whole files to two pytest-xdist workers in this order,
    so the longest file runs beside all the others instead of after them."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] != LONGEST)


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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every test that needs one: starting it costs ~10 s."""
    ray = pytest.importorskip("ray")
    options = dict(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2 ** 20, log_to_driver=False)
    try:
        ray.init(**options)
    except Exception as exc:  # Ray waits a fixed 30 s for its raylet: a loaded machine can miss it once
        if "timed out during startup" not in str(exc):
            raise
        ray.shutdown()
        ray.init(**options)
    yield ray
    ray.shutdown()
