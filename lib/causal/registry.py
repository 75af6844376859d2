"""The registries of ``conf/causal/default.yaml``: looking an entry up and building its Hydra nodes.

``causal.nuisances``, ``causal.representations`` and ``causal.estimators`` map a name to an
entry; the parts of an entry that are objects are Hydra nodes (``_target_`` plus arguments,
``_partial_: true`` for a function called later) built with ``hydra.utils.instantiate``.
:func:`entry` finds an entry (an unknown name lists the declared ones) and checks its keys,
:func:`build` instantiates a node and gives it the seed and thread count of the run.

Examples
--------
>>> from omegaconf import OmegaConf
>>> node = OmegaConf.create({"_target_": "sklearn.ensemble.RandomForestRegressor", "n_estimators": 5})
>>> model = build(node, seed=3, n_jobs=2)
>>> model.random_state, model.n_jobs, model.n_estimators
(3, 2, 5)
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

from hydra.utils import get_object, instantiate

from lib.errors import InputError

HOME = "conf/causal/default.yaml"
#: README section that shows how to add an entry to each registry
RECIPES = {"nuisances": "Adding a nuisance model", "representations": "Adding a representation",
           "estimators": "Adding an estimator"}


def entry(ccfg: Any, registry: str, name: str, keys: Iterable[str], setting: str) -> Any:
    """Entry ``name`` of ``causal.<registry>``, checked to hold only ``keys``.

    ``setting`` names the config key that asked for ``name`` (for the message).

    Raises
    ------
    InputError
        ``name`` is not declared (the message lists the declared names), or the entry has a key
        outside ``keys`` (a typo would otherwise be ignored).

    Examples
    --------
    >>> from lib.config import compose
    >>> entry(compose("smoke").causal, "estimators", "linear_dlm", (), "causal.uplift.models")
    Traceback (most recent call last):
    ...
    lib.errors.InputError: conf/causal/default.yaml: causal.uplift.models names 'linear_dlm', which causal.estimators \
does not declare (declared: causal_forest_dml, causalbert_aipw, dr_learner, linear_dml, naive, ols, t_learner, \
x_learner). Fix: fix the name, or declare the entry under causal.estimators (README 'Adding an estimator')
    """
    declared = ccfg[registry]
    if name not in declared:
        raise InputError(HOME, None, f"{setting} names {name!r}, which causal.{registry} does not declare "
                         f"(declared: {', '.join(sorted(declared))})",
                         f"fix the name, or declare the entry under causal.{registry} (README '{RECIPES[registry]}')")
    node = declared[name]
    unknown = sorted(set(node) - set(keys))
    if unknown:
        raise InputError(HOME, None, f"causal.{registry}.{name} has unknown key(s) {unknown}",
                         f"use only {sorted(keys)} (see the comment above causal.{registry})")
    return node


def build(node: Any, seed: int, n_jobs: int, optional: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Instantiate ``node`` with ``kwargs``; the seed and thread count go wherever the object takes them.

    ``random_state`` / ``n_jobs`` (and the ``optional`` arguments) are passed to the target when
    its signature has them; on a scikit-learn estimator every nested parameter whose name ends in
    ``random_state`` / ``n_jobs`` (the steps of a pipeline) is set too. So an entry never fixes
    them, and the same seed gives the same numbers.
    """
    params = takes(node)
    given = {"random_state": seed, "n_jobs": n_jobs, **(optional or {})}
    obj = instantiate(node, _convert_="all", **kwargs, **{k: v for k, v in given.items() if k in params})
    if hasattr(obj, "get_params") and hasattr(obj, "set_params"):
        nested = obj.get_params(deep=True)
        obj.set_params(**{k: seed for k in nested if k.endswith("random_state")},
                       **{k: n_jobs for k in nested if k.endswith("n_jobs")})
    return obj


def parameters(node: Any) -> Mapping[str, inspect.Parameter]:
    """Parameters of the ``_target_`` of ``node``, by name."""
    return inspect.signature(get_object(node["_target_"])).parameters


def takes(node: Any) -> list[str]:
    """Argument names of the ``_target_`` of ``node``."""
    return list(parameters(node))


def call(node: Any, available: dict[str, Any]) -> Any:
    """Call the ``_partial_`` function of ``node`` with those ``available`` arguments it takes."""
    fn = instantiate(node, _convert_="all")
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in available.items() if k in params})


def optional(node: Any, key: str, defaults: dict[str, Any]) -> Any:
    """Key ``key`` of an entry, or its documented value in ``defaults`` when the entry leaves it out."""
    return node[key] if key in node else defaults[key]
