"""Planted effects: EconML estimators recover a known heterogeneous effect under observed confounding,
their ATE intervals are calibrated over repetitions, and positivity failures are refused."""
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import sparse

from lib.causal.estimators import estimate
from lib.eval.metrics import binomial_ci
from lib.config import compose
from lib.errors import InputError

CCFG = compose("smoke", ["causal.cv=2", "causal.n_jobs=1", "causal.forest.n_estimators=100",
                         "causal.refuters.enabled=false", "model.heads.max_epochs=15", "model.heads.hidden=32"]).causal
WITH_REFUTERS = OmegaConf.merge(CCFG, {"refuters": {"enabled": True, "n_subsets": 1}})


def planted(n: int = 3000, seed: int = 0, arms: int = 1):
    """Confounder W0 raises both treatment and outcome; tau = 1 + X0 (linear in X)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 4))
    X = rng.normal(size=(n, 2))
    logits = np.column_stack([np.zeros(n)] + [0.8 * W[:, 0] + 0.4 * W[:, 1] * k for k in range(1, arms + 1)])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    T = np.array([rng.choice(arms + 1, p=pi) for pi in p])
    taus = {k: k * (1.0 + X[:, 0]) if k == 1 else -0.5 + 0.5 * X[:, 1] for k in range(1, arms + 1)}
    Y = 2.0 * W[:, 0] + W[:, 1] + 0.5 * X[:, 1] + rng.normal(size=n)
    for k, tau in taus.items():
        Y = Y + tau * (T == k)
    return Y, T, X, W, taus


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.mark.parametrize("name,corr_bound", [("linear_dml", 0.8), ("causal_forest_dml", 0.7), ("dr_learner", 0.5)])
def test_recovers_ate_and_cate(data, name, corr_bound):
    Y, T, X, W, taus = data
    est = estimate(name, Y, T, X, W, CCFG, seed=0)
    truth = taus[1].mean()
    assert est.ci_low < truth < est.ci_high, (est.ate, est.ci_low, est.ci_high, truth)
    assert np.corrcoef(est.cate, taus[1])[0, 1] > corr_bound
    assert not est.poor_overlap


def test_naive_is_biased_beyond_its_ci(data):
    Y, T, X, W, taus = data
    est = estimate("naive", Y, T, X, W, CCFG, seed=0)
    assert est.ci_low > taus[1].mean() + 0.5     # W0 pushes both T and Y up: upward bias


def test_aipw_heads_recovers_ate(data):
    Y, T, X, W, taus = data
    est = estimate("causalbert_aipw", Y, T, X, W, CCFG, seed=0)
    assert est.ci_low < taus[1].mean() < est.ci_high


def test_refuters_placebo_near_zero(data):
    Y, T, X, W, _ = data
    est = estimate("linear_dml", Y, T, X, W, WITH_REFUTERS, seed=0)
    ref = est.refutations.set_index("refuter")
    assert set(ref.index) == {"placebo_treatment", "random_common_cause", "data_subset"}
    placebo = ref.loc["placebo_treatment"]
    assert placebo.ci_low < 0 < placebo.ci_high and abs(placebo.estimate) < 0.15
    assert ref["passed"].all()
    assert {"placebo_treatment_estimate", "data_subset_passed"} <= set(est.rows()[0])


def test_multi_arm_per_arm_effects():
    Y, T, X, W, taus = planted(n=3000, seed=1, arms=2)
    est = estimate("linear_dml", Y, T, X, W, CCFG, seed=0)
    assert sorted(est.arms) == [1, 2]
    for k, tau in taus.items():
        arm = est.arms[k]
        assert arm["ci_low"] < tau.mean() < arm["ci_high"], (k, arm["ate"], tau.mean())
        assert np.corrcoef(arm["cate"], tau)[0, 1] > 0.8


def test_same_seed_same_numbers(data):
    Y, T, X, W, _ = data
    for name in ("linear_dml", "causal_forest_dml"):
        a, b = (estimate(name, Y, T, X, W, CCFG, seed=3) for _ in range(2))
        assert (a.ate, a.ci_low, a.ci_high) == (b.ate, b.ci_low, b.ci_high)
        np.testing.assert_array_equal(a.cate, b.cate)


def test_poor_overlap_is_flagged():
    rng = np.random.default_rng(0)
    n = 2000
    W = rng.normal(size=(n, 2))
    T = (rng.random(n) < 1 / (1 + np.exp(-3.0 * W[:, 0]))).astype(int)
    Y = T + W[:, 0] + rng.normal(size=n)
    est = estimate("ols", Y, T, None, W, CCFG, seed=0)
    assert est.poor_overlap and est.overlap_share[1] > 0.1


def test_bad_inputs_raise_input_error(data):
    Y, T, X, W, _ = data
    cases = {
        "single arm": (Y, np.zeros_like(T), X, W),
        "NaN": (np.where(np.arange(len(Y)) == 5, np.nan, Y), T, X, W),
        "constant": (np.ones_like(Y), T, X, W),
        "rows but Y has": (Y[:-10], T, X, W),
        "no control": (Y, T + 1, X, W),
    }
    for match, (y, t, x, w) in cases.items():
        with pytest.raises(InputError, match=match):
            estimate("linear_dml", y, t, x, w, CCFG, seed=0)
    with pytest.raises(InputError, match="X"):
        estimate("causal_forest_dml", Y, T, None, W, CCFG, seed=0)
    # no overlap: a covariate decides the treatment
    Wsep = np.column_stack([W, (T - 0.5) * 10 + 0.01 * W[:, 0]])
    with pytest.raises(InputError, match="no overlap"):
        estimate("linear_dml", Y, T, X, Wsep, CCFG, seed=0)


def test_non_monotone_deterministic_treatment_is_refused():
    """T = 1{|w| < 0.67}: a logistic propensity sees no signal, the flexible one sees a deterministic rule."""
    rng = np.random.default_rng(0)
    n = 3000
    W = rng.normal(size=(n, 2))
    T = (np.abs(W[:, 0]) < 0.67).astype(int)
    Y = T + W[:, 0] ** 2 + rng.normal(size=n)
    with pytest.raises(InputError, match=r"source-x.*no overlap.*causal.overlap.model=gbm"):
        estimate("linear_dml", Y, T, None, W, CCFG, seed=0, source="source-x")
    logistic = OmegaConf.merge(CCFG, {"overlap": {"model": "logistic"}})
    est = estimate("ols", Y, T, None, W, logistic, seed=0)     # the linear diagnostic misses it
    assert est.overlap_share[1] < 0.05


def test_sparse_history_like_W_through_row_lookup():
    """A sparse W (one-hot of a 100-level category) confounds T and Y; sparse linear nuisances adjust for it.

    40 units per level: at 300 levels (13 per level) the shrunk outcome and propensity models leave the DR
    learner biased by about +0.15 (seed 1, log-loss propensity), a finite-sample property, not plumbing."""
    rng = np.random.default_rng(1)
    n, k = 4000, 100
    cat = rng.integers(0, k, n)
    effect = rng.normal(size=k)
    W = sparse.csr_matrix((np.ones(n), (np.arange(n), cat)), shape=(n, k))
    T = (rng.random(n) < 1 / (1 + np.exp(-effect[cat]))).astype(int)
    X = rng.normal(size=(n, 1))
    Y = 2 * effect[cat] + (1.0 + 0.5 * X[:, 0]) * T + rng.normal(size=n)
    kinds = ("sparse_linear", "sparse_linear")
    naive = estimate("naive", Y, T, X, None, CCFG, seed=0)
    assert naive.ci_low > 1.5
    for name in ("linear_dml", "dr_learner"):
        est = estimate(name, Y, T, X, W, CCFG, seed=0, nuisance=kinds)
        assert est.ci_low < 1.0 < est.ci_high, (name, est.ate, est.ci_low, est.ci_high)
    with pytest.raises(ValueError, match="dense W"):
        estimate("ols", Y, T, X, W, CCFG, seed=0, nuisance=kinds)


@pytest.mark.slow
def test_ate_intervals_are_calibrated_over_repetitions():
    """Correct linear model, small n: every estimator's 95% CI covers the ATE at a rate inside the 99% binomial band."""
    reps, n = 30, 600
    # the AIPW heads need enough optimiser steps at this n: with 15 epochs of 2 steps they were under-fitted and
    # covered 25 of 40 (measured); 60 epochs of batch 64 covered 39 of 40 at 100 epochs
    fast = OmegaConf.merge(CCFG, {"forest": {"n_estimators": 40}, "nuisances": {"lasso": {"regression": {"model": {"alphas": 10}}}},
                                  "aipw": {"heads": {"max_epochs": 60, "batch_size": 64}}})
    hits = {name: 0 for name in ("ols", "linear_dml", "causal_forest_dml", "dr_learner", "causalbert_aipw")}
    for r in range(reps):
        rng = np.random.default_rng(100 + r)
        W, X = rng.normal(size=(n, 2)), rng.normal(size=(n, 1))
        T = (rng.random(n) < 1 / (1 + np.exp(-0.7 * W[:, 0]))).astype(int)
        tau = 1.0 + 0.5 * X[:, 0]
        Y = W[:, 0] + 0.5 * W[:, 1] + tau * T + rng.normal(size=n)
        for name in hits:
            est = estimate(name, Y, T, X, W, fast, seed=r, check_overlap=False)
            hits[name] += est.ci_low <= tau.mean() <= est.ci_high
    for name, k in hits.items():
        lo, hi = binomial_ci(k, reps, alpha=0.01)
        assert lo <= 0.95 <= hi, (name, k, reps)


def test_paper_sparse_lasso_path_holds_the_chosen_penalty():
    """The paper preset cuts the sparse outcome model's LassoCV path short (causal.nuisances.sparse_linear,
    eps 0.03, for speed); on a weak signal through a few items (held-out R^2 about 0.1, as on Beauty)
    cross-validation must still choose a penalty strictly inside that path, not its smallest one."""
    from _data_fixtures import generated_sequences
    from lib.causal.history_features import sparse_history
    from lib.causal.nuisance import make_nuisance

    ccfg = compose("paper", ["causal.n_jobs=1"]).causal
    seqs, _ = generated_sequences(4000, n_items=300)
    W = sparse_history(list(seqs["items"]), 300, recent_k=2, min_count=3)
    rng = np.random.default_rng(0)
    y = W @ (3.0 * rng.normal(size=W.shape[1]) * (rng.random(W.shape[1]) < 0.02)) + rng.normal(size=W.shape[0])
    model = make_nuisance("sparse_linear", "regression", 0, ccfg).fit(W[:3000], y[:3000])
    lasso = model[-1]
    assert lasso.eps == 0.03 and lasso.alphas_.min() < lasso.alpha_ < lasso.alphas_.max(), (lasso.alpha_, lasso.alphas_)
    assert 0.03 < model.score(W[3000:], y[3000:]) < 0.4
    # the same fit with the path cut at 30% of the largest penalty ends on its smallest one: the check can fail
    short = make_nuisance("sparse_linear", "regression", 0, OmegaConf.merge(
        ccfg, {"nuisances": {"sparse_linear": {"regression": {"model": {"eps": 0.3}}}}})).fit(W[:3000], y[:3000])
    assert short[-1].alpha_ == short[-1].alphas_.min()


def test_rare_treatment_propensity_is_chosen_by_log_loss():
    """Fewer than half treated and every e(W) < 0.5: every propensity penalty ties on accuracy (all predict
    'untreated'), so an accuracy-scored LogisticRegressionCV keeps the strongest penalty, e(W) turns constant
    and LinearDML shrinks the ATE by E[e(1-e)] / (p(1-p)) (0.85 here). The shipped nuisance scores by log loss."""
    def draws(ccfg):
        out = []
        for seed in range(6):
            rng = np.random.default_rng(seed)
            W, X = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 1))
            W[:, 0] = rng.choice([-1.0, 1.0], 4000) + 0.1 * W[:, 0]         # e(W) near 0.04 or 0.35
            T = (rng.random(4000) < 1 / (1 + np.exp(2.0 - 1.4 * W[:, 0]))).astype(int)
            Y = 3.0 * W[:, 0] + T + rng.normal(size=4000)                     # ATE 1
            est = estimate("linear_dml", Y, T, X, W, ccfg, seed=seed, check_overlap=False)
            out.append((est.ate, est.ci_low <= 1.0 <= est.ci_high))
        return np.array(out)

    assert CCFG.nuisances.logistic.classification.model.scoring == "neg_log_loss"
    shipped = draws(CCFG)
    assert abs(shipped[:, 0].mean() - 1.0) < 0.04 and shipped[:, 1].sum() >= 5, shipped
    accuracy = draws(OmegaConf.merge(CCFG, {"nuisances": {"logistic": {"classification": {"model": {"scoring": None}}}}}))
    # the failure this guards against, measured: mean 0.91, 2 of 6 cover (log loss: mean 1.03, 6 of 6)
    assert accuracy[:, 0].mean() < 0.95 and accuracy[:, 1].sum() <= 3, accuracy
