"""``python -m lib.bench [--quick]``: training throughput and causal fit-time benchmarks."""
from __future__ import annotations

import sys

from lib.bench import causal_bench


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        from lib.bench import train_bench
    except ImportError as err:   # the training benchmark module is optional in a partial checkout
        print(f"[bench] training benchmark unavailable ({err}); running the causal benchmark only")
    else:
        print("## training throughput")
        train_bench.main()
    print("## causal estimator fit time")
    causal_bench.main(argv)


if __name__ == "__main__":
    main()
