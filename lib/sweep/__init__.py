"""Papermill sweeps: one YAML file, many notebook runs, each in a folder named by its hash.

Run (or resume) a sweep from the shell or Python::

    python -m lib.sweep ablations_smoke --preset smoke --jobs 2     # = make sweep SWEEP=ablations_smoke
    python -m lib.sweep ablation_sample_size --preset paper --list  # planned runs and their status

    from lib.sweep import run_sweep, collect
    run_sweep("ablations_smoke", preset="smoke", jobs=2)
    collect("ablations_smoke", "smoke")                              # DataFrame: params + metrics

The format of ``conf/sweep/<name>.yaml`` is described in :mod:`lib.sweep.spec`. Runs land
in ``results/<preset>/sweeps/<name>/<hash>/<notebook>/`` (executed notebook, config,
manifest, artefacts, ``metrics.json``) with ``<hash>/status.json`` written when the run
ends; ``plan.json`` lists the runs of the latest invocation.

Resuming: a run whose ``status.json`` says ``ok`` is skipped; failed runs and runs that
never finished (Ctrl-C, kill, lost node) are redone when the command is repeated. The
hash covers the resolved config, the code version and the data checksums, so editing a
knob or committing new code starts fresh runs rather than reusing stale ones
(``--code-version`` pins the version when a commit is known not to matter).

Clusters. SLURM through submitit::

    python -m lib.sweep ablation_representation --preset paper --launcher submitit

submits the unfinished runs as one job array with ``submitit.AutoExecutor``; the sweep
file's ``launcher:`` block is passed to ``update_parameters`` (``timeout_min``,
``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``...; ``cluster: local`` forces
submitit's local executor). Each array task calls :func:`lib.sweep.engine.execute_run`, so
status files, resume and :func:`collect` behave as locally. On Ray every run is one task
calling the same function, sized by ``cpus_per_task`` / ``gpus_per_node``::

    python -m lib.sweep ablation_model_size --preset paper --launcher ray --ray-address auto

(``--ray-address`` or the sweep file's ``launcher.ray.address``; without either, a local
Ray cluster is started for the sweep). On both, the results folder must be on storage
shared by the workers.
"""
from lib.sweep.collect import collect, sweep_root
from lib.sweep.engine import SweepResult, execute_run, run_status, run_sweep
from lib.sweep.spec import Run, SweepSpec, expand, load_sweep, points

__all__ = ["collect", "sweep_root", "SweepResult", "execute_run", "run_status", "run_sweep", "Run", "SweepSpec",
           "expand", "load_sweep", "points"]
