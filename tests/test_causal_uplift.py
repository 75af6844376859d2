"""Qini / AUUC / policy value against hand-computed examples, the permutation null, and the metric helpers."""
import numpy as np
import pytest

from lib.causal import metrics, uplift
from lib.config import compose
from lib.errors import InputError

CCFG = compose("smoke").causal
UCFG = CCFG.uplift
NULL = dict(k=UCFG.at_k, points=UCFG.curve_points, alpha=CCFG.alpha)   # the study's settings of the null

# units A(y=1,t=1), B(y=0,t=0), C(y=0,t=1), D(y=1,t=0)
Y = np.array([1, 0, 0, 1])
T = np.array([1, 0, 1, 0])
ORDERED = np.array([4.0, 3.0, 2.0, 1.0])   # A, B, C, D: the perfect ordering here
REVERSED = ORDERED[::-1].copy()            # D, C, B, A


def test_qini_curve_by_hand():
    # ordered: after A: 1 - 0; after A,B: 1 - 0*1/1; after A,B,C: 1 - 0*2/1; all: 1 - 1*2/2
    c = uplift.curve(Y, T, ORDERED, "m", points=5)
    assert c["qini"].tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 0.0])
    # reversed: after D: 0 - 1*0/1; D,C: 0 - 1*1/1; D,C,B: 0 - 1*1/2; all: 0
    c = uplift.curve(Y, T, REVERSED, "m", points=5)
    assert c["qini"].tolist() == pytest.approx([0.0, 0.0, -1.0, -0.5, 0.0])


def test_qini_and_auuc_by_hand():
    # qini areas: ordered 3, perfect 3, baseline 0 -> 1; reversed -1.5 / 3 -> -0.5
    # uplift curve (rate difference x n): ordered [0,1,2,1.5,0] area 4.5 = perfect; reversed -4.5
    assert uplift.scores(Y, T, ORDERED) == pytest.approx({"qini": 1.0, "auuc": 1.0})
    assert uplift.scores(Y, T, REVERSED) == pytest.approx({"qini": -0.5, "auuc": -1.0})


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Randomised 0/1 treatment; the treatment raises the response rate only where x > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.2 + 0.15 * t * (x > 0)).astype(int)
    return y, t, x


def test_vectorised_scores_equal_scikit_uplift_with_ties_and_resamples():
    from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score

    rng = np.random.default_rng(1)
    y, t = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    S = np.r_[rng.integers(0, 5, (3, 300)).astype(float), rng.normal(size=(2, 300))]   # tied and distinct scores
    got = uplift.ranking_scores(y, t, S, k=0.3)
    for i, s in enumerate(S):
        assert got["qini"][i] == pytest.approx(qini_auc_score(y, s, t), abs=1e-12)
        assert got["auuc"][i] == pytest.approx(uplift_auc_score(y, s, t), abs=1e-12)
        assert got["uplift_at_k"][i] == pytest.approx(uplift_at_k(y, s, t, strategy="overall", k=0.3), abs=1e-12)
    idx = rng.integers(0, 300, (4, 300))                  # bootstrap rows: own y, t per row, duplicated units tie
    boot = uplift.ranking_scores(y[idx], t[idx], S[3][idx], k=0.3)
    assert boot["qini"] == pytest.approx([qini_auc_score(y[i], S[3][i], t[i]) for i in idx], abs=1e-12)
    assert uplift.ranking_scores(Y, T, ORDERED[None, :], k=0.5)["qini"] == pytest.approx([1.0])


def test_random_scorer_p_values_are_uniform_and_a_planted_scorer_is_detected():
    from scipy.stats import binom

    reps, level = 40, 0.1
    p_random = []
    for rep in range(reps):
        y, t, _ = _planted(1000, seed=rep)
        null = uplift.permutation_null(y, t, n_null=200, seed=100 + rep, **NULL)
        score = np.random.default_rng(200 + rep).normal(size=len(y))
        p_random.append(uplift.p_value(null["qini"], uplift.scores(y, t, score)["qini"]))
    lo, hi = binom.ppf([0.001, 0.999], reps, level)
    assert lo <= np.sum(np.array(p_random) < level) <= hi
    assert 0.3 < np.mean(p_random) < 0.7                  # uniform p-values average 0.5
    y, t, x = _planted(1000, seed=0)
    null = uplift.permutation_null(y, t, n_null=200, seed=1, **NULL)
    assert uplift.p_value(null["qini"], uplift.scores(y, t, x)["qini"]) < 0.05


def test_evaluate_rows_null_and_paired_interval():
    y, t, x = _planted(3000, seed=5)
    noise = np.random.default_rng(9).normal(size=len(y))
    table, band = uplift.evaluate(y, t, {"planted": x, "noise": noise}, n_null=200, n_boot=100, seed=0,
                                  strategy=UCFG.at_k_strategy, **NULL)
    rows = table.set_index("model")
    assert list(rows.index) == ["planted", "noise", "random"]
    planted, noise_row, rnd = rows.loc["planted"], rows.loc["noise"], rows.loc["random"]
    assert planted["qini_p"] < 0.05 and planted["qini_minus_random_ci_low"] > 0      # CI of the gain excludes 0
    assert planted["qini_ci_low"] < planted["qini"] < planted["qini_ci_high"]
    assert noise_row["qini_minus_random_ci_low"] < 0 < noise_row["qini_minus_random_ci_high"]
    assert rnd["qini_ci_low"] < 0 < rnd["qini_ci_high"] and abs(rnd["qini"]) < 0.05  # the null centres on 0
    assert np.isnan(rnd["qini_p"])
    # uplift@30% of the planted scorer: the top 30% have x > 0.52, where the effect is 0.15
    assert planted["uplift_at_k"] == pytest.approx(0.15, abs=0.05)
    assert (band["qini_low"] <= band["qini"] + 1e-9).all() and (band["qini"] <= band["qini_high"] + 1e-9).all()
    assert band["qini_high"].iloc[len(band) // 2] > band["qini_low"].iloc[len(band) // 2]


def test_random_policy_value_is_the_expectation_over_random_scorings():
    y, t, _ = _planted(200, seed=3)
    rng = np.random.default_rng(0)
    draws = [uplift.policy_value(y, t, rng.random(len(y)), 0.3, 0.5) for _ in range(3000)]
    expected = uplift.random_policy_values(y, t, [0.3], 0.5).set_index("k")["value"]
    assert expected[0.3] == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(len(draws)))


def test_policy_value_by_hand():
    # treat top 50% (A, B): A treated and targeted, D untreated and not targeted, both count with
    # weight 1/0.5; B and C got the other arm -> (1/0.5 + 0 + 0 + 1/0.5) / 4 = 1.0
    assert uplift.policy_value(Y, T, ORDERED, k=0.5, p_treat=0.5) == pytest.approx(1.0)
    # treat nobody: control units B, D count: (0 + 2) / 4
    assert uplift.policy_value(Y, T, ORDERED, k=0.0, p_treat=0.5) == pytest.approx(0.5)
    # treat everybody: treated units A, C count: (2 + 0) / 4
    assert uplift.policy_value(Y, T, ORDERED, k=1.0, p_treat=0.5) == pytest.approx(0.5)
    pv = uplift.policy_values(Y, T, ORDERED, [0.5], p_treat=0.5)
    assert pv["k"].tolist() == [0.0, 0.5, 1.0]


def test_uplift_bad_input():
    with pytest.raises(InputError, match="binary"):
        uplift.scores(np.array([0.5, 1, 0, 1]), T, ORDERED)
    with pytest.raises(InputError, match="both 0"):
        uplift.scores(Y, np.ones(4, dtype=int), ORDERED)
    with pytest.raises(InputError, match="lengths"):
        uplift.scores(Y, T, ORDERED[:3])


def test_metrics_summary_by_hand():
    import pandas as pd

    rows = pd.DataFrame({"g": ["a", "a"], "seed": [0, 1], "ate": [1.2, 0.9], "ci_low": [1.1, 0.5],
                         "ci_high": [1.3, 1.2], "truth": [1.0, 1.0]})
    s = metrics.summarise(rows, ["g"], min_seeds=1, alpha=0.05).iloc[0]
    assert s["bias"] == pytest.approx(0.05) and s["mean_abs_error"] == pytest.approx(0.15)
    assert s["coverage"] == pytest.approx(0.5) and s["rel_bias"] == pytest.approx(0.05)
    assert metrics.cate_corr(np.array([1, 2, 3.0]), np.array([2, 4, 6.0])) == pytest.approx(1.0)
