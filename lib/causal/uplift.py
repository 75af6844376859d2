"""Targeting quality on a randomised test split: Qini, AUUC, uplift@k, a permutation null, policy value.

Qini coefficient and AUUC are those of scikit-uplift (``sklift.metrics.qini_auc_score``,
``uplift_auc_score``, ``qini_curve``, ``uplift_at_k``); both are normalised so that the diagonal
scores 0 and the perfect ordering 1. scikit-uplift needs a binary outcome and a binary
treatment, so multi-arm data are scored arm by arm (units with ``T in {0, k}``).

:func:`ranking_scores` computes the same numbers for many scorings at once (rows of a matrix,
ties handled as scikit-uplift does), which makes the permutation null (:func:`permutation_null`:
many random scorings of the same units) and the paired bootstrap (:func:`paired_bootstrap`: the
models and a random scoring on the same resamples) cheap; :func:`evaluate` assembles both into
one row per model plus the ``random`` row.

Examples
--------
>>> import numpy as np
>>> y = np.array([1, 0, 1, 0]); t = np.array([1, 1, 0, 0]); score = np.array([0.9, 0.1, 0.5, 0.3])
>>> policy_value(y, t, score, k=0.5, p_treat=0.5)
0.5
>>> ranking_scores(y, t, score[None, :], k=0.5)["qini"]
array([0.5])
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklift.metrics import qini_auc_score, qini_curve, uplift_auc_score, uplift_at_k

from lib.errors import InputError

_CHUNK = 2_000_000   # matrix cells per vectorised block (about 16 MB per float array)


def _check(y: np.ndarray, t: np.ndarray, score: np.ndarray, source: str) -> None:
    if not (len(y) == len(t) == len(score)):
        raise InputError(source, "uplift", f"lengths differ (y {len(y)}, t {len(t)}, score {len(score)})",
                         "score the same test units whose outcome and treatment you pass")
    if not set(np.unique(t)) <= {0, 1} or len(np.unique(t)) < 2:
        raise InputError(source, "T", "must contain both 0 (control) and 1 (treated)", "restrict to one arm vs control")
    if not set(np.unique(y)) <= {0, 1}:
        raise InputError(source, "Y", "must be binary for Qini / AUUC", "score a 0/1 outcome (visit, conversion)")


def scores(y: np.ndarray, t: np.ndarray, score: np.ndarray, source: str = "uplift") -> dict[str, float]:
    """``{"qini": ..., "auuc": ...}`` of ranking the units by ``score`` (higher = treat first)."""
    y, t, score = np.asarray(y), np.asarray(t), np.asarray(score, dtype=float)
    _check(y, t, score, source)
    return {"qini": float(qini_auc_score(y, score, t)), "auuc": float(uplift_auc_score(y, score, t))}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b != 0)


def _ranked_curves(y: np.ndarray, t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Areas under the Qini and uplift curves of rows already sorted by descending score ``s``.

    Also returns the cumulative treated / control counts and responders behind uplift@k. As in
    scikit-uplift, a curve has one point per distinct score (the last unit of a tie block) plus
    the origin, and its area is the trapezoid rule over those points.
    """
    n = s.shape[1]
    nt, yt, yc = np.cumsum(t, 1), np.cumsum(y * t, 1), np.cumsum(y * (1 - t), 1)
    na = np.arange(1, n + 1)
    nc = na - nt
    qini = yt - yc * _div(nt, nc)
    upl = (_div(yt, nt) - _div(yc, nc)) * na
    last = np.ones(s.shape, dtype=bool)
    last[:, :-1] = s[:, 1:] != s[:, :-1]
    pos = np.where(last, np.arange(n), -1)
    prev = np.concatenate([np.full((len(s), 1), -1), np.maximum.accumulate(pos, 1)[:, :-1]], 1)
    x_prev = prev + 1                                   # number of units at the previous point (0 = origin)
    areas = []
    for v in (qini, upl):
        v_prev = np.where(prev >= 0, np.take_along_axis(v, np.maximum(prev, 0), 1), 0.0)
        areas.append(np.where(last, (na - x_prev) * (v + v_prev) / 2, 0.0).sum(1))
    return areas[0], areas[1], nt, yt, yc, qini


def _sort_rows(y: np.ndarray, t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(s, axis=1, kind="mergesort")[:, ::-1]   # scikit-uplift's order, ties included
    take = lambda a: np.take_along_axis(np.broadcast_to(a, s.shape), order, 1)  # noqa: E731
    return take(y), take(t), take(s)


def _normalisers(y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Baseline and perfect areas (Qini, uplift curve) of each row of ``(y, t)``, as scikit-uplift draws them."""
    qp = y * t - y * (1 - t)
    cr = ((y == 1) & (t == 0)).sum(1, keepdims=True)
    tn = ((y == 0) & (t == 1)).sum(1, keepdims=True)
    up = 2 * (y == t) + np.where(cr > tn, y, t)
    q_perfect, _, *_ = _ranked_curves(*_sort_rows(y, t, qp))
    _, u_perfect, *_ = _ranked_curves(*_sort_rows(y, t, up))
    n = y.shape[1]
    n_t = t.sum(1)
    yt, yc = (y * t).sum(1), (y * (1 - t)).sum(1)
    q_end = yt - yc * _div(n_t, n - n_t)
    u_end = (_div(yt, n_t) - _div(yc, n - n_t)) * n
    return n * q_end / 2, q_perfect, n * u_end / 2, u_perfect


def ranking_scores(y: np.ndarray, t: np.ndarray, S: np.ndarray, k: float,
                   with_curves: bool = False) -> dict[str, np.ndarray]:
    """Qini, AUUC and uplift@k (``overall`` strategy) of every row of ``S``, vectorised.

    Parameters
    ----------
    y, t : array
        0/1 outcome and treatment, shape ``(n,)`` (shared by every row) or ``(R, n)``.
    S : array, shape (R, n)
        One scoring of the units per row (higher = treat first).
    k : float
        Share of all units targeted for uplift@k.
    with_curves : bool
        Also return ``curve``, the Qini curve of each row at 0..n units targeted (exact for
        scorings without ties; shape ``(R, n + 1)``).

    Returns
    -------
    dict
        ``qini``, ``auuc``, ``uplift_at_k`` of shape ``(R,)``, equal to scikit-uplift's
        ``qini_auc_score``, ``uplift_auc_score`` and ``uplift_at_k(strategy="overall")`` row by
        row; NaN where a row lacks treated or control units.
    """
    S = np.atleast_2d(np.asarray(S, dtype=float))
    y2 = np.broadcast_to(np.atleast_2d(np.asarray(y, dtype=np.int64)), S.shape)
    t2 = np.broadcast_to(np.atleast_2d(np.asarray(t, dtype=np.int64)), S.shape)
    shared = np.ndim(y) == 1 and np.ndim(t) == 1
    norms = _normalisers(y2[:1], t2[:1]) if shared else None
    out: dict[str, list[np.ndarray]] = {}
    for rows in _blocks(S.shape):
        block = _score_block(y2[rows], t2[rows], S[rows], k, norms or _normalisers(y2[rows], t2[rows]), with_curves)
        for key, v in block.items():
            out.setdefault(key, []).append(v)
    return {key: np.concatenate(v) for key, v in out.items()}


def _blocks(shape: tuple[int, int]) -> list[slice]:
    """Row slices of about ``_CHUNK`` cells each."""
    rows = max(1, _CHUNK // max(shape[1], 1))
    return [slice(lo, lo + rows) for lo in range(0, shape[0], rows)]


def _score_block(y: np.ndarray, t: np.ndarray, S: np.ndarray, k: float, norms: tuple[np.ndarray, ...],
                 with_curves: bool) -> dict[str, np.ndarray]:
    """:func:`ranking_scores` of one block of rows, given the rows' baseline and perfect areas."""
    n, m = S.shape[1], int(S.shape[1] * k)
    if not 1 <= m < n:
        raise ValueError(f"uplift@k needs 0 < k * n < n, got k={k} with n={n} units")
    ys, ts, ss = _sort_rows(y, t, S)
    qa, ua, nt, yt, yc, qcurve = _ranked_curves(ys, ts, ss)
    qb, qp, ub, upf = norms
    n_t = ts.sum(1)
    ok = (n_t > 0) & (n_t < n)
    top_t, top_c = nt[:, m - 1], m - nt[:, m - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"qini": np.where(ok, (qa - qb) / (qp - qb), np.nan), "auuc": np.where(ok, (ua - ub) / (upf - ub), np.nan),
               "uplift_at_k": np.where((top_t > 0) & (top_c > 0), yt[:, m - 1] / top_t - yc[:, m - 1] / top_c, np.nan)}
    if with_curves:
        out["curve"] = np.concatenate([np.zeros((len(ss), 1)), qcurve], 1)
    return out


def permutation_null(y: np.ndarray, t: np.ndarray, n_null: int, seed: int, k: float, points: int,
                     alpha: float) -> dict[str, object]:
    """Qini / AUUC / uplift@k of ``n_null`` random scorings of the same units: the null of no targeting skill.

    Returns the draws (``qini``, ``auuc``, ``uplift_at_k``; arrays of length ``n_null``) and
    ``band``: the Qini curve of random targeting as its mean and ``alpha/2`` / ``1 - alpha/2``
    quantiles at ``points`` evenly spaced shares targeted (columns ``share_targeted, qini,
    qini_low, qini_high``).
    """
    y, t = np.asarray(y), np.asarray(t)
    _check(y, t, np.zeros(len(y)), "permutation null")
    rng = np.random.default_rng(seed)
    draws = ranking_scores(y, t, rng.random((int(n_null), len(y))), k, with_curves=True)
    curves = draws.pop("curve")
    grid = np.linspace(0, len(y), points)
    i0 = np.floor(grid).astype(int)
    i1, w = np.minimum(i0 + 1, len(y)), grid - i0
    at = curves[:, i0] * (1 - w) + curves[:, i1] * w
    lo, hi = np.quantile(at, [alpha / 2, 1 - alpha / 2], axis=0)
    draws["band"] = pd.DataFrame({"share_targeted": grid / len(y), "qini": at.mean(0), "qini_low": lo, "qini_high": hi})
    return draws


def paired_bootstrap(y: np.ndarray, t: np.ndarray, scorings: dict[str, np.ndarray], n_boot: int, seed: int,
                     k: float) -> dict[str, dict[str, np.ndarray]]:
    """Qini / AUUC / uplift@k of each scoring and of a random scoring on the same ``n_boot`` resamples.

    Units are resampled with replacement; resample ``b`` scores every model and one fresh
    random scoring of the units (key ``random``), so ``draws[model]["qini"] - draws["random"]["qini"]``
    is a paired bootstrap of the model's gain over random targeting. Resamples without treated or
    control units give NaN.
    """
    y, t = np.asarray(y, dtype=np.int64), np.asarray(t, dtype=np.int64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), (int(n_boot), len(y)))
    random_scores = np.take_along_axis(rng.random((int(n_boot), len(y))), idx, 1)
    scorings = {**{name: np.asarray(s, dtype=float)[idx] for name, s in scorings.items()}, "random": random_scores}
    out: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in scorings}
    for rows in _blocks(idx.shape):
        yb, tb = y[idx[rows]], t[idx[rows]]
        norms = _normalisers(yb, tb)            # shared by every scoring of these resamples
        for name, S in scorings.items():
            for key, v in _score_block(yb, tb, S[rows], k, norms, False).items():
                out[name].setdefault(key, []).append(v)
    return {name: {key: np.concatenate(v) for key, v in d.items()} for name, d in out.items()}


def p_value(null: np.ndarray, value: float) -> float:
    """One-sided permutation p-value ``(1 + #{null >= value}) / (1 + len(null))``.

    Examples
    --------
    >>> p_value(np.array([0.1, 0.2, 0.3]), 0.25)
    0.5
    """
    null = np.asarray(null)
    return float((1 + np.sum(null >= value)) / (1 + len(null)))


def evaluate(y: np.ndarray, t: np.ndarray, scorings: dict[str, np.ndarray], n_null: int, n_boot: int, seed: int,
             alpha: float, k: float, strategy: str, points: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model plus ``random``, and the null band of the Qini curve.

    Model rows: ``qini`` / ``auuc`` / ``uplift_at_k`` (scikit-uplift, ``uplift_at_k`` with
    ``strategy``) with percentile bootstrap CIs (``*_ci_low`` / ``*_ci_high``), the permutation
    p-values ``qini_p`` / ``auuc_p`` against ``n_null`` random scorings, and
    ``qini_minus_random`` (model minus the null mean) with the paired bootstrap CI of model minus a
    random scoring on the same resamples. The ``random`` row is the null distribution: its mean
    in ``qini`` / ``auuc`` / ``uplift_at_k`` and its ``alpha/2`` / ``1 - alpha/2`` quantiles in the
    ``*_ci_*`` columns (no p-value).
    """
    y, t = np.asarray(y), np.asarray(t)
    null = permutation_null(y, t, n_null, seed, k, points, alpha)
    boot = paired_bootstrap(y, t, scorings, n_boot, seed + 1, k)
    q = [alpha / 2, 1 - alpha / 2]
    metrics = ("qini", "auuc", "uplift_at_k")
    rows = []
    for name, s in scorings.items():
        row: dict[str, object] = {"model": name, **scores(y, t, s),
                                  "uplift_at_k": float(uplift_at_k(y, s, t, strategy=strategy, k=k))}
        for m in metrics:
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = (float(v) for v in np.nanquantile(boot[name][m], q))
        row["qini_p"], row["auuc_p"] = p_value(null["qini"], row["qini"]), p_value(null["auuc"], row["auuc"])
        row["qini_minus_random"] = row["qini"] - float(null["qini"].mean())
        diff = boot[name]["qini"] - boot["random"]["qini"]
        row["qini_minus_random_ci_low"], row["qini_minus_random_ci_high"] = (float(v) for v in np.nanquantile(diff, q))
        rows.append(row)
    rnd: dict[str, object] = {"model": "random"}
    for m in metrics:
        rnd[m] = float(np.nanmean(null[m]))
        rnd[f"{m}_ci_low"], rnd[f"{m}_ci_high"] = (float(v) for v in np.nanquantile(null[m], q))
    rows.append(rnd)
    return pd.DataFrame(rows), null["band"].assign(model="random")


def curve(y: np.ndarray, t: np.ndarray, score: np.ndarray, model: str, points: int) -> pd.DataFrame:
    """Qini curve as a tidy frame ``model, share_targeted, qini`` (``points`` evenly spaced rows)."""
    x, q = qini_curve(np.asarray(y), np.asarray(score, dtype=float), np.asarray(t))
    grid = np.linspace(0, x[-1], points)
    return pd.DataFrame({"model": model, "share_targeted": grid / x[-1], "qini": np.interp(grid, x, q)})


def policy_value(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float, p_treat: float) -> float:
    """IPW value (mean outcome per unit) of treating the top ``k`` share by ``score``, the rest not.

    On a randomised split with known ``P(T=1) = p_treat``, the value of policy ``pi`` is
    ``mean(Y * 1[T = pi(x)] / P(T = pi(x)))``. Ties at the cut are broken by order.
    """
    y, t, score = np.asarray(y, dtype=float), np.asarray(t), np.asarray(score, dtype=float)
    n_treat = int(round(k * len(y)))
    pi = np.zeros(len(y), dtype=int)
    pi[np.argsort(-score, kind="mergesort")[:n_treat]] = 1
    prob = np.where(pi == 1, p_treat, 1 - p_treat)
    return float(np.mean(y * (t == pi) / prob))


def policy_values(y: np.ndarray, t: np.ndarray, score: np.ndarray, ks: list[float], p_treat: float) -> pd.DataFrame:
    """Policy value of treating the top k% for each ``k`` plus treat-all (k=1) and treat-none (k=0)."""
    ks = sorted({0.0, 1.0, *map(float, ks)})
    return pd.DataFrame({"k": ks, "value": [policy_value(y, t, score, k, p_treat) for k in ks]})


def random_policy_values(y: np.ndarray, t: np.ndarray, ks: list[float], p_treat: float) -> pd.DataFrame:
    """Expected IPW value of treating a random top-k share (k = 0 and 1 added), the policy values of random targeting.

    A random ``m = round(k n)`` of ``n`` units is treated: each unit with probability ``m / n``, so
    the expectation over random orderings is ``m/n * value(treat all) + (1 - m/n) * value(treat none)``.
    """
    every, none = (policy_value(y, t, np.zeros(len(y)), k, p_treat) for k in (1.0, 0.0))
    ks = sorted({0.0, 1.0, *map(float, ks)})
    share = [round(k * len(y)) / len(y) for k in ks]
    return pd.DataFrame({"k": ks, "value": [s * every + (1 - s) * none for s in share]})
