"""The notebook-04 uplift study end to end on a small generated Hillstrom table."""
import numpy as np
import pytest

from _data_fixtures import raw_hillstrom
from lib.causal.targeting import hillstrom_uplift, published_comparison, uplift_metrics
from lib.config import compose
from lib.data import hillstrom as hs


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("targeting")
    df = hs.encode(raw_hillstrom(3000))
    df["split"] = hs.stratified_split(df, 0.3, seed=0)
    (root / "hillstrom").mkdir()
    df.to_parquet(root / "hillstrom" / "hillstrom.parquet", index=False)
    cfg = compose("smoke", [f"paths.processed={root}", "causal.uplift.outcomes=[visit]",
                            "causal.uplift.models=[t_learner]", "causal.uplift.n_null=50", "causal.uplift.n_boot=20"])
    return hillstrom_uplift(cfg), cfg


def test_both_arms_every_model_and_the_null(table):
    up, _ = table
    assert set(zip(up["arm"], up["arm_name"])) == {(1, "mens_email"), (2, "womens_email")}
    assert set(up["model"]) == {"t_learner", "random"} and len(up) == 4
    model = up[up["model"] == "t_learner"]
    assert model["qini_p"].between(1 / 51, 1).all()
    assert (model["qini_minus_random_ci_low"] < model["qini_minus_random_ci_high"]).all()
    curves = up.attrs["curves"]
    assert {"qini_low", "qini_high"} <= set(curves.columns)
    assert curves.loc[curves["model"] == "t_learner", "qini_low"].isna().all()
    pol = up.attrs["policy"]
    assert set(pol["model"]) == {"t_learner", "random"} and set(pol["k"]) == {0.0, 0.1, 0.2, 0.3, 0.5, 1.0}


def test_metric_keys_for_both_arms_and_the_earlier_keys(table):
    up, _ = table
    keys = uplift_metrics(up)
    for arm in ("mens_email", "womens_email"):
        for k in ("qini", "auuc", "qini_p", "qini_minus_random_ci_low", "qini_minus_random_ci_high"):
            assert f"uplift.hillstrom.visit.{arm}.t_learner.{k}" in keys
        assert f"uplift.hillstrom.visit.{arm}.random.qini" in keys
        assert f"uplift.hillstrom.visit.{arm}.random.qini_p" not in keys
    mens = up[(up["arm"] == 1) & (up["model"] == "t_learner")].iloc[0]
    assert keys["uplift.hillstrom.visit.t_learner.qini"] == mens["qini"]      # earlier keys: the Mens arm
    assert "uplift.hillstrom.visit.random.auuc" in keys


def test_published_figure_sits_next_to_ours(table):
    up, cfg = table
    pub = published_comparison(up, cfg)
    assert pub["uplift_at_k"].iloc[0] == pytest.approx(0.066) and list(pub["source"].iloc[:2]) == ["published", "this study"]
    assert "scikit-uplift" in cfg.causal.uplift.published.source
    assert list(pub["model"].iloc[1:]) == ["t_learner", "random"] and set(pub["arm_name"]) == {"womens_email"}
    assert np.isfinite(pub["uplift_at_k"]).all()
