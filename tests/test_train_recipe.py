"""Training recipe knobs of lib.train.nextitem: sampled softmax, negatives, learning-rate schedule,
padding trimming and the wall-clock column of the CSV log."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lib.models.seq import SeqRecModel
from lib.train.nextitem import NextItemModule, lr_factor, sampled_softmax_loss, trim_padding
from lib.train.run import train
from test_train_datamodule import write_prepared
from test_train_nextitem import config
from _data_fixtures import SEQ_BLOCK


def model(**kw) -> SeqRecModel:
    torch.manual_seed(0)
    return SeqRecModel(n_items=30, arch="sasrec", hidden=16, layers=1, heads=2, max_len=8, dropout=0.0,
                       attn_dropout=0.0, **{**SEQ_BLOCK, **kw})


def test_sampled_softmax_over_every_item_is_the_full_cross_entropy():
    m = model()
    hidden, targets = torch.randn(5, 16), torch.tensor([1, 4, 4, 30, 17])
    full = m.item_logits(hidden)
    full[:, 0] = -torch.inf
    expected = F.cross_entropy(full, targets)
    # every item once as a "negative": the target's own copy is an accidental hit and is removed
    assert sampled_softmax_loss(m, hidden, targets, torch.arange(1, 31)).item() == pytest.approx(expected.item(), rel=1e-6)


def test_sampled_softmax_hand_computed_with_an_accidental_hit():
    m = model(tie_weights=False)
    hidden, targets, negs = torch.randn(2, 16), torch.tensor([3, 5]), torch.tensor([5, 9])
    s = m.item_logits(hidden)
    # row 0: softmax over {3, 5, 9}; row 1: item 5 is its target, so {5, 9}
    expected = (-(s[0, 3] - torch.logsumexp(s[0, [3, 5, 9]], 0)) - (s[1, 5] - torch.logsumexp(s[1, [5, 9]], 0))) / 2
    assert sampled_softmax_loss(m, hidden, targets, negs).item() == pytest.approx(expected.item(), rel=1e-5)


def cfg_dict(tmp_path, *extra):
    from omegaconf import OmegaConf
    return OmegaConf.to_container(config(tmp_path, *extra).model, resolve=True)


def test_popularity_negatives_follow_training_counts(tmp_path):
    counts = torch.zeros(31, dtype=torch.long)
    counts[[2, 7]] = torch.tensor([1, 3])
    module = NextItemModule(cfg_dict(tmp_path, "model.loss=sampled", "model.negatives=popularity",
                                     "model.n_negatives=4000"), 30, item_counts=counts)
    torch.manual_seed(0)
    negs = module.sample_negatives(torch.device("cpu"))
    assert set(negs.tolist()) == {2, 7}
    assert (negs == 7).float().mean().item() == pytest.approx(0.75, abs=0.03)
    uniform = NextItemModule(cfg_dict(tmp_path, "model.loss=sampled", "model.n_negatives=4000"), 30)
    negs = uniform.sample_negatives(torch.device("cpu"))
    assert negs.min() >= 1 and negs.max() <= 30 and len(set(negs.tolist())) == 30


def test_warmup_then_decay_hand_computed():
    # 4 warm-up steps: lr/4, 2lr/4, 3lr/4, lr; then cosine from lr to 0.1 lr at step 10
    got = [lr_factor(s, "cosine", 4, 10, 0.1) for s in range(12)]
    cos = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(7)]
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0, *cos, 0.1])
    assert [lr_factor(s, "linear", 2, 6, 0.0) for s in range(7)] == pytest.approx([0.5, 1, 1, 0.75, 0.5, 0.25, 0])
    assert [lr_factor(s, "constant", 3, None, 0.0) for s in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(0, "step", 0, None, 0.0)


def test_optimiser_applies_the_schedule(tmp_path):
    module = NextItemModule(cfg_dict(tmp_path, "model.lr=0.01", "model.lr_schedule=linear", "model.warmup_steps=2",
                                     "model.decay_steps=4"), 30)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.005, 0.01, 0.01, 0.005, 0.0])


@pytest.mark.parametrize("arch", ["sasrec", "bert4rec"])
def test_trimming_padding_columns_does_not_change_the_loss(tmp_path, arch):
    module = NextItemModule(cfg_dict(tmp_path, f"model.arch={arch}", "model.dropout=0.0",
                                     "model.attn_dropout=0.0"), 30).eval()
    seq = torch.zeros(3, 21, dtype=torch.long)
    seq[0, -6:] = torch.tensor([1, 2, 3, 4, 5, 6])
    seq[1, -3:] = torch.tensor([7, 8, 9])
    seq[2, -4:] = torch.tensor([10, 11, 12, 13])
    assert trim_padding(seq).shape == (3, 6)
    torch.manual_seed(1)
    trimmed = module.training_loss(seq)
    # the same loss without trimming: the model on the full padded width
    torch.manual_seed(1)
    inputs = seq[:, :-1] if arch == "sasrec" else seq[:, 1:]
    if arch == "sasrec":
        targets = torch.where((inputs != 0) & (seq[:, 1:] != 0), seq[:, 1:], -100)
    else:
        inputs, targets = module._masked_inputs(inputs[:, -6:])  # same random draw on the trimmed width
        inputs = torch.cat([torch.zeros(3, 14, dtype=torch.long), inputs], 1)
        targets = torch.cat([torch.full((3, 14), -100), targets], 1)
    hidden = module.model(inputs)[targets != -100]
    logits = module.model.item_logits(hidden)
    logits[:, 0] = -torch.inf
    assert trimmed.item() == pytest.approx(F.cross_entropy(logits, targets[targets != -100]).item(), rel=1e-5)


def test_label_smoothing_hand_computed_over_real_items_only(tmp_path):
    """model.label_smoothing: (1 - eps) x the target's NLL + eps x the mean NLL of the 30 real items; the
    padding column gets no mass (torch's own label_smoothing would make the loss infinite there)."""
    seq = torch.tensor([[0, 0, 4, 9, 2], [3, 17, 30, 1, 5]])
    losses = {}
    for eps in (0.0, 0.3):
        torch.manual_seed(0)  # the same weights for both
        module = NextItemModule(cfg_dict(tmp_path, "model.dropout=0.0", "model.attn_dropout=0.0",
                                         f"model.label_smoothing={eps}"), 30).eval()
        losses[eps] = module.training_loss(seq).item()
    inputs, targets = seq[:, :-1], seq[:, 1:]
    keep = (inputs != 0) & (targets != 0)
    logits = module.model.item_logits(module.model(inputs)[keep])[:, 1:]  # the 30 real items
    probs = logits.softmax(-1).double()
    nll = -probs.log()[torch.arange(len(probs)), targets[keep] - 1]
    assert math.isfinite(losses[0.3])
    assert losses[0.0] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert losses[0.3] == pytest.approx((0.7 * nll + 0.3 * -probs.log().mean(-1)).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="model.label_smoothing needs model.loss=ce"):
        NextItemModule(cfg_dict(tmp_path, "model.loss=sampled", "model.label_smoothing=0.1"), 30)


def test_train_remove_history_hand_computed_sasrec(tmp_path):
    """model.train_remove_history: each position's softmax runs over the 30 real items minus the items
    before its target (a repeat of the target stays the target); with label smoothing the smoothed mass
    spreads over those candidates only."""
    seq = torch.tensor([[0, 4, 9, 4, 2], [3, 17, 30, 1, 5]])
    # per kept position (row-major): target and the earlier items that are not candidates
    expected = [(9, {4}), (4, {9}), (2, {4, 9}),
                (17, {3}), (30, {3, 17}), (1, {3, 17, 30}), (5, {3, 17, 30, 1})]
    losses = {}
    for eps in (0.0, 0.2):
        torch.manual_seed(0)
        module = NextItemModule(cfg_dict(tmp_path, "model.dropout=0.0", "model.attn_dropout=0.0",
                                         "model.train_remove_history=true", f"model.label_smoothing={eps}"), 30).eval()
        losses[eps] = module.training_loss(seq).item()
    inputs, targets = seq[:, :-1], seq[:, 1:]
    logits = module.model.item_logits(module.model(inputs)[(inputs != 0) & (targets != 0)]).double()
    nll, smooth = [], []
    for row, (target, removed) in zip(logits, expected):
        cands = [i for i in range(1, 31) if i not in removed]
        logp = row[cands].log_softmax(-1)
        nll.append(-logp[cands.index(target)].item())
        smooth.append(-logp.mean().item())
    assert losses[0.0] == pytest.approx(sum(nll) / 7, rel=1e-5)
    assert losses[0.2] == pytest.approx(sum(0.8 * a + 0.2 * b for a, b in zip(nll, smooth)) / 7, rel=1e-5)
    torch.manual_seed(0)
    plain = NextItemModule(cfg_dict(tmp_path, "model.dropout=0.0", "model.attn_dropout=0.0"), 30).eval()
    assert plain.training_loss(seq).item() > losses[0.0] + 1e-3   # the knob is not a no-op
    with pytest.raises(ValueError, match="model.train_remove_history needs model.loss=ce"):
        NextItemModule(cfg_dict(tmp_path, "model.loss=sampled", "model.train_remove_history=true"), 30)


def test_train_remove_history_bert4rec_removes_items_before_each_masked_position(tmp_path):
    torch.manual_seed(0)
    module = NextItemModule(cfg_dict(tmp_path, "model.arch=bert4rec", "model.dropout=0.0", "model.attn_dropout=0.0",
                                     "model.train_remove_history=true", "model.mask_prob=0.5"), 30).eval()
    seq = torch.tensor([[0, 0, 6, 8, 6, 12], [5, 7, 3, 11, 2, 9]])
    torch.manual_seed(3)
    loss = module.training_loss(seq).item()
    torch.manual_seed(3)
    items = seq[:, 1:]
    inputs, targets = module._masked_inputs(items)
    hidden = module.model(inputs)
    nll = []
    for b, t in (targets != -100).nonzero().tolist():
        removed = set(items[b, :t].tolist()) - {0, int(targets[b, t])}
        cands = [i for i in range(1, 31) if i not in removed]
        logp = module.model.item_logits(hidden[b, t]).double()[cands].log_softmax(-1)
        nll.append(-logp[cands.index(int(targets[b, t]))].item())
    assert len(nll) >= 3
    assert loss == pytest.approx(sum(nll) / len(nll), rel=1e-5)


def test_csv_log_has_a_cumulative_wall_clock_that_continues_after_resume(tmp_path):
    write_prepared(tmp_path / "processed")
    first, objects = train(config(tmp_path, "trainer.max_epochs=2", "trainer.run_name=w"))
    again, _ = train(config(tmp_path, "trainer.max_epochs=4", "trainer.run_name=w"))
    csv = objects["run_dir"] / "csv"
    wall = [pd.read_csv(p)[["epoch", "time/wall_s"]].dropna() for p in sorted(csv.glob("version_*/metrics.csv"))]
    assert len(wall) == 2 and wall[0]["epoch"].tolist() == [0, 1] and wall[1]["epoch"].tolist() == [2, 3]
    series = pd.concat(wall)["time/wall_s"].to_numpy()
    assert (series > 0).all() and (series[1:] > series[:-1]).all()   # resumed clock starts where it stopped


ALLOCATOR_PROBE = """
import json, resource, sys, torch
from lib.train.nextitem import NextItemModule
cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
module = NextItemModule(cfg, 20000)
opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
seq = torch.randint(1, 20001, (64, 21))
losses = []
for step in range(8):
    if step == 3:  # the first steps grow the heap (and the optimiser state): count from the fourth on
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    loss = module.training_loss(seq)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps([losses, sum(float(p.double().sum()) for p in module.parameters()), faults]))
"""


def test_the_makefiles_allocator_setting_takes_effect_and_changes_no_number(tmp_path):
    """GLIBC_TUNABLES of the Makefile: the same losses and weights bit for bit, and the step's large logits stop
    page-faulting afresh (glibc ignores a misspelt tunable silently, so the fault count is what shows it works)."""
    import json
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from omegaconf import OmegaConf

    root = Path(__file__).resolve().parents[1]
    tunables = re.search(r"^export GLIBC_TUNABLES \?= (\S+)$", (root / "Makefile").read_text(), re.M).group(1)
    cfg = json.dumps(OmegaConf.to_container(config(tmp_path, "model.size=tiny", "model.max_len=20").model,
                                            resolve=True))
    runs = {}
    for name, value in (("default", None), ("makefile", tunables)):
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        env.update({"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", **({"GLIBC_TUNABLES": value} if value else {})})
        out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, cfg], env=env, cwd=root, check=True,
                             capture_output=True, text=True).stdout
        runs[name] = json.loads(out.strip().splitlines()[-1])
    assert runs["makefile"][:2] == runs["default"][:2]
    assert runs["makefile"][2] * 20 < runs["default"][2], (runs["makefile"][2], runs["default"][2])


def test_training_flops_hand_computed(tmp_path):
    from lib.bench.train_bench import train_flops_per_sequence

    cfg = cfg_dict(tmp_path, "model.size=tiny", "model.loss=sampled", "model.n_negatives=9", "model.ffn=swiglu",
                   "model.ff_mult=2")
    # tiny: H=32, 1 block; F=64; 3 tokens (causal: 2 attended on average), 2 targets, 10 candidates
    per_token = 8 * 32 * 32 + 6 * 32 * 64 + 4 * 2 * 32
    assert train_flops_per_sequence(cfg, 100, 3, 2) == 3 * (3 * per_token + 2 * 2 * 32 * 10)


def test_gpu_table_on_the_cpu_reports_rates_that_agree_with_each_other():
    """The GPU throughput / MFU table, run on the CPU with a made-up peak: one row per batch size, logit multiple
    and precision, and every derived column recomputed by hand from the measured sequences/s."""
    from omegaconf import OmegaConf

    from lib.bench.train_bench import SPORTS_USERS, _real_inputs, gpu_table, synthetic_module, train_flops_per_sequence
    from lib.config import CONF_DIR, compose

    bcfg = OmegaConf.load(CONF_DIR / "bench" / "train.yaml")
    bcfg.gpu.update({"batch_sizes": [16], "logit_multiples": [1, 64], "warmup": 1, "steps": 2, "n_users": 64,
                     "n_items": 300, "matmul_n": 64, "matmul_repeats": 2, "peak_bf16_tflops": {"cpu": 0.5}})
    table = gpu_table(bcfg, device="cpu")
    assert [tuple(r) for r in table[["precision", "logit_multiple"]].itertuples(index=False)] == \
        [("fp32", 1), ("bf16 autocast", 1), ("fp32", 64), ("bf16 autocast", 64)]
    assert (table["batch"] == 16).all() and (table["sequences/s"] > 0).all()
    assert np.allclose(table["s per Sports epoch"], SPORTS_USERS / table["sequences/s"])
    cfg = compose(bcfg.gpu.preset, [*bcfg.gpu.overrides, "trainer.batch_size=16"])
    real = _real_inputs(synthetic_module(cfg, 64, 300, cfg.seed, beauty_like=True)[1])
    flops = train_flops_per_sequence(cfg.model, 300, real, real)
    assert np.allclose(table["model TFLOP/s"], table["sequences/s"] * flops / 1e12)
    assert np.allclose(table["MFU % (datasheet bf16 peak)"], 100 * table["model TFLOP/s"] / 0.5)
    measured = table["model TFLOP/s"] / table["% of measured matmul rate"] * 100
    assert np.allclose(measured, measured.iloc[0]) and measured.iloc[0] > 0
    assert "cpu: datasheet dense bf16 peak 0.5 TFLOP/s" in table.attrs["setup"]
    if not torch.cuda.is_available():
        assert gpu_table(bcfg) is None


def test_best_checkpoint_of_the_new_recipe_is_chosen_by_validation_and_reloads(tmp_path):
    """Among this config's runs (one per model.compare arch) the best validation one is chosen; a better run of
    another config in the same folder (an experiment, an older recipe) is not."""
    from lib.train.causal import best_nextitem_checkpoint
    from lib.train.nextitem import load_model

    write_prepared(tmp_path / "processed")
    recipe = ["model.loss=sampled", "model.n_negatives=16", "model.norm_first=true", "model.lr=1e-2",
              "model.lr_schedule=cosine", "model.warmup_steps=3", "model.compare=[sasrec,bert4rec]"]
    weak, _ = train(config(tmp_path, *recipe, "model.arch=bert4rec", "trainer.max_epochs=1"))
    strong, _ = train(config(tmp_path, *recipe, "model.arch=sasrec", "trainer.max_epochs=2"))
    stale, _ = train(config(tmp_path, *recipe, "model.arch=sasrec", "model.dropout=0.0", "trainer.max_epochs=12"))
    cfg = config(tmp_path, *recipe)
    key = f"best/{cfg.trainer.monitor}"
    assert strong[key] > weak[key]
    assert stale[key] > strong[key], (stale[key], strong[key])
    chosen = best_nextitem_checkpoint(cfg, "synthetic")
    assert str(chosen) == strong["best_ckpt"]
    model = load_model(chosen)
    assert model.norm_first and model.encode(torch.tensor([[1, 2, 3]])).shape == (1, model.hidden_size)


def test_a_checkpoint_from_before_a_knob_existed_loads_with_the_knob_off(tmp_path):
    """Checkpoints store the model group they were trained with; knobs added later (here label_smoothing and
    ema_decay) are missing there and take conf/model/default.yaml's values instead of raising a KeyError."""
    from lib.train.nextitem import load_model

    torch.manual_seed(0)
    module = NextItemModule(cfg_dict(tmp_path, "model.ema_decay=0.9"), 30)
    hp = dict(module.hparams)
    hp["model_cfg"] = {k: v for k, v in hp["model_cfg"].items() if k not in ("label_smoothing", "ema_decay")}
    torch.save({"hyper_parameters": hp, "state_dict": module.state_dict()}, tmp_path / "old.ckpt")
    old = load_model(tmp_path / "old.ckpt")
    history = torch.tensor([[0, 3, 7, 2]])
    with torch.no_grad():
        assert torch.equal(old.encode(history), module.model.eval().encode(history))


def test_the_weight_average_is_what_is_validated_tested_and_exported(tmp_path):
    """model.ema_decay: the best checkpoint holds the average, its validation score and test metrics are the
    average's (recomputed outside Lightning), and the raw weights score differently. Lightning alone would test
    the raw weights after fit: it restores current_model_state into the model for trainer.test too."""
    from lib.eval import ndcg_at_k
    from lib.eval.metrics import remove_seen
    from lib.models.seq import PAD
    from lib.train.nextitem import load_model

    write_prepared(tmp_path / "processed")
    cfg = config(tmp_path, "model.ema_decay=0.9", "trainer.max_epochs=3", "trainer.patience=1000", "model.lr=1e-2")
    metrics, objects = train(cfg)
    ckpt = torch.load(metrics["best_ckpt"], weights_only=False)
    raw = ckpt["current_model_state"]
    assert any(not torch.equal(ckpt["state_dict"][k], raw[k]) for k in raw)

    def score(model, split):
        hist, target, seen = getattr(objects["datamodule"], f"{split}_set").tensors
        with torch.no_grad():
            logits = model.item_logits(model.encode(hist))
        logits[:, PAD] = -torch.inf
        return ndcg_at_k(remove_seen(logits, seen), target, 10, exclude=(PAD,)), F.cross_entropy(logits, target).item()

    average = load_model(metrics["best_ckpt"])
    val_ndcg, _ = score(average, "valid")
    assert val_ndcg == pytest.approx(metrics[f"best/{cfg.trainer.monitor}"], abs=1e-6)
    test_ndcg, test_loss = score(average, "test")
    assert test_ndcg == pytest.approx(metrics["test/history_removed/ndcg@10"], abs=1e-6)
    assert test_loss == pytest.approx(metrics["test/loss"], rel=1e-5)
    average.load_state_dict({k[len("model."):]: v for k, v in raw.items()})
    assert score(average, "test")[1] != pytest.approx(metrics["test/loss"], rel=1e-5)
