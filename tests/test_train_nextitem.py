"""In-process Lightning training: a tiny model overfits a tiny learnable sequence set, and the
same seed gives the same numbers."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from lib.config import compose
from lib.errors import InputError
from lib.eval import ndcg_at_k
from lib.eval.metrics import remove_seen
from lib.train.nextitem import load_model
from lib.train.run import train
from test_train_datamodule import write_prepared


def config(tmp_path, *extra: str):
    return compose("smoke", [f"paths.processed={tmp_path / 'processed'}", f"paths.checkpoints={tmp_path / 'ckpt'}",
                             "trainer.dataset=synthetic", "trainer.cpu_threads=1", "trainer.batch_size=16",
                             "trainer.log_every_n_steps=1", *extra])


@pytest.fixture()
def prepared(tmp_path):
    write_prepared(tmp_path / "processed")
    return tmp_path


@pytest.mark.parametrize("arch,epochs", [("sasrec", 25), ("bert4rec", 80)])
def test_tiny_model_overfits_tiny_sequences(prepared, arch, epochs):
    cfg = config(prepared, f"model.arch={arch}", f"trainer.max_epochs={epochs}", "trainer.patience=1000",
                 "model.lr=1e-2", "model.dropout=0.0", "model.attn_dropout=0.0", "model.mask_prob=0.4")
    metrics, objects = train(cfg)
    assert metrics["test/hr@10"] == 1.0 and metrics["test/ndcg@10"] > 0.6
    logs = pd.read_csv(objects["run_dir"] / "csv" / "version_0" / "metrics.csv")
    losses = logs["train/loss_epoch"].dropna().to_numpy()
    assert len(losses) == epochs and losses[-1] < 0.3 * losses[0]
    # the best checkpoint reloads into the same scorer: same test NDCG@10 outside Lightning
    model = load_model(metrics["best_ckpt"])
    hist, target, seen = objects["datamodule"].test_set.tensors
    with torch.no_grad():
        logits = model.item_logits(model.encode(hist))
    assert ndcg_at_k(logits, target, 10, exclude=(0,)) == pytest.approx(metrics["test/ndcg@10"], abs=1e-6)
    removed = ndcg_at_k(remove_seen(logits, seen), target, 10, exclude=(0,))
    assert removed == pytest.approx(metrics["test/history_removed/ndcg@10"], abs=1e-6)


def test_same_seed_same_metrics(prepared):
    a, _ = train(config(prepared, "trainer.max_epochs=2", "trainer.run_name=a"))
    b, _ = train(config(prepared, "trainer.max_epochs=2", "trainer.run_name=b"))
    c, _ = train(config(prepared, "trainer.max_epochs=2", "trainer.run_name=c", "seed=1"))
    keys = [k for k in a if k.startswith("test/")]
    assert keys and all(a[k] == b[k] for k in keys)
    assert a["test/loss"] != c["test/loss"]


@pytest.mark.parametrize("arch,ema", [("sasrec", "null"), ("bert4rec", "null"), ("sasrec", "0.9")])
def test_a_run_split_at_an_epoch_boundary_gives_the_numbers_of_one_run(prepared, arch, ema):
    """A session that ends between epochs costs nothing: 2 epochs, then the same run extended to 3 from
    last.ckpt, ends with the weights of 3 epochs in one go. Without the generator state in the checkpoint
    the third epoch drew other dropout masks (SASRec test loss 3.45993 instead of 3.45943); with Lightning's
    save_last, last.ckpt stayed at the best epoch and the resumed BERT4Rec run rewound to it."""
    common = (f"model.arch={arch}", "trainer.patience=1000", f"model.ema_decay={ema}")
    straight, _ = train(config(prepared, *common, "trainer.max_epochs=3", "trainer.run_name=straight"))
    first, _ = train(config(prepared, *common, "trainer.max_epochs=2", "trainer.run_name=split"))
    # last.ckpt is the state after the latest validation, not after the best one (BERT4Rec peaks at epoch 0 here)
    assert torch.load(first["last_ckpt"], weights_only=False)["global_step"] == first["global_step"]
    split, _ = train(config(prepared, *common, "trainer.max_epochs=3", "trainer.run_name=split"))
    assert split["resumed_from"] and 0 < split["start_step"] < split["global_step"] == straight["global_step"]
    ckpts = [torch.load(m["last_ckpt"], weights_only=False) for m in (straight, split)]
    # with the EMA, state_dict is the average and current_model_state the raw weights: both must match
    for part in ("state_dict", "current_model_state") if ema != "null" else ("state_dict",):
        weights = [c[part] for c in ckpts]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), part
    keys = [k for k in straight if k.startswith("test/")]
    assert keys and all(split[k] == straight[k] for k in keys), {k: (straight[k], split[k]) for k in keys}


@pytest.mark.parametrize("every", [0, 3])
def test_rerun_resumes_a_finished_run_without_training_again(prepared, every):
    first, _ = train(config(prepared, "trainer.max_epochs=2", f"trainer.ckpt_every_n_steps={every}"))
    if every:   # mid-epoch checkpoints exist, but the finished state is the newer one
        assert first["global_step"] % every and (prepared / "ckpt" / first["run_name"] / "last-step.ckpt").is_file()
    again, _ = train(config(prepared, "trainer.max_epochs=2", f"trainer.ckpt_every_n_steps={every}"))
    assert again["resumed_from"] == first["last_ckpt"] and again["start_step"] == first["global_step"]
    assert again["global_step"] == first["global_step"]
    assert again["test/ndcg@10"] == first["test/ndcg@10"]
    longer, _ = train(config(prepared, "trainer.max_epochs=3"))  # same run, extended by one epoch
    assert longer["start_step"] == first["global_step"] and longer["global_step"] > first["global_step"]


def test_bf16_mixed_precision_trains_with_gradient_clipping(prepared):
    """Lightning refuses to clip the gradients of a fused AdamW under mixed precision (the GPU recipe:
    trainer.precision=bf16-mixed with gradient_clip_val 1); bf16 autocast runs on the CPU too."""
    cfg = config(prepared, "trainer.precision=bf16-mixed", "trainer.max_epochs=2")
    assert cfg.trainer.gradient_clip_val > 0
    metrics, objects = train(cfg)
    assert metrics["global_step"] > 0 and 0 <= metrics["test/ndcg@10"] <= 1
    opt = objects["trainer"].optimizers[0]
    assert not opt.defaults["fused"] and opt.defaults["foreach"]


def test_max_time_stops_fitting_tests_the_best_checkpoint_and_a_longer_budget_continues(prepared):
    args = ("trainer.max_epochs=10000", "trainer.patience=10000")
    first, _ = train(config(prepared, *args, "trainer.max_time=00:00:00:02"))
    assert first["stopped_by"] == "time_limit" and 0 < first["epochs"] < 9999
    assert 0 <= first["test/ndcg@10"] <= 1 and first["best_ckpt"]
    longer, _ = train(config(prepared, *args, "trainer.max_time=00:00:00:04"))  # same run (max_time not in its name)
    assert longer["run_name"] == first["run_name"] and longer["stopped_by"] == "time_limit"
    assert longer["start_step"] > 0 and longer["global_step"] > first["global_step"]
    with pytest.raises(InputError, match=r"trainer\.max_time.*'2h' is not DD:HH:MM:SS.*00:02:00:00"):
        train(config(prepared, *args, "trainer.max_time=2h"))


def test_a_run_that_early_stopping_ended_stays_ended(prepared):
    """Rerunning a finished notebook must test the same checkpoint: Lightning alone resumes an early-stopped
    run from its newer mid-epoch checkpoint (last-step.ckpt) and trains another epoch (8 -> 12 steps here),
    and a better score there would restart its patience."""
    args = ("trainer.max_epochs=40", "trainer.patience=1", "model.lr=1e-2", "trainer.ckpt_every_n_steps=4")
    first, objects = train(config(prepared, *args))
    again, _ = train(config(prepared, *args))
    assert again["global_step"] == first["global_step"] and again["best_ckpt"] == first["best_ckpt"]
    assert first["stopped_by"] == "early_stopping" and first["epochs"] < 39
    assert again["epochs"] == first["epochs"] and again["test/ndcg@10"] == first["test/ndcg@10"]
    # the fitting time is the first call's; this call's own seconds are the test alone
    assert again["fit_wall_s"] == first["fit_wall_s"] > 0 and first["wall_s"] > first["fit_wall_s"]
    versions = sorted((objects["run_dir"] / "csv").glob("version_*/metrics.csv"))
    assert len(versions) == 2
    rerun = pd.read_csv(versions[1])   # the rerun logged its test and nothing else: no training, no validation
    assert rerun.filter(regex="^(train|val)/").isna().all().all() and rerun.filter(like="test/").notna().any().any()
    (objects["run_dir"] / "fit.json").write_text("{truncated")
    with pytest.raises(InputError, match=r"fit\.json.*not valid JSON.*trainer\.resume=false"):
        train(config(prepared, *args))
    restart, _ = train(config(prepared, *args, "trainer.resume=false"))
    assert restart["resumed_from"] is None and restart["test/ndcg@10"] == first["test/ndcg@10"]   # same seed
