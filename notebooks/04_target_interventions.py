# %% [markdown]
# # 04 · Target interventions — who to e-mail, by how much it helps, and why
# On the randomised Hillstrom experiment (every prepared customer: all 64,000 outside the smoke preset; no embeddings
# here), CATE models (LinearDML, CausalForestDML, DR learner) and standard meta-learners (T-, X-learner) are fitted on the train split and judged
# on the held-out test split, per outcome and e-mail arm, by the Qini coefficient, AUUC and uplift@k
# (scikit-uplift). "random" is a permutation null: the same scores for many random scorings of the test customers.
# Each model gets a p-value against that null and a paired bootstrap CI of its Qini minus a random scoring's. The
# IPW value of e-mailing the top k% by predicted uplift follows; an EconML DR policy tree gives a readable targeting
# rule with its value against e-mailing everyone or no one, and SHAP values of a causal forest name the effect
# modifiers.

# %% tags=["parameters"]
preset = "smoke"          # papermill parameters: defaults are the tiny CPU preset
overrides: list = []
run_dir = None

# %%
from pathlib import Path
from lib.config import compose
cfg = compose(preset, overrides)
run_dir = Path(run_dir or Path(cfg.paths.results) / "04_target_interventions")

# %%
from lib.causal import targeting
from lib.report.artefacts import record_metrics, register
if cfg.causal.uplift.enabled:
    ucfg = cfg.causal.uplift
    up = targeting.hillstrom_uplift(cfg)
    curves, policy_k = up.attrs.pop("curves"), up.attrs.pop("policy")
    show = ["outcome", "arm_name", "model", "qini", "qini_ci_low", "qini_ci_high", "qini_p", "qini_minus_random_ci_low",
            "qini_minus_random_ci_high", "uplift_at_k"]
    print(up[show].round(4).to_string(index=False))
    print(policy_k.pivot_table(index=["outcome", "arm", "model"], columns="k", values="value").round(4).to_string())
    published = targeting.published_comparison(up, cfg)
    print(published.round(4).to_string(index=False))

# %%
if cfg.causal.uplift.enabled:
    level = f"{1 - cfg.causal.alpha:.0%}"
    k_share = f"{ucfg.at_k:.0%}"
    register(run_dir, "hillstrom_uplift", "table", up,
             caption=f"Targeting by each CATE model on the Hillstrom test split (n_test customers of the arm and control), per "
                     f"outcome and e-mail arm: Qini coefficient and AUUC (normalised: diagonal = 0, perfect = 1) and "
                     f"uplift@{k_share} (scikit-uplift, strategy '{ucfg.at_k_strategy}'), each with a {level} percentile "
                     f"bootstrap CI over {ucfg.n_boot} resamples; qini_p / auuc_p: permutation p-value against "
                     f"{ucfg.n_null} random scorings of the same customers; qini_minus_random: Qini minus the null mean, "
                     f"with the {level} CI of model minus a random scoring on the same bootstrap resamples. The 'random' "
                     f"row is the null: its mean, and its {level} quantiles in the CI columns.")
    register(run_dir, "hillstrom_uplift_published", "table", published,
             caption=f"uplift@{k_share} on {ucfg.published.outcome} / {published['arm_name'].iloc[0]}: the published "
                     f"class-transformation figure ({ucfg.published.source}; split in the table) next to each model here "
                     f"({level} bootstrap CI; 'random': null mean and quantiles). The splits differ, so the numbers are "
                     f"set side by side, not tested against each other.")
    register(run_dir, "hillstrom_policy_topk", "table", policy_k,
             caption="IPW value (mean outcome per customer) of e-mailing the top k share by predicted uplift on the test "
                     "split; k = 0 is e-mailing no one and k = 1 everyone; 'random' is the expected value of e-mailing a "
                     "random k share.")
    register(run_dir, "hillstrom_qini_curves", "figure", curves,
             caption=f"Qini curves of each CATE model on the test split, per outcome and arm; the dotted line and the "
                     f"shaded band are the mean and the {level} pointwise quantiles of {ucfg.n_null} random scorings.",
             plot="lib.causal.plots:qini_curves")
    record_metrics(run_dir, targeting.uplift_metrics(up))

# %%
if cfg.causal.policy.enabled:
    pol = targeting.hillstrom_policy(cfg)
    print(pol["value"].round(4).to_string(index=False))
    print(pol["importance"].head(10).round(4).to_string(index=False))
    register(run_dir, "policy_tree", "figure", pol["tree"],
             caption="DR policy tree learned on the train split: which e-mail (or none) each customer segment should get.",
             plot="lib.causal.plots:policy_tree")
    register(run_dir, "policy_value", "table", pol["value"],
             caption="Value of the policy tree on the test split (IPW with the RCT's arm shares) against e-mailing no one "
                     "and e-mailing everyone with each arm.")
    register(run_dir, "effect_modifiers", "figure", pol["importance"],
             caption="Top effect modifiers: mean |SHAP| of the causal-forest CATE per covariate and e-mail arm.",
             plot="lib.causal.plots:effect_modifier_importance")
