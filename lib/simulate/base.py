"""The container every causal benchmark returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.simulate.graphs import CausalGraph


@dataclass
class CausalData:
    """Units, treatment, outcome and (where known) the ground truth of a causal benchmark.

    Attributes
    ----------
    name : str
        Benchmark name, e.g. ``semisynth_beauty`` or ``hillstrom_obs``.
    unit_id : ndarray of int64
        ``user_id`` / ``customer_id``; aligns with stored embeddings.
    T : ndarray of int64
        Treatment (0 control; 1..K arms).
    Y : ndarray of float64
        Outcome.
    X : DataFrame
        A few interpretable numeric effect modifiers.
    W_true : DataFrame or None
        Oracle confounders (the true adjustment set).
    tau : ndarray or None
        True individual effects (binary-treatment benchmarks).
    propensity : ndarray or None
        True P(T=1 | covariates) of the (binary) contrast.
    ate_true : float or None
        True (or randomised-reference) average treatment effect.
    graph : CausalGraph
        The causal graph the benchmark encodes.
    meta : dict
        Knobs and summary numbers (level, strengths, naive estimate, ...).
    """

    name: str
    unit_id: np.ndarray
    T: np.ndarray
    Y: np.ndarray
    X: pd.DataFrame
    W_true: pd.DataFrame | None
    tau: np.ndarray | None
    propensity: np.ndarray | None
    ate_true: float | None
    graph: CausalGraph
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.unit_id)
        for name in ("T", "Y"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.name}: {name} has {len(getattr(self, name))} rows, unit_id has {n}")
        if len(self.X) != n or (self.W_true is not None and len(self.W_true) != n):
            raise ValueError(f"{self.name}: X / W_true must have one row per unit ({n})")

    def naive_ate(self, arm: int) -> dict[str, float]:
        """Difference in mean outcome between ``T == arm`` and ``T == 0`` with a normal 95% CI."""
        return diff_in_means(self.Y, self.T, arm)


def diff_in_means(y: np.ndarray, t: np.ndarray, arm: int) -> dict[str, float]:
    """Difference in means of ``y`` between ``t == arm`` and ``t == 0``; Welch standard error, 95% CI.

    Examples
    --------
    >>> r = diff_in_means(np.array([1.0, 2.0, 3.0, 5.0]), np.array([0, 0, 1, 1]), arm=1)
    >>> r["ate"], r["n_treated"], r["n_control"]
    (2.5, 2, 2)
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t)
    y1, y0 = y[t == arm], y[t == 0]
    if len(y1) < 2 or len(y0) < 2:
        raise ValueError(f"need at least 2 units in arm {arm} and in control, got {len(y1)} and {len(y0)}")
    ate = float(y1.mean() - y0.mean())
    se = float(np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)))
    z = 1.959963984540054
    return {"ate": ate, "se": se, "ci_low": ate - z * se, "ci_high": ate + z * se,
            "n_treated": int(len(y1)), "n_control": int(len(y0))}
