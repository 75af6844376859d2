"""The targeting study of notebook 04 on the randomised Hillstrom experiment.

* :func:`hillstrom_uplift`: CATE models fitted on the RCT train split; on the test split, per
  outcome and e-mail arm, Qini / AUUC / uplift@k with bootstrap CIs, permutation p-values
  against many random scorings, the paired bootstrap CI of model minus random, and policy values.
  :func:`uplift_metrics` turns the table into ``metrics.json`` keys and
  :func:`published_comparison` sets uplift@k next to the published figure.
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

ARMS = (1, 2)   # the e-mail arms, each scored against no e-mail


def _uplift_split(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    df = load_prepared(cfg)
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    cap = cfg.causal.uplift.max_train
    if cap and len(train) > int(cap):
        train = train.sample(n=int(cap), random_state=cfg.seed).sort_index()
    return train, test, list(design_matrix(df.head(1)).columns)


def hillstrom_uplift(cfg: DictConfig) -> pd.DataFrame:
    """Targeting quality of each CATE model per outcome and e-mail arm on the RCT test split.

    Models are fitted on the train split (all arms at once) and score the test customers of
    each contrast arm vs no e-mail: arm 1 = ``mens_email``, arm 2 = ``womens_email``
    (:data:`lib.causal.experiments.ARM_NAMES`, column ``arm_name``). Columns are those of
    :func:`lib.causal.uplift.evaluate`: Qini / AUUC / uplift@k with bootstrap CIs, the
    permutation p-values against ``causal.uplift.n_null`` random scorings, the paired bootstrap
    CI of model minus random; the ``random`` row holds the null's mean and quantiles.

    ``df.attrs["curves"]`` holds the Qini curves (``random``: null mean with its band in
    ``qini_low`` / ``qini_high``), ``df.attrs["policy"]`` the IPW value of e-mailing the top k%
    by predicted uplift (``random``: the expected value of a random top k%).
    """
    ucfg = cfg.causal.uplift
    alpha = float(cfg.causal.alpha)
    train, test, _ = _uplift_split(cfg)
    Xtr, Xte = design_matrix(train).to_numpy(), design_matrix(test).to_numpy()
    Ttr, Tte = train["treatment"].to_numpy(np.int64), test["treatment"].to_numpy(np.int64)
    frames, curves, policies = [], [], []
    for outcome in ucfg.outcomes:
        Ytr, Yte = train[outcome].to_numpy(np.float64), test[outcome].to_numpy()
        diagnostics.validate(Ytr, Ttr, Xtr, None, f"hillstrom train[{outcome}]")
        scores_by_model = {}
        for model in ucfg.models:
            _, _, est = fit_arms(model, Ytr, Ttr, Xtr, None, cfg.causal, cfg.seed)
            scores_by_model[model] = {a: np.asarray(est.effect(Xte, T0=0, T1=a)).ravel() for a in ARMS}
        for arm in ARMS:
            m = (Tte == 0) | (Tte == arm)
            y, t = Yte[m].astype(int), (Tte[m] == arm).astype(int)
            scorings = {model: per_arm[arm][m] for model, per_arm in scores_by_model.items()}
            table, band = uplift.evaluate(y, t, scorings, int(ucfg.n_null), int(ucfg.n_boot), cfg.seed, alpha,
                                          float(ucfg.at_k), str(ucfg.at_k_strategy), int(ucfg.curve_points))
            frames.append(table.assign(outcome=outcome, arm=arm, arm_name=ARM_NAMES[arm], n_test=int(m.sum()),
                                       n_train=len(Ytr)))
            p_treat = float(t.mean())
            for model, s in scorings.items():
                curves.append(uplift.curve(y, t, s, model, int(ucfg.curve_points)).assign(outcome=outcome, arm=arm,
                                                                                           arm_name=ARM_NAMES[arm]))
                pv = uplift.policy_values(y, t, s, list(ucfg.top_k), p_treat=p_treat)
                policies.append(pv.assign(outcome=outcome, arm=arm, model=model))
            curves.append(band.assign(outcome=outcome, arm=arm, arm_name=ARM_NAMES[arm]))
            pv = uplift.random_policy_values(y, t, list(ucfg.top_k), p_treat)
            policies.append(pv.assign(outcome=outcome, arm=arm, model="random"))
    df = pd.concat(frames, ignore_index=True)
    lead = ["outcome", "arm", "arm_name", "model", "n_test", "n_train"]
    df = df[lead + [c for c in df.columns if c not in lead]]
    df.attrs["curves"] = pd.concat(curves, ignore_index=True)
    df.attrs["policy"] = pd.concat(policies, ignore_index=True)
    return df


def uplift_metrics(df: pd.DataFrame) -> dict[str, float]:
    """``metrics.json`` keys of the uplift table (a frame from :func:`hillstrom_uplift`).

    ``uplift.hillstrom.<outcome>.<arm_name>.<model>.qini`` / ``.auuc`` / ``.qini_p`` /
    ``.qini_minus_random_ci_low`` / ``.qini_minus_random_ci_high`` for both arms (``arm_name``
    ``mens_email`` or ``womens_email``; ``random`` has qini / auuc, the null mean, only), plus the
    earlier ``uplift.hillstrom.<outcome>.<model>.qini`` / ``.auuc`` of arm 1 (Mens E-Mail).

    Examples
    --------
    >>> row = dict(outcome="visit", model="m", qini=0.1, auuc=0.2, qini_p=0.01, qini_minus_random_ci_low=0.02,
    ...            qini_minus_random_ci_high=0.2)
    >>> df = pd.DataFrame([{**row, "arm": 1, "arm_name": "mens_email"}, {**row, "arm": 2, "arm_name": "womens_email"}])
    >>> sorted(uplift_metrics(df))[:3]
    ['uplift.hillstrom.visit.m.auuc', 'uplift.hillstrom.visit.m.qini', 'uplift.hillstrom.visit.mens_email.m.auuc']
    """
    out: dict[str, float] = {}
    keys = ("qini", "auuc", "qini_p", "qini_minus_random_ci_low", "qini_minus_random_ci_high")
    for r in df.to_dict("records"):
        for k in keys:
            if pd.notna(r.get(k)):
                out[f"uplift.hillstrom.{r['outcome']}.{r['arm_name']}.{r['model']}.{k}"] = float(r[k])
        if r["arm"] == 1:   # the keys before both arms were reported: the Mens E-Mail contrast
            out.update({f"uplift.hillstrom.{r['outcome']}.{r['model']}.{k}": float(r[k]) for k in ("qini", "auuc")})
    return out


def published_comparison(df: pd.DataFrame, cfg: DictConfig) -> pd.DataFrame:
    """Our uplift@k next to the published figure of ``causal.uplift.published`` (same outcome and arm).

    One row for the published number (its source is ``causal.uplift.published.source``) and one per model of ``df``
    (:func:`hillstrom_uplift`) on that outcome and arm, with the bootstrap CI (``random``: the
    null's mean and quantiles).
    """
    pub = cfg.causal.uplift.published
    ours = df[(df["outcome"] == pub.outcome) & (df["arm"] == int(pub.arm))]
    rows = [dict(model=str(pub.model), source="published", split=str(pub.split), uplift_at_k=float(pub.uplift_at_k),
                 uplift_at_k_ci_low=np.nan, uplift_at_k_ci_high=np.nan)]
    rows += [dict(model=r["model"], source="this study", split=f"{int(r['n_train'])} train / {int(r['n_test'])} test",
                  uplift_at_k=r["uplift_at_k"], uplift_at_k_ci_low=r["uplift_at_k_ci_low"],
                  uplift_at_k_ci_high=r["uplift_at_k_ci_high"]) for r in ours.to_dict("records")]
    return pd.DataFrame(rows).assign(outcome=str(pub.outcome), arm_name=ARM_NAMES[int(pub.arm)])


def hillstrom_policy(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Policy tree (train split) and its value on the test split; SHAP effect modifiers of a CATE model.

    The CATE model is the entry ``causal.interpret.estimator`` (a causal forest by default).

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
    _, _, cate_model = fit_arms(str(cfg.causal.interpret.estimator), Ytr, Ttr, Xtr, None, cfg.causal, cfg.seed)
    return {"tree": policy.tree_frame(tree, names, arm_names).assign(outcome=outcome),
            "value": policy.evaluate_policy(tree, Xte, Yte, Tte, arm_names).assign(outcome=outcome),
            "importance": policy.effect_modifier_importance(cate_model, Xte, names, int(cfg.causal.interpret.shap_units),
                                                            cfg.seed).assign(outcome=outcome)}
