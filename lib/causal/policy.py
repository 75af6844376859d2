"""Who to treat and why: an EconML DR policy tree and the top effect modifiers of a CATE model.

:func:`fit_policy_tree` learns a shallow treatment rule with ``econml.policy.DRPolicyTree``
(doubly robust scores, cross-fitted). :func:`tree_frame` exports the fitted tree as a node
table, so :func:`lib.causal.plots.policy_tree` can redraw it from saved data.
:func:`evaluate_policy` scores the rule on a randomised test split by IPW against
treat-none and treat-all. :func:`effect_modifier_importance` ranks the effect modifiers by
mean absolute SHAP value of a fitted EconML CATE model (``est.shap_values``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lib.causal.nuisance import make_nuisance


def fit_policy_tree(Y: np.ndarray, T: np.ndarray, X: np.ndarray, W: np.ndarray | None, ccfg: Any, seed: int) -> Any:
    """``DRPolicyTree`` of depth ``causal.policy.max_depth`` over effect modifiers ``X``."""
    from econml.policy import DRPolicyTree

    est = DRPolicyTree(model_regression=make_nuisance(ccfg.nuisance_y, "regression", seed, ccfg),
                       model_propensity=make_nuisance(ccfg.nuisance_t, "classification", seed, ccfg),
                       max_depth=int(ccfg.policy.max_depth), min_samples_leaf=int(ccfg.policy.min_samples_leaf),
                       cv=int(ccfg.cv), random_state=seed)
    return est.fit(Y, T, X=X, W=W)


def tree_frame(est: Any, feature_names: list[str], treatment_names: list[str]) -> pd.DataFrame:
    """Nodes of a fitted policy tree: node, depth, parent, side, feature, threshold, leaf, action, n, welfare."""
    tree = est.policy_model_.tree_
    value = np.asarray(tree.value)[:, :, 0]
    rows, stack = [], [(0, 0, -1, "")]
    while stack:
        node, depth, parent, side = stack.pop()
        leaf = tree.children_left[node] == -1
        rows.append(dict(node=node, depth=depth, parent=parent, side=side,
                         feature="" if leaf else feature_names[tree.feature[node]],
                         threshold=np.nan if leaf else float(tree.threshold[node]), leaf=bool(leaf),
                         action=treatment_names[int(np.argmax(value[node]))], n=int(tree.n_node_samples[node]),
                         welfare=float(np.max(value[node]))))
        if not leaf:
            stack += [(tree.children_right[node], depth + 1, node, "no"), (tree.children_left[node], depth + 1, node, "yes")]
    return pd.DataFrame(rows).sort_values("node").reset_index(drop=True)


def ipw_value(y: np.ndarray, t: np.ndarray, action: np.ndarray, arm_prob: dict[int, float]) -> float:
    """IPW value ``mean(Y 1[T = a(x)] / P(T = a(x)))`` of assigning ``action`` on randomised data."""
    prob = np.array([arm_prob[int(a)] for a in action])
    return float(np.mean(np.asarray(y, dtype=float) * (np.asarray(t) == action) / prob))


def evaluate_policy(est: Any, X: np.ndarray, y: np.ndarray, t: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Value of the tree's rule vs treat-none and treat-all-with-each-arm on a randomised split.

    Arm probabilities are the empirical shares of the split (the RCT's assignment rates).
    """
    arms = np.unique(t)
    prob = {int(a): float(np.mean(t == a)) for a in arms}
    rows = [dict(policy="policy_tree", value=ipw_value(y, t, np.asarray(est.predict(X), dtype=int), prob),
                 share_treated=float(np.mean(np.asarray(est.predict(X)) != 0)))]
    for a in arms:
        label = "treat_none" if a == 0 else f"treat_all_{names[int(a)]}"
        rows.append(dict(policy=label, value=ipw_value(y, t, np.full(len(y), a), prob), share_treated=float(a != 0)))
    return pd.DataFrame(rows)


def effect_modifier_importance(est: Any, X: np.ndarray, feature_names: list[str], n_units: int, seed: int) -> pd.DataFrame:
    """Mean |SHAP| of the CATE per effect modifier, per treatment arm (``feature, arm, importance``).

    SHAP values come from EconML's ``shap_values`` on a seeded subsample of ``n_units`` units.
    """
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(n_units, len(X)), replace=False))
    shap = est.shap_values(X[idx], feature_names=feature_names)
    rows = []
    for y_name, per_t in shap.items():
        for t_name, expl in per_t.items():
            vals = np.abs(np.asarray(expl.values)).mean(axis=0)
            rows += [dict(feature=f, arm=str(t_name), importance=float(v)) for f, v in zip(feature_names, vals)]
    return pd.DataFrame(rows).sort_values(["arm", "importance"], ascending=[True, False]).reset_index(drop=True)
