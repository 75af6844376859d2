"""Errors that tell the user what is wrong, where, and how to fix it."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input data: names the source (file), the column / row, and the fix.

    Examples
    --------
    >>> raise InputError("hillstrom.csv", "segment", "has a single arm ('No E-Mail')",  # doctest: +IGNORE_EXCEPTION_DETAIL
    ...                  "use the full file; an effect needs treated and control units")
    Traceback (most recent call last):
    ...
    lib.errors.InputError: hillstrom.csv: column 'segment' has a single arm ('No E-Mail'). Fix: use the full file; an effect needs treated and control units
    """

    def __init__(self, source: str, column: str | None, problem: str, fix: str):
        where = f"column '{column}' " if column else ""
        super().__init__(f"{source}: {where}{problem}. Fix: {fix}")
        self.source, self.column, self.problem, self.fix = source, column, problem, fix
