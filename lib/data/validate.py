"""Checks shared by the raw-data readers: complete files, exact file lines, plain integer ids.

Every reader reports a problem at ``<file>:<line>`` (1-based line of that file, the header
being line 1), so the user can open the file at the offending line. :class:`Where` maps a
row of a table built from one or more files back to that place.
"""
from __future__ import annotations

import csv
import difflib
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lib.errors import InputError

#: plain ASCII decimal digits: no sign, no '_' separator, no other scripts' digits
PLAIN_INT = re.compile(r"[0-9]+")
RESTORE = "restore the complete file (its sha256 is listed in conf/data)"


def require_columns(df: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise :class:`InputError` for the first missing column, suggesting the closest present name."""
    present = [str(c) for c in df.columns]
    for col in columns:
        if col not in present:
            close = difflib.get_close_matches(col, present, n=1, cutoff=0.6)
            hint = f"rename '{close[0]}' to '{col}'" if close else f"add a '{col}' column (present: {present})"
            raise InputError(source, col, "is missing" + (f" (did you mean '{close[0]}'?)" if close else ""), hint)


class Where:
    """``row -> "file:line"`` for a table whose rows came from known file lines.

    Examples
    --------
    >>> w = Where.from_files([("a.tsv", 3), ("b.tsv", 2)], header_lines=1)
    >>> w(0), w(2), w(3)
    ('a.tsv:2', 'a.tsv:4', 'b.tsv:2')
    >>> Where("table")(4)
    'table (row 4)'
    """

    def __init__(self, source: str, files: Sequence[str] | None = None, lines: Sequence[int] | None = None):
        self.source = source
        self.files = None if files is None else np.asarray(files, dtype=object)
        self.lines = None if lines is None else np.asarray(lines, dtype=np.int64)

    @classmethod
    def from_files(cls, counts: Sequence[tuple[str, int]], header_lines: int = 1) -> "Where":
        """Rows of files concatenated in order, each with ``header_lines`` lines before its first row."""
        files = [name for name, n in counts for _ in range(n)]
        lines = [k + 1 + header_lines for _, n in counts for k in range(n)]
        return cls(",".join(name for name, _ in counts), files, lines)

    def __call__(self, row: int) -> str:
        if self.lines is None:
            return f"{self.source} (row {row})"
        return f"{self.files[row]}:{int(self.lines[row])}"


def read_text(path: str | Path) -> str:
    """The file's text; :class:`InputError` naming it when it is empty or not UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise InputError(str(path), None, "is empty", RESTORE + "; check data.files points at the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}", None, f"is not UTF-8 text (byte {exc.start})", RESTORE) from None


def require_final_newline(path: str | Path, text: str) -> None:
    """Line-oriented formats (one record per line, no field count) must end with a newline.

    Without one, the last record may have lost its tail (e.g. an item id that lost digits).
    """
    if not text.endswith("\n"):
        line = text.count("\n") + 1
        raise InputError(f"{path}:{line}", None, "is the last line and has no newline: the file looks cut off "
                         "mid-record", RESTORE + "; if the file is complete, add a newline at its end")


def read_delimited(path: str | Path, sep: str, required: Sequence[str]) -> tuple[pd.DataFrame, Where]:
    """A delimited text file as strings, with a :class:`Where` for its rows.

    Every record must have as many fields as the header (a short last record without a final
    newline is a cut file); blank lines are damage too. Quoting follows the csv module.
    """
    path = Path(path)
    text = read_text(path)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = list(csv.reader(lines, delimiter=sep))
    header = rows[0]
    require_columns(pd.DataFrame(columns=header), required, str(path))
    n = len(header)
    for k, fields in enumerate(rows[1:], start=2):
        if len(fields) != n:
            last = k == len(rows) and not text.endswith("\n")
            what = (f"has {len(fields)} fields, the header has {n}"
                    + ("; it is the last line and has no newline, so the file looks cut off" if last else ""))
            raise InputError(f"{path}:{k}", None, what, RESTORE if last else
                             f"every line needs {n} fields separated by {sep!r} ({header})")
    if len(rows) == 1:
        raise InputError(str(path), None, "has a header but no records", RESTORE)
    raw = pd.DataFrame(rows[1:], columns=header, dtype=str)
    return raw, Where(str(path), [str(path)] * (len(rows) - 1), range(2, len(rows) + 1))


def not_plain_int(series: pd.Series) -> np.ndarray:
    """Mask of values that are not plain non-negative integers (ASCII digits, or integer numbers).

    Rejects ``'1_0'``, ``'+7'``, ``'1.0'``, ``'١٢'``, floats and booleans.

    >>> not_plain_int(pd.Series(["12", "1_0", "+7", "١٢", 3, True, 2.0], dtype=object)).tolist()
    [False, True, True, True, False, True, True]
    """
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return (series < 0).to_numpy()
    values = series.to_numpy(dtype=object)
    if all(isinstance(v, str) for v in values):
        return ~series.astype(str).str.fullmatch(PLAIN_INT.pattern).to_numpy(dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    for k, v in enumerate(values):
        if isinstance(v, str):
            out[k] = PLAIN_INT.fullmatch(v) is None
        else:
            out[k] = isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0
    return out
