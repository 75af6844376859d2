"""Embedding files round-trip; misaligned or duplicated arrays are refused; bag-of-items SVD."""
import numpy as np
import pandas as pd
import pytest

from lib.embed.bag import bag_matrix, bag_svd
from lib.embed.store import align, embedding_stem, load_embeddings, load_for, save_embeddings
from lib.errors import InputError
from lib.io import write_npz

META = {"variant": "bag_svd", "population": "beauty", "config": {"dim": 3}, "checkpoint_sha256": None}


def test_round_trip(tmp_path):
    ids = np.array([10, 3, 7])
    emb = np.arange(9, dtype=np.float64).reshape(3, 3)
    stem = embedding_stem(tmp_path, "beauty", "bag_svd")
    paths = save_embeddings(stem, ids, emb, META)
    assert [p.name for p in paths] == ["beauty__bag_svd.npz", "beauty__bag_svd.json"]
    ids2, emb2, meta = load_embeddings(stem)
    assert ids2.dtype == np.int64 and emb2.dtype == np.float32
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(emb2, emb.astype(np.float32))
    assert meta["dim"] == 3 and meta["n"] == 3 and meta["config"] == {"dim": 3} and meta["variant"] == "bag_svd"
    assert not list(tmp_path.glob(".*tmp*"))              # atomic writes leave no temp files


def test_save_refuses_bad_arrays(tmp_path):
    with pytest.raises(InputError, match="duplicated"):
        save_embeddings(tmp_path / "x", np.array([1, 1]), np.zeros((2, 2)), META)
    with pytest.raises(InputError, match="2 ids for 3"):
        save_embeddings(tmp_path / "x", np.array([1, 2]), np.zeros((3, 2)), META)
    with pytest.raises(InputError, match="NaN"):
        save_embeddings(tmp_path / "x", np.array([1, 2]), np.array([[0.0], [np.nan]]), META)
    with pytest.raises(ValueError, match="variant"):
        save_embeddings(tmp_path / "x", np.array([1]), np.zeros((1, 2)), {"population": "beauty"})


def test_load_detects_tampering_and_mismatch(tmp_path):
    stem = tmp_path / "hillstrom__text_frozen"
    save_embeddings(stem, np.array([0, 1, 2]), np.zeros((3, 4)), {**META, "population": "hillstrom"})
    # arrays replaced behind the sidecar's back (one id duplicated)
    write_npz(stem.with_suffix(".npz"), ids=np.array([0, 1, 1]), emb=np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="sha256"):
        load_embeddings(stem)
    meta_free = tmp_path / "other"
    save_embeddings(meta_free, np.array([0, 1]), np.zeros((2, 4)), META)
    side = (meta_free.with_suffix(".json"))
    side.write_text(side.read_text().replace('"npz_sha256"', '"old_sha"'))
    write_npz(meta_free.with_suffix(".npz"), ids=np.array([0, 0]), emb=np.zeros((2, 4), np.float32))
    with pytest.raises(InputError, match="duplicated"):
        load_embeddings(meta_free)
    with pytest.raises(FileNotFoundError, match="02_train_models"):
        load_embeddings(tmp_path / "missing")


def _exported(tmp_path, table_ids, ids=None):
    """Vectors e_u = (u, -u) exported for the units of a prepared table."""
    table = tmp_path / "processed" / "sequences.parquet"
    table.parent.mkdir(exist_ok=True)
    pd.DataFrame({"user_id": table_ids, "items": [[1, 2, 3]] * len(table_ids)}).to_parquet(table)
    ids = np.asarray(table_ids if ids is None else ids)
    stem = tmp_path / "emb" / "beauty__bag_svd"
    save_embeddings(stem, ids, np.column_stack([ids, -ids]), META, table=table, id_column="user_id")
    return stem, table


def test_load_for_checks_the_data_the_vectors_were_built_for(tmp_path):
    stem, table = _exported(tmp_path, [5, 9, 2, 7])
    side = load_embeddings(stem)[2]
    assert side["table"] == "../processed/sequences.parquet" and side["id_column"] == "user_id"
    assert len(side["table_sha256"]) == 64 and side["config"] == {"dim": 3}
    np.testing.assert_array_equal(load_for(stem, np.array([7, 5]))[:, 0], [7, 5])   # aligned by id
    with pytest.raises(InputError, match=r"lack 1 of 2 requested units \(e.g. \[4\]\)"):
        load_for(stem, np.array([7, 4]))                                              # other ids
    # the same ids re-prepared in another order: the table changed, and the vectors' order is not its order
    pd.DataFrame({"user_id": [9, 5, 2, 7], "items": [[1, 2, 3]] * 4}).to_parquet(table)
    with pytest.raises(InputError, match=r"beauty__bag_svd.json: column 'table_sha256'.*prepared again"):
        load_for(stem, np.array([5, 9]))
    with pytest.raises(InputError, match="not in the row order"):     # even with the new table's hash
        save_embeddings(stem, np.array([5, 9, 2, 7]), np.zeros((4, 2)), META, table=table, id_column="user_id")
    table.unlink()
    with pytest.raises(InputError, match="does not exist"):
        load_for(stem, np.array([5]))


def test_export_refuses_a_shifted_id_column_and_old_files_lack_provenance(tmp_path):
    with pytest.raises(InputError, match="not in the row order"):
        _exported(tmp_path, [5, 9, 2, 7], ids=[9, 2, 7, 5])               # id column shifted by one
    with pytest.raises(InputError, match=r"ids that are not units.*\[11\]"):
        _exported(tmp_path, [5, 9, 2, 7], ids=[5, 9, 11])
    save_embeddings(tmp_path / "old", np.array([1, 2]), np.zeros((2, 2)), META)
    with pytest.raises(InputError, match="lacks the provenance"):
        load_for(tmp_path / "old", np.array([1]))


def test_align_orders_rows_and_names_missing_ids():
    emb = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(align(np.array([5, 6, 7]), emb, np.array([7, 5])), [[3.0], [1.0]])
    with pytest.raises(InputError, match="lack 1 of 2"):
        align(np.array([5, 6, 7]), emb, np.array([7, 8]))


def test_bag_matrix_counts_and_bag_svd_is_deterministic():
    hist = [[1, 2, 2], [3], [1, 3, 4], [4, 4, 2], [5]]
    counts = bag_matrix(hist, n_items=5, weighting="count").toarray()
    assert counts.shape == (5, 6) and counts[0, 2] == 2 and counts[:, 0].sum() == 0
    assert set(np.unique(bag_matrix(hist, 5, "binary").data)) == {1.0}
    a = bag_svd(hist, n_items=5, dim=3, seed=0, weighting="tfidf")
    b = bag_svd(hist, n_items=5, dim=3, seed=0, weighting="tfidf")
    assert a.shape == (5, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # rank is capped by the matrix: 5 users allow at most 4 components
    assert bag_svd(hist, n_items=5, dim=64, seed=0, weighting="tfidf").shape == (5, 4)
    # users with identical histories get identical vectors
    assert np.allclose(bag_svd([[1, 2], [1, 2], [3]], 3, 2, 0, "tfidf")[0], bag_svd([[1, 2], [1, 2], [3]], 3, 2, 0, "tfidf")[1])
    with pytest.raises(ValueError, match="outside"):
        bag_matrix([[9]], n_items=5, weighting="count")
