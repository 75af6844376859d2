"""Full-ranking metrics against hand-computed ranks, and the popularity / item-kNN baselines."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib.eval import hit_rate_at_k, ndcg_at_k, rank_of_target, ranking_metrics
from lib.eval.metrics import remove_seen
from lib.eval.baselines import ItemKNN, Popularity, evaluate, leave_one_out

SCORES = torch.tensor([[-9.0, 0.1, 0.9, 0.5, 0.3],    # target 3 -> rank 1 (only item 2 above)
                       [-9.0, 0.7, 0.7, 0.7, 0.1],    # target 2 ties with 1 and 3 -> pessimistic rank 2
                       [-9.0, 0.1, 0.2, 0.3, 0.4]])   # target 1 -> rank 3 (last)
TARGETS = torch.tensor([3, 2, 1])


def test_ranks_are_pessimistic_on_ties_and_skip_excluded_columns():
    assert rank_of_target(SCORES, TARGETS, exclude=(0,)).tolist() == [1, 2, 3]
    # without excluding column 0 it still scores lowest here, so ranks are unchanged
    assert rank_of_target(np.asarray(SCORES), np.asarray(TARGETS)).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="excluded"):
        rank_of_target(SCORES, torch.tensor([0, 1, 2]), exclude=(0,))


def test_hit_rate_and_ndcg_hand_computed():
    assert hit_rate_at_k(SCORES, TARGETS, 1, exclude=(0,)) == pytest.approx(0.0)
    assert hit_rate_at_k(SCORES, TARGETS, 2, exclude=(0,)) == pytest.approx(1 / 3)
    assert hit_rate_at_k(SCORES, TARGETS, 3, exclude=(0,)) == pytest.approx(2 / 3)
    assert ndcg_at_k(SCORES, TARGETS, 3, exclude=(0,)) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert ndcg_at_k(SCORES, TARGETS, 10, exclude=(0,)) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)) / 3)


def test_ranking_metrics_from_ranks():
    out = ranking_metrics(torch.tensor([0, 4, 30]), ks=(5, 10))
    assert out["hr@5"] == pytest.approx(2 / 3) and out["hr@10"] == pytest.approx(2 / 3)
    assert out["ndcg@5"] == pytest.approx((1.0 + 1 / math.log2(6)) / 3)


SEQS = pd.DataFrame({"user_id": [1, 2, 3, 4],
                     "items": [[1, 2, 3, 4], [1, 2, 3, 4], [2, 3, 1, 5], [4, 5, 1, 2]],
                     "valid_item": [3, 3, 1, 1], "test_item": [4, 4, 5, 2]})


def test_leave_one_out_queries():
    hist, targets = leave_one_out(SEQS, "valid")
    assert hist[2] == [2, 3] and targets.tolist() == [3, 3, 1, 1]
    hist, targets = leave_one_out(SEQS, "test")
    assert hist[3] == [4, 5, 1] and targets.tolist() == [4, 4, 5, 2]


def test_history_removed_protocol_hand_computed():
    seen = torch.tensor([[0, 2, 4], [0, 0, 3], [1, 2, 3]])   # items bought before, 0-padded
    ranks = rank_of_target(remove_seen(SCORES, seen), TARGETS, exclude=(0,)).tolist()
    # row 0: items 2 and 4 removed, only item 1 (0.1) competes with target 3 (0.5) -> rank 0
    # row 1: item 3 removed, target 2 still ties with item 1 -> rank 1 (was 2)
    # row 2: the target itself (item 1) was bought before: no candidate any more, a miss (worst rank 4)
    assert ranks == [0, 1, 4]
    assert not hit_rate_at_k(remove_seen(SCORES, seen)[2:], TARGETS[2:], 4, exclude=(0,))


def test_popularity_under_both_protocols_hand_computed():
    # valid histories [1,2] [1,2] [2,3] [4,5], targets 3 3 1 1, popularity 1:2 2:3 3:1 4:1 5:1.
    # history removed: users 0-1 rank 3 among {3,4,5} (ties) -> 2; user 2 ranks 1 among {1,4,5} -> 0;
    # user 3 ranks 1 among {1,2,3} -> 1 (item 2 above)
    out = evaluate(Popularity(), SEQS, n_items=5, split="valid", ks=(2, 5))
    assert out["history_removed/hr@2"] == pytest.approx(0.5) and out["history_removed/hr@5"] == pytest.approx(1.0)
    assert out["history_removed/ndcg@5"] == pytest.approx((2 / math.log2(4) + 1 + 1 / math.log2(3)) / 4)
    assert out["hr@2"] == pytest.approx(0.5)   # the all-items numbers are unchanged by the second protocol


def test_popularity_ranks_by_training_counts():
    # valid histories: [1,2] [1,2] [2,3] [4,5] -> counts 1:2 2:3 3:1 4:1 5:1
    pop = Popularity().fit(leave_one_out(SEQS, "valid")[0], n_items=5)
    assert pop.counts_[1:].tolist() == [2, 3, 1, 1, 1]
    # targets 3,3,1,1: item 3 ties with 4 and 5 below items 2, 1 -> pessimistic rank 4; item 1 -> rank 1
    out = evaluate(Popularity(), SEQS, n_items=5, split="valid", ks=(2, 5))
    assert out["hr@2"] == pytest.approx(0.5) and out["hr@5"] == pytest.approx(1.0)
    assert out["ndcg@5"] == pytest.approx((2 / math.log2(6) + 2 / math.log2(3)) / 4)


def test_item_knn_cosine_hand_computed():
    hist = [[1, 2], [1, 2], [2, 3]]
    knn = ItemKNN(n_neighbours=10).fit(hist, n_items=3)
    sim = knn.sim_.toarray()
    # co-occurrence: (1,2)=2, (2,3)=1; norms sqrt(2), sqrt(3), 1
    assert sim[1, 2] == pytest.approx(2 / math.sqrt(6)) and sim[2, 3] == pytest.approx(1 / math.sqrt(3))
    assert sim[1, 3] == 0 and sim[1, 1] == 0
    scores = knn.score([[2]])
    assert np.isneginf(scores[0, 0]) and scores[0, 1] > scores[0, 3] > scores[0, 2] == 0
    pruned = ItemKNN(n_neighbours=1).fit(hist, n_items=3).sim_.toarray()
    assert pruned[2, 1] > 0 and pruned[2, 3] == 0  # item 2 keeps only its nearest neighbour (item 1)


def test_item_knn_beats_popularity_on_a_successor_pattern():
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 30, 200)
    items = [[int((s + t) % 30 + 1) for t in range(6)] for s in starts]
    df = pd.DataFrame({"user_id": range(200), "items": items, "valid_item": [s[-2] for s in items],
                       "test_item": [s[-1] for s in items]})
    knn = evaluate(ItemKNN(20), df, 30, "test", ks=(10,))
    pop = evaluate(Popularity(), df, 30, "test", ks=(10,))
    assert knn["hr@10"] > 0.9 > pop["hr@10"] + 0.3


@pytest.mark.parametrize("k", [1, 5, 10])
def test_metrics_agree_with_torchmetrics_retrieval_on_random_scores(k):
    from torchmetrics.retrieval import RetrievalHitRate, RetrievalNormalizedDCG

    gen = torch.Generator().manual_seed(k)
    n, c = 200, 50
    scores = torch.rand(n, c, generator=gen, dtype=torch.float64)   # continuous: no ties
    targets = torch.randint(0, c, (n,), generator=gen)
    relevant = torch.zeros(n, c, dtype=torch.bool)
    relevant[torch.arange(n), targets] = True
    indexes = torch.arange(n)[:, None].expand(n, c)                  # one query per row
    ndcg = RetrievalNormalizedDCG(top_k=k)(scores.flatten(), relevant.flatten(), indexes=indexes.flatten())
    hr = RetrievalHitRate(top_k=k)(scores.flatten(), relevant.flatten(), indexes=indexes.flatten())
    assert ndcg_at_k(scores, targets, k) == pytest.approx(float(ndcg), abs=1e-6)
    assert hit_rate_at_k(scores, targets, k) == pytest.approx(float(hr), abs=1e-6)
    assert 0 < float(hr) < 1   # the check is not vacuous


def test_hit_rate_interval_covers_the_true_hit_rate_at_its_level():
    """HR@K over n test users is a binomial share: over 2,000 draws of 1,000 users with a true hit rate of 0.06
    the 95% interval covers 0.06 at a rate consistent with at least 95% (Clopper-Pearson never under-covers) and
    not much more, and a share that is not a whole number of users is refused."""
    from scipy.stats import binom

    from lib.eval.metrics import hit_rate_interval

    rng = np.random.default_rng(0)
    reps, n, p = 2000, 1000, 0.06
    hits = rng.binomial(n, p, size=reps)
    covered = [lo <= p <= hi for lo, hi in (hit_rate_interval(h / n, n, 0.05) for h in hits)]
    floor = binom.ppf(0.001, reps, 0.95) / reps     # 95% coverage, less only by 1-in-1,000 chance over 2,000 draws
    assert floor <= np.mean(covered) <= 0.985, np.mean(covered)
    assert hit_rate_interval(np.float32(61 / 1000), 1000, 0.05)[0] < 0.061 < hit_rate_interval(61 / 1000, 1000, 0.05)[1]
    with pytest.raises(ValueError, match="not a whole number"):
        hit_rate_interval(0.0615, 1000, 0.05)
