"""The local runner's worker processes: a pool with one sandbox slot per worker, and signals.

Each worker gets a slot (its sandbox uid when run as root) and a scratch gradebook dir, tears its
sandboxes down on SIGTERM, and dies with the run. The main process turns SIGINT/SIGTERM into
`Interrupted`, but never in the middle of writing a submission into the course (`Signals`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from steps.errors import Interrupted

from .forkserver_preload import die_with_parent

__all__ = ["make_pool", "stop_pool", "Signals", "worker_slot", "worker_scratch"]

_slot: int = 0
_scratch: Path | None = None  # the worker's scratch gradebook dir: one path, so one engine (steps.gradebook)
_stopping = False  # the worker got SIGTERM: it tears its sandbox down and exits


def _on_sigterm(signum: int, frame: Any) -> None:
    """Tear this worker's sandboxes down (kernels, cgroup, scratch tmpfs, temp dirs) and exit at
    once, quietly: the run prints one line, not one traceback per worker."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    from multiprocessing.util import _run_finalizers

    from steps.sandbox.base import teardown_active

    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    teardown_active()
    _run_finalizers()  # the worker's scratch gradebook and snapshot dirs
    os._exit(128 + signum)


def _init_worker(slots: Any) -> None:
    global _slot, _scratch
    import shutil
    from multiprocessing.util import Finalize

    from steps.sandbox.leftovers import temp_prefix

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    die_with_parent()  # SIGTERM when the forkserver (which ends with the run) dies: a killed run leaves no worker
    _slot = slots.get()
    _scratch = Path(tempfile.mkdtemp(prefix=temp_prefix("worker")))
    Finalize(None, shutil.rmtree, args=(_scratch,), kwargs={"ignore_errors": True}, exitpriority=10)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")


def worker_slot() -> int:
    """This worker's sandbox slot (0 outside a worker)."""
    return _slot


def worker_scratch() -> Path:
    """This worker's scratch gradebook dir: one path, so one engine for all its submissions."""
    assert _scratch is not None, "runs in a worker started by make_pool"
    return _scratch


def make_pool(jobs: int) -> WorkerPool:
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        [
            "pipelines.forkserver_preload",
            "pipelines.chain",
            "steps.restore",
            "steps.execute",
            "steps.score",
            "steps.feedback",
            "nbgrader.preprocessors",
            "papermill",
            "nbclient",
        ]
    )
    forkserver.ensure_running()  # from this thread, not the warming thread: the workers' parent must outlive it
    slots = ctx.Queue()
    for i in range(jobs):
        slots.put(i)
    return WorkerPool(slots, max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots,))


class WorkerPool(ProcessPoolExecutor):
    """The workers, with the queue their slots come from (closed with the pool: close_pool)."""

    def __init__(self, slots: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slots = slots


def close_pool(pool: WorkerPool, manager: Any = None, timeout: float = 5.0) -> None:
    """Close the pool's queues now, in this thread: its manager thread (which closes the task
    queue) and the slot queue's feeder thread are joined before the interpreter exits.

    A multiprocessing queue's semaphores are unlinked when the last reference goes; left to
    interpreter shutdown, that can happen in a daemon feeder thread that is stopped between the
    unlink and telling multiprocessing's resource tracker, which then prints "leaked semaphore"
    warnings on the teacher's terminal after a Ctrl-C."""
    if manager is not None:
        manager.join(timeout)
    pool.slots.close()
    pool.slots.join_thread()


def stop_pool(pool: WorkerPool, grace: float = 3.0) -> None:
    """SIGTERM every worker (each tears its sandbox down), SIGKILL what is left after `grace` s.

    The pool is shut down first: that takes the pool's lock, so no worker is half-started by the
    warming thread while we look, and none starts after. Every worker is joined before returning, so
    none is still unpickling the slot queue when this process exits and frees it."""
    # The dict itself, even while it is empty: a worker the warming thread starts before shutdown
    # takes the lock is added to it (`or {}` would swap an empty one for a copy that stays empty,
    # and that worker would not be joined). shutdown then drops the attribute.
    processes = getattr(pool, "_processes", None)
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown drops it; joined in close_pool
    pool.shutdown(wait=False, cancel_futures=True)
    procs = list((processes or {}).values())
    for p in procs:
        with contextlib.suppress(OSError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGKILL)
            p.join(1)
    close_pool(pool, manager)


class Signals:
    """SIGINT/SIGTERM raise Interrupted in the main thread, but never in the middle of writing one
    submission into the course: that finishes first, so a stop loses nothing that was merged."""

    def __init__(self) -> None:
        self.critical = False
        self.pending: int | None = None
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.critical:
            self.pending = signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> "Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
        if self.pending is not None:
            raise Interrupted(self.pending)
