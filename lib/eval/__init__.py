"""Next-item evaluation: full-ranking HR@K / NDCG@K and non-neural baselines."""
from lib.eval.metrics import hit_rate_at_k, ndcg_at_k, rank_of_target, ranking_metrics

__all__ = ["hit_rate_at_k", "ndcg_at_k", "rank_of_target", "ranking_metrics"]
