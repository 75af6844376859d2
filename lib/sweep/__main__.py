"""``python -m lib.sweep <name> --preset P --jobs N``: run (or resume) a sweep."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lib.sweep.engine import error_line, run_sweep
from lib.sweep.spec import load_sweep


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.sweep",
                                     description="Run a sweep of conf/sweep/<name>.yaml; rerun to resume.")
    parser.add_argument("sweep", help="name in conf/sweep/ or path to a sweep YAML file")
    parser.add_argument("--preset", default=None, help="base preset (default: the sweep file's preset)")
    parser.add_argument("--jobs", type=int, default=1, help="runs executed at once")
    parser.add_argument("--root", default=None, help="folder of the run folders "
                                                     "(default results/<preset>/sweeps/<name>)")
    parser.add_argument("--launcher", choices=("local", "submitit", "ray"), default="local",
                        help="local worker processes, a SLURM job array through submitit, or Ray tasks")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to join with --launcher ray (default: the sweep file's "
                             "launcher.ray.address, else $RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--code-version", default=None,
                        help="pin the code version in the run hashes (default: git HEAD + diff hash)")
    parser.add_argument("--list", action="store_true", help="print the planned runs and their status, run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    spec = load_sweep(args.sweep)
    if args.list:
        from lib.sweep.engine import run_status
        from lib.sweep.spec import expand
        for run in expand(spec, args.preset, args.root, args.code_version):
            print(f"{run.run_dir.name}  {run_status(run):8s} {run.params}")
        return 0
    result = run_sweep(spec, preset=args.preset, jobs=args.jobs, root=args.root, code_version=args.code_version,
                       launcher=args.launcher, progress=not args.no_progress, ray_address=args.ray_address)
    print(f"[sweep] {spec.name}: {len(result.runs)} runs, {result.done} done, {result.failed} failed, "
          f"{result.skipped} skipped (already ok) -> {result.root}")
    for digest, record in result.failures.items():
        print(f"[sweep] FAILED {digest[:16]} {record['params']} in {record.get('failed_notebook')}: "
              f"{error_line(record)}\n        traceback: {result.root / digest[:16]}"
              "/status.json")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
