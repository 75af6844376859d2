"""Small generated inputs for the data and simulation tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.data.hillstrom import CHANNELS, ZIP_CODES


#: transformer-block knobs for tests that build a SeqRecModel directly: conf/model/default.yaml with eager attention
SEQ_BLOCK = dict(attn_implementation="eager", norm_first=False, ffn="gelu", ff_mult=4, tie_weights=True,
                 logit_multiple=1)


def generated_sequences(n_users: int = 3000, n_items: int = 300, n_attrs: int = 12, seed: int = 0):
    """Sequences (with leave-one-out columns) and item attributes drawn at random."""
    rng = np.random.default_rng(seed)
    attrs = pd.DataFrame({"item_id": np.arange(1, n_items + 1, dtype=np.int64),
                          "attr_ids": [sorted(rng.choice(np.arange(1, n_attrs + 1), size=rng.integers(1, 4),
                                                         replace=False).tolist()) for _ in range(n_items)]})
    # Zipf-like item popularity so popularity features vary between users
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    weights /= weights.sum()
    items = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(3, 18), p=weights).tolist()
             for _ in range(n_users)]
    seqs = pd.DataFrame({"user_id": np.arange(1, n_users + 1, dtype=np.int64), "items": items})
    seqs["valid_item"] = [s[-2] for s in items]
    seqs["test_item"] = [s[-1] for s in items]
    return seqs, attrs


def raw_hillstrom(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A raw Hillstrom-format frame (strings, as read from CSV) with a planted visit effect."""
    rng = np.random.default_rng(seed)
    labels = ["1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500", "5) $500 - $750",
              "6) $750 - $1,000", "7) $1,000 +"]
    seg = rng.integers(1, 8, n)
    history = np.round(rng.gamma(2.0, 120.0, n) + 29.99, 2)
    recency = rng.integers(1, 13, n)
    newbie = rng.integers(0, 2, n)
    arm = rng.integers(0, 3, n)
    value = np.log1p(history) / 2 - recency / 6 - newbie * 0.5
    p = 1 / (1 + np.exp(-(-2.0 + value + 0.6 * (arm > 0))))
    visit = (rng.random(n) < p).astype(int)
    conversion = visit * (rng.random(n) < 0.1)
    spend = np.round(conversion * rng.gamma(2.0, 50.0, n), 2)
    return pd.DataFrame({
        "recency": recency.astype(str), "history_segment": [labels[s - 1] for s in seg], "history": history.astype(str),
        "mens": rng.integers(0, 2, n).astype(str), "womens": rng.integers(0, 2, n).astype(str),
        "zip_code": rng.choice(ZIP_CODES, n), "newbie": newbie.astype(str), "channel": rng.choice(CHANNELS, n),
        "segment": np.array(["No E-Mail", "Mens E-Mail", "Womens E-Mail"])[arm], "visit": visit.astype(str),
        "conversion": conversion.astype(str), "spend": spend.astype(str)})
