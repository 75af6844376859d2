"""The targeting study of notebook 04 on the randomised Hillstrom experiment.

* :func:`hillstrom_uplift`: CATE models fitted on the RCT train split, Qini / AUUC (with
  bootstrap CIs) and policy values on the test split, against random targeting.
* :func:`hillstrom_policy`: a DR policy tree and the SHAP effect modifiers of a causal forest.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from lib.causal import diagnostics, uplift
from lib.causal.estimators import fit_arms
from lib.causal.experiments import ARM_NAMES
from lib.data.hillstrom import design_matrix, load_prepared


def _uplift_split(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    df = load_prepared(cfg)
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    cap = cfg.causal.uplift.max_train
    if cap and len(train) > int(cap):
        train = train.sample(n=int(cap), random_state=cfg.seed).sort_index()
    return train, test, list(design_matrix(df.head(1)).columns)


def hillstrom_uplift(cfg: DictConfig) -> pd.DataFrame:
    """Qini / AUUC (bootstrap CIs) of each CATE model per outcome and arm on the RCT test split.

    ``df.attrs["curves"]`` holds the Qini curves, ``df.attrs["policy"]`` the IPW value of
    e-mailing the top k% by predicted uplift.
    """
    ucfg = cfg.causal.uplift
    train, test, _ = _uplift_split(cfg)
    Xtr, Xte = design_matrix(train).to_numpy(), design_matrix(test).to_numpy()
    Ttr, Tte = train["treatment"].to_numpy(np.int64), test["treatment"].to_numpy(np.int64)
    rows, curves, policies = [], [], []
    for outcome in ucfg.outcomes:
        Ytr, Yte = train[outcome].to_numpy(np.float64), test[outcome].to_numpy()
        diagnostics.validate(Ytr, Ttr, Xtr, None, f"hillstrom train[{outcome}]")
        scores_by_model = {}
        for model in ucfg.models:
            _, _, est = fit_arms(model, Ytr, Ttr, Xtr, None, cfg.causal, cfg.seed)
            scores_by_model[model] = {a: np.asarray(est.effect(Xte, T0=0, T1=a)).ravel() for a in (1, 2)}
        rng = np.random.default_rng(cfg.seed)
        scores_by_model["random"] = {a: rng.normal(size=len(Yte)) for a in (1, 2)}
        for model, per_arm in scores_by_model.items():
            for arm, score in per_arm.items():
                m = (Tte == 0) | (Tte == arm)
                y, t, s = Yte[m].astype(int), (Tte[m] == arm).astype(int), score[m]
                sc = uplift.bootstrap_scores(y, t, s, int(ucfg.n_boot), cfg.seed, float(cfg.causal.alpha))
                rows.append(dict(outcome=outcome, arm=arm, arm_name=ARM_NAMES[arm], model=model, n_test=int(m.sum()),
                                 n_train=len(Ytr), **sc))
                curves.append(uplift.curve(y, t, s, model, int(ucfg.curve_points)).assign(outcome=outcome, arm=arm))
                pv = uplift.policy_values(y, t, s, list(ucfg.top_k), p_treat=float(t.mean()))
                policies.append(pv.assign(outcome=outcome, arm=arm, model=model))
    df = pd.DataFrame(rows)
    df.attrs["curves"] = pd.concat(curves, ignore_index=True)
    df.attrs["policy"] = pd.concat(policies, ignore_index=True)
    return df


def hillstrom_policy(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Policy tree (train split) and its value on the test split; SHAP effect modifiers of a causal forest.

    Returns ``{"tree": node table, "value": policy values, "importance": mean |SHAP| per feature and arm}``.
    """
    from lib.causal import policy

    train, test, names = _uplift_split(cfg)
    outcome = cfg.causal.policy.outcome
    Xtr, Xte = design_matrix(train).to_numpy(), design_matrix(test).to_numpy()
    Ttr, Tte = train["treatment"].to_numpy(np.int64), test["treatment"].to_numpy(np.int64)
    Ytr, Yte = train[outcome].to_numpy(np.float64), test[outcome].to_numpy(np.float64)
    diagnostics.validate(Ytr, Ttr, Xtr, None, f"hillstrom train[{outcome}]")
    tree = policy.fit_policy_tree(Ytr, Ttr, Xtr, None, cfg.causal, cfg.seed)
    arm_names = [ARM_NAMES[a] for a in sorted(ARM_NAMES)]
    _, _, forest = fit_arms("causal_forest_dml", Ytr, Ttr, Xtr, None, cfg.causal, cfg.seed)
    return {"tree": policy.tree_frame(tree, names, arm_names).assign(outcome=outcome),
            "value": policy.evaluate_policy(tree, Xte, Yte, Tte, arm_names).assign(outcome=outcome),
            "importance": policy.effect_modifier_importance(forest, Xte, names, int(cfg.causal.interpret.shap_units),
                                                            cfg.seed).assign(outcome=outcome)}
