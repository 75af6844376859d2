"""The study loops of notebook 03; each returns a tidy DataFrame.

* :func:`semisynth_grid`: levels x seeds x representations x estimators on the
  semi-synthetic benchmark over real histories, scored against the planted truth.
* :func:`hillstrom_rct_gap`: estimates on the confounded Hillstrom subsample against the
  full-RCT reference, per outcome and e-mail arm.

The uplift and policy study of notebook 04 lives in :mod:`lib.causal.targeting`.

Representations whose embedding file is missing are skipped with a printed note; the
extra frames behind figures (CATE scatter, overlap histograms)
are attached as ``df.attrs``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from lib.causal import diagnostics, metrics
from lib.causal.estimators import estimate
from lib.causal.representations import RepresentationUnavailable, build_W

ARM_NAMES = {0: "no_email", 1: "mens_email", 2: "womens_email"}


def _W_cache(data: Any, names: list[str], population: str, cfg: DictConfig, **kw: Any) -> dict[str, np.ndarray | None]:
    """``W`` of every available representation (skipping missing exports with a note)."""
    out = {}
    for name in names:
        try:
            out[name] = build_W(data, name, population, cfg.paths.embeddings, cfg.causal.pca_dim, seed=cfg.seed, **kw)
        except RepresentationUnavailable as err:
            print(f"[causal] skipping representation {name!r}: {err}")
    return out


def _refuter_columns(est: Any, arm: int) -> dict[str, Any]:
    return {k: v for k, v in next(r for r in est.rows() if r["arm"] == arm).items() if "_estimate" in k or "_passed" in k}


def semisynth_grid(cfg: DictConfig, dataset: str) -> pd.DataFrame:
    """One row per (level, seed, representation, estimator) with truth, bias, coverage, PEHE.

    ``naive`` runs on representation ``none`` only (it ignores W). Simulation seeds are
    ``cfg.seed .. cfg.seed + causal.semisynth.n_seeds - 1`` (``n_seeds_other_levels`` away from
    the default level); an estimator listed in
    ``causal.semisynth.seed_caps`` runs on its first that-many seeds only, and refuters run on
    the first ``causal.refuters.max_seeds`` seeds (null = all) of estimators not in
    ``causal.refuters.skip``.
    """
    from lib.data.sequences import history, load_prepared
    from lib.simulate.semisynth import simulate

    grid = cfg.causal.semisynth
    seqs, attrs, meta = load_prepared(cfg, dataset)
    hist = [list(h) for h in history(seqs)]
    sim_cfg = OmegaConf.merge(cfg.simulate.semisynth, {"dataset": dataset})
    rows, scatter, hists, Ws = [], [], [], None
    caps = {str(k): int(v) for k, v in (grid.get("seed_caps") or {}).items()}
    refute_seeds = cfg.causal.refuters.get("max_seeds")
    skip_refute = set(cfg.causal.refuters.get("skip") or [])
    no_refuters = OmegaConf.merge(cfg.causal, {"refuters": {"enabled": False}})
    for level in grid.levels:
        n_seeds = int(grid.n_seeds if level == sim_cfg.level or grid.get("n_seeds_other_levels") is None
                      else grid.n_seeds_other_levels)
        for seed in range(cfg.seed, cfg.seed + n_seeds):
            # refuters triple the cost of a fit: on a budget they run on the first seeds of every cell
            ccfg = cfg.causal if refute_seeds is None or seed - cfg.seed < int(refute_seeds) else no_refuters
            data = simulate(seqs, attrs, sim_cfg, seed, level)
            if Ws is None:   # the units (and so W) are the same for every level and seed
                Ws = _W_cache(data, list(grid.representations), dataset, cfg, histories=hist,
                              n_items=int(meta["n_items"]), bag_dim=int(cfg.model.embed.bag.dim),
                              bag_weighting=str(cfg.model.embed.bag.weighting))
            X = data.X.to_numpy(np.float64)
            for rep, W in Ws.items():
                ov = diagnostics.overlap(data.T, X, W, seed, int(cfg.causal.overlap.cv),
                                         float(cfg.causal.overlap.max_share), source=data.name)
                if seed == cfg.seed and level == sim_cfg.level:
                    hists.append(ov.histogram().assign(representation=rep))
                for name in grid.estimators:
                    if (name == "naive" and rep != "none") or seed - cfg.seed >= caps.get(name, n_seeds):
                        continue
                    est = estimate(name, data.Y, data.T, X, W, no_refuters if name in skip_refute else ccfg, seed,
                                   overlap=ov, source=data.name)
                    rows.append(dict(benchmark=data.name, dataset=dataset, level=level, seed=seed, representation=rep,
                                     estimator=name, ate=est.ate, ci_low=est.ci_low, ci_high=est.ci_high, se=est.se,
                                     truth=data.ate_true, naive_bias=data.meta["naive_bias"],
                                     pehe=metrics.pehe(est.cate, data.tau), cate_corr=metrics.cate_corr(est.cate, data.tau),
                                     fit_seconds=est.fit_seconds, overlap_share=est.overlap_share[1],
                                     poor_overlap=est.poor_overlap, **_refuter_columns(est, 1)))
                    if seed == cfg.seed and level == sim_cfg.level:
                        idx = np.random.default_rng(seed).choice(len(data.Y), min(300, len(data.Y)), replace=False)
                        scatter.append(pd.DataFrame({"representation": rep, "estimator": name,
                                                     "tau": data.tau[idx], "cate": est.cate[idx]}))
    df = pd.DataFrame(rows)
    df.attrs["cate_scatter"] = pd.concat(scatter, ignore_index=True) if scatter else pd.DataFrame()
    df.attrs["overlap"] = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    return df


def _hillstrom_design(df: pd.DataFrame) -> pd.DataFrame:
    from lib.data.hillstrom import design_matrix

    return design_matrix(df).set_axis(df["customer_id"].to_numpy(), axis=0)


def hillstrom_rct_gap(cfg: DictConfig) -> pd.DataFrame:
    """Estimates on the confounded subsample vs the full-RCT ATE, per outcome, arm, representation, estimator."""
    from lib.data.hillstrom import load_prepared
    from lib.simulate.hillstrom_obs import confounded_subsample

    hcfg = cfg.causal.hillstrom
    df = load_prepared(cfg)
    design = _hillstrom_design(df)
    rows = []
    for outcome in hcfg.outcomes:
        for seed in range(cfg.seed, cfg.seed + int(hcfg.n_seeds)):
            data = confounded_subsample(df, cfg.simulate.hillstrom_obs, seed, outcome)
            keep = np.arange(len(data.Y))
            if hcfg.max_units and len(keep) > int(hcfg.max_units):
                keep = np.sort(np.random.default_rng(seed).choice(len(keep), int(hcfg.max_units), replace=False))
            ids, Y, T, X = data.unit_id[keep], data.Y[keep], data.T[keep], data.X.to_numpy(np.float64)[keep]
            sub = type(data)(**{**data.__dict__, "unit_id": ids, "T": T, "Y": Y, "X": data.X.iloc[keep],
                                "W_true": data.W_true.iloc[keep], "propensity": data.propensity[keep]})
            Ws = _W_cache(sub, list(hcfg.representations), "hillstrom", cfg, raw=design.loc[ids].to_numpy())
            for rep, W in Ws.items():
                ov = diagnostics.overlap(T, X, W, seed, int(cfg.causal.overlap.cv), float(cfg.causal.overlap.max_share),
                                         source=f"hillstrom_obs[{outcome}]")
                for name in hcfg.estimators:
                    if name == "naive" and rep != "none":
                        continue
                    est = estimate(name, Y, T, X, W, cfg.causal, seed, overlap=ov, source=f"hillstrom_obs[{outcome}]")
                    for arm, r in est.arms.items():
                        ref = data.meta["rct_reference"][arm]
                        rows.append(dict(outcome=outcome, seed=seed, arm=arm, arm_name=ARM_NAMES[arm], representation=rep,
                                         estimator=name, ate=r["ate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                                         se=r["se"], rct_ate=ref["ate"], rct_ci_low=ref["ci_low"], rct_ci_high=ref["ci_high"],
                                         abs_error=abs(r["ate"] - ref["ate"]),
                                         covers_rct=metrics.covered(r["ci_low"], r["ci_high"], ref["ate"]),
                                         n_units=len(Y), fit_seconds=est.fit_seconds, overlap_share=est.overlap_share[arm],
                                         poor_overlap=est.poor_overlap, **_refuter_columns(est, arm)))
    return pd.DataFrame(rows)
