"""Process hygiene for local sweeps: share the cores, and leave nothing running when stopped.

Each run starts a Jupyter kernel (and notebook 02 a training subprocess) below the sweep
process or one of its pool workers. A sweep stopped with Ctrl-C, ``kill`` (SIGTERM) or even
SIGKILL must not leave those behind, burning the cores of the next attempt:

* the sweep process turns SIGTERM into ``KeyboardInterrupt`` and, on the way out, kills
  every process below it (:func:`kill_descendants`);
* pool workers ask Linux to send them SIGTERM when their parent dies (``PR_SET_PDEATHSIG``)
  and answer SIGTERM by killing their own descendants first (:func:`init_worker`).

Unfinished runs leave no ``status.json`` and are redone by the next invocation.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import Any, Iterator

import psutil

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PR_SET_PDEATHSIG = 1


def threads_per_worker(jobs: int) -> int:
    """Cores per run when ``jobs`` runs share this machine (at least one).

    >>> threads_per_worker(10 ** 6)
    1
    """
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def kill_descendants(timeout: float = 5.0) -> None:
    """SIGTERM every process below this one, then SIGKILL what is still alive after ``timeout`` s."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _worker_sigterm(signum: int, frame: Any) -> None:
    kill_descendants(timeout=2.0)
    os._exit(128 + signum)


def init_worker(threads: int) -> None:
    """Pool-worker initializer: cap BLAS / torch threads (kernels inherit it) and die with the parent."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, str(threads))
    signal.signal(signal.SIGTERM, _worker_sigterm)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def stop_cleanly() -> Iterator[None]:
    """Inside: SIGTERM acts as Ctrl-C; leaving with an exception kills every descendant process."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if main:
        signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    except BaseException:
        kill_descendants()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
