# %% [markdown]
# # 04 · Target interventions — who to e-mail, by how much it helps, and why
# On the randomised Hillstrom experiment, CATE models (LinearDML, CausalForestDML, DR learner) and standard
# meta-learners (T-, X-learner) are fitted on the train split and judged on the held-out test split by the
# Qini coefficient and AUUC (scikit-uplift, bootstrap 95% CIs) against random targeting, and by the IPW value
# of e-mailing the top k% by predicted uplift. An EconML DR policy tree gives a readable targeting rule with
# its value against e-mailing everyone or no one, and SHAP values of a causal forest name the effect modifiers.

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

up = targeting.hillstrom_uplift(cfg)
curves, policy_k = up.attrs.pop("curves"), up.attrs.pop("policy")
print(up.round(4).to_string(index=False))
print(policy_k.pivot_table(index=["outcome", "arm", "model"], columns="k", values="value").round(4).to_string())

# %%
register(run_dir, "hillstrom_uplift", "table", up,
         caption="Qini coefficient and AUUC (normalised: random = 0, perfect = 1) of targeting by each CATE model on the "
                 "Hillstrom test split, per outcome and e-mail arm, with bootstrap 95% CIs; 'random' is random targeting.")
register(run_dir, "hillstrom_policy_topk", "table", policy_k,
         caption="IPW value (mean outcome per customer) of e-mailing the top k share by predicted uplift on the test "
                 "split; k = 0 is e-mailing no one and k = 1 everyone.")
register(run_dir, "hillstrom_qini_curves", "figure", curves,
         caption="Qini curves of each CATE model on the test split; the dotted line is random targeting.",
         plot="lib.causal.plots:qini_curves")
agg = up[up["arm"] == 1].set_index(["outcome", "model"])   # the reported key is the Mens E-Mail contrast
record_metrics(run_dir, {f"uplift.hillstrom.{o}.{m}.{k}": agg.loc[(o, m), k] for o, m in agg.index for k in ("qini", "auuc")})

# %%
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
