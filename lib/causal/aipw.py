"""CausalBERT-style AIPW: cross-fitted Dragonnet heads on a frozen representation.

For each treated arm ``k`` the units with ``T in {0, k}`` are split into ``cv`` folds; a
:class:`lib.models.heads.CausalHeads` is trained on the other folds (propensity + outcome
under each arm, one shared layer) and predicts ``e``, ``mu0``, ``mu1`` on the held-out
fold. The ATE is the mean of the augmented IPW score

    psi = mu1 - mu0 + T (Y - mu1) / e - (1 - T) (Y - mu0) / (1 - e)

with standard error ``sd(psi) / sqrt(n)``; the CATE is ``mu1 - mu0``. Propensities are
clipped to ``[clip, 1 - clip]`` (``causal.aipw.clip``) so that a few extreme scores cannot
dominate the mean. The heads' architecture and optimiser are ``model.heads`` (one block for
every use of the causal heads; ``causal.aipw.heads`` points at it), trained for its
``max_epochs`` on the training folds.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from lib.models.heads import CausalHeads, is_binary


def _train_heads(Z: np.ndarray, T: np.ndarray, Y: np.ndarray, hcfg: Any, seed: int) -> CausalHeads:
    torch.manual_seed(seed)
    heads = CausalHeads(Z.shape[1], hidden=int(hcfg.hidden), dropout=float(hcfg.dropout),
                        alpha=float(hcfg.alpha), outcome_loss="bce" if is_binary(Y) else "mse")
    heads.set_outcome_scale(Y)
    opt = torch.optim.AdamW(heads.parameters(), lr=float(hcfg.lr), weight_decay=float(hcfg.weight_decay))
    z, t, y = (torch.as_tensor(a, dtype=torch.float32) for a in (Z, T, Y))
    gen = torch.Generator().manual_seed(seed)
    bs = int(hcfg.batch_size)
    heads.train()
    for _ in range(int(hcfg.max_epochs)):
        for idx in torch.randperm(len(z), generator=gen).split(bs):
            opt.zero_grad()
            heads.loss(heads(z[idx]), t[idx], y[idx])["loss"].backward()
            opt.step()
    return heads


def aipw_scores(y: np.ndarray, t: np.ndarray, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray,
                clip: float) -> np.ndarray:
    """Per-unit AIPW scores ``psi`` (their mean is the ATE) from out-of-fold ``e``, ``mu0``, ``mu1``.

    >>> aipw_scores(np.array([1.0, 0.0]), np.array([1, 0]), np.array([0.5, 0.5]),
    ...             np.array([0.0, 0.0]), np.array([1.0, 1.0]), clip=0.01).tolist()
    [1.0, 1.0]
    """
    e = np.clip(e, clip, 1 - clip)
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


def aipw_heads(Y: np.ndarray, T: np.ndarray, X: np.ndarray | None, W: np.ndarray | None, ccfg: Any,
               seed: int) -> tuple[dict[int, tuple[float, float, float, float]], dict[int, np.ndarray], list]:
    """Cross-fitted AIPW per arm vs control; returns ``({arm: (ate, lo, hi, se)}, {arm: cate}, heads)``.

    Units outside ``{0, k}`` get the CATE of arm ``k`` from the heads of the fold they were
    never trained on (fold 0), so every unit has a CATE for every arm.
    """
    hcfg, clip = ccfg.aipw.heads, float(ccfg.aipw.clip)
    alpha, cv = float(ccfg.alpha), int(ccfg.cv)
    Z = np.hstack([M for M in (X, W) if M is not None]) if (X is not None or W is not None) else np.zeros((len(Y), 1))
    Z = StandardScaler().fit_transform(Z)
    torch.set_num_threads(max(1, int(ccfg.n_jobs)))
    res, cate, models = {}, {}, []
    for arm in [int(a) for a in np.unique(T) if a != 0]:
        pair = np.flatnonzero((T == 0) | (T == arm))
        t = (T[pair] == arm).astype(np.float64)
        psi, tau = np.zeros(len(pair)), np.zeros(len(Y))
        folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed).split(pair, t)
        for f, (tr, te) in enumerate(folds):
            heads = _train_heads(Z[pair[tr]], t[tr], Y[pair[tr]], hcfg, seed + f)
            p = {k: v.numpy().astype(np.float64) for k, v in heads.predict(torch.as_tensor(Z[pair[te]], dtype=torch.float32)).items()}
            psi[te] = aipw_scores(Y[pair[te]], t[te], p["e"], p["mu0"], p["mu1"], clip)
            tau[pair[te]] = p["mu1"] - p["mu0"]
            if f == 0:
                rest = np.setdiff1d(np.arange(len(Y)), pair)
                if len(rest):
                    q = heads.predict(torch.as_tensor(Z[rest], dtype=torch.float32))
                    tau[rest] = (q["mu1"] - q["mu0"]).numpy()
            models.append(heads)
        ate, se = float(psi.mean()), float(psi.std(ddof=1) / np.sqrt(len(psi)))
        q = stats.norm.ppf(1 - alpha / 2)
        res[arm], cate[arm] = (ate, ate - q * se, ate + q * se, se), tau
    return res, cate, models
