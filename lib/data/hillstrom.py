"""The Hillstrom (MineThatData 2008) e-mail RCT as a typed, validated table.

Encodings (raw value -> stored value):

- ``history_segment``: ``"1) $0 - $100"`` ... ``"7) $1,000 +"`` -> ordinal int8 1..7 (the leading number).
- ``zip_code``: categorical with categories ``Urban, Surburban, Rural`` (spelling of the source kept).
- ``channel``: categorical with categories ``Phone, Web, Multichannel``.
- ``segment`` -> ``treatment`` int8: ``No E-Mail`` = 0, ``Mens E-Mail`` = 1, ``Womens E-Mail`` = 2.
- ``mens, womens, newbie, visit, conversion`` -> int8 0/1; ``recency`` int64 (months since last
  purchase); ``history`` and ``spend`` float64 (dollars).
- ``customer_id`` = 0-based row number of the raw file; ``split`` in {train, test}, stratified
  by treatment x conversion with a seeded shuffle.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from lib.data.validate import Where, read_delimited, require_columns
from lib.errors import InputError

RAW_COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel",
               "segment", "visit", "conversion", "spend")
TREATMENTS = {"No E-Mail": 0, "Mens E-Mail": 1, "Womens E-Mail": 2}
ZIP_CODES = ("Urban", "Surburban", "Rural")
CHANNELS = ("Phone", "Web", "Multichannel")
BINARY = ("mens", "womens", "newbie", "visit", "conversion")
COVARIATES = ("recency", "history_segment", "history", "mens", "womens", "newbie", "zip_code", "channel")
OUTCOMES = ("visit", "conversion", "spend")


NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
INTEGER = re.compile(r"-?[0-9]+")   # the sign only so that a negative count is reported as such
SEGMENT = re.compile(r"\s*([0-9])\)")
NON_FINITE = re.compile(r"[-+]?(?:inf|infinity|nan)")


def _first(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _numeric(raw: pd.DataFrame, col: str, where: Where, integer: bool = False, minimum: float | None = None,
             what: str = "number") -> pd.Series:
    """Finite plain decimal numbers (ASCII), whole when ``integer``, at least ``minimum``."""
    values = raw[col]
    if values.isna().any():
        raise InputError(where(_first(values.isna())), col, f"has {int(values.isna().sum())} missing values "
                         "(this is the first)", "fill or drop those customers; the RCT needs complete records")
    text = values.astype(str)
    # the checks run on the distinct values (few per column), then point at the first bad row
    uniq = pd.unique(text)

    def first_row(bad: set) -> int:
        return _first(text.isin(bad))

    non_finite = {v for v in uniq if NON_FINITE.fullmatch(v.lower())}
    if non_finite:
        row = first_row(non_finite)
        raise InputError(where(row), col, f"has a non-finite value {values.iloc[row]!r}",
                         f"the column must hold finite {what}s")
    pattern = INTEGER if integer else NUMBER
    malformed = {v for v in uniq if not pattern.fullmatch(v)}
    if malformed:
        row = first_row(malformed)
        raise InputError(where(row), col, f"has a non-numeric value {values.iloc[row]!r}",
                         f"the column must hold {'whole ' if integer else ''}{what}s written with ASCII digits "
                         "(a string code or a shifted column does not belong here)")
    numbers = pd.to_numeric(text)
    if minimum is not None and (numbers < minimum).any():
        row = _first(numbers < minimum)
        raise InputError(where(row), col, f"has {values.iloc[row]!r}, below the smallest valid value {minimum}",
                         f"{what}s cannot be negative; fix or drop the customer")
    return numbers


def _categorical(raw: pd.DataFrame, col: str, where: Where, allowed: tuple[str, ...]) -> pd.Series:
    bad = ~raw[col].isin(allowed)
    if bad.any():
        row = _first(bad)
        raise InputError(where(row), col, f"has an unknown or missing value {raw[col].iloc[row]!r}",
                         f"allowed values: {list(allowed)}")
    return pd.Categorical(raw[col], categories=list(allowed))


def encode(raw: pd.DataFrame, source: str = "hillstrom.csv", where: Where | None = None) -> pd.DataFrame:
    """Type and validate the raw Hillstrom columns (see the module docstring for encodings).

    ``where`` maps a row to its file line for messages (default ``source (row N)``).
    Counts (``recency``) are whole numbers >= 0, money (``history``, ``spend``) finite and >= 0.
    """
    require_columns(raw, RAW_COLUMNS, source)
    if len(raw) == 0:
        raise InputError(source, None, "holds no customers", "use the full hillstrom.csv")
    raw = raw.reset_index(drop=True)
    where = where or Where(source)
    out = pd.DataFrame({"customer_id": np.arange(len(raw), dtype=np.int64)})
    out["recency"] = _numeric(raw, "recency", where, integer=True, minimum=0, what="month count").astype(np.int64)
    labels = raw["history_segment"].astype(str)
    codes = {lab: SEGMENT.match(lab) for lab in pd.unique(labels)}
    seg = labels.map({lab: int(m.group(1)) if m else np.nan for lab, m in codes.items()})
    bad = (seg.isna() | ~seg.between(1, 7)).to_numpy()
    if bad.any():
        row = _first(bad)
        raise InputError(where(row), "history_segment", f"has an unknown label {raw['history_segment'].iloc[row]!r}",
                         "labels look like '1) $0 - $100' ... '7) $1,000 +'")
    out["history_segment"] = seg.astype(np.int8)
    out["history"] = _numeric(raw, "history", where, minimum=0, what="dollar amount").astype(np.float64)
    for col in ("mens", "womens", "newbie"):
        out[col] = _binary(raw, col, where)
    out["zip_code"] = _categorical(raw, "zip_code", where, ZIP_CODES)
    out["channel"] = _categorical(raw, "channel", where, CHANNELS)
    treatment = raw["segment"].map(TREATMENTS)
    if treatment.isna().any():
        row = _first(treatment.isna())
        raise InputError(where(row), "segment", f"has an unknown arm {raw['segment'].iloc[row]!r}",
                         f"arms must be one of {list(TREATMENTS)}")
    arms = sorted(raw["segment"].unique())
    if len(arms) < 2:
        raise InputError(source, "segment", f"has a single arm {arms}",
                         "use the full experiment; an effect needs treated and control customers")
    out["treatment"] = treatment.astype(np.int8)
    for col in ("visit", "conversion"):
        out[col] = _binary(raw, col, where)
    out["spend"] = _numeric(raw, "spend", where, minimum=0, what="dollar amount").astype(np.float64)
    return out


def _binary(raw: pd.DataFrame, col: str, where: Where) -> pd.Series:
    values = _numeric(raw, col, where, integer=True, what="0/1 flag")
    if not values.isin([0, 1]).all():
        row = _first(~values.isin([0, 1]))
        raise InputError(where(row), col, f"has a non-binary value {raw[col].iloc[row]!r}", "use 0 or 1")
    return values.astype(np.int8)


def stratified_split(df: pd.DataFrame, test_size: float, seed: int) -> pd.Series:
    """``train`` / ``test`` labels stratified by treatment x conversion (seeded)."""
    strata = df["treatment"].astype(int) * 2 + df["conversion"].astype(int)
    _, test_idx = train_test_split(np.arange(len(df)), test_size=test_size, random_state=seed, stratify=strata)
    split = np.full(len(df), "train", dtype=object)
    split[test_idx] = "test"
    return pd.Series(split, index=df.index, name="split")


def read_hillstrom(path: str | Path, test_size: float, seed: int) -> pd.DataFrame:
    """Read, encode and split the raw CSV (the canonical ``hillstrom.parquet`` table)."""
    raw, where = read_delimited(path, ",", RAW_COLUMNS)
    raw = raw.mask(raw == "")
    df = encode(raw, str(path), where)
    df["split"] = stratified_split(df, test_size, seed)
    return df


def design_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric pre-treatment covariates, categoricals one-hot with the first level dropped.

    Dropping ``zip_code=Urban`` and ``channel=Phone`` keeps the matrix full rank next to an
    intercept. Treatment and outcomes are never included.

    Examples
    --------
    >>> raw = pd.DataFrame({"recency": [1], "history_segment": [3], "history": [250.0], "mens": [1],
    ...                     "womens": [0], "newbie": [1], "zip_code": pd.Categorical(["Rural"], ZIP_CODES),
    ...                     "channel": pd.Categorical(["Web"], CHANNELS)})
    >>> design_matrix(raw).columns.tolist()[-4:]
    ['zip_code_Surburban', 'zip_code_Rural', 'channel_Web', 'channel_Multichannel']
    """
    require_columns(df, COVARIATES, "hillstrom table")
    base = df[["recency", "history_segment", "history", "mens", "womens", "newbie"]].astype(np.float64)
    zips = pd.get_dummies(pd.Categorical(df["zip_code"], categories=ZIP_CODES), prefix="zip_code", dtype=np.float64)
    chans = pd.get_dummies(pd.Categorical(df["channel"], categories=CHANNELS), prefix="channel", dtype=np.float64)
    zips.index = chans.index = df.index
    return pd.concat([base, zips.iloc[:, 1:], chans.iloc[:, 1:]], axis=1)


def encoding_table() -> pd.DataFrame:
    """The categorical encodings as a table (column, raw value, code)."""
    rows = [("treatment (segment)", k, v) for k, v in TREATMENTS.items()]
    labels = ["$0 - $100", "$100 - $200", "$200 - $350", "$350 - $500", "$500 - $750", "$750 - $1,000", "$1,000 +"]
    rows += [("history_segment", f"{i}) {lab}", i) for i, lab in enumerate(labels, start=1)]
    rows += [("zip_code", z, f"category {i}") for i, z in enumerate(ZIP_CODES)]
    rows += [("channel", c, f"category {i}") for i, c in enumerate(CHANNELS)]
    return pd.DataFrame(rows, columns=["column", "raw_value", "encoded"]).astype(str)


def text_population(df: pd.DataFrame, cfg: DictConfig) -> np.ndarray:
    """Sorted ids of the customers the text variants embed: a seeded draw of ``model.text.max_customers``.

    MiniLM is the one costly step on Hillstrom, so only the text representations (the
    prediction table and fine-tuning of :mod:`lib.train.text`, the ``hillstrom__text_*``
    exports) run on this subsample; every other stage uses all customers of ``df``. The
    draw is the one of ``df.sample(n, random_state=cfg.seed)`` on the table in customer order,
    so a given table, cap and seed always give the same ids. ``null`` = every customer.

    Examples
    --------
    >>> from omegaconf import OmegaConf
    >>> df = pd.DataFrame({"customer_id": np.arange(10, 20)})
    >>> text_population(df, OmegaConf.create({"seed": 0, "model": {"text": {"max_customers": 3}}}))
    array([12, 14, 18])
    >>> len(text_population(df, OmegaConf.create({"seed": 0, "model": {"text": {"max_customers": None}}})))
    10
    """
    ids = np.sort(df["customer_id"].to_numpy(np.int64))
    cap = cfg.model.text.max_customers
    if cap is None or len(ids) <= int(cap):
        return ids
    pick = np.random.RandomState(int(cfg.seed)).choice(len(ids), int(cap), replace=False)
    return np.sort(ids[pick])


def load_prepared(cfg: DictConfig) -> pd.DataFrame:
    """The ``hillstrom.parquet`` table written by notebook 01."""
    path = Path(cfg.paths.processed) / "hillstrom" / "hillstrom.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}: run `python -m lib.runner 01_prepare_data "
                                f"--preset {cfg.preset_name}` first (paths.processed = {cfg.paths.processed})")
    df = pd.read_parquet(path)
    require_columns(df, ("customer_id", *COVARIATES, "treatment", *OUTCOMES, "split"), str(path))
    return df
