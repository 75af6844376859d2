"""``python -m lib.bench [--quick]``: training throughput and causal fit-time benchmarks.

Both print ratios against a baseline measured in the same run (a plain PyTorch loop for
training; the smallest n for the EconML fit times), never absolute pass/fail numbers.
"""
from __future__ import annotations

import sys

from lib.bench import causal_bench, train_bench


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print("## training throughput (Lightning vs a plain PyTorch loop)")
    train_bench.main([])
    print("## causal estimator fit time")
    causal_bench.main(argv)


if __name__ == "__main__":
    main()
