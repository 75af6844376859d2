"""Full-ranking next-item metrics (no sampled negatives), under two protocols.

``all items`` (the study's headline): every item of the catalogue is a candidate; history items
are *not* removed. ``history removed`` (:func:`remove_seen`): the items a user bought before the
target are not candidates, as in S3-Rec's evaluation code (it zeroes their scores) and RecTools'
``filter_viewed``, which the published Beauty / Sports numbers use; a target bought before counts
as a miss there. Numbers of one protocol are only compared with numbers of the same protocol. The rank of the
target is the number of candidates scored **at least as high** as the target, other than
the target itself (0 = top). Ties therefore count against the model (pessimistic), so a
constant scorer gets the worst rank instead of a lucky one.

Examples
--------
>>> import torch
>>> scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.2, 0.2, 0.2, 0.2]])
>>> rank_of_target(scores, torch.tensor([2, 0])).tolist()
[1, 3]
>>> round(ndcg_at_k(scores, torch.tensor([2, 0]), 2), 4)   # (1/log2(3) + 0) / 2
0.3155
>>> [round(v, 3) for v in binomial_ci(19, 20, alpha=0.05)]
[0.751, 0.999]
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def rank_of_target(scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
                   exclude: Iterable[int] = ()) -> torch.Tensor:
    """0-based pessimistic rank of ``targets[i]`` among ``scores[i, :]``.

    Parameters
    ----------
    scores : [N, C] float
        Score of every candidate column.
    targets : [N] int
        Column of the true next item.
    exclude : iterable of int
        Columns that are never candidates (padding id 0, ``[MASK]``), e.g. ``(0,)``.
    """
    scores = _as_tensor(scores).float().clone()
    targets = _as_tensor(targets).long().to(scores.device)
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"scores must be [N, C] and targets [N]; got {tuple(scores.shape)} and {tuple(targets.shape)}")
    exclude = list(exclude)
    if exclude:
        if bool(torch.isin(targets, torch.tensor(exclude, device=targets.device)).any()):
            raise ValueError(f"a target is one of the excluded columns {exclude}")
        scores[:, exclude] = -torch.inf
    target_score = scores.gather(1, targets[:, None])
    return (scores >= target_score).sum(1) - 1


def remove_seen(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``scores`` ``[N, C]`` with the columns of each row's history ``seen`` ``[N, L]`` (0-padded) at -inf.

    >>> remove_seen(torch.zeros(2, 4), torch.tensor([[0, 2], [3, 1]])).tolist()
    [[-inf, 0.0, -inf, 0.0], [0.0, -inf, 0.0, -inf]]
    """
    return scores.float().scatter(1, seen.long().to(scores.device), -torch.inf)


def _hr(ranks: torch.Tensor, k: int) -> torch.Tensor:
    return (ranks < k).float()


def _ndcg(ranks: torch.Tensor, k: int) -> torch.Tensor:
    # a single relevant item: ideal DCG = 1, DCG = 1 / log2(rank + 2) inside the top k
    return torch.where(ranks < k, 1.0 / torch.log2(ranks.float() + 2.0), torch.zeros_like(ranks, dtype=torch.float))


def hit_rate_at_k(scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, k: int,
                  exclude: Iterable[int] = ()) -> float:
    """Share of rows whose target ranks in the top ``k`` (HR@K = Recall@K with one target)."""
    return float(_hr(rank_of_target(scores, targets, exclude), k).mean())


def ndcg_at_k(scores: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, k: int,
              exclude: Iterable[int] = ()) -> float:
    """Mean NDCG@K with one relevant item: ``1 / log2(rank + 2)`` if ``rank < k`` else 0."""
    return float(_ndcg(rank_of_target(scores, targets, exclude), k).mean())


def metric_sums(ranks: torch.Tensor, ks: Iterable[int]) -> dict[str, torch.Tensor]:
    """Per-batch *sums* of HR@K and NDCG@K (add across batches / processes, then divide by N)."""
    out = {}
    for k in ks:
        out[f"hr@{k}"] = _hr(ranks, k).sum()
        out[f"ndcg@{k}"] = _ndcg(ranks, k).sum()
    return out


def ranking_metrics(ranks: torch.Tensor | np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """``{"hr@K": ..., "ndcg@K": ...}`` means over all rows from their ranks."""
    ranks = _as_tensor(ranks).long()
    if ranks.numel() == 0:
        raise ValueError("no rows to evaluate")
    return {key: float(v) / ranks.numel() for key, v in metric_sums(ranks, ks).items()}


def binomial_ci(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a binomial proportion; (nan, nan) when ``n == 0``."""
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan")
    lo = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    hi = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return lo, hi


def hit_rate_interval(hr: float, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson interval of a hit rate measured on ``n`` users (one test item each).

    HR@K is the share of users whose test item ranks in the top K, a binomial proportion over the test users,
    so the interval says how far another draw of users could move it; the spread over training seeds is not in
    it. ``hr * n`` must be a whole number of users (up to float32 rounding).

    >>> [round(v, 4) for v in hit_rate_interval(0.059, 35598, 0.05)]   # 2,100.3 users: not a hit rate of 35,598
    Traceback (most recent call last):
    ...
    ValueError: HR 0.059 of 35598 users is 2100.282 hits, not a whole number: is n the number of test users?
    >>> [round(v, 4) for v in hit_rate_interval(2100 / 35598, 35598, 0.05)]
    [0.0566, 0.0615]
    """
    hits = hr * n
    if abs(hits - round(hits)) > max(1e-3, 1e-6 * n):
        raise ValueError(f"HR {hr:g} of {n} users is {hits:.3f} hits, not a whole number: is n the number of test "
                         "users?")
    return binomial_ci(int(round(hits)), int(n), alpha)
