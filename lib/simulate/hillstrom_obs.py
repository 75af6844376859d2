"""Observational benchmark carved from the Hillstrom RCT by covariate-dependent selection.

The experiment randomised the e-mail arm, so the full-data difference in means is an
unbiased reference (:func:`rct_reference`). :func:`confounded_subsample` keeps each customer
with a probability that depends on a pre-treatment "value" score and on the arm::

    v        = z(log1p(history)) - z(recency) + z(newbie == 0)        (standardised, then scaled to sd 1)
    keep     = sigmoid(logit(keep_base) + strength * v)    for e-mailed customers (T in {1, 2})
    keep     = sigmoid(logit(keep_base) - strength * v)    for control customers (T = 0)

High-value customers (recent, big spenders, not new) visit and buy more, and they are
over-represented among the treated of the subsample, so its naive estimate over-states the
effect (positive bias) while ``strength = 0`` keeps a randomised subsample. Conditioning on
the covariates behind ``v`` (``W_true``) removes the bias: they are the parents of selection.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.errors import InputError
from lib.simulate.base import CausalData, diff_in_means
from lib.simulate.graphs import CausalGraph

SELECTION_COVARIATES = ("history", "recency", "newbie")
#: effect modifiers X of the estimators' final stage: never a selection variable, so that the selection
#: covariates reach an estimator only through W, the representation under test
EFFECT_MODIFIERS = ("mens", "womens")


def rct_reference(df: pd.DataFrame, outcome: str, arm: int) -> dict[str, float]:
    """Full-experiment difference in means of ``outcome`` between ``arm`` and control, 95% normal CI.

    Returns ``dict(ate, ci_low, ci_high, se, n_treated, n_control)``.
    """
    _check(df, outcome)
    if arm not in set(df["treatment"].astype(int)):
        raise InputError("hillstrom table", "treatment", f"has no customers in arm {arm}", "arms are 1 and 2")
    return diff_in_means(df[outcome].to_numpy(np.float64), df["treatment"].to_numpy(np.int64), arm)


def _check(df: pd.DataFrame, outcome: str) -> None:
    for col in ("treatment", outcome, *SELECTION_COVARIATES):
        if col not in df.columns:
            raise InputError("hillstrom table", col, "is missing", "pass the table of lib.data.hillstrom.load_prepared")
    if df["treatment"].nunique() < 2:
        raise InputError("hillstrom table", "treatment", "has a single arm", "use the full experiment")


def value_score(df: pd.DataFrame) -> np.ndarray:
    """The selection score ``v`` (mean 0, sd 1): higher for recent, high-spending, returning customers."""
    def z(x: np.ndarray) -> np.ndarray:
        sd = x.std()
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

    v = (z(np.log1p(df["history"].to_numpy(np.float64))) - z(df["recency"].to_numpy(np.float64))
         + z((df["newbie"].to_numpy() == 0).astype(np.float64)))
    return z(v)


def hillstrom_graph() -> CausalGraph:
    """Covariates -> outcome and -> selection; arm -> selection and -> outcome; randomised arm."""
    return CausalGraph(
        roles={"C": "confounder", "X": "effect_modifier", "T": "treatment", "S": "selection", "Y": "outcome"},
        edges=[("C", "S"), ("T", "S"), ("C", "Y"), ("X", "Y"), ("T", "Y")],
        labels={"C": "value covariates\nhistory, recency, newbie\n(adjusted only through W)",
                "X": "effect modifiers\nmens, womens",
                "T": "e-mail arm\n(randomised)", "S": "kept in\nsubsample", "Y": "outcome\nvisit / conversion / spend"})


def confounded_subsample(df: pd.DataFrame, sim_cfg: DictConfig, seed: int, outcome: str) -> CausalData:
    """A covariate-dependent subsample of the RCT with a biased naive estimate.

    ``T`` keeps all three arms; ``ate_true`` and ``propensity`` refer to the binary contrast
    ``sim_cfg.arm`` vs control: ``ate_true`` is the full-RCT reference, ``propensity`` the
    true P(T = arm | covariates, T in {0, arm}, kept). ``tau`` is unknown (None).
    """
    _check(df, outcome)
    arm = int(sim_cfg.arm)
    v = value_score(df)
    t_all = df["treatment"].to_numpy(np.int64)
    base = np.log(sim_cfg.keep_base / (1.0 - sim_cfg.keep_base))
    sign = np.where(t_all > 0, 1.0, -1.0)
    keep_p = 1.0 / (1.0 + np.exp(-(base + sign * sim_cfg.strength * v)))
    keep = np.random.default_rng(seed).random(len(df)) < keep_p
    sub = df.loc[keep].reset_index(drop=True)
    # P(arm | x, kept, T in {0, arm}) from the randomised arm shares and the two keep probabilities
    share = pd.Series(t_all).value_counts(normalize=True)
    k1 = 1.0 / (1.0 + np.exp(-(base + sim_cfg.strength * v[keep])))
    k0 = 1.0 / (1.0 + np.exp(-(base - sim_cfg.strength * v[keep])))
    prop = share[arm] * k1 / (share[arm] * k1 + share[0] * k0)
    reference = {a: rct_reference(df, outcome, a) for a in sorted(share.index) if a > 0}
    t = sub["treatment"].to_numpy(np.int64)
    y = sub[outcome].to_numpy(np.float64)
    return CausalData(
        name="hillstrom_obs", unit_id=sub["customer_id"].to_numpy(np.int64), T=t, Y=y,
        X=sub[list(EFFECT_MODIFIERS)].astype(np.float64), W_true=sub[list(SELECTION_COVARIATES)].astype(np.float64),
        tau=None, propensity=prop, ate_true=reference[arm]["ate"], graph=hillstrom_graph(),
        meta={"outcome": outcome, "arm": arm, "strength": float(sim_cfg.strength), "seed": int(seed),
              "n_kept": int(keep.sum()), "n_full": int(len(df)), "rct_reference": reference,
              "naive": {a: diff_in_means(y, t, a) for a in reference}})
