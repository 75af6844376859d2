"""``python -m lib.report --preset P``: render paper/<P>/ from saved results (no training)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lib.config import compose
from lib.report.render import render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.report", description=__doc__.split(":")[1].strip())
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("-o", "--override", action="append", default=[], help="Hydra override, repeatable")
    parser.add_argument("--results", default=None, help="results folder (default results/<preset>)")
    parser.add_argument("--out", default=None, help="output folder (default paper/<preset>)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when metrics.json lacks a key family of the scheme")
    args = parser.parse_args(argv)
    try:
        done = render(compose(args.preset, args.override), args.results, args.out)
    except FileNotFoundError as exc:  # no finished run and no earlier render
        print(f"[report] nothing to render: {exc}", file=sys.stderr)
        return 1
    if not done.tables and not done.figures:
        print(f"[report] nothing to render: the runs under {args.results or 'results/' + args.preset} registered "
              "no tables or figures; run the notebooks first (make reproduce)", file=sys.stderr)
        return 1
    print(f"[report] {len(done.tables)} tables, {len(done.figures)} figures, {len(done.metrics)} metrics "
          f"-> {done.out_dir} (RESULTS.md)")
    if done.missing_families:
        print(f"[report] metrics.json lacks key families: {', '.join(done.missing_families)}")
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
