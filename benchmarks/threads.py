"""Pin the BLAS / OpenMP thread count; import this module before anything imports NumPy.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, when NumPy first loads, so the CLI calls
``pin_env(requested_threads(argv))`` before its other imports. threadpoolctl, when installed,
then enforces the same count at run time (``limit_blas``), also for a BLAS that loads later
(SciPy's). This module imports nothing that loads NumPy.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

DEFAULT_THREADS = 2
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def requested_threads(argv: Sequence[str]) -> int:
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (the benchmark's own options,
    i.e. before ``--train-args``), or the default. The CLI validates the value later."""
    argv = list(argv)
    if "--train-args" in argv:
        argv = argv[:argv.index("--train-args")]
    value = None
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.partition("=")[2]
    try:
        return int(value) if value is not None else DEFAULT_THREADS
    except ValueError:
        return DEFAULT_THREADS


def pin_env(threads: int) -> bool:
    """Set the thread variables for the BLAS that NumPy is about to load. Does nothing (and
    returns False) once NumPy is loaded, where the variables no longer matter, so that
    importing the CLI from a test leaves the test process's environment alone."""
    if threads < 1 or "numpy" in sys.modules:
        return False
    for var in ENV_VARS:
        os.environ[var] = str(threads)
    return True


def limit_blas(threads: int) -> Optional[object]:
    """A threadpoolctl limiter holding every loaded BLAS at ``threads`` (call
    ``.restore_original_limits()`` at the end), or None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")
