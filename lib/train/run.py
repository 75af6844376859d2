"""``train(cfg) -> (metrics, objects)``: one next-item training run from a composed config.

Kept apart from the command line (``lib/train/__main__.py``) so tests and benchmarks call
it in-process. A run lives in ``{paths.checkpoints}/{run_name}/``: ``best-*.ckpt`` (best
``trainer.monitor``), ``last.ckpt`` (after the latest validation), ``last-step.ckpt`` (every
``trainer.ckpt_every_n_steps`` steps), ``csv/version_N/metrics.csv``, ``tb/``, ``fit.json`` (how the
last fit ended) and ``metrics.json``. Rerunning the same configuration resumes from the newer of the
two last checkpoints; a run that early stopping ended stays ended, so rerunning a notebook tests the
same checkpoint instead of training on (``trainer.resume=false`` trains it again from scratch).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf

from lib.errors import InputError
from lib.eval.metrics import hit_rate_interval
from lib.io import read_json, write_json
from lib.models.seq import ARCHS, Block, seq_config
from lib.train.datamodule import from_config
from lib.train.nextitem import NextItemModule

# trainer keys that do not change what is learned: a run keeps its folder (and resumes) when
# only these differ, e.g. a longer max_epochs continues the same run
_NOT_IN_RUN_ID = ("enable_progress_bar", "cpu_threads", "num_workers", "resume", "run_name", "log_every_n_steps",
                  "max_epochs", "max_steps", "max_time", "patience", "ckpt_every_n_steps", "eval_batch_size",
                  "datasets", "fsdp", "concurrent_runs")
TRAINER_KEYS = ("accelerator", "devices", "strategy", "num_nodes", "precision", "accumulate_grad_batches",
                "max_epochs", "max_steps", "max_time", "gradient_clip_val", "val_check_interval", "log_every_n_steps",
                "enable_progress_bar", "deterministic")


def run_name(cfg: DictConfig) -> str:
    """``<dataset>-<arch>-<size>-<hash>`` of everything that shapes the trained weights."""
    if cfg.trainer.run_name:
        return str(cfg.trainer.run_name)
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in _NOT_IN_RUN_ID}
    key = {"model": seq_config(OmegaConf.to_container(cfg.model)), "trainer": trainer, "seed": cfg.seed,
           "processed": cfg.paths.processed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.trainer.dataset}-{cfg.model.arch}-{cfg.model.size}-{digest}"


def fsdp_strategy(fsdp_cfg: DictConfig) -> FSDPStrategy:
    """Lightning's FSDP with each transformer layer its own shard unit (``trainer.fsdp``).

    The embeddings and the tied next-item head stay in the root unit, so the tie survives
    sharding; checkpoints are saved as full state dicts, loadable without FSDP.
    """
    layer = {Block}
    return FSDPStrategy(auto_wrap_policy=layer, sharding_strategy=str(fsdp_cfg.sharding_strategy),
                        cpu_offload=bool(fsdp_cfg.cpu_offload), state_dict_type="full",
                        activation_checkpointing_policy=layer if fsdp_cfg.activation_checkpointing else None)


STEP_CHECKPOINT = "last-step"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newer of ``last.ckpt`` (after the latest validation) and ``last-step.ckpt`` (every N steps), if any."""
    found = [p for p in (run_dir / "last.ckpt", run_dir / f"{STEP_CHECKPOINT}.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def ended(run_dir: Path) -> dict[str, Any] | None:
    """``fit.json`` of a run that early stopping ended (its best checkpoint still there), else None.

    Lightning would resume such a run from a newer mid-epoch checkpoint and train on, and a better
    validation score then restarts the patience: each rerun of a finished notebook would move its
    test numbers. A changed ``trainer.patience`` does not reopen it either (Lightning restores the
    patience of the checkpoint); ``trainer.resume=false`` starts the run again.
    """
    path = run_dir / "fit.json"
    if not path.is_file():
        return None
    try:
        fit = read_json(path)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), None, f"is not valid JSON ({exc})",
                         "delete it (the run then resumes from its last checkpoint) or set trainer.resume=false") from exc
    best = fit.get("best_ckpt")
    return fit if fit.get("stopped_by") == "early_stopping" and best and (run_dir / best).is_file() else None


class EMA(EMAWeightAveraging):
    """Lightning's EMA of the weights (``model.ema_decay`` per optimiser step), validated, saved and tested.

    Validation swaps the average in; every checkpoint's ``state_dict`` holds the average and
    ``current_model_state`` the raw weights, so ``best-*.ckpt`` is tested and exported exactly as
    validated. Lightning restores the raw weights from ``current_model_state`` whenever the callback has
    an average, which after ``fit`` includes ``trainer.test(ckpt_path=...)``: that would test the raw
    weights of the best epoch. Only a resumed fit needs them, so other stages keep the average.
    """

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def build_trainer(cfg: DictConfig, run_dir: Path) -> tuple[L.Trainer, ModelCheckpoint]:
    """A ``lightning.Trainer`` from ``cfg.trainer`` with checkpointing, early stopping and loggers."""
    tcfg = cfg.trainer
    if tcfg.max_time is not None and not re.fullmatch(r"\d+:\d\d:\d\d:\d\d", str(tcfg.max_time)):
        # Lightning would fail deep inside its Timer with "invalid literal for int()"
        raise InputError("conf/trainer (trainer.max_time)", None, f"{tcfg.max_time!r} is not DD:HH:MM:SS",
                         "write e.g. trainer.max_time=00:02:00:00 for two hours, or null for no cap")
    best = ModelCheckpoint(dirpath=run_dir, filename="best-{epoch}-{step}", monitor=tcfg.monitor, mode="max",
                           save_top_k=1, auto_insert_metric_name=False)
    # last.ckpt after every validation: with save_last=True Lightning refreshes it only when `best` saves a new
    # top-k file, so after epochs without improvement it stayed at the best epoch and a resumed run rewound there.
    # Lightning runs checkpoint callbacks after the others, in list order: this one saves the updated state of
    # `best` and of early stopping.
    last = ModelCheckpoint(dirpath=run_dir, filename="last", save_top_k=1, enable_version_counter=False)
    callbacks: list[Any] = [best, EarlyStopping(monitor=tcfg.monitor, mode="max", patience=tcfg.patience,
                                                check_on_train_epoch_end=False), last]
    if cfg.model.ema_decay is not None:
        callbacks.append(EMA(decay=float(cfg.model.ema_decay)))
    if tcfg.ckpt_every_n_steps:
        # last-step.ckpt, refreshed mid-epoch so a killed run loses at most N steps; last.ckpt stays the
        # state after the latest validation, and a rerun resumes from whichever is newer (latest_checkpoint)
        steps = ModelCheckpoint(dirpath=run_dir, save_top_k=0, save_last=True,
                                every_n_train_steps=int(tcfg.ckpt_every_n_steps))
        steps.CHECKPOINT_NAME_LAST = STEP_CHECKPOINT
        callbacks.append(steps)
    kwargs = {k: tcfg[k] for k in TRAINER_KEYS}
    kwargs["precision"] = str(kwargs["precision"])
    if kwargs["strategy"] == "fsdp":
        kwargs["strategy"] = fsdp_strategy(tcfg.fsdp)
    trainer = L.Trainer(
        **kwargs, callbacks=callbacks, default_root_dir=str(run_dir),
        logger=[CSVLogger(str(run_dir), name="csv"), TensorBoardLogger(str(run_dir), name="tb")],
        # our DataModule builds the distributed / sharded samplers itself (see lib/train/datamodule.py)
        use_distributed_sampler=False, num_sanity_val_steps=0,
    )
    return trainer, best


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit (or resume) a next-item model, test the best checkpoint once, write ``metrics.json``.

    Returns
    -------
    metrics : dict
        ``test/hr@K``, ``test/ndcg@K``, ``test/loss``, ``best/<monitor>``, ``global_step``,
        ``start_step`` (> 0 when resumed), ``epochs``, ``wall_s`` (seconds of this call: a re-test of an ended
        run counts only its test), ``fit_wall_s`` (seconds of fitting over every session of the run; None
        for a run ended before it was recorded) and the checkpoint paths.
    objects : dict
        ``trainer``, ``module``, ``datamodule``, ``run_dir``.
    """
    start = time.perf_counter()
    if cfg.trainer.cpu_threads:
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    L.seed_everything(cfg.seed, workers=True)
    datamodule, item_attrs, meta = from_config(cfg)
    module = NextItemModule(cfg.model, datamodule.n_items, item_attrs, int(meta.get("n_attrs", 0)),
                            item_counts=datamodule.item_counts)
    run_dir = Path(cfg.paths.checkpoints) / run_name(cfg)
    trainer, best = build_trainer(cfg, run_dir)
    last = latest_checkpoint(run_dir)
    resume_from = str(last) if cfg.trainer.resume and last is not None else None
    fit = ended(run_dir) if resume_from else None
    if fit is None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        early = next(c for c in trainer.callbacks if isinstance(c, EarlyStopping))
        last = latest_checkpoint(run_dir)
        best_path = best.best_model_path or (str(last) if last is not None else None)
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        stopped_by = ("early_stopping" if early.stopped_epoch else
                      "time_limit" if timer is not None and timer.time_remaining() <= 0 else "epoch_or_step_limit")
        fit = {"stopped_by": stopped_by,
               "patience": int(cfg.trainer.patience), "epochs": int(trainer.current_epoch),
               "global_step": int(trainer.global_step), "best_ckpt": Path(best_path).name if best_path else None,
               "best_score": float(best.best_model_score) if best.best_model_score is not None else None,
               "fit_wall_s": module.wall_seconds()}
        if trainer.is_global_zero:
            write_json(run_dir / "fit.json", fit)
        start_step = module.start_step if module.start_step is not None else trainer.global_step
    else:   # ended by early stopping: test its best checkpoint again, train nothing
        best_path, start_step = str(run_dir / fit["best_ckpt"]), fit["global_step"]
    test = trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)[0]
    metrics: dict[str, Any] = {k: float(v) for k, v in test.items()}
    metrics.update({
        f"best/{cfg.trainer.monitor}": fit["best_score"], "global_step": int(fit["global_step"]),
        "start_step": int(start_step), "stopped_by": fit["stopped_by"],
        "epochs": int(fit["epochs"]), "resumed_from": resume_from, "best_ckpt": best_path,
        "last_ckpt": str(last) if last is not None else None, "run_dir": str(run_dir), "run_name": run_dir.name,
        "dataset": cfg.trainer.dataset, "arch": cfg.model.arch, "size": cfg.model.size,
        "world_size": int(trainer.world_size), "wall_s": time.perf_counter() - start,
        "fit_wall_s": fit.get("fit_wall_s"),
    })
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", metrics)
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": run_dir}


class TrainingFailed(RuntimeError):
    """A training subprocess died, was killed or wrote no metrics; the message names its log."""


def launch(preset: str, overrides: list[str], out: str | Path, timeout: float | None = None,
           stop: threading.Event | None = None) -> dict[str, Any]:
    """Run ``python -m lib.train`` in a subprocess and return its metrics JSON.

    Notebooks use this because a Jupyter kernel cannot host DDP worker processes; the command
    is exactly what one would type (or submit to SLURM) by hand. Its output is appended to
    ``train.log`` in the run's checkpoint folder (``{paths.checkpoints}/{run_name}/``, kept
    outside the notebook's staging folder, next to the CSV logs).

    Raises
    ------
    TrainingFailed
        ``training of <dataset>/<arch> failed (exit code N[, killed by SIGNAL]), log: <path>``
        followed by the end of the log, when the process exits non-zero, is killed (from outside,
        after ``timeout`` seconds, or once ``stop`` is set: `launch_many` sets it when another run
        fails) or exits without writing ``out``.
    """
    import signal
    import subprocess
    import sys

    from lib.config import REPO_ROOT, compose
    from lib.io import read_json

    cfg = compose(preset, overrides)
    log = Path(cfg.paths.checkpoints) / run_name(cfg) / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out = Path(out)
    out.unlink(missing_ok=True)        # never read the metrics of an earlier run as this one's
    cmd = [sys.executable, "-m", "lib.train", "--preset", preset, "--out", str(out)]
    for item in overrides:
        cmd += ["-o", item]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT)
        why, deadline = "", None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                if stop is not None:        # wake every half second to see a stop from another thread
                    left = 0.5 if left is None else min(0.5, left)
                try:
                    code = proc.wait(timeout=left)
                    break
                except subprocess.TimeoutExpired:
                    if stop is not None and stop.is_set():
                        why = " because another run failed or the caller was stopped"
                    elif deadline is not None and time.monotonic() >= deadline:
                        why = f" after the {timeout:g} s timeout"
                    else:
                        continue
                    proc.kill()
                    code = proc.wait()
                    break
        except BaseException:          # Ctrl-C / SIGTERM of the notebook: do not leave training running
            proc.kill()
            proc.wait()
            raise
    if code == 0 and out.is_file():
        return read_json(out)
    status = f"exit code {code}"
    if code < 0:
        status += f", killed by {signal.Signals(-code).name}{why}"
    elif code == 0:
        status += f", but it wrote no metrics to {out}"
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    raise TrainingFailed(f"training of {cfg.trainer.dataset}/{cfg.model.arch} failed ({status}), log: {log}\n"
                         f"command: {' '.join(cmd)}\n--- end of the log ---\n{tail}")


def launch_many(preset: str, jobs: list[tuple[list[str], str | Path]], workers: int) -> list[dict[str, Any]]:
    """`launch` each ``(overrides, out)`` of ``jobs``, ``workers`` subprocesses at a time, in the order given.

    With ``trainer.cpu_threads`` 1 a training uses one core, so on a 2-core machine two runs side by
    side take about half the wall clock of one after the other. Each run writes its own checkpoint
    folder and log, so the numbers do not depend on ``workers``. The first failure kills the runs
    still going (a rerun resumes them from their last checkpoint), cancels those not started, and
    is raised; so does an interrupt of the caller.

    Returns
    -------
    list of dict
        The metrics of each job, in the order of ``jobs``.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(launch, preset, overrides, out, None, stop) for overrides, out in jobs]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:      # the failure that came first, not a run it stopped
                if future in done and future.exception() is not None:
                    raise future.exception()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return [future.result() for future in futures]


#: next-item evaluation protocols: table label -> metric-key infix (lib.eval.metrics)
PROTOCOLS = {"all items": "", "history removed": "history_removed/"}


def results_row(dataset: str, model: str, metrics: dict[str, Any], ks: tuple[int, ...], prefix: str,
                protocol: str) -> dict[str, Any]:
    """One row of the next-item results table from the ``<prefix><protocol infix>hr@K``-style metrics.

    ``prefix`` is ``"test/"`` for a trained model's metrics and ``""`` for a baseline's.

    >>> results_row("beauty", "pop", {"history_removed/hr@5": 0.2, "history_removed/ndcg@5": 0.1}, (5,), "",
    ...             "history removed")
    {'dataset': 'beauty', 'model': 'pop', 'protocol': 'history removed', 'HR@5': 0.2, 'NDCG@5': 0.1}
    """
    row: dict[str, Any] = {"dataset": dataset, "model": model, "protocol": protocol}
    for k in ks:
        for name in ("hr", "ndcg"):
            row[f"{name.upper()}@{k}"] = float(metrics[f"{prefix}{PROTOCOLS[protocol]}{name}@{k}"])
    return row


def published_rows(published: list[dict[str, Any]], datasets: list[str], ks: tuple[int, ...]) -> list[dict[str, Any]]:
    """Rows of the next-item table for published results (``report.published_nextitem``) on ``datasets``.

    Cut-offs a paper does not report are NaN; ``protocol`` is the entry's evaluation protocol (a key of
    :data:`PROTOCOLS`) and ``source`` says where each number comes from.
    """
    rows = []
    for entry in published:
        if entry["dataset"] not in datasets:
            continue
        if entry["protocol"] not in PROTOCOLS:
            raise ValueError(f"report.published_nextitem: protocol {entry['protocol']!r} of {entry['model']} is not "
                             f"one of {sorted(PROTOCOLS)}")
        row: dict[str, Any] = {"dataset": entry["dataset"], "model": entry["model"], "protocol": entry["protocol"]}
        for k in ks:
            for name in ("hr", "ndcg"):
                row[f"{name.upper()}@{k}"] = float(entry.get(f"{name}@{k}", float("nan")))
        rows.append({**row, "source": entry["source"]})
    return rows


def training_seeds(cfg: DictConfig, arch: str) -> list[int]:
    """Seeds notebook 02 trains ``arch`` with: ``seed``, ``seed + 1``, ... (``model.compare_seeds``; missing arch = 1).

    The first is ``seed`` itself, so that run keeps its name and is the one exported and plotted.

    >>> cfg = OmegaConf.create({"seed": 4, "model": {"compare_seeds": {"sasrec": 3}}})
    >>> training_seeds(cfg, "sasrec"), training_seeds(cfg, "bert4rec")
    ([4, 5, 6], [4])
    """
    counts = dict(cfg.model.compare_seeds or {})
    unknown = sorted(set(counts) - set(ARCHS))
    if unknown:
        raise InputError("conf/model (model.compare_seeds)", None, f"names {unknown}, not an architecture",
                         f"spell one of {list(ARCHS)}, or drop the entry")
    return [int(cfg.seed) + i for i in range(int(counts.get(arch, 1)))]


def mean_over_seeds(runs: pd.DataFrame, n_users: dict[str, int], k: int, alpha: float) -> pd.DataFrame:
    """Our next-item rows averaged over training seeds (``runs``: one row per seed, same columns otherwise).

    Adds ``n_seeds``; ``HR@k seed SE`` and ``NDCG@k seed SE``, the standard error of the mean over seeds
    (sample SD / sqrt(n_seeds), NaN for one seed); and ``HR@k {1 - alpha} CI``, the Clopper-Pearson interval
    of HR@k over the test users (:func:`lib.eval.metrics.hit_rate_interval`), for several seeds the mean of
    each seed's bounds. That interval is about another draw of users; the SE columns are about another draw of
    training seeds on these users, the spread a published number on the same split is compared with.

    >>> runs = pd.DataFrame({"dataset": "sports", "model": "sasrec", "protocol": "history removed",
    ...                      "HR@10": [2100 / 35598, 2140 / 35598], "NDCG@10": [0.035, 0.036], "source": "this study"})
    >>> mean_over_seeds(runs, {"sports": 35598}, 10, 0.05).round(5).iloc[0].to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'dataset': 'sports', 'model': 'sasrec', 'protocol': 'history removed', 'HR@10': 0.05955, 'NDCG@10': 0.0355,
     'source': 'this study', 'n_seeds': 2, 'HR@10 seed SE': 0.00056, 'NDCG@10 seed SE': 0.0005,
     'HR@10 95% CI': '0.0571-0.0621'}
    """
    keys = ["dataset", "model", "protocol", "source"]
    if f"HR@{k}" not in runs:
        cut_offs = [int(c.split("@")[1]) for c in runs if c.startswith("HR@")]
        raise ValueError(f"model.hr_interval.k={k} is not one of model.ks={cut_offs}: add it there or pick one of "
                         "them")
    bounds = pd.DataFrame([hit_rate_interval(r[f"HR@{k}"], n_users[r["dataset"]], alpha) for _, r in runs.iterrows()],
                          columns=["low", "high"], index=runs.index)
    groups = runs.join(bounds).groupby(keys, sort=False)
    out = groups[[c for c in runs if c not in keys]].mean().reset_index()[list(runs.columns)]
    out["n_seeds"] = groups.size().to_numpy()
    for name in ("HR", "NDCG"):
        out[f"{name}@{k} seed SE"] = (groups[f"{name}@{k}"].std(ddof=1) / np.sqrt(groups.size())).to_numpy()
    mean = groups[["low", "high"]].mean().to_numpy()
    out[f"HR@{k} {1 - alpha:.0%} CI"] = [f"{low:.4f}-{high:.4f}" for low, high in mean]
    return out
