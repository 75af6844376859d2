"""Hillstrom observational benchmark: RCT reference by hand, confounded naive estimate."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from _data_fixtures import raw_hillstrom
from lib.config import compose
from lib.data.hillstrom import encode
from lib.errors import InputError
from lib.simulate.hillstrom_obs import confounded_subsample, rct_reference

SIM = compose("smoke").simulate.hillstrom_obs


@pytest.fixture(scope="module")
def df():
    return encode(raw_hillstrom(20000, seed=1))


def test_rct_reference_equals_hand_computed(df):
    y = df.visit.to_numpy(float)
    t = df.treatment.to_numpy()
    for arm in (1, 2):
        y1, y0 = y[t == arm], y[t == 0]
        ate = y1.mean() - y0.mean()
        se = np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0))
        ref = rct_reference(df, "visit", arm)
        assert ref["ate"] == pytest.approx(ate, abs=1e-12) and ref["se"] == pytest.approx(se, abs=1e-12)
        assert ref["ci_low"] == pytest.approx(ate - 1.959964 * se, abs=1e-6)
        assert ref["ci_high"] == pytest.approx(ate + 1.959964 * se, abs=1e-6)
        assert (ref["n_treated"], ref["n_control"]) == (len(y1), len(y0))


def test_confounded_naive_overstates_and_strength_zero_does_not(df):
    d = confounded_subsample(df, SIM, seed=0, outcome="visit")
    ref = rct_reference(df, "visit", SIM.arm)
    naive = d.naive_ate(SIM.arm)
    assert d.ate_true == ref["ate"] and 0.3 * len(df) < len(d.Y) < 0.7 * len(df)
    assert naive["ate"] - ref["ate"] > 2 * naive["se"]
    assert set(np.unique(d.T)) == {0, 1, 2} and d.graph.adjustment_set() == ["C"]
    null = confounded_subsample(df, OmegaConf.merge(SIM, {"strength": 0.0}), seed=0, outcome="visit")
    assert abs(null.naive_ate(SIM.arm)["ate"] - ref["ate"]) < 3 * null.naive_ate(SIM.arm)["se"]


def test_true_propensity_matches_subsample_shares(df):
    d = confounded_subsample(df, SIM, seed=0, outcome="spend")
    pair = np.isin(d.T, [0, SIM.arm])
    # calibration: mean true propensity in each quintile equals the observed share of the arm
    q = np.quantile(d.propensity[pair], [0.2, 0.4, 0.6, 0.8])
    bins = np.digitize(d.propensity[pair], q)
    for b in range(5):
        sel = bins == b
        assert abs(d.propensity[pair][sel].mean() - (d.T[pair][sel] == SIM.arm).mean()) < 0.05


def test_single_arm_and_missing_outcome_raise(df):
    with pytest.raises(InputError, match="'treatment' has a single arm"):
        rct_reference(df[df.treatment == 1], "visit", 1)
    with pytest.raises(InputError, match="'revenue' is missing"):
        confounded_subsample(df, SIM, seed=0, outcome="revenue")
