"""CausalHeads: loss on the factual arm, and recovery of a planted propensity and effect."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from lib.errors import InputError
from lib.models.heads import CausalHeads
from lib.train.causal import fit_heads

torch.set_num_threads(1)

HC = OmegaConf.create(dict(hidden=32, dropout=0.0, alpha=1.0, outcome_loss="auto", lr=1e-2, encoder_lr=1e-4,
                           weight_decay=0.0, batch_size=128, max_epochs=40, max_steps=-1,
                           val_fraction=0.2, patience=5))


def _confounded(n=3000, tau=2.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))        # known propensity
    t = rng.binomial(1, e)
    y = x[:, 0] + 0.5 * x[:, 2] + tau * t + rng.normal(scale=0.5, size=n)
    return x, t, y, e


def test_factual_arm_loss_matches_hand_computation():
    heads = CausalHeads(in_dim=2, hidden=4, dropout=0.0, alpha=0.5, outcome_loss="mse")
    out = {"g": torch.tensor([0.0, 0.0]), "q0": torch.tensor([1.0, 5.0]), "q1": torch.tensor([9.0, 3.0])}
    losses = heads.loss(out, torch.tensor([0, 1]), torch.tensor([2.0, 1.0]))
    # factual predictions 1 (control) and 3 (treated): ((1-2)^2 + (3-1)^2) / 2 = 2.5; BCE(0 logit) = ln 2
    assert losses["outcome"].item() == pytest.approx(2.5)
    assert losses["propensity"].item() == pytest.approx(np.log(2))
    assert losses["loss"].item() == pytest.approx(2.5 + 0.5 * np.log(2))


def test_heads_learn_propensity_and_planted_effect():
    x, t, y, e = _confounded()
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert abs(naive - 2.0) > 0.5                               # confounding biases the naive contrast
    heads = fit_heads(x, t, y, HC, seed=0)
    pred = heads.predict(torch.as_tensor(x, dtype=torch.float32))
    assert roc_auc_score(t, pred["e"].numpy()) > 0.75
    assert np.corrcoef(pred["e"].numpy(), e)[0, 1] > 0.9
    ate = (pred["mu1"] - pred["mu0"]).mean().item()
    assert ate == pytest.approx(2.0, abs=0.25)


def test_binary_outcome_uses_bce_and_returns_probabilities():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    t = rng.binomial(1, 0.5, size=400)
    y = rng.binomial(1, 0.2 + 0.3 * t).astype(float)
    heads = fit_heads(x, t, y, OmegaConf.merge(HC, {"max_epochs": 5}), seed=0)
    assert heads.outcome_loss == "bce"
    pred = heads.predict(torch.as_tensor(x, dtype=torch.float32))
    assert ((pred["mu0"] > 0) & (pred["mu0"] < 1)).all()
    assert (pred["mu1"] - pred["mu0"]).mean().item() == pytest.approx(0.3, abs=0.15)


def test_fit_is_deterministic():
    x, t, y, _ = _confounded(n=400)
    cfg = OmegaConf.merge(HC, {"max_epochs": 3})
    a = fit_heads(x, t, y, cfg, seed=3).predict(torch.as_tensor(x[:5], dtype=torch.float32))["mu1"]
    b = fit_heads(x, t, y, cfg, seed=3).predict(torch.as_tensor(x[:5], dtype=torch.float32))["mu1"]
    assert torch.equal(a, b)


def test_bad_treatment_is_an_input_error():
    x, t, y, _ = _confounded(n=50)
    with pytest.raises(InputError, match="0/1"):
        fit_heads(x, t * 2, y, HC, seed=0)
    with pytest.raises(InputError, match="single arm"):
        fit_heads(x, np.zeros_like(t), y, HC, seed=0)

