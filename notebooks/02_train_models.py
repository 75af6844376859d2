# %% [markdown]
# # 02 · Train models — next-item transformers on the sequence data sets, with baselines
# SASRec-style (causal) and BERT4Rec-style (masked) item-sequence transformers are trained with
# Lightning on leave-one-out splits and compared with popularity and item-kNN baselines under the
# literature's protocol: full ranking over all items, HR@{5,10,20} and NDCG@{5,10,20}, early
# stopping on validation NDCG@10, test reported once, on every data set of `trainer.datasets` (by default
# all of `data.sequences.datasets`; Amazon Beauty and Sports in the study presets). Training runs as a subprocess
# (`python -m lib.train`), the same command that runs under torchrun or SLURM on many GPUs.
# The last cells export user embeddings for the causal study.

# %% tags=["parameters"]
preset = "smoke"          # papermill parameters: defaults are the tiny CPU preset
overrides: list = []
run_dir = None

# %%
from pathlib import Path
from lib.config import compose, titles
cfg = compose(preset, overrides)
run_dir = Path(run_dir or Path(cfg.paths.results) / "02_train_models")

# %%
import pandas as pd
from lib.data.sequences import load_prepared
from lib.eval.baselines import ItemKNN, Popularity, evaluate
from lib.io import write_json
from lib.report.artefacts import record_metrics, register
from lib.train.plots import add_test_points, label, read_curves
from lib.train.run import PROTOCOLS, launch_many, mean_over_seeds, published_rows, results_row, training_seeds

ks = tuple(cfg.model.ks)
print("next-item data sets:", titles(cfg, cfg.trainer.datasets) or "none")
rows, runs, curves, jobs, n_users = [], {}, [], [], {}
for dataset in cfg.trainer.datasets:
    sequences, _, meta = load_prepared(cfg, dataset)
    n_users[dataset] = meta["n_users"]
    for name, baseline in (("popularity", Popularity()), ("itemknn", ItemKNN(cfg.model.knn_neighbours))):
        scores = evaluate(baseline, sequences, meta["n_items"], "test", ks)
        rows += [{**results_row(dataset, name, scores, ks, "", protocol), "source": "this study"}
                 for protocol in PROTOCOLS]
    jobs += [(dataset, arch, seed) for arch in cfg.model.compare
             if dataset in (cfg.model.compare_datasets or {}).get(arch, [dataset])
             for seed in training_seeds(cfg, arch)]

# %%
# `trainer.concurrent_runs` trainings side by side, the biggest data set first, so that its long runs
# start at once and the small ones fill the other core; tables keep the order of trainer.datasets.
# Each architecture trains with its seeds of model.compare_seeds; the first (`seed`) is plotted and exported.
order = sorted(jobs, key=lambda job: -n_users[job[0]])
trained = launch_many(preset, [([*overrides, f"trainer.dataset={dataset}", f"model.arch={arch}", f"seed={seed}"],
                                run_dir / "runs" / f"{dataset}__{arch}__seed{seed}.json")
                               for dataset, arch, seed in order],
                      cfg.trainer.concurrent_runs)
done = dict(zip(order, trained))
for dataset, arch, seed in jobs:
    metrics = runs[f"{dataset}/{arch}/seed{seed}"] = done[dataset, arch, seed]
    rows += [{**results_row(dataset, arch, metrics, ks, "test/", protocol), "source": "this study"}
             for protocol in PROTOCOLS]
    monitor = cfg.trainer.monitor
    if seed == cfg.seed:
        curves.append(add_test_points(read_curves(metrics["run_dir"], monitor, dataset=dataset, model=arch),
                                      metrics, monitor, dataset=dataset, model=arch))
    fit_s = metrics["fit_wall_s"]
    fitted = f"{fit_s:.0f} s of fitting" if fit_s is not None else "fitting time unknown"
    test = results_row(dataset, arch, metrics, ks, "test/", "history removed")
    print(f"{dataset} {arch} seed {seed}: {metrics['epochs']} epochs, {fitted}, this call {metrics['wall_s']:.0f} s, "
          f"best {metrics['best_ckpt']}; test, history removed:",
          ", ".join(f"{m} {test[m]:.4f}" for m in test if "@" in m))
write_json(run_dir / "nextitem_runs.json", runs)
columns = ["dataset", "model", "protocol", *(f"{m}@{k}" for k in ks for m in ("HR", "NDCG")), "source"]
# one row per seed -> their mean (baselines are deterministic: one run each)
ours = mean_over_seeds(pd.DataFrame(rows, columns=columns), n_users, **cfg.model.hr_interval)
results = pd.concat([ours, pd.DataFrame(published_rows(list(cfg.report.published_nextitem),
                                                      list(cfg.trainer.datasets), ks), columns=columns)],
                    ignore_index=True)[[*ours.columns]]
results["n_seeds"] = results["n_seeds"].astype("Int64")   # blank for published rows
ci_col, hr_k = ours.columns[-1], f"HR@{cfg.model.hr_interval.k}"
results[ci_col] = results[ci_col].fillna("")
print(results.round(4).to_string(index=False) if len(results) else
      "no next-item data sets (trainer.datasets is empty)")

# %%
for dataset, table in results.groupby("dataset", sort=False):
    published = ("" if (table["source"] == "this study").all() else
                 " Rows whose source is not this study are published results on the same S3-Rec files and "
                 "leave-one-out split (conf/report published_nextitem; blank = not reported), compare them with "
                 "the 'history removed' rows.")
    register(run_dir, f"nextitem_{dataset}", "table", table.reset_index(drop=True),
             caption=f"Next-item results on {titles(cfg, [dataset])} ({n_users[dataset]} users): leave-one-out test "
                     "item ranked against the whole catalogue (no sampled negatives, ties counted against the "
                     "model), under two protocols: 'all items' keeps the user's earlier items as candidates "
                     "(the study's headline); 'history removed' drops them, as the published evaluation code "
                     "does (a re-bought test item then counts as a miss). Transformers use the checkpoint with the "
                     f"best {label(cfg.trainer.monitor)}; baselines are fitted on each user's history before the "
                     "test item. Our rows are means over n_seeds training seeds (seed, seed + 1, ...; "
                     f"model.compare_seeds); the seed SE columns are the standard errors of the {hr_k} and NDCG@"
                     f"{cfg.model.hr_interval.k} means over those seeds on these users (blank for one seed), the "
                     f"spread to set against a published number on the same split. {ci_col}: Clopper-Pearson "
                     f"interval of our {hr_k} over the test users (one test item each; for several seeds the mean of "
                     "each seed's bounds), i.e. how far another draw of users could move it." + published)
record_metrics(run_dir, {f"nextitem.{r['dataset']}.{r['model']}.{PROTOCOLS[r['protocol']].replace('/', '.')}"
                         f"{m.lower()}": r[m] for _, r in ours.iterrows() for m in columns if "@" in m})

# %%
if curves:
    curves = pd.concat(curves, ignore_index=True)
    register(run_dir, "learning_curves", "figure", curves, plot="lib.train.plots:plot_learning_curves",
             caption="Training loss and validation loss / NDCG@10 (all items and history removed) per epoch "
                     f"for every data set and transformer (the run with seed {cfg.seed}), read from Lightning's CSV "
                     "logs (a resumed run continues its curve).")
    from lib.train.plots import compute_table, plot_learning_curves, plot_quality_vs_compute
    plot_learning_curves(curves);
    register(run_dir, "nextitem_compute", "table", compute_table(curves),
             caption=f"Quality against compute per data set and transformer (the run with seed {cfg.seed}): "
                     "epochs trained, fit wall clock per epoch on this machine (training + validation), best "
                     f"{label(cfg.trainer.monitor)}, the checkpoint selection metric, the epoch and wall-clock "
                     "hours at which it was reached, and the test NDCG@10 of that checkpoint under the same protocol.")
    register(run_dir, "quality_vs_compute", "figure", curves, plot="lib.train.plots:plot_quality_vs_compute",
             caption=f"The {label(cfg.trainer.monitor)}, full ranking, the checkpoint selection metric, "
                     "against training epochs and fit wall-clock hours; the star is the test NDCG@10, same "
                     "protocol, of the checkpoint chosen on validation. One run each (seed "
                     f"{cfg.seed}), so no error bars; a curve still rising at its right end was stopped by the "
                     "epoch budget, not by early stopping.")
    plot_quality_vs_compute(curves);

# %% [markdown]
# ## Embeddings for the causal study
# User vectors from every encoder variant (bag-of-items SVD, the pretrained and the causally fine-tuned
# sequence transformer, the text encoder) for the semi-synthetic benchmark users and the Hillstrom
# customers, then Hillstrom conversion prediction with raw features vs text embeddings.

# %%
from lib.embed.export import export_all
from lib.train.text import hillstrom_conversion

if cfg.model.text.predict.enabled:
    hillstrom_conversion(cfg, run_dir)   # fine-tunes the text encoder that export_all embeds with
export_all(cfg, run_dir)
