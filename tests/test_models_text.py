"""MiniLM text encoder: offline load, pooling, similarity, and which weights each mode trains."""
import numpy as np
import pytest
import torch

from lib.models.text import TextEncoder, mean_pool

torch.set_num_threads(1)
NO_LORA = dict(lora_r=8, lora_alpha=16, lora_dropout=0.0)   # conf/model text.lora; unused outside lora mode

SENTENCES = [
    "The customer bought men's clothing last year and lives in a suburban area.",
    "Last year this customer purchased menswear and lives in the suburbs.",
    "Quantum chromodynamics describes the strong interaction between quarks.",
]


@pytest.fixture(scope="module")
def frozen():
    return TextEncoder(mode="frozen", max_length=32, **NO_LORA)


def test_frozen_vectors_are_384d_unit_norm_and_semantic(frozen):
    emb = frozen.encode(SENTENCES, batch_size=2)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3      # paraphrases far closer than an unrelated sentence
    # deterministic and independent of batch composition / order
    again = frozen.encode(SENTENCES[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(emb, again, atol=1e-5)


def test_frozen_mode_trains_nothing(frozen):
    assert not any(p.requires_grad for p in frozen.parameters())
    assert frozen.trainable_state() == {}


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[2.0], [4.0], [100.0]]])
    assert mean_pool(h, torch.tensor([[1, 1, 0]])).item() == pytest.approx(3.0)


def _train_steps(enc, steps=3):
    batch = enc.tokenize(SENTENCES)
    target = torch.tensor([1.0, 1.0, 0.0])
    head = torch.nn.Linear(enc.dim, 1)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    enc.train()
    for _ in range(steps):
        logit = head(enc(batch["input_ids"], batch["attention_mask"])).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_lora_trains_only_adapters():
    enc = TextEncoder(mode="lora", max_length=32, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("query" in n for n in trainable) and any("value" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in enc.named_parameters()}
    _train_steps(enc)
    for n, p in enc.named_parameters():
        if n in trainable:
            assert not torch.equal(before[n], p), f"adapter {n} did not move"
        else:
            assert torch.equal(before[n], p), f"base weight {n} changed"


def test_full_mode_trains_every_weight():
    enc = TextEncoder(mode="full", max_length=32, **NO_LORA)
    assert all(p.requires_grad for p in enc.parameters())
    w = enc.backbone.encoder.layer[0].attention.self.query.weight
    before = w.detach().clone()
    _train_steps(enc, steps=1)
    assert not torch.equal(before, w)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="frozen"):
        TextEncoder(mode="adapter", max_length=32, **NO_LORA)
