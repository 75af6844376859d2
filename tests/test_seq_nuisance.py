"""Sequence-transformer nuisances for EconML and the cross-fitted fine-tuned representation.

Generated data: users' item histories; the confounder is whether item 1 appears in the
history, so only a model that reads the history can adjust for it.
"""
import numpy as np
import pytest
import torch
from econml.dml import LinearDML
from econml.dr import DRLearner
from sklearn.base import clone

from lib.errors import InputError
from lib.train.causal import crossfit_finetuned_vectors, stratified_folds
from lib.config import compose
from lib.train.datamodule import left_pad
from lib.train.seq_nuisance import SequenceClassifier, SequenceRegressor

torch.set_num_threads(1)
N_ITEMS, MAX_LEN, TAU = 20, 10, 1.0
HC = dict(hidden=16, dropout=0.3, alpha=1.0, outcome_loss="auto", lr=1e-2, encoder_lr=1e-2, weight_decay=0.05,
          batch_size=16, max_epochs=20, max_steps=-1, val_fraction=0.2, patience=5)
MC = compose("smoke", ["+model.sizes.t={hidden:16,layers:1,heads:2}", "model.size=t", f"model.max_len={MAX_LEN}",
                       "model.dropout=0.0", "model.attn_dropout=0.0", "model.attn_implementation=eager"]).model


def _confounded(n, seed):
    """Padded histories W, treatment, outcome and the confounder c = 'item 1 in the history'."""
    rng = np.random.default_rng(seed)
    hist = [rng.integers(2, N_ITEMS + 1, size=rng.integers(3, MAX_LEN + 1)).tolist() for _ in range(n)]
    c = rng.random(n) < 0.5
    for h, has_item_1 in zip(hist, c):
        if has_item_1:
            h[rng.integers(len(h))] = 1
    t = (rng.random(n) < 0.1 + 0.8 * c).astype(int)
    y = TAU * t + 1.0 * c + rng.normal(0, 0.5, n)
    return left_pad(hist, MAX_LEN).numpy(), t, y, c.astype(float)


def test_item_ids_are_validated():
    W, t, y, _ = _confounded(40, 0)
    est = SequenceRegressor(N_ITEMS, HC, MC)
    for bad, match in ((W - 1, "-1"), (W + 0.5, "whole number"), (W + N_ITEMS, "outside 0..20")):
        with pytest.raises(InputError, match=match):
            est.fit(bad, y)
    with pytest.raises(InputError, match="both classes"):
        SequenceClassifier(N_ITEMS, HC, MC).fit(W, np.zeros_like(t))
    with pytest.raises(InputError, match="history_start"):
        SequenceRegressor(N_ITEMS, HC, MC, history_start=3, history_len=MAX_LEN).fit(W, y)


def test_clone_copies_parameters_only():
    est = SequenceClassifier(N_ITEMS, {**HC, "max_epochs": 1}, MC, history_start=2, seed=5)
    W, t, _, _ = _confounded(60, 1)
    copy = clone(est.fit(np.hstack([np.zeros((60, 2)), W]), t))
    assert copy.get_params()["seed"] == 5 and copy.get_params()["history_start"] == 2
    assert copy.get_params()["heads_cfg"]["max_epochs"] == 1 and not hasattr(copy, "module_")
    assert hasattr(est, "module_") and est.classes_.tolist() == [0, 1]


def test_linear_dml_with_sequence_nuisances_recovers_planted_ate():
    W, t, y, _ = _confounded(600, 0)
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert naive - TAU > 0.5                                    # the confounder biases the naive contrast
    est = LinearDML(model_y=SequenceRegressor(N_ITEMS, HC, MC), model_t=SequenceClassifier(N_ITEMS, HC, MC),
                    discrete_treatment=True, cv=2, random_state=0)
    est.fit(y, t, W=W.astype(np.float64))                       # EconML-style float ids are accepted
    lo, hi = est.ate_interval(alpha=0.01)                       # one draw: a 99% interval fails 1% of the time
    assert lo <= TAU <= hi and hi - lo < 0.5, (est.ate(), lo, hi)


def test_numeric_columns_around_the_history_reach_the_head():
    """DRLearner's outcome model gets hstack([X, W, T]): X before the ids and T after them."""
    rng = np.random.default_rng(2)
    W, _, _, _ = _confounded(300, 2)
    x, t = rng.normal(size=(300, 2)), rng.integers(0, 2, 300)
    y = 3.0 * x[:, 0] + 2.0 * t + rng.normal(0, 0.1, 300)
    est = SequenceRegressor(N_ITEMS, HC, MC, history_start=2, history_len=MAX_LEN)
    pred = est.fit(np.hstack([x, W, t[:, None]]), y).predict(np.hstack([x, W, t[:, None]]))
    assert np.corrcoef(pred, y)[0, 1] > 0.95
    assert est.transform(np.hstack([x, W, t[:, None]])).shape == (300, 16)


def test_dr_learner_passes_effect_modifiers_history_and_treatment_columns():
    """EconML's DRLearner: propensity on hstack([X, W]), outcome on hstack([X, W, T]) (the layout above)."""
    W, t, y, _ = _confounded(200, 3)
    X = np.random.default_rng(3).normal(size=(200, 1))
    hc = {**HC, "max_epochs": 2}
    est = DRLearner(model_propensity=SequenceClassifier(N_ITEMS, hc, MC, history_start=1, history_len=MAX_LEN),
                    model_regression=SequenceRegressor(N_ITEMS, hc, MC, history_start=1, history_len=MAX_LEN),
                    cv=2, random_state=0)
    est.fit(y, t, X=X, W=W)
    assert [m.n_features_in_ for m in est.models_propensity[0]] == [1 + MAX_LEN] * 2
    assert [m.n_features_in_ for m in est.models_regression[0]] == [1 + MAX_LEN + 1] * 2
    assert np.isfinite(est.ate(X))


@pytest.fixture(scope="module")
def crossfit_run():
    W, t, y, _ = _confounded(150, 4)
    folds = stratified_folds(t, 3, seed=0)
    hc = {**HC, "max_epochs": 2}
    run = lambda tt, yy, seed=0: crossfit_finetuned_vectors(W, tt, yy, folds, seed, MC, hc, N_ITEMS)  # noqa: E731
    return W, t, y, folds, run, run(t, y)


def test_heldout_fold_ignores_its_own_treatment_and_outcome(crossfit_run):
    _, t, y, folds, run, base = crossfit_run
    held = folds == 0
    perm = np.random.default_rng(0).permutation(np.flatnonzero(held))
    t2, y2 = t.copy(), y.copy()
    t2[held], y2[held] = t[perm], y[perm]
    permuted = run(t2, y2)
    for key in ("vectors", "e", "mu0", "mu1"):
        assert np.array_equal(getattr(permuted, key)[held], getattr(base, key)[held]), key
    assert not np.allclose(permuted.vectors[folds == 1], base.vectors[folds == 1])   # fold 0 trains fold 1's model
    y3 = y.copy()
    y3[folds == 1] += 5.0                                       # another fold's outcome does move fold 0
    assert not np.allclose(run(t, y3).vectors[held], base.vectors[held])


def test_crossfit_is_deterministic_and_seeded(crossfit_run):
    _, t, y, folds, run, base = crossfit_run
    assert base.vectors.shape == (150, 16) and base.folds.tolist() == folds.tolist()
    assert ((base.e > 0) & (base.e < 1)).all()
    assert np.array_equal(run(t, y).vectors, base.vectors)
    assert not np.allclose(run(t, y, seed=1).vectors, base.vectors)


def test_crossfit_needs_two_folds_and_aligned_inputs(crossfit_run):
    W, t, y, folds, _, _ = crossfit_run
    with pytest.raises(InputError, match="folds"):
        crossfit_finetuned_vectors(W, t, y, np.zeros_like(folds), 0, MC, HC, N_ITEMS)
    with pytest.raises(InputError, match="rows"):
        crossfit_finetuned_vectors(W[:-1], t, y, 3, 0, MC, HC, N_ITEMS)
