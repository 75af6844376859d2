"""The README recipe "Adding a data set", followed on generated data: only config is added.

A third sequence data set in S3-Rec format (a ``user item item ...`` file and an
``item2attributes`` JSON) is written to a temporary data root, declared by one YAML file in a
temporary config directory (added to Hydra's search path, as a researcher keeps a private data
set outside the repository) and selected with ``data.sequences.datasets``. Notebooks 01 and 02
run on the smoke preset and must prepare it, train on it and export its embeddings. The other
overrides only keep the run small: no real data (a generated Hillstrom file, no event logs),
one transformer, no text models (MiniLM is the slow step on a CPU).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _data_fixtures import generated_sequences, raw_hillstrom
from lib.config import compose
from lib.embed.store import load_for
from lib.eval.metrics import hit_rate_interval
from lib.io import read_json, sha256_file
from lib.report.artefacts import load
from lib.runner import run_notebook

N_USERS, N_ITEMS = 400, 120


def write_dataset(root: Path) -> dict[str, str]:
    """Raw S3-Rec files of the generated shop under ``root``; returns ``role -> sha256``."""
    seqs, attrs = generated_sequences(n_users=N_USERS, n_items=N_ITEMS, n_attrs=12, seed=1)
    (root / "gen").mkdir(parents=True)
    (root / "gen" / "Gen.txt").write_text("".join(f"{u} {' '.join(map(str, s))}\n"
                                                  for u, s in zip(seqs.user_id, seqs["items"])))
    (root / "gen" / "Gen_item2attributes.json").write_text(
        json.dumps({str(i): a for i, a in zip(attrs.item_id.tolist(), attrs.attr_ids)}))
    return {"sequences": sha256_file(root / "gen" / "Gen.txt"),
            "attributes": sha256_file(root / "gen" / "Gen_item2attributes.json")}


def declare(conf: Path, sha: dict[str, str]) -> Path:
    """``<conf>/data/datasets/gen.yaml``: the one file the recipe adds."""
    path = conf / "data" / "datasets" / "gen.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"""title: Generated shop
format: s3rec
files:
  sequences: gen/Gen.txt
  attributes: gen/Gen_item2attributes.json
sha256:
  sequences: {sha['sequences']}
  attributes: {sha['attributes']}
""")
    return path


@pytest.mark.slow
def test_a_third_dataset_goes_through_notebooks_01_to_03_with_config_alone(tmp_path):
    raw, conf, results = tmp_path / "raw", tmp_path / "conf", tmp_path / "results"
    declare(conf, write_dataset(raw))
    (raw / "hillstrom").mkdir()
    raw_hillstrom(1000).to_csv(raw / "hillstrom" / "hillstrom.csv", index=False)
    recipe = [f"hydra.searchpath=[file://{conf}]", "data.sequences.datasets=[gen]", "simulate.semisynth.dataset=gen"]
    small = [f"paths.data_root={raw}", f"data.sha256.hillstrom={sha256_file(raw / 'hillstrom' / 'hillstrom.csv')}",
             f"paths.results={results}", f"paths.processed={tmp_path / 'processed'}", "data.events.sources=[]",
             "model.compare=[sasrec]", "+model.compare_seeds.sasrec=2", "model.text.predict.enabled=false", "model.text.finetune.enabled=false",
             "model.embed.hillstrom_variants=[]", "model.embed.seq_variants=[bag_svd,seq_pretrained]"]
    cfg = compose("smoke", [*recipe, *small])
    assert list(cfg.trainer.datasets) == ["gen"] and list(cfg.model.embed.datasets) == ["gen"]

    run_notebook("01_prepare_data", "smoke", [*recipe, *small])
    prepared = read_json(tmp_path / "processed" / "prepare_report.json")["row_counts"]
    assert prepared["seq/gen/sequences"] == N_USERS and prepared["seq/gen/item_attributes"] == N_ITEMS
    seqs = pd.read_parquet(tmp_path / "processed" / "seq" / "gen" / "sequences.parquet")
    assert len(seqs) == N_USERS and (seqs.test_item == [s[-1] for s in seqs["items"]]).all()
    art01 = load(results / "01_prepare_data")
    assert "Generated shop histories" in art01["benchmark_summary"]["caption"]
    assert "semisynth_gen" in set(art01["benchmark_summary"]["frame"].benchmark)

    run_notebook("02_train_models", "smoke", [*recipe, *small])
    out = results / "02_train_models"
    art02 = load(out)
    assert "on Generated shop (400 users)" in art02["nextitem_gen"]["caption"]
    assert "published results" not in art02["nextitem_gen"]["caption"]
    table = art02["nextitem_gen"]["frame"]
    assert table.model.tolist() == ["popularity"] * 2 + ["itemknn"] * 2 + ["sasrec"] * 2
    assert table.protocol.tolist() == ["all items", "history removed"] * 3
    # SASRec: the mean of its two seeds' runs, their standard error, the mean of their HR@10 intervals
    seeds = [read_json(out / "runs" / f"gen__sasrec__seed{s}.json") for s in (0, 1)]
    assert seeds[0]["run_name"] != seeds[1]["run_name"]
    for _, row in table.iterrows():   # every row is ours: an interval of HR@10 over the 400 test users around it
        low, high = map(float, row["HR@10 95% CI"].split("-"))
        if row.model != "sasrec":
            assert row.n_seeds == 1 and np.isnan(row["HR@10 seed SE"])
            assert (low, high) == tuple(round(v, 4) for v in hit_rate_interval(row["HR@10"], N_USERS, 0.05))
            assert low <= row["HR@10"] <= high
            continue
        infix = "history_removed/" if row.protocol == "history removed" else ""
        hr, ndcg = ([m[f"test/{infix}{name}@10"] for m in seeds] for name in ("hr", "ndcg"))
        assert row.n_seeds == 2 and row["HR@10"] == pytest.approx(np.mean(hr))
        assert row["HR@10 seed SE"] == pytest.approx(abs(hr[0] - hr[1]) / 2)       # SD / sqrt(2), SD = |a - b| / sqrt(2)
        assert row["NDCG@10 seed SE"] == pytest.approx(abs(ndcg[0] - ndcg[1]) / 2)
        bounds = np.mean([hit_rate_interval(h, N_USERS, 0.05) for h in hr], axis=0)
        assert (low, high) == tuple(round(v, 4) for v in bounds)
    metrics = read_json(out / "metrics.json")
    for infix in ("", "history_removed."):
        assert 0.0 <= metrics[f"nextitem.gen.sasrec.{infix}ndcg@10"] <= metrics[f"nextitem.gen.sasrec.{infix}hr@10"] <= 1.0
    assert not any(".beauty." in k or ".sports." in k for k in metrics)
    for variant in cfg.model.embed.seq_variants:
        emb = load_for(out / "embeddings" / f"gen__{variant}", seqs.user_id.to_numpy())
        assert emb.shape[0] == N_USERS and np.isfinite(emb).all(), variant

    # notebook 03 on the new population only: the semi-synthetic grid, the Hillstrom benchmark switched off
    grid = ["causal.semisynth.datasets=[gen]", "causal.hillstrom.enabled=false", "causal.semisynth.levels=[default]",
            "causal.semisynth.n_seeds=2", "causal.semisynth.representations=[none,oracle,bag_svd,seq_pretrained]",
            "causal.semisynth.estimators=[naive,ols]"]
    run_notebook("03_estimate_effects", "smoke", [*recipe, *small, *grid])
    metrics = read_json(results / "03_estimate_effects" / "metrics.json")
    assert not any(".beauty." in k or "semisynth_beauty" in k or "rct_gap" in k for k in metrics)
    naive, oracle = (metrics[f"ate.semisynth_gen.{r}.abs_bias"] for r in ("none.naive", "oracle.ols"))
    assert oracle < naive and metrics["ate.semisynth_gen.seq_pretrained.ols.n_seeds"] == 2


def test_an_undeclared_or_misplaced_dataset_names_the_file_to_add(tmp_path):
    from lib.data.prepare import prepare_all
    from lib.data.sequences import load_prepared
    from lib.embed.store import check_population
    from lib.errors import InputError

    with pytest.raises(InputError, match=r"conf/data/datasets/books.yaml: does not exist, so data.sequences.datasets "
                                         r"names an undeclared data set 'books' \(declared: beauty, "):
        prepare_all(compose("smoke", ["data.sequences.datasets=[beauty,books]", f"paths.processed={tmp_path}"]))
    with pytest.raises(InputError, match=r"conf/data/datasets/otto.yaml: column 'format' is 'otto', which "
                                         r"data.sequences.datasets cannot read"):
        prepare_all(compose("smoke", ["data.sequences.datasets=[otto]", f"paths.processed={tmp_path}"]))
    cfg = compose("smoke")
    with pytest.raises(InputError, match="conf/data/datasets/books.yaml: does not exist, so model.embed.datasets"):
        check_population(cfg, "books", "model.embed.datasets")
    with pytest.raises(InputError, match="conf/data/datasets/books.yaml"):
        load_prepared(cfg, "books")
    assert check_population(cfg, "hillstrom") == "hillstrom"
    bad = tmp_path / "conf" / "data" / "datasets" / "my_shop.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("title: x\n")
    with pytest.raises(ValueError, match=r"\['my_shop'\].*letters, digits and '-'"):
        compose("smoke", [f"hydra.searchpath=[file://{tmp_path / 'conf'}]"])


def test_an_event_log_in_the_generic_schema_is_a_config_file_too(tmp_path):
    from lib.data.prepare import prepare_all

    raw, conf = tmp_path / "raw", tmp_path / "conf"
    (raw / "shop").mkdir(parents=True)
    rows = [f"{s},{'' if s % 2 else s + 100},{(3 * s + k) % 17 + 1},{1600000000 + 3600 * s + 60 * k},"
            f"{'purchase' if k == 2 and s % 3 == 0 else 'view'}" for s in range(1, 41) for k in range(3)]
    (raw / "shop" / "log.csv").write_text("session_id,user_id,item_id,ts,event_type\n" + "\n".join(rows) + "\n")
    (conf / "data" / "datasets").mkdir(parents=True)
    (conf / "data" / "datasets" / "shop.yaml").write_text(
        f"title: Shop log\nformat: events\nfiles: {{events: shop/log.csv}}\n"
        f"sha256: {{events: {sha256_file(raw / 'shop' / 'log.csv')}}}\nts_unit: s\nts_span: null\n")
    (raw / "hillstrom").mkdir()
    raw_hillstrom(1000).to_csv(raw / "hillstrom" / "hillstrom.csv", index=False)
    report = prepare_all(compose("smoke", [
        f"hydra.searchpath=[file://{conf}]", "data.sequences.datasets=[]", "data.events.sources=[shop]",
        f"paths.data_root={raw}", f"paths.processed={tmp_path / 'processed'}",
        f"data.sha256.hillstrom={sha256_file(raw / 'hillstrom' / 'hillstrom.csv')}"]))
    counts = report["row_counts"]
    assert counts["events/shop/events"] == 120 and counts["events/shop/sessions"] == 40   # no cut crosses a session
    assert counts["events/shop/sessions[train]"] == 32 and counts["events/shop/sessions[test]"] == 4
    sessions = pd.read_parquet(tmp_path / "processed" / "events" / "shop" / "sessions.parquet")
    assert sessions.converted.sum() == sum(1 for s in range(1, 41) if s % 3 == 0)
