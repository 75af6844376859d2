"""Export every user / customer representation of the causal study into ``paths.embeddings``.

For each sequence population (``model.embed.datasets``; users of ``sequences.parquet``, embedded
from their history ``items[:-2]`` only):

* ``bag_svd`` — tf-idf bag of items -> truncated SVD (:mod:`lib.embed.bag`);
* ``seq_pretrained`` — ``encode`` of the best next-item checkpoint (validation metric);
* ``text_frozen`` — MiniLM over :func:`lib.data.text.history_text`.

For Hillstrom customers (the seeded subsample :func:`lib.data.hillstrom.text_population` of
``model.text.max_customers``): ``text_frozen`` over :func:`lib.data.text.customer_sentence`, plus
``text_lora`` / ``text_full`` from the encoders fine-tuned by :mod:`lib.train.text`.
Every file records the config that produced it, the sha256 of its checkpoint, the version of the
code that computed it and the prepared table its units came from (:func:`lib.embed.store.load_for`
checks the data before use). ``paths.embeddings`` is a cache: a file whose record matches what an
export would write (same settings, checkpoint, code and byte-identical table) is kept, not computed
again, so rerunning notebook 02 after a change elsewhere does not pay MiniLM's cost a second time.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from lib.embed.bag import bag_svd
from lib.embed.store import check_population, embedding_stem, load_embeddings, load_for, save_embeddings
from lib.errors import InputError
from lib.io import read_json, sha256_file
from lib.provenance import code_version

log = logging.getLogger(__name__)


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _seq_config(cfg: Any) -> dict[str, Any]:
    """The sequence-model keys of ``cfg.model`` (without the text / heads / embed sections)."""
    return {k: v for k, v in _container(cfg.model).items() if k not in ("text", "heads", "embed")}


#: what decides an exported file's vectors: a file whose record matches on all of them is reused
CACHE_KEYS = ("variant", "population", "seed", "config", "checkpoint_sha256", "code")
#: the code that computes each kind of vectors (git trees; see :func:`lib.provenance.code_version`)
FROZEN_CODE = ("lib/embed", "lib/models", "lib/data")
TRAINED_CODE = (*FROZEN_CODE, "lib/train")

Job = tuple[dict[str, Any], Callable[[], tuple[np.ndarray, np.ndarray]]]   # (record, produce -> (ids, emb))


def reusable(stem: Path, record: dict[str, Any], table: Path) -> bool:
    """Whether ``stem`` already holds the vectors an export with ``record`` would write for ``table``.

    The stored record must agree on :data:`CACHE_KEYS`, and the arrays must pass the checks of
    :func:`lib.embed.store.load_for` (sha256 of the arrays, ids, a byte-identical prepared table).
    """
    js = stem.with_suffix(".json")
    if not js.is_file():
        return False
    stored = read_json(js)
    if any(stored.get(key) != record.get(key) for key in CACHE_KEYS):
        return False
    try:
        load_for(stem, load_embeddings(stem)[0], table)
    except (InputError, FileNotFoundError) as exc:   # damaged or built from other data: compute again
        log.info("not reusing %s: %s", stem, exc)
        return False
    return True


def prepared_table(cfg: Any, population: str) -> tuple[Path, str]:
    """``(path, id column)`` of the prepared table whose units ``population`` embeds."""
    if population == "hillstrom":
        return Path(cfg.paths.processed) / "hillstrom" / "hillstrom.parquet", "customer_id"
    return Path(cfg.paths.processed) / "seq" / population / "sequences.parquet", "user_id"


def customer_text_embeddings(cfg: Any, df: pd.DataFrame, save: bool = False) -> np.ndarray:
    """Frozen MiniLM vectors of ``df``'s customer sentences, in row order.

    Callers pass the text population (:func:`lib.data.hillstrom.text_population`), never the
    whole table: the vectors cost MiniLM time per customer.

    Reuses ``hillstrom__text_frozen`` when it holds the vectors of the same settings and code
    (:func:`reusable`) and covers every customer of ``df`` (the Hillstrom prediction table and
    the export share it);
    ``save=True`` writes freshly computed vectors there, so the export that follows the
    prediction table does not embed the same customers again.
    """
    from lib.data.text import customer_sentence
    from lib.models.text import build_text_encoder

    stem = embedding_stem(cfg.paths.embeddings, "hillstrom", "text_frozen")
    wanted = df["customer_id"].to_numpy(np.int64)
    table, id_column = prepared_table(cfg, "hillstrom")
    record = _record(cfg, "hillstrom", "text_frozen", {"text": _container(cfg.model.text)}, FROZEN_CODE)
    if reusable(stem, record, table):
        try:
            return load_for(stem, wanted, table)
        except InputError as exc:  # another text population: embed again
            log.info("not reusing %s: %s", stem, exc)
    enc = build_text_encoder(cfg.model.text, mode="frozen")
    emb = enc.encode([customer_sentence(r) for r in df.to_dict("records")], int(cfg.model.text.batch_size))
    if save:
        save_embeddings(stem, wanted, emb, record, table, id_column)
    return emb


def _record(cfg: Any, population: str, variant: str, config: dict[str, Any], code: Sequence[str],
            checkpoint: Path | None = None) -> dict[str, Any]:
    """What an exported file records about how its vectors were made (:data:`CACHE_KEYS` and more)."""
    return {"variant": variant, "population": population, "preset": cfg.preset_name, "seed": cfg.seed,
            "config": config, "code": code_version(folders=code),
            "checkpoint": str(checkpoint) if checkpoint is not None else None,
            "checkpoint_sha256": sha256_file(checkpoint) if checkpoint is not None else None}


def _seq_population(cfg: Any, dataset: str, run_dir: Path) -> dict[str, Callable[[], Job]]:
    """Jobs ``variant -> () -> (record, produce)`` for one sequence data set."""
    from lib.data.sequences import history, load_prepared

    seqs, attrs, meta = load_prepared(cfg, dataset)
    ids = seqs["user_id"].to_numpy(np.int64)
    hist = list(history(seqs))
    ecfg = cfg.model.embed

    def bag() -> Job:
        record = _record(cfg, dataset, "bag_svd", {"bag": _container(ecfg.bag)}, FROZEN_CODE)
        return record, lambda: (ids, bag_svd(hist, int(meta["n_items"]), int(ecfg.bag.dim), cfg.seed,
                                             ecfg.bag.weighting))

    def pretrained() -> Job:
        from lib.embed.stream import encode_parquet
        from lib.train.causal import best_nextitem_checkpoint
        from lib.train.nextitem import load_model

        ckpt = best_nextitem_checkpoint(cfg, dataset)
        if ckpt is None:
            raise FileNotFoundError(f"no next-item checkpoint for {dataset} under {cfg.paths.checkpoints}: "
                                    f"train the sequence models (python -m lib.train trainer.dataset={dataset}) "
                                    f"before exporting seq_pretrained, or drop it from model.embed.seq_variants")

        def produce() -> tuple[np.ndarray, np.ndarray]:
            model = load_model(ckpt)
            # streamed from the Parquet table: a million users never hold a million histories at once
            return encode_parquet(model, Path(cfg.paths.processed) / "seq" / dataset / "sequences.parquet",
                                  model.max_len, int(ecfg.stream.read_rows), int(ecfg.stream.batch_size))
        return _record(cfg, dataset, "seq_pretrained", {"model": _seq_config(cfg)}, TRAINED_CODE, ckpt), produce

    def text() -> Job:
        from lib.data.text import history_text
        from lib.models.text import build_text_encoder

        def produce() -> tuple[np.ndarray, np.ndarray]:
            enc = build_text_encoder(cfg.model.text, mode="frozen")
            enc.max_length = int(ecfg.history_text_max_length)
            return ids, enc.encode([history_text(h, attrs, int(ecfg.history_text_max_items)) for h in hist],
                                   int(cfg.model.text.batch_size))
        config = {"text": _container(cfg.model.text), "history_text_max_length": int(ecfg.history_text_max_length),
                  "history_text_max_items": int(ecfg.history_text_max_items)}
        return _record(cfg, dataset, "text_frozen", config, FROZEN_CODE), produce

    return {"bag_svd": bag, "seq_pretrained": pretrained, "text_frozen": text}


def _hillstrom_population(cfg: Any) -> dict[str, Callable[[], Job]]:
    """Jobs for the Hillstrom customers of :func:`lib.data.hillstrom.text_population`.

    Every Hillstrom variant is a text one, so the export covers the seeded subsample of
    ``model.text.max_customers`` customers (all when null), not the whole prepared table.
    """
    from lib.data.hillstrom import load_prepared, text_population
    from lib.data.text import customer_sentence
    from lib.train.text import load_text_encoder, text_checkpoint_path

    df = load_prepared(cfg)
    df = df[df["customer_id"].isin(text_population(df, cfg))]
    ids = df["customer_id"].to_numpy(np.int64)
    tcfg = cfg.model.text

    def frozen() -> Job:
        record = _record(cfg, "hillstrom", "text_frozen", {"text": _container(tcfg)}, FROZEN_CODE)
        return record, lambda: (ids, customer_text_embeddings(cfg, df))

    def tuned(mode: str) -> Callable[[], Job]:
        def job() -> Job:
            path = text_checkpoint_path(cfg, tcfg.finetune.outcome, mode)
            if not path.is_file():
                raise FileNotFoundError(f"missing fine-tuned text encoder {path}: run "
                                        f"lib.train.text.hillstrom_conversion first (model.text.finetune)")

            def produce() -> tuple[np.ndarray, np.ndarray]:
                enc = load_text_encoder(tcfg, path)
                return ids, enc.encode([customer_sentence(r) for r in df.to_dict("records")], int(tcfg.batch_size))
            return _record(cfg, "hillstrom", f"text_{mode}", {"text": _container(tcfg)}, TRAINED_CODE, path), produce
        return job

    jobs = {"text_frozen": frozen}
    if tcfg.finetune.enabled:
        jobs.update({f"text_{m}": tuned(m) for m in tcfg.finetune.modes})
    return jobs


def export_all(cfg: Any, run_dir: str | Path) -> list[Path]:
    """Write every configured embedding file, keeping those that already hold the same vectors
    (:func:`reusable`); register the table ``embedding_export``.

    Returns the ``.npz`` / ``.json`` paths of every configured file, written or kept.
    """
    from lib.report.artefacts import register

    run_dir, root = Path(run_dir), Path(cfg.paths.embeddings)
    jobs: list[tuple[str, str, Callable[[], Job]]] = []
    for dataset in cfg.model.embed.datasets:
        check_population(cfg, dataset, "model.embed.datasets")
        producers = _seq_population(cfg, dataset, run_dir)
        jobs += [(dataset, v, producers[v]) for v in cfg.model.embed.seq_variants]
    hill = _hillstrom_population(cfg)
    variants = list(dict.fromkeys([*cfg.model.embed.hillstrom_variants,
                                   *(v for v in hill if v != "text_frozen")]))
    jobs += [("hillstrom", v, hill[v]) for v in variants]

    paths, rows = [], []
    for population, variant, job in jobs:
        stem, (table, id_column) = embedding_stem(root, population, variant), prepared_table(cfg, population)
        t0 = time.perf_counter()
        record, produce = job()
        reused = reusable(stem, record, table)
        if reused:
            ids, emb, _ = load_embeddings(stem)
            paths += [stem.with_suffix(".npz"), stem.with_suffix(".json")]
        else:
            ids, emb = produce()
            paths += save_embeddings(stem, ids, emb, record, table, id_column)
        seconds = time.perf_counter() - t0
        rows.append({"population": population, "variant": variant, "n": len(ids), "dim": int(emb.shape[1]),
                     "reused": reused, "seconds": seconds, "per_s": len(ids) / max(seconds, 1e-9)})
        log.info("%s %s__%s: %d x %d in %.1fs", "reused" if reused else "exported", population, variant,
                 len(ids), emb.shape[1], seconds)
    register(run_dir, "embedding_export", kind="table", data=pd.DataFrame(rows),
             caption=("User and customer representations exported for the causal study: population, variant, "
                      "number of units, vector size, whether the file of an earlier export with the same settings, "
                      "checkpoint, code and data was kept (reused) and the wall time (per_s = units embedded per "
                      "second; for a reused file, units read back per second). Sequence users are embedded from "
                      "their history before the validation and test items only."))
    return paths
