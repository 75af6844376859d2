# %% [markdown]
# # 03 · Estimate effects — EconML over user representations, against planted truth and a real RCT
# Benchmark 1: a semi-synthetic treatment over real purchase histories with known individual effects. Three
# confounding channels (order-free, recent items, item-group transitions) are switched on one at a time and then
# together; for each setting, seed, representation of the history (none, true confounders, sparse history,
# hand features with GBM, bag-of-items SVD, pretrained and cross-fitted fine-tuned sequence transformer, text
# encoder) and estimator (naive, OLS, LinearDML, CausalForestDML, DR learner, CausalBERT-style AIPW) we report
# bias with its Monte-Carlo error, 95% CI coverage with its binomial interval, PEHE, overlap and refuters.
# Benchmark 2: estimates on confounded subsamples of the Hillstrom e-mail RCT against the full randomised
# reference, for each outcome and both e-mail arms, over subsample seeds.

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
from lib.eval.metrics import binomial_ci
from lib.report.artefacts import record_metrics, register

ccfg, fcfg = cfg.causal, cfg.causal.findings
n_min = int(ccfg.min_seeds_headline)
# The causal graphs are declared once in lib/simulate and drawn by notebook 01 (figure `causal_graphs`);
# the oracle adjustment set used below is read from the same declaration.

# %% [markdown]
# ## Benchmark 1: semi-synthetic treatment over real histories

# %%
if ccfg.semisynth.enabled:
    frames = [experiments.semisynth_grid(cfg, ds) for ds in ccfg.semisynth.datasets]
    # figure data travel in .attrs; take them out so the tables stay plain frames
    scatter = pd.concat([f.attrs.pop("cate_scatter") for f in frames], ignore_index=True)
    overlap = pd.concat([f.attrs.pop("overlap") for f in frames], ignore_index=True)
    probes = pd.concat([f.attrs.pop("probes") for f in frames], ignore_index=True)
    block_seconds = [f.attrs.pop("block_seconds") for f in frames]
    grid = pd.concat(frames, ignore_index=True)
    summary = metrics.summarise(grid, ["benchmark", "dataset", "level", "representation", "estimator"],
                                min_seeds=n_min, alpha=float(ccfg.alpha))
    cols = ["dataset", "level", "representation", "estimator", "n_seeds", "truth", "bias", "bias_mcse", "abs_bias",
            "rel_bias", "coverage", "coverage_ci_low", "coverage_ci_high", "ci_width", "pehe", "cate_corr",
            "overlap_share", "fit_seconds", "headline"]
    print(summary[cols].round(3).to_string(index=False))
    refuters = grid.groupby(["dataset", "level", "representation", "estimator"], sort=False)[
        [c for c in grid if c.endswith("_passed")]].agg(["mean", "count"])
    refuters.columns = [f"{a}_{'share' if b == 'mean' else 'n'}" for a, b in refuters.columns]
    refused = grid[grid["refused"].notna()] if "refused" in grid else grid.iloc[:0]
    findings = metrics.semisynth_findings(summary, cfg.simulate.semisynth.level, list(fcfg.learned),
                                          list(fcfg.transformers), fcfg.baseline, float(fcfg.bias_share),
                                          tuple(fcfg.coverage_band))
    print(refuters.round(2).to_string())
    print(findings.to_string(index=False))

# %%
if ccfg.semisynth.enabled:
    names = ", ".join(str(d).capitalize() for d in ccfg.semisynth.datasets)
    register(run_dir, "semisynth_findings", "table", findings,
             caption=f"What the semi-synthetic table says at the default setting ({names}): the best learned "
                     f"representation (no oracle; seq_finetuned cross-fitted) against the goal, and the best "
                     f"transformer against the sparse-history baseline, with 95% Monte-Carlo intervals.")
    register(run_dir, "semisynth_effects", "table", summary[cols],
             caption=f"ATE accuracy on the semi-synthetic benchmark ({names}) per setting, representation and "
                     f"estimator over n_seeds simulation seeds: mean bias with its Monte-Carlo standard error "
                     f"(bias_mcse), 95% CI coverage with its Clopper-Pearson 95% interval, mean CI width, PEHE and "
                     f"CATE correlation. headline = False marks cells with fewer than {n_min} seeds, which no claim "
                     f"rests on.")
    register(run_dir, "semisynth_refuters", "table", refuters.reset_index(),
             caption="Share of refuted seeds where each refuter passed (with the number of refuted seeds): placebo "
                     "treatment (CI covers 0; a correct estimator fails 5% of draws), random common cause (ATE moves "
                     "less than one SE), data subset (80% refit within one SE; fails about 5% of draws).")
    if len(refused):
        register(run_dir, "semisynth_refused", "table", refused[["dataset", "level", "seed", "representation",
                                                                 "estimator", "refused"]],
                 caption="Estimates the overlap diagnostic refused (positivity clearly fails for that representation).")
    register(run_dir, "semisynth_bias_by_setting", "figure", summary,
             caption="Mean bias of the ATE (±1.96 Monte-Carlo SE over seeds) per confounding setting, representation "
                     "and estimator; 0 is unbiased.",
             plot="lib.causal.plots:bias_by_setting")
    register(run_dir, "semisynth_coverage", "figure", summary[summary["level"] == cfg.simulate.semisynth.level],
             caption=f"95% CI coverage over seeds at the default setting with Clopper-Pearson 95% intervals; dashed "
                     f"line at the nominal 95%; hollow markers: fewer than {n_min} seeds.",
             plot="lib.causal.plots:coverage")
    register(run_dir, "semisynth_cate_scatter", "figure", scatter,
             caption="Estimated CATE against the planted individual effect (300 users, first seed, default setting).",
             plot="lib.causal.plots:cate_scatter")
    register(run_dir, "semisynth_overlap", "figure", overlap,
             caption=f"Cross-fitted propensity ({ccfg.overlap.model}) of treated and control users per "
                     f"representation, first seed, default setting; dotted lines at 0.05 and 0.95.",
             plot="lib.causal.plots:overlap_histograms")
    if len(probes):
        register(run_dir, "semisynth_probes", "table", probes,
                 caption="How much of each true confounder a representation holds: out-of-fold R² of the confounder "
                         "predicted from the representation by that representation's own outcome model (nuisance), "
                         "first seed of the default setting (seq_finetuned: the cross-fitted vectors of that seed). "
                         "One seed, so no interval: the other representations do not depend on the seed.",
                 )
        register(run_dir, "semisynth_probe_map", "figure", probes,
                 caption="Out-of-fold R² of each true confounder from each representation (its own outcome model; "
                         "first seed, default setting): which kinds of confounding a representation could adjust for.",
                 plot="lib.causal.plots:confounder_probes")
    record_metrics(run_dir, {f"ate.{r.benchmark}.{r.representation}.{r.estimator}.{m}": getattr(r, m)
                             for r in summary.itertuples()
                             for m in ("abs_bias", "rel_bias", "bias_mcse", "coverage", "coverage_ci_low",
                                       "coverage_ci_high", "n_seeds")})

# %% [markdown]
# ## Benchmark 2: confounded Hillstrom subsamples against the randomised experiment

# %%
if ccfg.hillstrom.enabled:
    gap = experiments.hillstrom_rct_gap(cfg)
    block_seconds = [*(block_seconds if ccfg.semisynth.enabled else []), gap.attrs.pop("block_seconds")]
    keys = ["outcome", "arm", "arm_name", "representation", "estimator"]
    gap_summary = gap.groupby(keys, sort=False).agg(
        n_seeds=("seed", "nunique"), n_units=("n_units", "mean"), ate=("ate", "mean"), ate_sd=("ate", "std"),
        rct_ate=("rct_ate", "first"), rct_se=("rct_se", "first"), rct_n=("rct_n", "first"),
        abs_error=("abs_error", "mean"), naive_error=("naive_error", "mean"), covers_rct=("covers_rct", "mean"),
        covers_n=("covers_rct", "sum"), poor_overlap=("poor_overlap", "mean")).reset_index()
    gap_summary["abs_error_mcse"] = gap.groupby(keys, sort=False)["abs_error"].std().to_numpy() / \
        gap_summary["n_seeds"].pow(0.5)
    cis = [binomial_ci(int(k), int(n), float(ccfg.alpha)) for k, n in zip(gap_summary["covers_n"],
                                                                          gap_summary["n_seeds"])]
    gap_summary["covers_ci_low"], gap_summary["covers_ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    gap_summary = gap_summary.drop(columns="covers_n")
    hill_findings = metrics.hillstrom_findings(gap_summary, fcfg.hillstrom_reference, fcfg.hillstrom_unadjusted,
                                               float(fcfg.hillstrom_error_share))
    print(gap_summary.round(4).to_string(index=False))
    print(hill_findings.to_string(index=False))

# %%
if ccfg.hillstrom.enabled:
    ref_n = int(gap_summary["rct_n"].max())
    register(run_dir, "hillstrom_findings", "table", hill_findings,
             caption=f"What the Hillstrom comparison says: adjustment through the true covariates "
                     f"({fcfg.hillstrom_reference}) against the goal, and no adjustment ({fcfg.hillstrom_unadjusted}).")
    register(run_dir, "hillstrom_rct_gap", "table", gap_summary,
             caption=f"Estimates on confounded Hillstrom subsamples against the randomised reference (difference in "
                     f"means over all customers of the two arms compared, up to {ref_n}), per outcome and e-mail arm, "
                     f"over n_seeds subsample seeds: mean estimate and its sd over seeds, mean |error| with its "
                     f"Monte-Carlo SE, the naive error, and covers_rct: the share of seeds whose estimate is consistent "
                     f"with the reference by a z-test using both standard errors (Clopper-Pearson 95% interval). The "
                     f"selection covariates enter only through the representation W.")
    register(run_dir, "hillstrom_rct_gap_plot", "figure", gap,
             caption="Mean confounded-subsample estimate (±1.96 Monte-Carlo SE over seeds) against the randomised "
                     "reference (green band: its 95% CI).",
             plot="lib.causal.plots:rct_gap")
    err = gap.groupby(["outcome", "arm_name", "representation", "estimator"])["abs_error"].mean()
    keyed = {f"rct_gap.hillstrom.{o}.{a}.{r}.{e}.abs_error": v for (o, a, r, e), v in err.items()}
    # the earlier keys (arm 1, Mens E-Mail) stay available
    keyed.update({(f"rct_gap.hillstrom.{o}.naive.abs_error" if e == "naive" else
                   f"rct_gap.hillstrom.{o}.{r}.{e}.abs_error"): v
                  for (o, a, r, e), v in err.items() if a == experiments.ARM_NAMES[1]})
    record_metrics(run_dir, keyed)

# %% [markdown]
# ## Compute
# Both grids resume from finished blocks (`results/<preset>/03_estimate_effects.cells/`), so this run's wall
# time can be a fraction of the grid's: the seconds of every block, spent in this run or in earlier interrupted
# runs of the same inputs, go into `metrics.json` and RESULTS.md.

# %%
if ccfg.semisynth.enabled or ccfg.hillstrom.enabled:
    total = sum(b["run"] + b["read_back"] for b in block_seconds)
    resumed = sum(b["read_back"] for b in block_seconds)
    print(f"grid blocks: {total:.0f} s in all, {resumed:.0f} s of it spent by earlier runs and read back")
    record_metrics(run_dir, {"walltime.03_estimate_effects_blocks_s": total,
                             "walltime.03_estimate_effects_blocks_resumed_s": resumed})
