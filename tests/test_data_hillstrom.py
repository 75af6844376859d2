"""Hillstrom typing, encodings, validation, stratified split, design matrix and text."""
import numpy as np
import pandas as pd
import pytest

from _data_fixtures import raw_hillstrom
from lib.data import hillstrom as hs
from lib.data.text import customer_sentence, history_text
from lib.errors import InputError


def test_encode_types_and_codes():
    raw = raw_hillstrom(500)
    df = hs.encode(raw, "h.csv")
    assert df.customer_id.tolist() == list(range(500))
    assert df.history_segment.tolist() == [int(s[0]) for s in raw.history_segment]
    assert df.treatment.tolist() == raw.segment.map({"No E-Mail": 0, "Mens E-Mail": 1, "Womens E-Mail": 2}).tolist()
    assert df.treatment.dtype == np.int8 and df.visit.dtype == np.int8 and df.spend.dtype == np.float64
    assert list(df.zip_code.cat.categories) == ["Urban", "Surburban", "Rural"]


@pytest.mark.parametrize("mutate, column, what", [
    (lambda d: d.rename(columns={"segment": "segmnt"}), "segment", "did you mean 'segmnt'"),
    (lambda d: d.assign(segment="No E-Mail"), "segment", "single arm"),
    (lambda d: d.assign(history=d.history.where(d.index != 4, None)), "history", "missing values"),
    (lambda d: d.assign(recency=d.recency.where(d.index != 2, "ten")), "recency", "non-numeric"),
    (lambda d: d.assign(mens=d.mens.where(d.index != 2, "3")), "mens", "non-binary"),
    (lambda d: d.assign(channel=d.channel.where(d.index != 1, "Fax")), "channel", "'Fax'"),
])
def test_bad_hillstrom_raises(mutate, column, what):
    with pytest.raises(InputError) as err:
        hs.encode(mutate(raw_hillstrom(200)), "hillstrom.csv")
    msg = str(err.value)
    assert msg.startswith("hillstrom.csv") and f"'{column}'" in msg and what in msg and "Fix:" in msg


def test_stratified_split_keeps_arm_by_conversion_shares():
    df = hs.encode(raw_hillstrom(3000))
    split = hs.stratified_split(df, 0.3, seed=0)
    assert (split == "test").mean() == pytest.approx(0.3, abs=1e-3)
    strata = df.treatment.astype(int) * 2 + df.conversion
    shares = pd.crosstab(strata, split, normalize="columns")
    assert np.allclose(shares["train"], shares["test"], atol=0.01)
    assert split.equals(hs.stratified_split(df, 0.3, seed=0))


def test_design_matrix_is_pre_treatment_and_full_rank():
    df = hs.encode(raw_hillstrom(800))
    X = hs.design_matrix(df)
    assert not {"treatment", "visit", "conversion", "spend", "segment"} & set(X.columns)
    assert X.shape[1] == 10 and np.linalg.matrix_rank(np.c_[np.ones(len(X)), X.to_numpy()]) == 11


def test_customer_sentence_has_covariates_only():
    row = hs.encode(raw_hillstrom(5)).iloc[0]
    text = customer_sentence(row)
    assert f"{int(row.recency)} month" in text and f"${row.history:,.2f}" in text
    assert "mail" not in text.lower() and "visit" not in text.lower()
    other = row.copy()
    other["treatment"], other["visit"], other["spend"] = 2, 1, 99.0
    assert customer_sentence(other) == text


def test_history_text_orders_and_truncates():
    attrs = pd.DataFrame({"item_id": [1, 2, 3], "attr_ids": [[4], [5, 6], []]})
    text = history_text([3, 1, 2], attrs, max_items=2)
    assert text == "A user bought 3 items, the last 2 shown, oldest first: item 1 (attributes 4); item 2 (attributes 5 6)."


def test_text_population_is_a_seeded_subsample_only_for_text():
    from omegaconf import OmegaConf

    df = hs.encode(raw_hillstrom(500)).sample(frac=1.0, random_state=3)   # row order must not matter
    cfg = OmegaConf.create({"seed": 0, "model": {"text": {"max_customers": 120}}})
    ids = hs.text_population(df, cfg)
    assert len(ids) == 120 and np.all(np.diff(ids) > 0) and np.isin(ids, df.customer_id).all()
    np.testing.assert_array_equal(ids, hs.text_population(df.sort_values("customer_id"), cfg))
    # the draw of the former preparation-time cap, so earlier text exports keep their customers
    ordered = df.sort_values("customer_id").reset_index(drop=True)
    np.testing.assert_array_equal(ids, np.sort(ordered.sample(n=120, random_state=0).customer_id.to_numpy()))
    assert not np.array_equal(ids, hs.text_population(df, OmegaConf.merge(cfg, {"seed": 1})))
    everyone = OmegaConf.merge(cfg, {"model": {"text": {"max_customers": None}}})
    np.testing.assert_array_equal(hs.text_population(df, everyone), np.arange(500))
