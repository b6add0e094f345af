"""Imported first by the local runner's forkserver (its preload list): the forkserver ends when the
run that started it ends, even by SIGKILL, instead of living on and forking workers for nobody.

Its workers do the same towards the forkserver (pipelines.pool calls die_with_parent), so a killed
run takes the whole tree with it; the next run removes the mounts and cgroups it left behind.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux); exit at once if
    the parent is already gone."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the forkserver still ends when its pipe closes
        return
    if os.getppid() != parent:
        os._exit(128 + sig)


if sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules:  # only in the forkserver itself
    die_with_parent()
    # A worker's first kernel start looks up the python3 kernelspec, for which jupyter_client's
    # KernelSpecManager imports IPython (424 modules, ~0.4 CPU-s): here once, not once per worker.
    importlib.import_module("IPython.paths")
