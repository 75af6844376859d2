"""Shapes, attention masking, padding and the tied head of the item-sequence transformers."""
from __future__ import annotations

import pytest
import torch

from lib.models.seq import SeqRecModel
from _data_fixtures import SEQ_BLOCK


def make(arch: str, attrs: torch.Tensor | None = None, **kw) -> SeqRecModel:
    torch.manual_seed(0)
    return SeqRecModel(n_items=30, arch=arch, hidden=16, layers=2, heads=2, max_len=8, dropout=0.0,
                       attn_dropout=0.0, item_attrs=attrs, n_attrs=4 if attrs is not None else 0, **{**SEQ_BLOCK, **kw}).eval()


HIST = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8]])


@pytest.mark.parametrize("arch", ["sasrec", "bert4rec"])
def test_shapes(arch):
    m = make(arch)
    assert m(HIST).shape == (2, 8, 16)
    assert m.encode(HIST).shape == (2, m.hidden_size) == (2, 16)
    assert m.item_logits(m.encode(HIST)).shape == (2, 31)


def test_causal_mask_hides_the_future():
    m = make("sasrec")
    future = HIST.clone()
    future[:, 6:] = torch.tensor([20, 21])
    before, after = m(HIST), m(future)
    # real (non-padding) positions <= 5 cannot see 6, 7; hidden states at padding are never read
    real = (HIST != 0)[:, :6]
    assert torch.allclose(before[:, :6][real], after[:, :6][real], atol=1e-6)
    assert not torch.allclose(before[:, 6:], after[:, 6:], atol=1e-3)  # the changed positions do change


def test_bidirectional_model_sees_the_future():
    m = make("bert4rec")
    future = HIST.clone()
    future[:, 7] = 20
    assert not torch.allclose(m(HIST)[:, 5], m(future)[:, 5], atol=1e-4)


@pytest.mark.parametrize("arch", ["sasrec", "bert4rec"])
def test_padding_is_ignored(arch):
    m = make(arch)
    short = torch.tensor([[3, 4, 5, 6, 7]])
    padded = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7]])
    assert torch.allclose(m.encode(short), m.encode(padded), atol=1e-6)


def test_bert4rec_encodes_an_appended_mask():
    m = make("bert4rec")
    with_mask = torch.cat([HIST[:, 1:], torch.full((2, 1), m.mask_id)], dim=1)
    assert torch.allclose(m.encode(HIST), m(with_mask)[:, -1], atol=1e-6)


def test_long_histories_keep_the_most_recent_items():
    m = make("sasrec")
    long = torch.cat([torch.tensor([[9, 9, 9], [9, 9, 9]]), HIST], dim=1)
    assert torch.allclose(m.encode(long), m.encode(HIST), atol=1e-6)
    with pytest.raises(ValueError, match="length"):
        m(long)


def test_head_is_tied_to_the_item_table():
    m = make("sasrec")
    h = m.encode(HIST)
    expected = h @ m.item_table.weight[:31].T + m.output_bias[:31]
    assert torch.allclose(m.item_logits(h), expected)
    assert m.item_table.weight.requires_grad and m.item_table.num_embeddings == 32  # + pad and [MASK]


def test_attributes_change_the_item_embedding():
    attrs = torch.zeros(31, 2, dtype=torch.long)
    attrs[3] = torch.tensor([1, 2])
    m = make("sasrec", attrs)
    plain = m.item_table(torch.tensor([[3, 4]]))
    emb = m.embed_items(torch.tensor([[3, 4]]))
    assert torch.allclose(emb[0, 1], plain[0, 1])       # item 4 has no attributes
    expected = plain[0, 0] + m.attr_emb(torch.tensor([1, 2])).mean(0)
    assert torch.allclose(emb[0, 0], expected, atol=1e-6)


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="sasrec"):
        SeqRecModel(n_items=5, arch="gru", hidden=16, layers=1, heads=2, max_len=8, dropout=0.0, attn_dropout=0.0,
                    **SEQ_BLOCK)


# ---- recipe knobs: norm placement, feed-forward, attention kernel, output tying ----------------
@pytest.mark.parametrize("kw", [{"norm_first": True}, {"ffn": "swiglu"}, {"ffn": "relu", "ff_mult": 1},
                                {"attn_implementation": "eager"}, {"tie_weights": False}])
def test_every_variant_keeps_the_causal_mask(kw):
    m = make("sasrec", **kw)
    future = HIST.clone()
    future[:, 6:] = torch.tensor([20, 21])
    real = (HIST != 0)[:, :6]
    assert torch.allclose(m(HIST)[:, :6][real], m(future)[:, :6][real], atol=1e-6)
    assert not torch.allclose(m(HIST)[:, 6:], m(future)[:, 6:], atol=1e-3)


def test_pre_norm_differs_from_post_norm_with_the_same_weights():
    post, pre = make("sasrec"), make("sasrec", norm_first=True)
    # identical parameters except pre-norm's final LayerNorm: only the block wiring differs
    missing = pre.load_state_dict(post.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["final_norm.bias", "final_norm.weight"]
    assert not torch.allclose(pre(HIST), post(HIST), atol=1e-3)
    # pre-norm output is LayerNormed once at the end: zero mean over the hidden units
    assert torch.allclose(pre(HIST).mean(-1), torch.zeros(2, 8), atol=1e-5)


def test_sdpa_and_eager_attention_compute_the_same_function():
    eager, sdpa = make("sasrec", attn_implementation="eager"), make("sasrec", attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    assert torch.allclose(eager(HIST), sdpa(HIST), atol=1e-5)
    # deterministic on the CPU: the same call twice gives the same bits
    assert torch.equal(sdpa(HIST), sdpa(HIST))


def test_swiglu_gates_two_projections():
    m = make("sasrec", ffn="swiglu", ff_mult=2)
    ffn = m.blocks[0].ffn
    assert ffn.inp.out_features == 2 * 2 * 16 and ffn.out.in_features == 2 * 16
    x = torch.randn(3, 16)
    gate, value = ffn.inp(x).chunk(2, dim=-1)
    assert torch.allclose(ffn(x), ffn.out(torch.nn.functional.silu(gate) * value), atol=1e-6)


def test_untied_head_scores_with_its_own_table():
    m = make("sasrec", tie_weights=False)
    h = m.encode(HIST)
    assert m.output_table is not m.item_table
    expected = h @ m.output_items.weight[:31].T + m.output_bias[:31]
    assert torch.allclose(m.item_logits(h), expected)
    assert torch.allclose(m.candidate_logits(h, torch.tensor([3, 7])), expected[:, [3, 7]], atol=1e-6)
    with pytest.raises(ValueError, match="ffn"):
        make("sasrec", ffn="tanh")


@pytest.mark.parametrize("tie", [True, False])
def test_logit_multiple_pads_the_product_and_changes_no_score_loss_or_gradient(tie):
    """31 logit columns (30 items + padding) scored over a table padded to 64 rows: the same numbers."""
    plain, padded = make("sasrec", tie_weights=tie).train(), make("sasrec", tie_weights=tie, logit_multiple=64).train()
    padded.load_state_dict(plain.state_dict())   # same weights (same seed anyway); no parameter was added
    targets = torch.tensor([5, 9])
    grads = []
    for m in (plain, padded):
        logits = m.item_logits(m.encode(HIST))
        assert logits.shape == (2, 31) and logits.is_contiguous()
        loss = torch.nn.functional.cross_entropy(logits, targets)
        m.zero_grad()
        loss.backward()
        grads.append((logits.detach(), loss.detach(), m.output_table.weight.grad.clone(), m.output_bias.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert grads[0][2][31:].abs().sum() == 0      # rows past the scored ids ([MASK]) get no gradient either way
