# %% [markdown]
# # 03 · Estimate effects — EconML over user representations, against planted truth and a real RCT
# Benchmark 1: a semi-synthetic treatment over real Beauty histories with known individual effects; for each
# confounding level, seed, representation of the history (none, oracle confounders, bag-of-items SVD,
# pretrained / fine-tuned sequence transformer, text encoder) and estimator (naive, OLS, LinearDML,
# CausalForestDML, DR learner, CausalBERT-style AIPW) we report bias, 95% CI coverage, PEHE, overlap and
# refuters. Benchmark 2: estimates on a confounded subsample of the Hillstrom e-mail RCT against the full
# randomised reference, for each outcome and both e-mail arms.

# %% tags=["parameters"]
preset = "smoke"          # papermill parameters: defaults are the tiny CPU preset
overrides: list = []
run_dir = None

# %%
from pathlib import Path
from lib.config import compose
cfg = compose(preset, overrides)
run_dir = Path(run_dir or Path(cfg.paths.results) / "03_estimate_effects")

# %%
import pandas as pd
from lib.causal import experiments, metrics
from lib.report.artefacts import record_metrics, register

# The causal graphs are declared once in lib/simulate and drawn by notebook 01 (figure `causal_graphs`);
# the oracle adjustment set used below is read from the same declaration.

# %%
frames = [experiments.semisynth_grid(cfg, ds) for ds in cfg.causal.semisynth.datasets]
# figure data travel in .attrs; take them out so the tables stay plain frames
scatter = pd.concat([f.attrs.pop("cate_scatter") for f in frames], ignore_index=True)
overlap = pd.concat([f.attrs.pop("overlap") for f in frames], ignore_index=True)
grid = pd.concat(frames, ignore_index=True)
summary = metrics.summarise(grid, ["benchmark", "dataset", "level", "representation", "estimator"])
cols = ["benchmark", "representation", "estimator", "n_seeds", "truth", "bias", "abs_bias", "rel_bias", "coverage",
        "ci_width", "pehe", "cate_corr", "overlap_share", "fit_seconds"]
print(summary[cols].round(3).to_string(index=False))
refuters = grid.groupby(["benchmark", "representation", "estimator"])[[c for c in grid if c.endswith("_passed")]].mean()
print(refuters.round(2).to_string())

# %%
register(run_dir, "semisynth_effects", "table", summary[cols],
         caption="ATE accuracy on the semi-synthetic benchmark over seeds: |mean bias|, relative bias, 95% CI coverage, "
                 "PEHE and CATE correlation per representation of the history and estimator. Naive is the difference "
                 "in means; the oracle uses the true confounders.")
register(run_dir, "semisynth_refuters", "table", refuters.reset_index(),
         caption="Share of seeds where each refuter passed: placebo treatment (CI covers 0), random common cause "
                 "(ATE moves less than one SE), data subset (80% refits within one SE).")
register(run_dir, "semisynth_bias_vs_confounding", "figure", summary,
         caption="|Bias| of the ATE against confounding strength per representation; one panel per estimator.",
         plot="lib.causal.plots:bias_vs_confounding")
register(run_dir, "semisynth_coverage", "figure", summary[summary["level"] == cfg.simulate.semisynth.level],
         caption="95% CI coverage over seeds at the default confounding level; dashed line at the nominal 95%.",
         plot="lib.causal.plots:coverage")
register(run_dir, "semisynth_cate_scatter", "figure", scatter,
         caption="Estimated CATE against the planted individual effect (300 users, first seed, default level).",
         plot="lib.causal.plots:cate_scatter")
register(run_dir, "semisynth_overlap", "figure", overlap,
         caption="Cross-fitted propensity of treated and control users per representation; dotted lines at 0.05 and 0.95.",
         plot="lib.causal.plots:overlap_histograms")
record_metrics(run_dir, {f"ate.{r.benchmark}.{r.representation}.{r.estimator}.{m}": getattr(r, m)
                         for r in summary.itertuples() for m in ("abs_bias", "rel_bias", "coverage")})

# %%
gap = experiments.hillstrom_rct_gap(cfg)
gap_summary = gap.groupby(["outcome", "arm_name", "representation", "estimator"], sort=False).agg(
    ate=("ate", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), rct_ate=("rct_ate", "first"),
    abs_error=("abs_error", "mean"), covers_rct=("covers_rct", "mean"), poor_overlap=("poor_overlap", "mean"),
    placebo_passed=("placebo_treatment_passed", "mean")).reset_index()
print(gap_summary.round(4).to_string(index=False))
register(run_dir, "hillstrom_rct_gap", "table", gap_summary,
         caption="Estimates on the confounded Hillstrom subsample against the full-RCT ATE for each outcome and e-mail "
                 "arm: mean estimate and CI over subsample seeds, absolute error, and the share of CIs covering the "
                 "RCT point estimate.")
register(run_dir, "hillstrom_rct_gap_plot", "figure", gap,
         caption="Confounded-subsample estimates (95% CI) against the randomised reference (green band).",
         plot="lib.causal.plots:rct_gap")
err = gap.groupby(["outcome", "representation", "estimator"])["abs_error"].mean()
record_metrics(run_dir, {(f"rct_gap.hillstrom.{o}.naive.abs_error" if e == "naive" else
                          f"rct_gap.hillstrom.{o}.{r}.{e}.abs_error"): v for (o, r, e), v in err.items()})
