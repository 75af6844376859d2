"""Train a next-item model from the command line (the same command on 1 CPU, N GPUs or N nodes).

Examples
--------
Single process (CPU or one GPU)::

    python -m lib.train --preset smoke -o model.arch=sasrec -o trainer.dataset=beauty --out metrics.json

Two CPU processes (Lightning spawns the second one; gloo backend)::

    python -m lib.train --preset smoke -o trainer.strategy=ddp -o trainer.accelerator=cpu -o trainer.devices=2

One node, 4 GPUs under torchrun (Lightning reads the torchrun environment)::

    torchrun --nproc_per_node=4 -m lib.train --preset paper -o trainer.strategy=ddp -o trainer.devices=4 \
        -o trainer.precision=bf16-mixed

SLURM, 2 nodes x 4 GPUs (``#SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4``)::

    srun python -m lib.train --preset paper -o trainer.strategy=ddp -o trainer.devices=4 -o trainer.num_nodes=2

(``sbatch lib/train/slurm_train.sbatch [-o ...]`` is that job, documented). Base-size encoders
that do not fit one GPU with DDP: ``-o trainer.strategy=fsdp`` (``trainer.fsdp`` block).

Rerunning a command resumes from ``{paths.checkpoints}/{run_name}/last.ckpt`` or ``last-step.ckpt``,
whichever is newer. The metrics
(``test/hr@10``, ``test/ndcg@10``, ...) are written atomically to ``--out`` by rank 0.
"""
from __future__ import annotations

import argparse
import sys

from lib.config import compose
from lib.io import write_json
from lib.train.run import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="smoke", help="conf/preset name (smoke | paper)")
    parser.add_argument("-o", "--override", action="append", default=[], help="Hydra override key=value (repeatable)")
    parser.add_argument("--out", default=None, help="also write the metrics JSON here (atomically)")
    args = parser.parse_args(argv)
    cfg = compose(args.preset, args.override)
    metrics, objects = train(cfg)
    if args.out and objects["trainer"].is_global_zero:
        write_json(args.out, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
