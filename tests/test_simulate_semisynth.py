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
    assert d.graph.adjustment_set() == ["W_free", "W_order", "W_trans"]
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


def test_transition_channel_is_invisible_to_bag_and_last_items_but_not_to_order(data):
    """A CV-penalised linear model of the sparse history (bag + last-2 one-hots) explains the recent-items
    confounder well and the transition confounder not at all; the transition sign flips when a history is reversed."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    from lib.causal.history_features import sparse_history

    seqs, attrs = data
    h = history(seqs)
    feats = history_features(h, attrs, SIM)
    assert 0.05 < (feats.transition != 0).mean() < 0.9
    M = sparse_history(list(h), 300, recent_k=2, min_count=1)
    r2 = {c: cross_val_score(RidgeCV(alphas=np.logspace(-2, 3, 12)), M, feats[c], cv=3, scoring="r2").mean()
          for c in ("recent_group", "transition")}
    assert r2["recent_group"] > 0.8 and r2["transition"] < 0.15, r2   # the last items give a hint, no more
    reversed_ = history_features(h.map(lambda s: s[::-1]), attrs, SIM)
    assert np.array_equal(reversed_.transition, -feats.transition)


def test_each_channel_alone_biases_the_naive_estimate_and_settings_draw_independent_streams(data):
    seqs, attrs = data
    for level in ("order_free", "order_dependent", "transition"):
        bias = np.mean([simulate(seqs, attrs, SIM, seed=s, level=level).meta["naive_bias"] for s in range(3)])
        assert bias > 0.05, (level, bias)
    a, b = simulate(seqs, attrs, SIM, seed=0, level="default"), simulate(seqs, attrs, SIM, seed=0, level="high")
    u = np.random.default_rng(0).random(len(a.T))
    # same seed, other setting: the uniforms behind T differ (an independent stream), so T is not a thresholding
    # of the same draws at another propensity
    assert not np.array_equal((u < a.propensity), a.T.astype(bool)) and np.mean(a.T != b.T) > 0.2


def test_hidden_modifier_moves_the_effect_outside_x(data):
    seqs, attrs = data
    d = simulate(seqs, attrs, SIM, seed=0, level="hidden_modifier")
    resid = d.tau - np.poly1d(np.polyfit(d.X["log_history_length"], d.tau, 1))(d.X["log_history_length"])
    assert np.corrcoef(resid, d.W_true["mean_log_pop"])[0, 1] > 0.5


def test_attribute_blocks_of_the_sparse_history_hold_the_group_channel(data):
    """The order-free group share is a share of items carrying group attributes: with the attribute blocks a
    CV-penalised linear model reads most of it off from 200 users; the item blocks alone, one coefficient
    per item, cannot."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    from lib.causal.history_features import sparse_history

    seqs, attrs = data
    h = history(seqs).iloc[:300]    # fewer users than items, as on Beauty: the item blocks alone cannot learn it
    share = history_features(h, attrs, SIM)["share_group"]

    def r2(M):
        return cross_val_score(RidgeCV(alphas=np.logspace(-4, 3, 15)), M, share, cv=3, scoring="r2").mean()

    items_only = sparse_history(list(h), 300, recent_k=2, min_count=1)
    with_attrs = sparse_history(list(h), 300, recent_k=2, min_count=1, item_attributes=attrs, attributes=True)
    assert with_attrs.shape[1] > items_only.shape[1]
    assert r2(with_attrs) > 0.8 and r2(with_attrs) > r2(items_only) + 0.3, (r2(with_attrs), r2(items_only))   # 0.87, 0.36
    with pytest.raises(ValueError, match="needs the item attribute table"):
        sparse_history(list(h), 300, recent_k=2, min_count=1, attributes=True)
