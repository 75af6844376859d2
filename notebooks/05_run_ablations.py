# %% [markdown]
# # 05 · Run ablations — each ablation of the study is a sweep (conf/sweep/<name>.yaml) of small
# config deltas over the preset: this notebook runs (or resumes) the sweeps listed in
# `cfg.report.ablation_sweeps`, collects every run's metrics, and registers one table and one
# figure per sweep (mean and spread over seeds) for `python -m lib.report`.
# %% tags=["parameters"]
preset = "smoke"          # papermill parameters: defaults are the tiny CPU preset
overrides: list = []
run_dir = None
# %%
import dataclasses
import re
from pathlib import Path

from lib.config import compose
from lib.report.artefacts import record_metrics, register
from lib.sweep import collect, load_sweep, run_sweep
from lib.sweep.engine import error_line
from lib.sweep.summary import summarise

cfg = compose(preset, overrides)
run_dir = Path(run_dir or Path(cfg.paths.results) / "05_run_ablations")
print("sweeps:", list(cfg.report.ablation_sweeps))

# %% [markdown]
# Run every sweep. Finished runs (same config, code and data) are skipped; a failed run is
# reported with its traceback and does not stop the others.
# %%
# sweep runs read and write where this study does (e.g. a test's temporary data and results)
path_overrides = tuple(o for o in overrides if o.startswith("paths."))
results = {}
for name in cfg.report.ablation_sweeps:
    spec = load_sweep(name)
    spec = dataclasses.replace(spec, overrides=(*path_overrides, *spec.overrides))
    root = Path(cfg.paths.results) / "sweeps" / spec.name
    result = run_sweep(spec, preset=preset, jobs=cfg.report.sweep_jobs, root=root, progress=False)
    print(f"{spec.name}: {len(result.runs)} runs, {result.done} done, {result.failed} failed, {result.skipped} skipped")
    for record in result.failures.values():
        print(f"  FAILED {record['params']}: {error_line(record)}")
    results[spec.name] = (spec, collect(spec.name, preset, root=root))

# %% [markdown]
# One table and one figure per sweep: the chosen metrics against the varied setting.
# %%
metrics = {}
for name, (spec, table) in results.items():
    params = [p.lstrip("+~") for p in spec.grid] + [k.lstrip("+~") for run in spec.runs for k in run]
    params = list(dict.fromkeys(params + (["seed"] if spec.seeds else [])))
    summary = summarise(table, spec.summary, params)
    caption = " ".join(spec.summary.get("caption", spec.description).split())
    register(run_dir, f"ablation_{spec.name}", "table", summary, caption=caption)
    register(run_dir, f"ablation_{spec.name}_plot", "figure", summary, caption=caption,
             plot=f"lib.report.plots:{spec.summary.get('plot', 'ablation_curve')}")
    for row in summary.itertuples():
        series = re.sub(r"\s*\|\s*", ".", row.series).replace(" ", "")
        metrics[f"ablation.{spec.name}.{series}.{row.x}.mean"] = row.mean
    metrics[f"ablation.{spec.name}.runs_ok"] = int((table["status"] == "ok").sum())
    metrics[f"ablation.{spec.name}.runs_failed"] = int((table["status"] != "ok").sum())
    print(summary.to_string(index=False))
record_metrics(run_dir, metrics)
failed = {k: v for k, v in metrics.items() if k.endswith(".runs_failed") and v}
assert not failed, f"ablation runs failed (see status.json in results/{preset}/sweeps/): {failed}"
