"""Semi-synthetic benchmark over real purchase histories (CausalBERT-style design).

A user's real training history ``items[:-2]`` confounds a simulated marketing treatment
and a simulated outcome. Four confounders are computed from the history:

order-free (invariant to reordering the history)
    ``share_group``   share of history items in an attribute "group" (the ``n_group_attrs``
                      most frequent attributes covering at most ``group_max_coverage`` of the catalogue)
    ``mean_log_pop``  mean log(1 + popularity) of the history's items (popularity = count in all histories)
order-dependent (change when the history is reordered)
    ``recent_group``  share of the ``recent_k`` most recent items in the group
    ``last_log_pop``  log(1 + popularity) of the most recent item

With ``z`` the standardised confounders and level strengths ``s_f`` (order-free) and ``s_o``
(order-dependent)::

    c        = s_f (z_share_group + z_mean_log_pop) + s_o (z_recent_group + z_last_log_pop)
    e(H)     = clip(sigmoid(propensity_intercept + c / temperature), clip, 1 - clip)
    T        ~ Bernoulli(e(H))
    tau(X)   = tau_base + tau_length z(log_history_length) + tau_diversity z(attr_diversity)
    Y        = outcome_intercept + outcome_weight c + tau(X) T + N(0, noise_sd^2)

The confounders push treatment and outcome the same way, so the naive difference in means
over-states the effect (positive bias) and the bias grows with the level. ``ate_true`` is the
mean of ``tau`` over the users (the sample ATE).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.data.sequences import history
from lib.errors import InputError
from lib.simulate.base import CausalData, diff_in_means
from lib.simulate.graphs import CausalGraph

ORDER_FREE = ("share_group", "mean_log_pop")
ORDER_DEPENDENT = ("recent_group", "last_log_pop")


def group_attributes(item_attributes: pd.DataFrame, n_attrs: int, max_coverage: float) -> list[int]:
    """The ``n_attrs`` most frequent attribute ids carried by at most ``max_coverage`` of the items."""
    counts = pd.Series([a for lst in item_attributes["attr_ids"] for a in lst], dtype=np.int64).value_counts()
    counts = counts[counts <= max_coverage * len(item_attributes)]
    # ties broken by attribute id so the choice is deterministic
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [int(a) for a, _ in ranked[:n_attrs]]


def history_features(histories: pd.Series, item_attributes: pd.DataFrame, sim_cfg: DictConfig) -> pd.DataFrame:
    """Raw confounders and effect modifiers of every history (one row per user, same order)."""
    group = set(group_attributes(item_attributes, sim_cfg.n_group_attrs, sim_cfg.group_max_coverage))
    attrs = dict(zip(item_attributes["item_id"].tolist(), item_attributes["attr_ids"]))
    in_group = {i: bool(group.intersection(a)) for i, a in attrs.items()}
    pop = pd.Series([i for h in histories for i in h], dtype=np.int64).value_counts()
    log_pop = {int(i): float(np.log1p(c)) for i, c in pop.items()}
    k = int(sim_cfg.recent_k)
    rows = []
    for h in histories:
        g = np.array([in_group.get(i, False) for i in h], dtype=np.float64)
        lp = np.array([log_pop[i] for i in h])
        distinct = {a for i in h for a in attrs.get(i, [])}
        rows.append({"share_group": g.mean(), "mean_log_pop": lp.mean(), "recent_group": g[-k:].mean(),
                     "last_log_pop": lp[-1], "log_history_length": np.log(len(h)),
                     "attr_diversity": len(distinct) / len(h)})
    return pd.DataFrame(rows, index=histories.index)


def _z(values: pd.Series) -> np.ndarray:
    sd = values.std(ddof=0)
    return ((values - values.mean()) / sd).to_numpy() if sd > 0 else np.zeros(len(values))


def semisynth_graph() -> CausalGraph:
    """History -> confounders (order-free, order-dependent) -> T and Y; effect modifiers -> Y."""
    return CausalGraph(
        roles={"H": "history", "W_free": "confounder", "W_order": "confounder", "X": "effect_modifier",
               "T": "treatment", "Y": "outcome"},
        edges=[("H", "W_free"), ("H", "W_order"), ("H", "X"), ("W_free", "T"), ("W_order", "T"),
               ("W_free", "Y"), ("W_order", "Y"), ("X", "Y"), ("T", "Y")],
        labels={"H": "purchase history\nitems[:-2]", "W_free": "order-free\ngroup share, popularity",
                "W_order": "order-dependent\nrecent group, last popularity",
                "X": "effect modifiers\nlength, diversity", "T": "treatment\n(e-mail)", "Y": "outcome"})


def simulate(sequences: pd.DataFrame, item_attributes: pd.DataFrame, sim_cfg: DictConfig, seed: int,
             level: str | None = None) -> CausalData:
    """Simulate treatment and outcome over the real histories of ``sequences``.

    Parameters
    ----------
    sequences, item_attributes : DataFrame
        Prepared tables of one sequence data set (``lib.data.sequences.load_prepared``).
    sim_cfg : DictConfig
        ``cfg.simulate.semisynth``.
    seed : int
        Seed of the treatment and noise draws (same seed -> same data).
    level : {"low", "default", "high"} or None
        Confounding level; None uses ``sim_cfg.level``.
    """
    level = level or sim_cfg.level
    if level not in sim_cfg.levels:
        raise ValueError(f"unknown confounding level {level!r}; configured: {list(sim_cfg.levels)}")
    hist = history(sequences)
    short = hist.map(len) == 0
    if short.any():
        user = int(sequences.loc[short.idxmax(), "user_id"])
        raise InputError("sequences", "items", f"user {user} has no history before the valid/test items",
                         "keep users with at least 3 items")
    feats = history_features(hist, item_attributes, sim_cfg)
    z = {c: _z(feats[c]) for c in feats.columns}
    s_free, s_order = float(sim_cfg.levels[level].order_free), float(sim_cfg.levels[level].order_dependent)
    c = s_free * (z["share_group"] + z["mean_log_pop"]) + s_order * (z["recent_group"] + z["last_log_pop"])
    logit = sim_cfg.propensity_intercept + c / sim_cfg.temperature
    e = np.clip(1.0 / (1.0 + np.exp(-logit)), sim_cfg.clip, 1.0 - sim_cfg.clip)
    tau = sim_cfg.tau_base + sim_cfg.tau_length * z["log_history_length"] + sim_cfg.tau_diversity * z["attr_diversity"]
    rng = np.random.default_rng(seed)
    t = (rng.random(len(e)) < e).astype(np.int64)
    noise = rng.normal(0.0, sim_cfg.noise_sd, len(e))
    y = sim_cfg.outcome_intercept + sim_cfg.outcome_weight * c + tau * t + noise
    ate = float(tau.mean())
    naive = diff_in_means(y, t)
    dataset = sim_cfg.dataset
    return CausalData(
        name=f"semisynth_{dataset}" + ("" if level == "default" else f"_{level}"),
        unit_id=sequences["user_id"].to_numpy(dtype=np.int64), T=t, Y=y.astype(np.float64),
        X=feats[["log_history_length", "attr_diversity"]].reset_index(drop=True),
        W_true=feats[list(ORDER_FREE + ORDER_DEPENDENT)].reset_index(drop=True),
        tau=tau.astype(np.float64), propensity=e, ate_true=ate, graph=semisynth_graph(),
        meta={"dataset": dataset, "level": level, "seed": int(seed), "order_free_strength": s_free,
              "order_dependent_strength": s_order, "naive": naive, "naive_bias": naive["ate"] - ate,
              "treated_share": float(t.mean()),
              "group_attrs": group_attributes(item_attributes, sim_cfg.n_group_attrs, sim_cfg.group_max_coverage),
              "graph_columns": {"W_free": list(ORDER_FREE), "W_order": list(ORDER_DEPENDENT),
                                "X": ["log_history_length", "attr_diversity"]}})
