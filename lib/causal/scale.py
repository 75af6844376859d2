"""Cross-fitting on Ray: the EconML constructor arguments behind ``causal.ray``.

EconML's DML and DR learners (``LinearDML``, ``CausalForestDML``, ``DRLearner`` and their
forest / sparse variants) fit the ``cv`` nuisance folds one after the other; with
``use_ray=True`` each fold is a Ray task, so folds run in parallel on a cluster. The
estimator code splats :func:`econml_kwargs` into those constructors::

    LinearDML(model_y=..., model_t=..., cv=ccfg.cv, **econml_kwargs(ccfg))

With ``causal.ray.enabled: false`` (the default) the kwargs are empty and nothing about the
fit changes; the estimates with and without Ray are the same numbers (tests/test_causal_scale.py).
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` unless this process is already connected.

    ``None`` lets ``ray.init`` use ``$RAY_ADDRESS`` or start a local cluster (EconML would do
    the same on its first fit; doing it here makes a configured address win).
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)


def econml_kwargs(ccfg: DictConfig) -> dict[str, Any]:
    """``{"use_ray": True, "ray_remote_func_options": {...}}`` when ``ccfg.ray.enabled``, else ``{}``.

    Connects to ``ccfg.ray.address`` first when enabled, so call it where the estimator is built.

    >>> from omegaconf import OmegaConf
    >>> econml_kwargs(OmegaConf.create({"ray": {"enabled": False, "address": None, "num_cpus_per_fold": 1}}))
    {}
    """
    rcfg = ccfg.ray
    if not rcfg.enabled:
        return {}
    connect(rcfg.address)
    return {"use_ray": True, "ray_remote_func_options": {"num_cpus": int(rcfg.num_cpus_per_fold)}}
