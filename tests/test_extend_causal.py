"""The README recipes "Adding a nuisance model", "Adding an estimator", "Adding a representation",
followed on generated data: each new entry is YAML only (a Hydra override, or a file in a config
directory on ``hydra.searchpath``), and it must recover the planted effect or enter the grid.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from _data_fixtures import generated_sequences
from lib.causal.estimators import estimate
from lib.config import compose
from lib.errors import InputError
from lib.io import write_json, write_parquet
from lib.schema import ConfigError

FAST = ["causal.cv=2", "causal.n_jobs=1", "causal.refuters.enabled=false"]
FOREST = ("+causal.nuisances.forest={regression:{_target_:sklearn.ensemble.RandomForestRegressor,n_estimators:60,"
          "min_samples_leaf:20},classification:{_target_:sklearn.ensemble.RandomForestClassifier,n_estimators:60,"
          "min_samples_leaf:20}}")


def planted(n: int = 2000, seed: int = 0):
    """W0 raises treatment and outcome; tau = 1 + 0.5 X0, so the ATE of the sample is known."""
    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    T = (rng.random(n) < 1 / (1 + np.exp(-0.8 * W[:, 0]))).astype(int)
    tau = 1.0 + 0.5 * X[:, 0]
    Y = 2.0 * W[:, 0] + W[:, 1] + tau * T + rng.normal(size=n)
    return Y, T, X, W, float(tau.mean())


def test_a_nuisance_declared_by_an_override_is_seeded_and_adjusts_for_confounding():
    ccfg = compose("smoke", [*FAST, FOREST, "causal.nuisance_y=forest", "causal.nuisance_t=forest"]).causal
    Y, T, X, W, truth = planted()
    naive = estimate("naive", Y, T, X, W, ccfg, seed=4, check_overlap=False)
    assert naive.ci_low > truth + 0.5                        # the confounding the forests must remove
    est = estimate("linear_dml", Y, T, X, W, ccfg, seed=4, check_overlap=False)
    assert est.ci_low < truth < est.ci_high, (est.ate, est.ci_low, est.ci_high, truth)
    forest_y, forest_t = est.model.models_y[0][0], est.model.models_t[0][0]
    assert isinstance(forest_y, RandomForestRegressor) and isinstance(forest_t, RandomForestClassifier)
    assert (forest_y.random_state, forest_y.n_jobs, forest_y.n_estimators) == (4, 1, 60)   # seed and n_jobs injected


@pytest.mark.filterwarnings("ignore:The number of features in the final model:UserWarning")   # SparseLinearDML on 2 X
def test_an_econml_estimator_declared_in_a_file_or_an_override_recovers_the_planted_ate(tmp_path):
    conf = entry_file(tmp_path, "estimators", "sparse_dml",
                      "model: {_target_: econml.dml.SparseLinearDML, discrete_treatment: true, cv: '${causal.cv}'}\n"
                      "nuisances: {model_y: outcome, model_t: propensity}\n"
                      "interval: mean_pred\n")
    dr = ("+causal.estimators.linear_dr={model:{_target_:econml.dr.LinearDRLearner,cv:2},"
          "nuisances:{model_regression:outcome,model_propensity:propensity},interval:dr_pseudo}")
    ccfg = compose("smoke", [*FAST, f"hydra.searchpath=[file://{conf}]", dr,
                             "causal.semisynth.estimators=[naive,sparse_dml,linear_dr]"]).causal
    assert ccfg.estimators.sparse_dml.model.cv == 2           # the interpolation resolved in the new entry
    Y, T, X, W, truth = planted()
    for name, cls in (("sparse_dml", "SparseLinearDML"), ("linear_dr", "LinearDRLearner")):
        est = estimate(name, Y, T, X, W, ccfg, seed=0, check_overlap=False)
        assert type(est.model).__name__ == cls
        assert est.ci_low < truth < est.ci_high, (name, est.ate, est.ci_low, est.ci_high, truth)
        assert np.corrcoef(est.cate, 1.0 + 0.5 * X[:, 0])[0, 1] > 0.8
    again = estimate("linear_dr", Y, T, X, W, ccfg, seed=0, check_overlap=False)
    assert again.ate == est.ate and est.model._cached_values is None   # same seed, same numbers; cache freed


def entry_file(tmp_path, registry: str, name: str, text: str):
    """Write ``<tmp>/conf/causal/<registry>/<name>.yaml`` (a config folder for hydra.searchpath); return the folder."""
    conf = tmp_path / "conf"
    (conf / "causal" / registry).mkdir(parents=True)
    (conf / "causal" / registry / f"{name}.yaml").write_text(text)
    return conf


def _prepare(processed, dataset: str = "gen"):
    seqs, attrs = generated_sequences(n_users=1500, n_items=150, n_attrs=10, seed=2)
    folder = processed / "seq" / dataset
    write_parquet(seqs, folder / "sequences.parquet")
    write_parquet(attrs, folder / "item_attributes.parquet")
    write_json(folder / "meta.json", {"n_users": len(seqs), "n_items": 150, "n_attrs": 10,
                                      "n_interactions": int(seqs["items"].map(len).sum())})
    return seqs, attrs


def test_a_representation_declared_in_a_file_enters_the_semisynth_grid(tmp_path):
    from lib.causal.experiments import semisynth_grid
    from lib.causal.representations import build_W

    conf = entry_file(tmp_path, "representations", "history_svd",
                      "source: histories\n"
                      "features: ${causal.representations.sparse_history.features}\n"
                      "transform: {_target_: sklearn.decomposition.TruncatedSVD, n_components: 8}\n")
    seqs, attrs = _prepare(tmp_path / "processed")
    cfg = compose("smoke", [*FAST, f"hydra.searchpath=[file://{conf}]", f"paths.processed={tmp_path / 'processed'}",
                            f"paths.results={tmp_path / 'results'}",
                            f"paths.embeddings={tmp_path / 'none'}", "causal.semisynth.levels=[default]",
                            "causal.semisynth.n_seeds=1", "causal.semisynth.representations=[none,history_svd]",
                            "causal.semisynth.estimators=[naive,linear_dml]", "causal.overlap.max_seeds=1"])
    df = semisynth_grid(cfg, "gen")
    assert set(zip(df.representation, df.estimator)) == {("none", "naive"), ("none", "linear_dml"),
                                                          ("history_svd", "linear_dml")}
    row = df.set_index("representation").loc["history_svd"]
    unadjusted = df[(df.representation == "none") & (df.estimator == "linear_dml")].iloc[0]
    assert row.refused is None and np.isfinite([row.ci_low, row.ci_high, row.pehe]).all()
    # 8 SVD components of the history carry part of the confounding: the estimate moves towards the truth
    assert abs(row.ate - row.truth) < abs(unadjusted.ate - row.truth) - 0.05, (row.ate, unadjusted.ate, row.truth)

    # W is the sparse history reduced by the declared SVD, fitted on W alone with the run's seed
    hist = [list(h[:-2]) for h in seqs["items"]]
    units = SimpleNamespace(name="gen", unit_id=seqs.user_id.to_numpy())
    W = build_W(units, "history_svd", "gen", cfg, histories=hist, n_items=150, item_attributes=attrs)
    sparse_W = build_W(units, "sparse_history", "gen", cfg, histories=hist, n_items=150, item_attributes=attrs)
    np.testing.assert_array_equal(W, TruncatedSVD(8, random_state=cfg.seed).fit_transform(sparse_W))


def test_confounder_probes_of_the_grid_find_the_true_confounders(tmp_path):
    """First seed of the default setting: the true confounders hold themselves (R^2 near 1); unrelated
    noise columns hold nothing; 'none' is not probed."""
    from lib.causal.experiments import semisynth_grid

    _prepare(tmp_path / "processed")
    cfg = compose("smoke", [*FAST, f"paths.processed={tmp_path / 'processed'}", f"paths.results={tmp_path / 'results'}",
                            f"paths.embeddings={tmp_path / 'none'}", "causal.semisynth.levels=[default,transition]",
                            "causal.semisynth.n_seeds=2", "causal.semisynth.representations=[none,oracle,sparse_history]",
                            "causal.semisynth.estimators=[naive]", "causal.overlap.max_seeds=1"])
    probes = semisynth_grid(cfg, "gen").attrs["probes"]
    assert set(probes.seed) == {cfg.seed} and set(probes.representation) == {"oracle", "sparse_history"}
    oracle = probes[probes.representation == "oracle"].set_index("confounder")["r2"]
    assert sorted(oracle.index) == sorted(["share_group", "mean_log_pop", "recent_group", "last_log_pop", "transition"])
    assert (oracle > 0.95).all(), oracle
    # the probe can fail: a representation of pure noise holds none of the confounders
    from lib.causal.experiments import confounder_probes
    rng = np.random.default_rng(0)
    truth = pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"])
    noise = confounder_probes(SimpleNamespace(W_true=truth), {"oracle": rng.normal(size=(400, 5))},
                              compose("smoke", FAST).causal, seed=0)
    assert all(r["r2"] < 0.05 for r in noise), noise


def test_unknown_names_and_bad_entries_list_what_is_declared():
    with pytest.raises(ConfigError, match=r"holds 'linear_dlm'.*'linear_dml'.*\(the keys of causal.estimators\)"):
        compose("smoke", ["causal.semisynth.estimators=[naive,linear_dlm]"])
    with pytest.raises(ConfigError, match=r"holds 'seq_pretrianed'.*\(the keys of causal.representations\)"):
        compose("smoke", ["causal.hillstrom.representations=[none,seq_pretrianed]"])
    with pytest.raises(ConfigError, match=r"causal.nuisance_y='forest' is not a choice.*'lasso'.*'lgbm'"):
        compose("smoke", ["causal.nuisance_y=forest"])
    Y, T, X, W, _ = planted(400)
    ccfg = compose("smoke", FAST).causal
    with pytest.raises(InputError, match=r"names 'dml', which causal.estimators does not declare \(declared: "
                                         r"causal_forest_dml, .*linear_dml.*\)\. Fix: .*'Adding an estimator'"):
        estimate("dml", Y, T, X, W, ccfg, seed=0)
    with pytest.raises(InputError, match=r"names 'forest', which causal.nuisances does not declare \(declared: gbm, "
                                         r"lasso, lgbm, logistic, sparse_linear\)"):
        estimate("linear_dml", Y, T, X, W, ccfg, seed=0, nuisance=("forest", "forest"))
    typo = compose("smoke", [*FAST, "+causal.estimators.bad={model:{_target_:econml.dml.LinearDML},"
                                    "nuisances:{model_y:outcome,model_t:propensity},intervall:mean_pred}"]).causal
    with pytest.raises(InputError, match=r"causal.estimators.bad has unknown key\(s\) \['intervall'\]"):
        estimate("bad", Y, T, X, W, typo, seed=0)


def test_semisynth_grid_resumes_from_finished_blocks(tmp_path, monkeypatch):
    """A second run of the same inputs reads every (setting, seed) block back and fits nothing; new inputs refit."""
    import lib.causal.cells as cells
    import lib.causal.experiments as experiments

    _prepare(tmp_path / "processed")
    monkeypatch.setattr(cells, "code_version", lambda: "tree.test")   # a clean, committed tree
    base = [*FAST, f"paths.processed={tmp_path / 'processed'}", f"paths.results={tmp_path / 'results'}",
            f"paths.embeddings={tmp_path / 'none'}", "causal.semisynth.levels=[default]",
            "causal.semisynth.n_seeds=2", "causal.semisynth.representations=[none,sparse_history]",
            "causal.semisynth.estimators=[naive,linear_dml]", "causal.overlap.max_seeds=1"]
    first = experiments.semisynth_grid(compose("smoke", base), "gen")
    blocks = sorted((tmp_path / "results" / "03_estimate_effects.cells" / "semisynth" / "gen" / "default").iterdir())
    assert [p.name.split(".")[0] for p in blocks] == ["seed0", "seed1"]

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished block was fitted again")

    monkeypatch.setattr(experiments, "estimate", no_fit)
    again = experiments.semisynth_grid(compose("smoke", base), "gen")
    pd.testing.assert_frame_equal(first, again)
    # the compute of the grid survives the resume: the blocks read back carry the seconds the first run spent
    spent, resumed = first.attrs["block_seconds"], again.attrs["block_seconds"]
    assert spent["run"] > 0 and spent["read_back"] == 0 and resumed["read_back"] == spent["run"]
    pd.testing.assert_frame_equal(first.attrs["overlap"], again.attrs["overlap"])
    pd.testing.assert_frame_equal(first.attrs["probes"], again.attrs["probes"])
    with pytest.raises(AssertionError, match="fitted again"):   # another alpha is another input
        experiments.semisynth_grid(compose("smoke", [*base, "causal.alpha=0.1"]), "gen")
    monkeypatch.setattr(cells, "code_version", lambda: "tree.test+dirty.abc")   # uncommitted code: never cached
    with pytest.raises(AssertionError, match="fitted again"):
        experiments.semisynth_grid(compose("smoke", base), "gen")


def test_a_damaged_block_is_fitted_again_not_read(tmp_path, capsys):
    from lib.causal.cells import CellStore

    store = CellStore(tmp_path, "tree.test")
    key = store.key({"seed": 0})
    store.put("semisynth/gen/default/seed0", key, {"rows": [{"ate": 1.0}]})
    path = next((tmp_path / "semisynth" / "gen" / "default").iterdir())
    path.write_bytes(path.read_bytes()[:10])   # truncated
    assert store.get("semisynth/gen/default/seed0", key) is None
    assert f"unreadable block {path}" in capsys.readouterr().out



def test_hillstrom_loop_resumes_from_finished_blocks(tmp_path, monkeypatch):
    """Every finished (outcome, subsample seed) block of the Hillstrom loop is read back, not refitted."""
    import lib.causal.cells as cells
    import lib.causal.experiments as experiments
    from _data_fixtures import raw_hillstrom
    from lib.data.hillstrom import encode, stratified_split

    df = encode(raw_hillstrom(3000, seed=2))
    df["split"] = stratified_split(df, 0.3, 0)
    write_parquet(df, tmp_path / "processed" / "hillstrom" / "hillstrom.parquet")
    monkeypatch.setattr(cells, "code_version", lambda: "tree.test")
    base = [*FAST, f"paths.processed={tmp_path / 'processed'}", f"paths.results={tmp_path / 'results'}",
            f"paths.embeddings={tmp_path / 'none'}", "causal.hillstrom.n_seeds=2", "causal.overlap.max_seeds=1",
            "causal.hillstrom.representations=[none,raw]", "causal.hillstrom.estimators=[naive,linear_dml]",
            "simulate.hillstrom_obs.outcomes=[visit]"]
    first = experiments.hillstrom_rct_gap(compose("smoke", base))
    root = tmp_path / "results" / "03_estimate_effects.cells" / "hillstrom" / "visit"
    assert sorted(p.name.split(".")[0] for p in root.iterdir()) == ["seed0", "seed1"]
    assert set(first.seed) == {0, 1} and set(first.representation) == {"none", "raw"}

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished block was fitted again")

    monkeypatch.setattr(experiments, "estimate", no_fit)
    again = experiments.hillstrom_rct_gap(compose("smoke", base))
    pd.testing.assert_frame_equal(first, again)
    assert again.attrs["block_seconds"]["read_back"] == first.attrs["block_seconds"]["run"] > 0
    with pytest.raises(AssertionError, match="fitted again"):   # another subsample design is another input
        experiments.hillstrom_rct_gap(compose("smoke", [*base, "simulate.hillstrom_obs.strength=0.5"]))
