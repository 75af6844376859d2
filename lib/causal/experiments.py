"""The study loops of notebook 03; each returns a tidy DataFrame.

* :func:`semisynth_grid`: settings x seeds x representations x estimators on the
  semi-synthetic benchmark over real histories, scored against the planted truth.
* :func:`hillstrom_rct_gap`: estimates on confounded Hillstrom subsamples against the
  full-RCT reference, per outcome and e-mail arm, over subsample seeds.

The uplift and policy study of notebook 04 lives in :mod:`lib.causal.targeting`.

Both loops resume from finished blocks (:mod:`lib.causal.cells`). Each block keeps the wall
seconds it took, and ``df.attrs["block_seconds"]`` says how many of the loop's seconds this run
spent (``run``) and how many earlier, interrupted runs had spent on the blocks read back
(``read_back``), so the compute of a grid split over several runs is still known.

Representations whose embedding file is missing are skipped with a printed note; an
estimate refused by the overlap diagnostic is recorded (``refused``) with NaN numbers. The
extra frames behind figures (CATE scatter, overlap histograms, the confounder probes of
:func:`confounder_probes` on the first seed of the default setting) are attached as ``df.attrs``.

No representation sees the outcome of the units it adjusts: a ``crossfit`` representation
(``seq_finetuned``) is fitted on K-1 folds of each simulation seed and setting and encodes the
held-out fold (:func:`lib.train.causal.crossfit_finetuned_vectors`); every other representation
is built without T or Y. Representations and estimators are names of ``causal.representations``
and ``causal.estimators``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from lib.causal import diagnostics, metrics
from lib.causal.cells import Blocks
from lib.causal.estimators import estimate, needs_dense_W, uses_W
from lib.causal.representations import (RepresentationUnavailable, build_W, finish_W, nuisance_kinds, on_histories,
                                        source)
from lib.errors import InputError

ARM_NAMES = {0: "no_email", 1: "mens_email", 2: "womens_email"}


def _W_cache(data: Any, names: list[str], population: str, cfg: DictConfig, **kw: Any) -> dict[str, Any]:
    """``W`` of every available representation (skipping missing exports with a note)."""
    out = {}
    for name in names:
        try:
            out[name] = build_W(data, name, population, cfg, **kw)
        except RepresentationUnavailable as err:
            print(f"[causal] skipping representation {name!r}: {err}")
    return out


def _refuter_columns(est: Any, arm: int) -> dict[str, Any]:
    return {k: v for k, v in next(r for r in est.rows() if r["arm"] == arm).items() if "_estimate" in k or "_passed" in k}


def _is_dense(W: Any) -> bool:
    return W is None or (isinstance(W, np.ndarray) and W.dtype == np.float64)


def _overlap_or_refusal(T: np.ndarray, X: np.ndarray | None, W: Any, seed: int, cfg: DictConfig, source: str,
                        kinds: tuple[str, str] | None) -> tuple[diagnostics.OverlapReport | None, str | None]:
    try:
        return diagnostics.overlap(T, X, W, seed, cfg.causal.overlap, cfg.causal, source=source, nuisance=kinds), None
    except InputError as err:
        print(f"[causal] refused: {err}")
        return None, str(err)


def _finetuned_W(cfg: DictConfig, dataset: str, hist: list, attrs: pd.DataFrame, meta: dict, data: Any,
                 seed: int, rep: str) -> np.ndarray:
    """Out-of-fold vectors of the sequence encoder fine-tuned on this seed's T and Y (``causal.crossfit``)."""
    from lib.train.causal import best_nextitem_checkpoint, crossfit_finetuned_vectors
    from lib.train.datamodule import attribute_table, left_pad

    xcfg = cfg.causal.crossfit
    init = best_nextitem_checkpoint(cfg, dataset) if xcfg.init == "pretrained" else None
    if xcfg.init == "pretrained" and init is None:
        raise RepresentationUnavailable(f"{rep} starts from the next-item checkpoint of {dataset}, and there is "
                                        f"none under {cfg.paths.checkpoints}: run notebook 02 or set causal.crossfit.init=scratch")
    n_items = int(meta["n_items"])
    fitted = crossfit_finetuned_vectors(left_pad(hist, int(xcfg.max_len)).numpy(), data.T, data.Y, int(xcfg.folds),
                                        seed, cfg.model, cfg.model.heads, n_items,
                                        item_attrs=attribute_table(attrs, n_items), n_attrs=int(meta.get("n_attrs", 0)),
                                        init_checkpoint=init, n_threads=int(cfg.causal.n_jobs))
    return finish_W(np.asarray(fitted.vectors, dtype=np.float64), cfg.causal, rep, seed)


def confounder_probes(data: Any, reps: dict[str, Any], ccfg: Any, seed: int) -> list[dict[str, Any]]:
    """How much of each true confounder each representation holds, as the study's own nuisances see it.

    For every representation ``W`` in ``reps`` (``None``, no adjustment, is skipped) and every column of
    ``data.W_true``: the out-of-fold R^2 (``causal.cv`` seeded folds) of that confounder predicted from ``W``
    by the representation's outcome nuisance (:func:`lib.causal.representations.nuisance_kinds`). 1 means the
    outcome model could adjust for that confounder completely; 0 means it cannot see it at all.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from types import SimpleNamespace
    >>> from lib.config import compose
    >>> rng = np.random.default_rng(0); z = rng.normal(size=(300, 2))
    >>> data = SimpleNamespace(W_true=pd.DataFrame({"a": z[:, 0], "b": z[:, 1]}))
    >>> rows = confounder_probes(data, {"oracle": z[:, :1] + 0.01 * rng.normal(size=(300, 1))},
    ...                          compose("smoke", ["causal.n_jobs=1"]).causal, seed=0)
    >>> [(r["confounder"], round(r["r2"], 1)) for r in rows]
    [('a', 1.0), ('b', -0.0)]
    """
    from sklearn.model_selection import KFold, cross_val_predict

    from lib.causal.nuisance import make_nuisance

    folds = KFold(int(ccfg.cv), shuffle=True, random_state=seed)
    rows = []
    for rep, W in reps.items():
        if W is None:
            continue
        kind = (nuisance_kinds(ccfg, rep) or (ccfg.nuisance_y, ccfg.nuisance_t))[0]
        for col in data.W_true.columns:
            y = data.W_true[col].to_numpy(np.float64)
            pred = cross_val_predict(make_nuisance(kind, "regression", seed, ccfg), W, y, cv=folds)
            sst = float(np.sum((y - y.mean()) ** 2))
            r2 = 1.0 - float(np.sum((y - pred) ** 2)) / sst if sst > 0 else float("nan")
            rows.append({"representation": rep, "confounder": col, "r2": r2, "nuisance": kind})
    return rows


def semisynth_grid(cfg: DictConfig, dataset: str) -> pd.DataFrame:
    """One row per (setting, seed, representation, estimator) with truth, bias, CI, coverage, PEHE.

    An estimator that ignores W (``uses_W: false``, ``naive``) runs on representation ``none``
    only; one that needs a dense W (``ols``, ``causalbert_aipw``, meta-learners) skips sparse ones.
    ``raw`` is its ``on_histories`` entry (``sparse_history``) here. Simulation seeds are ``cfg.seed .. cfg.seed +
    causal.semisynth.n_seeds - 1`` at the default setting (``n_seeds_other_levels`` elsewhere,
    with ``other_levels_estimators``); an estimator in ``causal.semisynth.seed_caps`` runs on
    its first that-many seeds. The overlap diagnostic runs on the first ``causal.overlap.max_seeds``
    seeds of each cell and refuters on the first ``causal.refuters.max_seeds`` (null = all) of
    estimators not in ``causal.refuters.skip``. In the settings of ``cate_from_representation``
    the forest / DR final stage reads ``[X, W]`` (dense W of at most ``pca_dim`` columns).
    """
    from lib.data.sequences import history, load_prepared
    from lib.simulate.semisynth import history_features, simulate

    grid, ccfg = cfg.causal.semisynth, cfg.causal
    seqs, attrs, meta = load_prepared(cfg, dataset)
    hist = [list(h) for h in history(seqs)]
    sim_cfg = OmegaConf.merge(cfg.simulate.semisynth, {"dataset": dataset})
    feats = history_features(history(seqs), attrs, sim_cfg)
    caps = {str(k): int(v) for k, v in (grid.seed_caps or {}).items()}
    refute_seeds, overlap_seeds = ccfg.refuters.max_seeds, ccfg.overlap.max_seeds
    skip_refute = set(ccfg.refuters.skip or [])
    no_refuters = OmegaConf.merge(ccfg, {"refuters": {"enabled": False}})
    crossfit = [r for r in grid.representations if source(ccfg, r) == "crossfit"]
    blocks, Ws = Blocks(cfg), {}

    def fit_block(level: str, k: int, seed: int, estimators: list[str], n_seeds: int) -> dict[str, list]:
        """Every representation x estimator of one (setting, seed): rows, and the figure frames of the first seed."""
        is_default = level == sim_cfg.level
        rows, scatter, hists = [], [], []
        data = simulate(seqs, attrs, sim_cfg, seed, level, features=feats)
        if not Ws:   # the units (and so every representation built without T or Y) are the same throughout
            names = [on_histories(ccfg, r) for r in grid.representations if r not in crossfit]
            Ws.update(_W_cache(data, list(dict.fromkeys(names)), dataset, cfg, histories=hist,
                               n_items=int(meta["n_items"]), item_attributes=attrs))
        reps = dict(Ws)
        for rep in crossfit:
            try:
                reps[rep] = _finetuned_W(cfg, dataset, hist, attrs, meta, data, seed, rep)
            except RepresentationUnavailable as err:
                print(f"[causal] skipping representation {rep!r}: {err}")
        X = data.X.to_numpy(np.float64)
        probes = [dict(r, dataset=dataset, seed=seed) for r in confounder_probes(data, reps, ccfg, seed)] \
            if k == 0 and is_default else []
        for rep, W in reps.items():
            kinds = nuisance_kinds(ccfg, rep)
            ov, refused = None, None
            if overlap_seeds is None or k < int(overlap_seeds):
                ov, refused = _overlap_or_refusal(data.T, X, W, seed, cfg, data.name, kinds)
                if ov is not None and seed == cfg.seed and is_default:
                    hists.append(ov.histogram().assign(representation=rep))
            X_final = X
            if level in (grid.cate_from_representation or []) and W is not None and _is_dense(W) \
                    and W.shape[1] <= int(ccfg.pca_dim or W.shape[1]):
                X_final = np.hstack([X, W])
            for name in estimators:
                if (not uses_W(ccfg, name) and W is not None) or k >= caps.get(name, n_seeds):
                    continue
                if needs_dense_W(ccfg, name) and not _is_dense(W):
                    continue
                base = dict(benchmark=data.name, dataset=dataset, level=level, seed=seed, representation=rep,
                            estimator=name, truth=data.ate_true, naive_bias=data.meta["naive_bias"])
                if refused:
                    rows.append(dict(base, ate=np.nan, ci_low=np.nan, ci_high=np.nan, se=np.nan, refused=refused))
                    continue
                use_cfg = ccfg if (refute_seeds is None or k < int(refute_seeds)) and name not in skip_refute \
                    else no_refuters
                est = estimate(name, data.Y, data.T, X_final if name != "ols" else X, W, use_cfg, seed,
                               overlap=ov, source=data.name, nuisance=kinds, check_overlap=False)
                rows.append(dict(base, ate=est.ate, ci_low=est.ci_low, ci_high=est.ci_high, se=est.se,
                                 pehe=metrics.pehe(est.cate, data.tau), cate_corr=metrics.cate_corr(est.cate, data.tau),
                                 fit_seconds=est.fit_seconds, overlap_share=est.overlap_share[1],
                                 poor_overlap=est.poor_overlap, refused=None, **_refuter_columns(est, 1)))
                if seed == cfg.seed and is_default:
                    idx = np.random.default_rng(seed).choice(len(data.Y), min(300, len(data.Y)), replace=False)
                    scatter.append(pd.DataFrame({"representation": rep, "estimator": name,
                                                 "tau": data.tau[idx], "cate": est.cate[idx]}))
        return {"rows": rows, "scatter": scatter, "hists": hists, "probes": probes}

    rows, scatter, hists, probes = [], [], [], []
    for level in grid.levels:
        is_default = level == sim_cfg.level
        n_seeds = int(grid.n_seeds if is_default or grid.n_seeds_other_levels is None else grid.n_seeds_other_levels)
        estimators = list(grid.estimators if is_default or grid.other_levels_estimators is None
                          else grid.other_levels_estimators)
        for k, seed in enumerate(range(cfg.seed, cfg.seed + n_seeds)):
            block = blocks.get(f"semisynth/{dataset}/{level}/seed{seed}",
                               {"dataset": dataset, "level": level, "seed": seed, "k": k},
                               lambda: fit_block(level, k, seed, estimators, n_seeds))
            rows += block["rows"]
            scatter += block["scatter"]
            hists += block["hists"]
            probes += block["probes"]
    df = pd.DataFrame(rows)
    df.attrs["block_seconds"] = blocks.seconds
    df.attrs["cate_scatter"] = pd.concat(scatter, ignore_index=True) if scatter else pd.DataFrame()
    df.attrs["overlap"] = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    df.attrs["probes"] = pd.DataFrame(probes)
    return df


def _hillstrom_design(df: pd.DataFrame) -> pd.DataFrame:
    from lib.data.hillstrom import design_matrix

    return design_matrix(df).set_axis(df["customer_id"].to_numpy(), axis=0)


def _embedded_ids(cfg: DictConfig, rep: str) -> np.ndarray | None:
    """Customer ids that have vectors of a text representation (None: not an exported representation)."""
    from lib.embed.store import embedding_stem, load_embeddings

    if source(cfg.causal, rep) != "embedding":
        return None
    stem = embedding_stem(cfg.paths.embeddings, "hillstrom", rep)
    if not stem.with_suffix(".npz").is_file():
        return None
    return load_embeddings(stem)[0]


def hillstrom_rct_gap(cfg: DictConfig) -> pd.DataFrame:
    """Confounded-subsample estimates vs the full-RCT ATE, per outcome, seed, arm, representation, estimator.

    The selection variables (history, recency, newbie) are not in ``X`` (mens, womens): they
    enter only through ``W``, the representation under test, so ``none`` is visibly biased and
    ``raw`` (the design matrix) is the reference adjustment. The reference is the difference
    in means over every customer of the experiment; ``z_rct`` compares estimate and reference
    with the uncertainty of both (``sqrt(se^2 + se_ref^2)``; conservative, since the subsample
    is part of the experiment) and ``covers_rct`` is ``|z_rct| <= z_(1 - alpha/2)``.
    A text representation is estimated on the subsample's customers that have its vectors
    (``n_units`` says how many); one fine-tuned on the outcomes of the RCT train split
    (``causal.hillstrom.trained_on_train_split``) only on its test-split customers, so that no
    representation adjusts units whose outcome it saw.
    """
    from scipy import stats

    from lib.data.hillstrom import load_prepared
    from lib.simulate.hillstrom_obs import confounded_subsample

    hcfg, ccfg = cfg.causal.hillstrom, cfg.causal
    df = load_prepared(cfg)
    design = _hillstrom_design(df)
    q = stats.norm.ppf(1 - float(ccfg.alpha) / 2)
    available = {rep: _embedded_ids(cfg, rep) for rep in hcfg.representations}
    test_ids = df.loc[df["split"] == "test", "customer_id"].to_numpy()
    blocks = Blocks(cfg)

    def fit_block(outcome: str, seed: int) -> dict[str, list]:
        """Every representation x estimator x arm of one (outcome, subsample seed)."""
        rows = []
        data = confounded_subsample(df, cfg.simulate.hillstrom_obs, seed, outcome)
        keep = np.arange(len(data.Y))
        if hcfg.max_units and len(keep) > int(hcfg.max_units):
            keep = np.sort(np.random.default_rng(seed).choice(len(keep), int(hcfg.max_units), replace=False))
        for rep in hcfg.representations:
            diagnose = ccfg.overlap.max_seeds is None or seed - cfg.seed < int(ccfg.overlap.max_seeds)
            ids_ok = available[rep]
            units = keep if ids_ok is None else keep[np.isin(data.unit_id[keep], ids_ok)]
            if rep in hcfg.trained_on_train_split:   # fine-tuned on train-split outcomes: adjust test units only
                units = units[np.isin(data.unit_id[units], test_ids)]
            sub = type(data)(**{**data.__dict__, "unit_id": data.unit_id[units], "T": data.T[units],
                                "Y": data.Y[units], "X": data.X.iloc[units], "W_true": data.W_true.iloc[units],
                                "propensity": data.propensity[units]})
            Ws = _W_cache(sub, [rep], "hillstrom", cfg, raw=design.loc[sub.unit_id].to_numpy())
            if rep not in Ws:
                continue
            W, X, source = Ws[rep], sub.X.to_numpy(np.float64), f"hillstrom_obs[{outcome}, seed {seed}, {rep}]"
            kinds = nuisance_kinds(ccfg, rep)
            ov, refused = _overlap_or_refusal(sub.T, X, W, seed, cfg, source, kinds) if diagnose else (None, None)
            for name in hcfg.estimators:
                if (not uses_W(ccfg, name) and W is not None) or refused:
                    continue
                est = estimate(name, sub.Y, sub.T, X, W, ccfg, seed, overlap=ov, source=source, nuisance=kinds,
                               check_overlap=False)
                for arm, r in est.arms.items():
                    if arm not in hcfg.arms:
                        continue
                    ref = data.meta["rct_reference"][arm]
                    z = (r["ate"] - ref["ate"]) / np.sqrt(r["se"] ** 2 + ref["se"] ** 2)
                    rows.append(dict(outcome=outcome, seed=seed, arm=arm, arm_name=ARM_NAMES[arm], representation=rep,
                                     estimator=name, ate=r["ate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                                     se=r["se"], rct_ate=ref["ate"], rct_se=ref["se"], rct_ci_low=ref["ci_low"],
                                     rct_ci_high=ref["ci_high"], rct_n=ref["n_treated"] + ref["n_control"],
                                     naive_error=abs(data.meta["naive"][arm]["ate"] - ref["ate"]),
                                     abs_error=abs(r["ate"] - ref["ate"]), z_rct=z, covers_rct=bool(abs(z) <= q),
                                     n_units=len(sub.Y), fit_seconds=est.fit_seconds,
                                     overlap_share=est.overlap_share[arm], poor_overlap=est.poor_overlap,
                                     **_refuter_columns(est, arm)))
        return {"rows": rows}

    rows = []
    for outcome in hcfg.outcomes:
        for seed in range(cfg.seed, cfg.seed + int(hcfg.n_seeds)):
            rows += blocks.get(f"hillstrom/{outcome}/seed{seed}", {"outcome": outcome, "seed": seed},
                               lambda: fit_block(outcome, seed))["rows"]
    df = pd.DataFrame(rows)
    df.attrs["block_seconds"] = blocks.seconds
    return df
