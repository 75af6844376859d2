"""Representations: embedding alignment by id, missing files, PCA determinism, graph adjustment set."""
import numpy as np
import pandas as pd
import pytest

from lib.causal.representations import RepresentationUnavailable, build_W
from lib.config import compose
from lib.embed.store import save_embeddings
from lib.errors import InputError
from lib.simulate.base import CausalData
from lib.simulate.graphs import CausalGraph


def _data(n=50):
    rng = np.random.default_rng(0)
    graph = CausalGraph(roles={"H": "history", "w1": "confounder", "T": "treatment", "Y": "outcome"},
                        edges=[("H", "w1"), ("w1", "T"), ("w1", "Y"), ("T", "Y")])
    return CausalData(name="toy", unit_id=np.arange(100, 100 + n, dtype=np.int64), T=rng.integers(0, 2, n),
                      Y=rng.normal(size=n), X=pd.DataFrame({"x": rng.normal(size=n)}),
                      W_true=pd.DataFrame({"w1": rng.normal(size=n), "noise": rng.normal(size=n)}),
                      tau=None, propensity=None, ate_true=None, graph=graph)


def _cfg(embeddings=None, *overrides):
    """The smoke config reading exported embeddings from ``embeddings`` (none there by default)."""
    return compose("smoke", [f"paths.embeddings={embeddings or '/nonexistent'}", *overrides])


def _table(tmp_path, ids):
    """The prepared table the embedded units come from (provenance of the vectors)."""
    path = tmp_path / "sequences.parquet"
    pd.DataFrame({"user_id": ids}).to_parquet(path)
    return path


def test_embeddings_aligned_by_id(tmp_path):
    data = _data()
    ids = data.unit_id[::-1].copy()
    emb = np.column_stack([ids, -ids]).astype(np.float32)
    save_embeddings(tmp_path / "beauty__seq_pretrained", ids, emb, {"variant": "seq_pretrained", "population": "beauty",
                    "config": {}}, _table(tmp_path, ids), "user_id")
    W = build_W(data, "seq_pretrained", "beauty", _cfg(tmp_path))
    np.testing.assert_array_equal(W[:, 0], data.unit_id)


def test_missing_ids_and_missing_file(tmp_path):
    data = _data()
    ids = data.unit_id[:-7]
    save_embeddings(tmp_path / "beauty__text_frozen", ids, np.ones((len(ids), 3), np.float32),
                    {"variant": "text_frozen", "population": "beauty", "config": {}}, _table(tmp_path, ids), "user_id")
    with pytest.raises(InputError, match=r"beauty__text_frozen\.npz.*lack 7 of 50"):
        build_W(data, "text_frozen", "beauty", _cfg(tmp_path))
    with pytest.raises(RepresentationUnavailable, match="seq_finetuned"):
        build_W(data, "seq_finetuned", "beauty", _cfg(tmp_path))


def test_oracle_follows_graph_and_pca_is_deterministic():
    data = _data()
    cfg = _cfg(None, "causal.pca_dim=2", "model.embed.bag.dim=5")
    assert build_W(data, "oracle", "beauty", cfg).shape == (50, 1)      # adjustment set {w1}
    with pytest.raises(RepresentationUnavailable, match="needs the item histories"):
        build_W(data, "raw", "beauty", cfg)                          # never the true confounders
    assert build_W(data, "none", "beauty", cfg) is None
    hist = [[1 + (i % 5), 2 + (i % 7), 3] for i in range(50)]
    a = build_W(data, "bag_svd", "beauty", cfg, histories=hist, n_items=10)
    b = build_W(data, "bag_svd", "beauty", cfg, histories=hist, n_items=10)
    assert a.shape == (50, 2)
    np.testing.assert_array_equal(a, b)


def test_history_representations_for_sparse_and_boosted_nuisances():
    data = _data()
    hist = [[1 + (i % 5), 2 + (i % 7), 3] for i in range(50)]
    attrs = pd.DataFrame({"item_id": np.arange(1, 11), "attr_ids": [[1 + i % 3] for i in range(10)]})
    cfg = _cfg(None, "causal.pca_dim=2")
    ccfg = cfg.causal
    kw = dict(histories=hist, n_items=10, item_attributes=attrs)
    sparse_W = build_W(data, "sparse_history", "beauty", cfg, **kw)
    raw_W = build_W(data, "raw", "beauty", cfg, **kw)
    assert sparse_W.shape[0] == 50 and sparse_W.shape[1] > 2          # sparse: no PCA
    assert (sparse_W != raw_W).nnz == 0                                 # raw on a history benchmark = sparse_history
    np.testing.assert_allclose(sparse_W[:, :sparse_W.shape[1] // 3].sum(axis=1), 1.0)   # normalised bag
    hand = build_W(data, "hand_gbm", "beauty", cfg, **kw)
    assert hand.shape == (50, 5 + 2 * 3)                                # 3 attributes: shares + recent shares
    from lib.causal.representations import nuisance_kinds
    assert nuisance_kinds(ccfg, "sparse_history") == ("sparse_linear", "sparse_linear")
    assert nuisance_kinds(ccfg, "bag_svd") is None


def test_sparse_history_without_an_attribute_table_unless_it_reads_attributes():
    """A data set without item attributes still gets the bag-and-last-items baseline when the attribute
    blocks are off; with them on (or for hand features, which always read attributes) it is unavailable."""
    data = _data()
    hist = [[1 + (i % 5), 2 + (i % 7), 3] for i in range(50)]
    kw = dict(histories=hist, n_items=10, item_attributes=None)
    W = build_W(data, "sparse_history", "beauty", _cfg(None, "causal.history_features.attributes=false"), **kw)
    assert W.shape == (50, 3 * 9)            # bag + 2 last-item blocks: items 1-8 and the "rare" column
    for name, flag in (("sparse_history", "true"), ("hand_gbm", "false")):
        with pytest.raises(RepresentationUnavailable, match=f"{name} needs the item attribute table"):
            build_W(data, name, "beauty", _cfg(None, f"causal.history_features.attributes={flag}"), **kw)
