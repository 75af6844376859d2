"""``causal.ray``: LinearDML with Ray cross-fitting gives the ATE of the in-process fit."""
from __future__ import annotations

import numpy as np
import pytest
from econml.dml import LinearDML
from sklearn.linear_model import LinearRegression, LogisticRegression

from lib.causal.scale import econml_kwargs
from lib.config import compose


def planted(n: int = 2000, effect: float = 2.0, seed: int = 0):
    """Binary T confounded by W through a logistic propensity; Y = effect * T + W b + noise."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 3))
    T = rng.binomial(1, 1 / (1 + np.exp(-(W @ np.array([0.8, -0.5, 0.3])))))
    Y = effect * T + W @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=n)
    return Y, T, W


def fit_ate(Y, T, W, **kwargs) -> float:
    est = LinearDML(model_y=LinearRegression(), model_t=LogisticRegression(), discrete_treatment=True, cv=3,
                    random_state=0, **kwargs)
    est.fit(Y, T, X=None, W=W)
    return float(est.ate())


def test_ray_off_adds_nothing():
    assert econml_kwargs(compose("smoke").causal) == {}


def test_linear_dml_on_ray_matches_in_process_fit(ray_cluster):
    ccfg = compose("smoke", ["causal.ray.enabled=true", "causal.ray.num_cpus_per_fold=1"]).causal
    kwargs = econml_kwargs(ccfg)
    assert kwargs == {"use_ray": True, "ray_remote_func_options": {"num_cpus": 1}}
    Y, T, W = planted()
    local, on_ray = fit_ate(Y, T, W), fit_ate(Y, T, W, **kwargs)
    assert on_ray == pytest.approx(local, abs=1e-9)
    assert abs(on_ray - 2.0) < 0.15  # and both find the planted effect
    naive = Y[T == 1].mean() - Y[T == 0].mean()
    assert abs(naive - 2.0) > 0.5  # which the difference in means misses


def test_estimate_uses_ray_when_configured(ray_cluster):
    """The estimators read causal.ray: the same LinearDML estimate with and without Ray folds."""
    from lib.causal.estimators import estimate

    Y, T, W = planted()
    X = np.ones((len(Y), 1)) * np.arange(len(Y))[:, None] % 2
    off = compose("smoke", ["causal.refuters.enabled=false"]).causal
    on = compose("smoke", ["causal.refuters.enabled=false", "causal.ray.enabled=true"]).causal
    a = estimate("linear_dml", Y, T, X, W, off, seed=0, check_overlap=False)
    b = estimate("linear_dml", Y, T, X, W, on, seed=0, check_overlap=False)
    assert b.model.use_ray and not a.model.use_ray
    assert b.ate == pytest.approx(a.ate, abs=1e-9) and a.ci_low < 2.0 < a.ci_high


def test_scale_benchmark_embeds_the_declared_data_set(tmp_path):
    """The benchmark reads the histories named by conf/data/datasets/<name>.yaml (one vector per user)."""
    from lib.bench.causal_scale import embed_users

    rng = np.random.default_rng(0)
    path = tmp_path / "amazon_beauty_s3rec" / "Beauty.txt"
    path.parent.mkdir()
    path.write_text("".join(f"{u} " + " ".join(map(str, rng.integers(1, 40, 6))) + "\n" for u in range(1, 61)))
    cfg = compose("smoke", [f"paths.data_root={tmp_path}"])
    emb = embed_users(cfg, "beauty", [4, 8], seed=0)
    assert emb[4].shape == (60, 4) and emb[8].shape == (60, 8)
    assert np.allclose(emb[8].mean(0), 0) and np.allclose(emb[8].std(0), 1)   # standardised columns
