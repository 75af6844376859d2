"""Semi-synthetic benchmark: planted ground truth, bias direction and growth, oracle recovery."""
import numpy as np
import pytest

from _data_fixtures import generated_sequences
from lib.config import compose
from lib.simulate.semisynth import history_features, simulate
from lib.data.sequences import history

SIM = compose("smoke").simulate.semisynth


@pytest.fixture(scope="module")
def data():
    return generated_sequences(n_users=4000)


def oracle_ols(d):
    """OLS of Y on T, the true confounders, the effect modifiers and T x centred modifiers (HC0 SE)."""
    X = d.X.to_numpy()
    Xc = X - X.mean(axis=0)
    Z = np.c_[np.ones(len(d.Y)), d.T, d.W_true.to_numpy(), X, d.T[:, None] * Xc]
    beta, *_ = np.linalg.lstsq(Z, d.Y, rcond=None)
    resid = d.Y - Z @ beta
    bread = np.linalg.inv(Z.T @ Z)
    cov = bread @ (Z.T * resid**2) @ Z @ bread
    return beta[1], np.sqrt(cov[1, 1])


def test_ground_truth_is_consistent(data):
    seqs, attrs = data
    d = simulate(seqs, attrs, SIM, seed=0)
    assert d.name == "semisynth_beauty" and d.meta["level"] == "default"
    assert d.ate_true == pytest.approx(d.tau.mean()) and d.ate_true == pytest.approx(SIM.tau_base)
    assert d.tau.std() > 0.2 and set(np.unique(d.T)) == {0, 1}
    assert SIM.clip <= d.propensity.min() and d.propensity.max() <= 1 - SIM.clip
    assert d.unit_id.tolist() == seqs.user_id.tolist()
    assert d.graph.adjustment_set() == ["W_free", "W_order"]
    again = simulate(seqs, attrs, SIM, seed=0)
    assert np.array_equal(again.Y, d.Y) and np.array_equal(again.T, d.T)


def test_naive_biased_upwards_and_bias_grows_with_level(data):
    seqs, attrs = data
    bias = {}
    for level in ("low", "default", "high"):
        per_seed = [simulate(seqs, attrs, SIM, seed=s, level=level) for s in range(3)]
        bias[level] = np.mean([d.meta["naive"]["ate"] - d.ate_true for d in per_seed])
    assert bias["low"] < bias["default"] < bias["high"] and bias["default"] > 0
    assert bias["default"] / SIM.tau_base > 0.3


def test_oracle_adjustment_recovers_ate_within_ci(data):
    seqs, attrs = data
    for seed in range(3):
        d = simulate(seqs, attrs, SIM, seed=seed)
        est, se = oracle_ols(d)
        assert abs(est - d.ate_true) < 1.96 * se, (seed, est, se, d.ate_true)
        naive = d.meta["naive"]
        assert not naive["ci_low"] <= d.ate_true <= naive["ci_high"]


def test_order_free_and_order_dependent_confounders(data):
    seqs, attrs = data
    h = history(seqs.head(300))
    rng = np.random.default_rng(0)
    shuffled = h.map(lambda s: list(rng.permutation(s)))
    a, b = history_features(h, attrs, SIM), history_features(shuffled, attrs, SIM)
    assert np.allclose(a.share_group, b.share_group) and np.allclose(a.mean_log_pop, b.mean_log_pop)
    assert not np.allclose(a.recent_group, b.recent_group) and not np.allclose(a.last_log_pop, b.last_log_pop)


def test_unknown_level_is_rejected(data):
    with pytest.raises(ValueError, match="unknown confounding level 'extreme'"):
        simulate(*data, SIM, seed=0, level="extreme")
