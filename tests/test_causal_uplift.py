"""Qini / AUUC / policy value against hand-computed examples, and the metric helpers."""
import numpy as np
import pytest

from lib.causal import metrics, uplift
from lib.errors import InputError

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


def test_bootstrap_interval_contains_point_on_large_sample():
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.2 * t * (x > 0)).astype(int)
    out = uplift.bootstrap_scores(y, t, x, n_boot=50, seed=0)
    rnd = uplift.scores(y, t, rng.normal(size=n))
    assert out["qini_ci_low"] < out["qini"] < out["qini_ci_high"]
    assert out["qini_ci_low"] > rnd["qini"]      # informative score beats random targeting


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
    s = metrics.summarise(rows, ["g"]).iloc[0]
    assert s["bias"] == pytest.approx(0.05) and s["mean_abs_error"] == pytest.approx(0.15)
    assert s["coverage"] == pytest.approx(0.5) and s["rel_bias"] == pytest.approx(0.05)
    assert metrics.cate_corr(np.array([1, 2, 3.0]), np.array([2, 4, 6.0])) == pytest.approx(1.0)
