"""``python -m lib.bench [--quick] [--only SECTION ...]``: the benchmarks of ``make bench``.

Sections: ``train`` (Lightning vs a plain PyTorch loop), ``causal`` (EconML fit times against
the smallest n), ``causal_scale`` (fit time, peak memory and log-log slope from 10k to 1M
units, :mod:`lib.bench.causal_scale`), ``embed_stream`` (users/s and peak memory of exporting
1M user vectors, :mod:`lib.bench.embed_stream`). Each prints ratios or rates measured in the
same run, never pass/fail numbers. The two scale sections take their knobs from
``conf/bench/*.yaml``; ``--causal-scale-args`` / ``--embed-stream-args`` pass flags to them, e.g.
``--causal-scale-args="--estimators linear_dml --dims 64"``.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from lib.bench import causal_bench, causal_scale, embed_stream, train_bench

SECTIONS = ("train", "causal", "causal_scale", "embed_stream")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short causal fit-time section")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--causal-scale-args", default="", help="flags for lib.bench.causal_scale")
    parser.add_argument("--embed-stream-args", default="", help="flags for lib.bench.embed_stream")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if "train" in args.only:
        print("## training throughput (Lightning vs a plain PyTorch loop)")
        train_bench.main([])
    if "causal" in args.only:
        print("## causal estimator fit time")
        causal_bench.main(["--quick"] if args.quick else [])
    if "causal_scale" in args.only:
        print("## causal fitting at scale (conf/bench/causal_scale.yaml)")
        causal_scale.main(shlex.split(args.causal_scale_args))
    if "embed_stream" in args.only:
        print("## embedding export at scale (conf/bench/embed_stream.yaml)")
        embed_stream.main(shlex.split(args.embed_stream_args))


if __name__ == "__main__":
    main()
