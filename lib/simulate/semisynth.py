"""Semi-synthetic benchmark over real purchase histories (CausalBERT-style design).

A user's real training history ``items[:-2]`` confounds a simulated marketing treatment
and a simulated outcome through three **channels**, each with its own strength knob, so
the study can say which kind of confounding a representation captures:

order-free (invariant to reordering the history; linear in the normalised bag of items)
    ``share_group``   share of history items in an attribute "group" (the ``n_group_attrs``
                      most frequent attributes covering at most ``group_max_coverage`` of the catalogue)
    ``mean_log_pop``  mean log(1 + popularity) of the history's items (popularity = count in all histories)
order-dependent (the most recent items: one-hots of the last ``recent_k`` items express it)
    ``recent_group``  share of the ``recent_k`` most recent items in the group
    ``last_log_pop``  log(1 + popularity) of the most recent item
transition (order across the whole history; neither a linear model of the bag of items nor
one-hots of the last items can express it)
    ``transition``    +1 if the history holds an item of group A followed, at any later position,
                      by an item of group B and no B before an A; -1 for the reverse order; 0 when
                      only one order (or neither group) occurs. Groups A and B are the next two
                      blocks of ``n_group_attrs`` attributes after the order-free group. Shuffling a
                      history flips the sign at random, so its mean given the bag of items is 0.

With ``z`` the standardised features and the strengths ``s_f``, ``s_o``, ``s_t`` of the setting::

    c        = s_f (z_share_group + z_mean_log_pop) + s_o (z_recent_group + z_last_log_pop) + s_t sqrt(2) z_transition
    e(H)     = clip(sigmoid(propensity_intercept + c / temperature), clip, 1 - clip)
    T        ~ Bernoulli(e(H))
    tau      = tau_base + tau_length z(log_history_length) + tau_diversity z(attr_diversity)
               + s_h z(mean_log_pop)                         (hidden modifier: not in X)
    Y        = outcome_intercept + outcome_weight c + tau T + N(0, noise_sd^2)

(``sqrt(2)`` gives the one-feature transition channel the variance of the two-feature ones.)
The settings (``simulate.semisynth.levels``) are named strength sets: ``low`` / ``default`` /
``high`` scale every channel; ``order_free`` / ``order_dependent`` / ``transition`` switch one
channel on at the default strength; ``hidden_modifier`` adds an effect that varies with a
history feature outside X, so that PEHE depends on the representation. The confounders push
treatment and outcome the same way, so the naive difference in means over-states the effect.
Each (setting, seed) draws T and noise from its own independent random stream.
``ate_true`` is the mean of ``tau`` over the users (the sample ATE).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.data.sequences import history
from lib.errors import InputError
from lib.simulate.base import CausalData, diff_in_means
from lib.simulate.graphs import CausalGraph

ORDER_FREE = ("share_group", "mean_log_pop")
ORDER_DEPENDENT = ("recent_group", "last_log_pop")
TRANSITION = ("transition",)
CHANNELS = ("order_free", "order_dependent", "transition")
EFFECT_MODIFIERS = ("log_history_length", "attr_diversity")


def ranked_attributes(item_attributes: pd.DataFrame, max_coverage: float) -> list[int]:
    """Attribute ids carried by at most ``max_coverage`` of the items, most frequent first (ties by id)."""
    counts = pd.Series([a for lst in item_attributes["attr_ids"] for a in lst], dtype=np.int64).value_counts()
    counts = counts[counts <= max_coverage * len(item_attributes)]
    return [int(a) for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def group_attributes(item_attributes: pd.DataFrame, n_attrs: int, max_coverage: float, block: int = 0) -> list[int]:
    """Block ``block`` of ``n_attrs`` attribute ids in frequency order (0: order-free group; 1, 2: groups A, B)."""
    return ranked_attributes(item_attributes, max_coverage)[block * n_attrs:(block + 1) * n_attrs]


def _transition_sign(in_a: np.ndarray, in_b: np.ndarray) -> float:
    """+1 when an A item precedes a B item and no B precedes an A; -1 for the reverse; else 0."""
    pos_a, pos_b = np.flatnonzero(in_a), np.flatnonzero(in_b)
    if not len(pos_a) or not len(pos_b):
        return 0.0
    a_then_b, b_then_a = pos_a.min() < pos_b.max(), pos_b.min() < pos_a.max()
    return float(a_then_b) - float(b_then_a)


def history_features(histories: pd.Series, item_attributes: pd.DataFrame, sim_cfg: DictConfig) -> pd.DataFrame:
    """Raw confounders and effect modifiers of every history (one row per user, same order)."""
    n, cov = int(sim_cfg.n_group_attrs), float(sim_cfg.group_max_coverage)
    blocks = [set(group_attributes(item_attributes, n, cov, b)) for b in range(3)]
    attrs = dict(zip(item_attributes["item_id"].tolist(), item_attributes["attr_ids"]))
    member = [{i: bool(g.intersection(a)) for i, a in attrs.items()} for g in blocks]
    # an item in both A and B would make the order of a single item count: B excludes A's items
    member[2] = {i: v and not member[1][i] for i, v in member[2].items()}
    pop = pd.Series([i for h in histories for i in h], dtype=np.int64).value_counts()
    log_pop = {int(i): float(np.log1p(c)) for i, c in pop.items()}
    k = int(sim_cfg.recent_k)
    rows = []
    for h in histories:
        g, a, b = (np.array([m.get(i, False) for i in h], dtype=np.float64) for m in member)
        lp = np.array([log_pop[i] for i in h])
        distinct = {x for i in h for x in attrs.get(i, [])}
        rows.append({"share_group": g.mean(), "mean_log_pop": lp.mean(), "recent_group": g[-k:].mean(),
                     "last_log_pop": lp[-1], "transition": _transition_sign(a > 0, b > 0),
                     "log_history_length": np.log(len(h)), "attr_diversity": len(distinct) / len(h)})
    return pd.DataFrame(rows, index=histories.index)


def _z(values: pd.Series) -> np.ndarray:
    sd = values.std(ddof=0)
    return ((values - values.mean()) / sd).to_numpy() if sd > 0 else np.zeros(len(values))


def semisynth_graph() -> CausalGraph:
    """History -> three confounder channels -> T and Y; effect modifiers -> Y (the hidden one is order-free)."""
    return CausalGraph(
        roles={"H": "history", "W_free": "confounder", "W_order": "confounder", "W_trans": "confounder",
               "X": "effect_modifier", "T": "treatment", "Y": "outcome"},
        edges=[("H", "W_free"), ("H", "W_order"), ("H", "W_trans"), ("H", "X"), ("W_free", "T"), ("W_order", "T"),
               ("W_trans", "T"), ("W_free", "Y"), ("W_order", "Y"), ("W_trans", "Y"), ("X", "Y"), ("T", "Y")],
        labels={"H": "purchase history\nitems[:-2]", "W_free": "order-free\ngroup share, popularity",
                "W_order": "order-dependent\nrecent group, last popularity",
                "W_trans": "transition\ngroup A then B",
                "X": "effect modifiers\nlength, diversity", "T": "treatment\n(e-mail)", "Y": "outcome"})


def stream(seed: int, setting: str) -> np.random.Generator:
    """The independent random stream of one (seed, setting): T and noise of a setting never share draws."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(setting.encode())]))


def simulate(sequences: pd.DataFrame, item_attributes: pd.DataFrame, sim_cfg: DictConfig, seed: int,
             level: str | None = None, features: pd.DataFrame | None = None) -> CausalData:
    """Simulate treatment and outcome over the real histories of ``sequences``.

    Parameters
    ----------
    sequences, item_attributes : DataFrame
        Prepared tables of one sequence data set (``lib.data.sequences.load_prepared``).
    sim_cfg : DictConfig
        ``cfg.simulate.semisynth``.
    seed : int
        Seed of the treatment and noise draws (same seed and setting -> same data).
    level : str or None
        Name of a setting in ``sim_cfg.levels``; None uses ``sim_cfg.level``.
    features : DataFrame, optional
        :func:`history_features` of these sequences, to share them between seeds and settings.
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
    feats = history_features(hist, item_attributes, sim_cfg) if features is None else features
    z = {c: _z(feats[c]) for c in feats.columns}
    s = sim_cfg.levels[level]
    s_free, s_order, s_trans = float(s.order_free), float(s.order_dependent), float(s.transition)
    c = (s_free * (z["share_group"] + z["mean_log_pop"]) + s_order * (z["recent_group"] + z["last_log_pop"])
         + s_trans * np.sqrt(2.0) * z["transition"])
    logit = sim_cfg.propensity_intercept + c / sim_cfg.temperature
    e = np.clip(1.0 / (1.0 + np.exp(-logit)), sim_cfg.clip, 1.0 - sim_cfg.clip)
    tau = (sim_cfg.tau_base + sim_cfg.tau_length * z["log_history_length"]
           + sim_cfg.tau_diversity * z["attr_diversity"] + float(s.hidden_modifier) * z["mean_log_pop"])
    rng = stream(seed, level)
    t = (rng.random(len(e)) < e).astype(np.int64)
    noise = rng.normal(0.0, sim_cfg.noise_sd, len(e))
    y = sim_cfg.outcome_intercept + sim_cfg.outcome_weight * c + tau * t + noise
    ate = float(tau.mean())
    naive = diff_in_means(y, t, arm=1)   # binary treatment: the one arm against control
    dataset = sim_cfg.dataset
    n, cov = int(sim_cfg.n_group_attrs), float(sim_cfg.group_max_coverage)
    return CausalData(
        name=f"semisynth_{dataset}" + ("" if level == "default" else f"_{level}"),
        unit_id=sequences["user_id"].to_numpy(dtype=np.int64), T=t, Y=y.astype(np.float64),
        X=feats[list(EFFECT_MODIFIERS)].reset_index(drop=True),
        W_true=feats[list(ORDER_FREE + ORDER_DEPENDENT + TRANSITION)].reset_index(drop=True),
        tau=tau.astype(np.float64), propensity=e, ate_true=ate, graph=semisynth_graph(),
        meta={"dataset": dataset, "level": level, "seed": int(seed), "order_free_strength": s_free,
              "order_dependent_strength": s_order, "transition_strength": s_trans,
              "hidden_modifier_strength": float(s.hidden_modifier), "naive": naive, "naive_bias": naive["ate"] - ate,
              "treated_share": float(t.mean()), "transition_nonzero_share": float((feats["transition"] != 0).mean()),
              "group_attrs": group_attributes(item_attributes, n, cov, 0),
              "transition_groups": [group_attributes(item_attributes, n, cov, 1),
                                    group_attributes(item_attributes, n, cov, 2)],
              "graph_columns": {"W_free": list(ORDER_FREE), "W_order": list(ORDER_DEPENDENT),
                                "W_trans": list(TRANSITION), "X": list(EFFECT_MODIFIERS)}})
