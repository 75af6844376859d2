"""Embedding export and Hillstrom text prediction end to end on tiny generated prepared tables."""
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import open_dict, read_write

from lib.config import compose
from lib.data.hillstrom import CHANNELS, ZIP_CODES, load_prepared, text_population
from lib.embed.export import export_all
from lib.embed.store import load_embeddings
from lib.report.artefacts import load
from lib.train.text import hillstrom_conversion

torch.set_num_threads(1)
N_ITEMS = 30


def _write_tables(root, seed=0):
    rng = np.random.default_rng(seed)
    for ds in ("beauty",):
        d = root / "seq" / ds
        d.mkdir(parents=True)
        items = [list(rng.integers(1, N_ITEMS + 1, size=rng.integers(5, 12))) for _ in range(60)]
        seqs = pd.DataFrame({"user_id": np.arange(100, 160, dtype=np.int64), "items": items})
        seqs["valid_item"] = seqs["items"].map(lambda s: int(s[-2]))
        seqs["test_item"] = seqs["items"].map(lambda s: int(s[-1]))
        seqs.to_parquet(d / "sequences.parquet", index=False)
        attrs = pd.DataFrame({"item_id": np.arange(1, N_ITEMS + 1, dtype=np.int64),
                              "attr_ids": [[1 + i % 5, 6 + i % 3] for i in range(N_ITEMS)]})
        attrs.to_parquet(d / "item_attributes.parquet", index=False)
        (d / "meta.json").write_text(json.dumps({"n_users": 60, "n_items": N_ITEMS, "n_attrs": 8,
                                                 "n_interactions": int(sum(map(len, items)))}))
    n = 80
    hist = rng.uniform(30, 900, n)
    hill = pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64), "recency": rng.integers(1, 13, n),
        "history_segment": np.clip((hist // 130).astype(np.int8) + 1, 1, 7).astype(np.int8), "history": hist,
        "mens": rng.integers(0, 2, n).astype(np.int8), "womens": rng.integers(0, 2, n).astype(np.int8),
        "newbie": rng.integers(0, 2, n).astype(np.int8),
        "zip_code": pd.Categorical(rng.choice(ZIP_CODES, n), categories=ZIP_CODES),
        "channel": pd.Categorical(rng.choice(CHANNELS, n), categories=CHANNELS),
        "treatment": rng.integers(0, 3, n).astype(np.int8)})
    hill["visit"] = (rng.uniform(size=n) < 0.05 + 0.9 * (hist > 500)).astype(np.int8)
    hill["conversion"] = hill["visit"]
    hill["spend"] = 0.0
    hill["split"] = np.where(np.arange(n) % 3 == 0, "test", "train")
    (root / "hillstrom").mkdir(parents=True)
    hill.to_parquet(root / "hillstrom" / "hillstrom.parquet", index=False)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    _write_tables(root / "processed")
    return compose("smoke", [f"paths.processed={root / 'processed'}", f"paths.results={root / 'results'}",
                             "model.text.max_length=32", "model.text.finetune.max_steps=2",
                             "model.text.finetune.batch_size=8", "model.text.finetune.max_length=32",
                             "model.text.max_customers=60",
                             "model.embed.datasets=[beauty]", "model.embed.history_text_max_length=32",
                             "model.heads.max_epochs=2", "model.text.predict.outcomes=[visit]",
                             "model.text.finetune.outcome=visit", "trainer.max_epochs=1"])


def test_hillstrom_prediction_then_export(cfg, tmp_path):
    from lib.train.run import train

    train(cfg)                                    # a tiny next-item checkpoint for seq_pretrained
    run_dir = tmp_path / "run"
    table = hillstrom_conversion(cfg, run_dir)
    text_ids = text_population(load_prepared(cfg), cfg)          # 60 of the 80 prepared customers
    assert len(text_ids) == 60 and (table["n_train"] + table["n_test"] == 60).all()
    assert set(table["model"]) == {"logreg_raw", "logreg_text_frozen", "text_lora"}
    assert table["auc"].between(0, 1).all() and (table["logloss"] > 0).all()
    raw = table.set_index("model").loc["logreg_raw", "auc"]
    assert raw > 0.7                               # visit depends on history spend, which the raw features carry
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "predict.hillstrom.visit.text_lora.auc" in metrics
    # the prediction table saved the frozen customer vectors for the export to reuse
    ids_p, emb_p, _ = load_embeddings(f"{cfg.paths.embeddings}/hillstrom__text_frozen")
    assert np.array_equal(ids_p, text_ids) and emb_p.shape == (60, 384)

    paths = export_all(cfg, run_dir)
    assert len(paths) == 2 * (3 + 2)               # beauty x 3 variants + hillstrom frozen / lora, npz + json
    seqs = pd.read_parquet(f"{cfg.paths.processed}/seq/beauty/sequences.parquet")
    for variant, dim in (("bag_svd", 16), ("seq_pretrained", 32), ("text_frozen", 384)):
        ids, emb, meta = load_embeddings(f"{cfg.paths.embeddings}/beauty__{variant}")
        np.testing.assert_array_equal(ids, seqs["user_id"].to_numpy())
        assert emb.shape == (60, dim) and meta["variant"] == variant and meta["population"] == "beauty"
    _, _, meta = load_embeddings(f"{cfg.paths.embeddings}/beauty__seq_pretrained")
    assert len(meta["checkpoint_sha256"]) == 64
    ids_f, emb_f, _ = load_embeddings(f"{cfg.paths.embeddings}/hillstrom__text_frozen")
    ids_l, emb_l, meta_l = load_embeddings(f"{cfg.paths.embeddings}/hillstrom__text_lora")
    assert np.array_equal(ids_f, text_ids) and np.array_equal(ids_f, ids_l)  # the text population only
    assert len(meta_l["checkpoint_sha256"]) == 64
    assert not np.allclose(emb_f, emb_l)           # the adapters changed the vectors
    np.testing.assert_array_equal(emb_f, emb_p)    # reused, not embedded a second time
    export = load(run_dir)["embedding_export"]["frame"]
    assert len(export) == 5 and set(export["population"]) == {"beauty", "hillstrom"}
    assert export.set_index(["population", "variant"])["reused"].to_dict() == {
        ("beauty", "bag_svd"): False, ("beauty", "seq_pretrained"): False, ("beauty", "text_frozen"): False,
        ("hillstrom", "text_frozen"): True, ("hillstrom", "text_lora"): False}   # saved by the prediction table

    # a second export keeps every file; a changed setting, changed data or a damaged file is computed again
    stamps = {p.name: p.stat().st_mtime_ns for p in Path(cfg.paths.embeddings).iterdir()}
    export_all(cfg, run_dir)
    assert load(run_dir)["embedding_export"]["frame"]["reused"].all()
    assert {p.name: p.stat().st_mtime_ns for p in Path(cfg.paths.embeddings).iterdir()} == stamps
    bag = load_embeddings(f"{cfg.paths.embeddings}/beauty__bag_svd")[1]
    other = copy.deepcopy(cfg)
    with open_dict(other), read_write(other):
        other.model.embed.bag.dim = 8
    export_all(other, run_dir)
    reused = load(run_dir)["embedding_export"]["frame"].set_index("variant")["reused"]
    assert not reused["bag_svd"] and reused.drop("bag_svd").all()
    assert load_embeddings(f"{cfg.paths.embeddings}/beauty__bag_svd")[1].shape == (60, 8)
    (Path(cfg.paths.embeddings) / "beauty__text_frozen.npz").write_bytes(b"not the vectors")   # damaged
    export_all(cfg, run_dir)
    reused = load(run_dir)["embedding_export"]["frame"].set_index(["population", "variant"])["reused"]
    assert not reused[("beauty", "bag_svd")] and not reused[("beauty", "text_frozen")]
    assert reused[("beauty", "seq_pretrained")] and reused[("hillstrom", "text_frozen")]
    # fine-tuning again with the same seed writes a byte-identical checkpoint, so its vectors are reused too
    lora = Path(cfg.paths.embeddings) / "hillstrom__text_lora.npz"
    stamp = lora.stat().st_mtime_ns
    hillstrom_conversion(cfg, run_dir)
    export_all(cfg, run_dir)
    assert load(run_dir)["embedding_export"]["frame"]["reused"].all() and lora.stat().st_mtime_ns == stamp
    # recomputed vectors equal the first ones (frozen MiniLM and the seeded bag-of-items SVD)
    np.testing.assert_array_equal(load_embeddings(f"{cfg.paths.embeddings}/beauty__bag_svd")[1], bag)
    np.testing.assert_array_equal(load_embeddings(f"{cfg.paths.embeddings}/hillstrom__text_frozen")[1], emb_f)
