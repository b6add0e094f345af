"""What every sandbox shares: the limits, the bookkeeping, teardown and the result record.

A backend implements one thing. Kernel sandboxes (bubblewrap, podman, pod, none) implement a
`KernelLauncher`: its `kernel_command`, how to start a Jupyter kernel contained. Papermill, the
notebook and the grading state stay in this (trusted) process and talk to the kernel over Unix
sockets, so student code cannot rewrite the notebook being recorded. What differs otherwise is
declared: the uid the kernel runs as (`kernel_uid`: it then owns the scratch dir, which sits on
a disk quota), and what a backend removes besides the kernels (`kill_contained`, `teardown`).
Whole-step sandboxes (argo-pod) run the execute step itself in a container and override
`execute_submission`.

A sandbox is a dataclass whose fields are its options (`get_sandbox(name, **options)`):
`zygote` for every backend, `image` for the container ones.
"""

from __future__ import annotations

import codecs
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Sequence

import nbformat
from nbclient.exceptions import CellTimeoutError

from ..errors import SandboxError
from ..records import FAILED, NotebookOutcome, StepRecord
from ..workspace import RECORD
from .leftovers import temp_prefix
from .quota import grow_quota, mount_quota, unmount_quota
from .zygote import SOURCE as ZYGOTE_SOURCE
from .zygote import ForkedKernel, Zygote, ipykernel_arguments

__all__ = [
    "Limits",
    "Sandbox",
    "KernelSandbox",
    "KernelLauncher",
    "minimal_env",
    "teardown_active",
    "discard_spare",
    "discard_spares",
    "default_kernel_python",
]

log = logging.getLogger("gradeflow.execute")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission. Defaults suit an intro-course notebook."""

    cell_timeout: int | None = None  # seconds per cell; None = nbgrader's Execute.timeout (30 s)
    wall_time: int = 600  # seconds for all of one submission's notebooks
    memory_mb: int = 1024  # memory of the kernel and its children
    cpu_time: int = 300  # CPU seconds per process
    pids: int = 128  # processes and threads
    disk_mb: int = 256  # largest file the kernel may write (and /tmp's size)
    output_kb: int = 8192  # notebook output kept per notebook; the rest is dropped with a note
    nofile: int = 256  # open files per process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def minimal_env(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's whole environment: nothing of the teacher's (no tokens, no keys)."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "NBGRADER_EXECUTION": "autograde",  # nbgrader sets this while autograding; notebooks may test it
    }
    env.update(extra or {})
    return env


# The submissions this process is executing: a SIGTERM'd worker tears them down (kernels, cgroup,
# scratch tmpfs, temp dir) before it exits, instead of leaving them for the next run.
_ACTIVE: dict[int, tuple["KernelLauncher", Path]] = {}


def teardown_active() -> None:
    """Kill and remove every sandbox this process is running or holds started ahead (spares);
    safe to call from a signal handler that exits right after."""
    _SPARES.clear()  # torn down below, with the running ones: not again by the exit finalizer
    for launcher, scratch in list(_ACTIVE.values()):
        try:
            launcher.close()
        except Exception:  # noqa: BLE001 - best effort on the way out; the next run removes the rest
            pass
        shutil.rmtree(scratch, ignore_errors=True)


# A sandbox started before its submission is known, per parallel slot of this process (the local
# runner's warm slot, `KernelSandbox.prestart`): (what it was started for, its launcher).
_SPARES: dict[int, tuple[tuple[Any, ...], "KernelLauncher"]] = {}
_spares_finalized = False


def _close(launcher: "KernelLauncher") -> dict[str, Any]:
    """Tear one sandbox down (kernels, cgroup, quota) and remove its scratch dir; its evidence."""
    _ACTIVE.pop(id(launcher), None)
    try:
        return launcher.close()
    finally:
        if launcher.zygote_log is not None and launcher.zygote_log is not launcher.logfh:
            launcher.zygote_log.close()
        shutil.rmtree(launcher.scratch, ignore_errors=True)


def discard_spare(slot: int) -> None:
    """Tear down this slot's spare sandbox, if it has one."""
    _, launcher = _SPARES.pop(slot, (None, None))
    if launcher is not None:
        _close(launcher)


def discard_spares() -> None:
    for slot in list(_SPARES):
        discard_spare(slot)


@functools.lru_cache(maxsize=8)
def default_kernel_python(kernel_name: str = "python3") -> str | None:
    """The interpreter jupyter_client will start for `kernel_name` (its kernelspec's argv[0], with
    `python` meaning this interpreter, as in KernelManager.format_kernel_cmd); None when that
    kernel is not an ipykernel the zygote can stand in for."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = list(KernelSpecManager().get_kernel_spec(kernel_name).argv)
    except NoSuchKernel:
        return None
    if ipykernel_arguments(argv) is None:
        return None
    if argv[0] in {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}:
        return sys.executable
    return argv[0]


def _log_tail(path: Path) -> str:
    """The sandbox's own last words (e.g. `bwrap: execvp ...: No such file`), for the headline."""
    try:
        lines = [
            ln.strip()
            for ln in path.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.startswith(("[execute]", "[nbclient]"))
        ]
    except OSError:
        return ""
    return f"; the sandbox said: {' | '.join(lines[-2:])[:300]}" if lines else ""


class KernelLauncher:
    """Starts kernels for one submission (slot `slot` of this process). The base launcher does
    not contain anything.

    Subclasses wrap the kernel command (`kernel_command`) and say which uid the kernel runs as
    (`kernel_uid`); backends that hold more than processes (a cgroup, containers) add their
    removal in `kill_contained` and `teardown`.
    """

    # The uid the kernel runs as when it is not this process's (only root can do that): it owns
    # the scratch dir, the connection files and the submission's files, and the scratch dir is
    # put on a tmpfs quota. None: the kernel runs as us and nothing changes hands.
    kernel_uid: int | None = None

    def __init__(self, work: Path, scratch: Path, limits: Limits, slot: int = 0) -> None:
        self.work = work
        self.scratch = scratch
        self.limits = limits
        self.slot = slot
        self.kernels: list[Any] = []
        self.logfh: Any = None  # execute.log, for the kernel's own stdout and stderr
        self.quota_mb: int | None = None  # the scratch dir's tmpfs quota, when it has one
        self.use_zygote = True  # fork kernels from a zygote (the sandbox's `zygote` option)
        self.ipc = scratch / "ipc"  # the kernels' sockets (a dir per notebook) and the zygote's
        self.ipc.mkdir(exist_ok=True)
        if self.kernel_uid is not None:
            self.quota_mb = mount_quota(scratch, limits.disk_mb)
            self.own([scratch, *scratch.rglob("*")])
        self.zygote: Zygote | None = None
        self.zygote_log: Any = (
            None  # where the zygote's (and forked kernels') stdout goes: execute.log, or a spare's own file
        )
        self._zygote_failed = False
        self._drained = 0  # how much of a spare's zygote log is already in execute.log
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def prepare_connection(self, connection_file: Path) -> None:
        """Make the connection file and socket dir usable by the kernel: it must read the key
        and create its sockets."""
        self.own([connection_file.parent, connection_file])

    def kernel_command(self, argv: list[str], as_pid_1: bool = False) -> list[str]:
        """The command that runs `argv` in this sandbox; `as_pid_1`: as the init of its PID namespace."""
        return argv

    def own(self, paths: Sequence[Path]) -> None:
        """Give `paths` (scratch dirs, the submission's files) to the uid the kernel runs as."""
        if self.kernel_uid is not None:
            for p in paths:
                os.lchown(p, self.kernel_uid, self.kernel_uid)

    def admit(self, work_src: Path) -> None:
        """Hand this (so far empty) sandbox its submission: the work dir's files, not the notebooks.

        The kernel gets the submission's files but not the notebooks: cells reach it one by one
        from papermill, so student code never reads the hidden tests ahead of them or rewrites
        the next notebook of the submission. The disk quota grows by the files' size first, as
        if they had been there when it was mounted."""
        size = sum(
            p.stat().st_size for p in work_src.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix != ".ipynb"
        )
        need = self.limits.disk_mb + size // 2**20 + 1
        if self.quota_mb is not None and need > self.quota_mb:
            self.quota_mb = grow_quota(self.scratch, need)
        shutil.copytree(work_src, self.work, ignore=shutil.ignore_patterns("*.ipynb"), dirs_exist_ok=True)
        self.own(list(self.work.rglob("*")))
        if self.zygote is not None:
            self.zygote.handed_over()

    def start_zygote(self, python: str) -> None:
        """Start this sandbox's zygote with interpreter `python`; it imports ipykernel while the
        grader does other work. A failure is logged and kernels start directly."""
        sock = self.ipc / "zygote.sock"
        try:
            self.zygote = Zygote(
                self.kernel_command([python, "-c", ZYGOTE_SOURCE, str(sock)], as_pid_1=True),
                self.kernel_env(),
                self.work,
                sock,
                self.zygote_log or self.logfh,
                python=python,
            )
        except (SandboxError, OSError) as e:
            self._zygote_unavailable(e)

    def _zygote_unavailable(self, e: BaseException) -> None:
        log.warning("kernel zygote unavailable (%s); starting kernels directly", e)
        line = f"[execute] kernel zygote unavailable ({e}); starting kernels directly\n"
        if self.logfh is not None:
            self.logfh.write(line)
        elif self.zygote_log is not None:  # a spare: its log reaches execute.log when it is handed a submission
            os.write(self.zygote_log.fileno(), line.encode())
        self._zygote_failed = True
        if self.zygote is not None:
            self.zygote.kill()

    def drain_log(self) -> None:
        """Copy what a spare sandbox's zygote and kernels printed since the last call into
        execute.log. pread: the zygote writes through the same file offset, which must not move."""
        if self.zygote_log is None or self.zygote_log is self.logfh or self.logfh is None:
            return
        fd = self.zygote_log.fileno()
        while (size := os.fstat(fd).st_size) > self._drained:
            data = os.pread(fd, min(size - self._drained, 1 << 20), self._drained)
            if not data:
                break
            self._drained += len(data)
            self.logfh.write(self._decoder.decode(data))
        self.logfh.flush()

    def fork_kernel(self, argv: list[str]) -> ForkedKernel | None:
        """Start the kernel `argv` by forking it from this submission's zygote; None: start it
        directly (not an ipykernel, another interpreter than the zygote's, zygote disabled, or
        it failed: logged, never fatal)."""
        args = ipykernel_arguments(argv)
        if args is None or self._zygote_failed or not self.use_zygote:
            return None
        if self.zygote is None:
            self.start_zygote(argv[0])
            if self.zygote is None:
                return None
        if self.zygote.python != argv[0]:
            return None  # a kernelspec of another Python: the zygote cannot become it
        try:
            return self.zygote.spawn(args)
        except (SandboxError, OSError) as e:
            self._zygote_unavailable(e)
            return None

    def kernel_env(self) -> dict[str, str]:
        return minimal_env(str(self.scratch / "home"))

    def kill_all(self) -> None:
        """Kill every process the submission started (used at the wall-time limit)."""
        self._kill_kernels()
        self.kill_contained()

    def _kill_kernels(self) -> None:
        if self.zygote is not None:
            self.zygote.kill()
        for km in self.kernels:
            pgid = getattr(getattr(km, "provisioner", None), "pgid", None)
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass

    def kill_contained(self) -> None:
        """Kill what the backend holds besides the kernels' process groups (a cgroup's
        processes, containers)."""

    def teardown(self) -> dict[str, Any]:
        """Remove what the backend holds besides the kernels, once they are killed; its evidence
        (e.g. how many leftover processes were killed). By default what `kill_contained` kills."""
        self.kill_contained()
        return {}

    def close(self) -> dict[str, Any]:
        """Tear down: kernels, the backend's own resources, the scratch quota; return evidence."""
        evidence = self.stop_kernels()
        self._kill_kernels()
        evidence.update(self.teardown())
        self.release_scratch(evidence)
        return evidence

    def stop_kernels(self) -> dict[str, Any]:
        """End the zygote (and so its sandbox) politely; say how the kernels were started."""
        if self.zygote is not None:
            self.zygote.stop()
        evidence: dict[str, Any] = {
            "kernels": len(self.kernels),
            "kernels_forked": self.zygote.forked if self.zygote else 0,
        }
        if self.zygote is not None and self.zygote.ready_s is not None:
            evidence["zygote_ready_s"] = self.zygote.ready_s  # how long the first kernel waited for it
        if self.zygote is not None and self.zygote.head_start_s is not None:
            evidence["zygote_head_start_s"] = self.zygote.head_start_s  # started this long before its submission came
        self.drain_log()
        return evidence

    def release_scratch(self, evidence: dict[str, Any]) -> None:
        """Unmount the scratch quota and give the scratch dir back to root, noting the quota."""
        if self.quota_mb is not None:
            evidence["disk_quota_mb"] = self.quota_mb
            unmount_quota(self.scratch)
        if os.geteuid() == 0:
            shutil.chown(self.scratch, 0, 0)


@dataclass(kw_only=True)  # options are given by name: get_sandbox(name, image=...)
class Sandbox:
    """A way to run student code. Subclasses register under `name` in steps.sandbox; their
    dataclass fields are their options (`get_sandbox(name, **options)`), read at the edges
    (the CLIs, the Jupyter extension) and passed down with the sandbox to every worker."""

    name: ClassVar[str] = ""
    guarantee: ClassVar[str] = ""
    contained: ClassVar[bool] = True  # False only for the loudly labelled no-sandbox mode

    zygote: bool = True  # fork kernels from a per-submission zygote (GRADEFLOW_ZYGOTE=0: start them directly)

    @classmethod
    def options(cls) -> list[str]:
        """The option names this backend takes."""
        return [f.name for f in fields(cls)]

    def unavailable(self) -> str | None:
        """Why this sandbox cannot run here, or None when it can."""
        return None

    def execute_submission(
        self,
        work_src: Path,
        notebooks: Sequence[str],
        out_dir: Path,
        limits: Limits,
        config: dict[str, Any],
        slot: int = 0,
    ) -> StepRecord:
        raise NotImplementedError


@dataclass(kw_only=True)
class KernelSandbox(Sandbox):
    """Sandboxes where only the kernel is contained: papermill runs here, in the trusted process."""

    launcher_class: ClassVar[type[KernelLauncher]] = KernelLauncher
    # probe the kernel before each test cell (steps/integrity.py); off only to measure its cost
    integrity: bool = True

    def make_launcher(self, work: Path, scratch: Path, limits: Limits, slot: int) -> KernelLauncher:
        return self.launcher_class(work, scratch, limits, slot)

    def start_sandbox(self, limits: Limits, slot: int, logfh: Any = None) -> KernelLauncher:
        """A new, empty sandbox for one submission: its scratch dir, its launcher (cgroup, disk
        quota, uid) and its zygote, starting. Nothing of any submission is in it until `admit`.
        `logfh`: where the zygote's output goes (execute.log); None: a file of its own."""
        scratch = Path(tempfile.mkdtemp(prefix=temp_prefix("execute")))
        try:
            os.chmod(scratch, 0o755)
            (scratch / "work").mkdir()
            (scratch / "home").mkdir()
            launcher = self.make_launcher(scratch / "work", scratch, limits, slot)
            launcher.use_zygote = self.zygote
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        _ACTIVE[id(launcher)] = (launcher, scratch)
        launcher.zygote_log = (
            logfh if logfh is not None else tempfile.TemporaryFile()
        )  # unnamed: nothing to leave behind
        python = default_kernel_python()
        if python and self.zygote:
            launcher.start_zygote(python)
        return launcher

    def prestart(self, limits: Limits, slot: int = 0) -> None:
        """Start the sandbox of this slot's next submission now, so that it does not wait for the
        zygote (the local runner calls this once a submission is executed). It stays empty until
        `execute_submission` hands it one submission, and is never used for another."""
        discard_spare(slot)
        launcher = self.start_sandbox(limits, slot)
        _SPARES[slot] = (self._spare_key(limits), launcher)
        global _spares_finalized
        if not _spares_finalized:  # a worker's spare goes with the worker, also on a normal exit
            from multiprocessing.util import Finalize

            Finalize(None, discard_spares, exitpriority=20)
            _spares_finalized = True

    def _spare_key(self, limits: Limits) -> tuple[Any, ...]:
        return (type(self), repr(sorted(vars(self).items())), limits)

    def _take_spare(self, limits: Limits, slot: int) -> KernelLauncher | None:
        key, launcher = _SPARES.pop(slot, (None, None))
        if launcher is not None and key != self._spare_key(limits):
            _close(launcher)
            return None
        return launcher

    def execute_submission(
        self,
        work_src: Path,
        notebooks: Sequence[str],
        out_dir: Path,
        limits: Limits,
        config: dict[str, Any],
        slot: int = 0,
    ) -> StepRecord:
        from ..kernel import nbgrader_execute_settings

        start = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        record = StepRecord("execute", out_dir.name, detail={"sandbox": self.name, "limits": limits.to_dict()})
        settings = nbgrader_execute_settings(config, limits.cell_timeout)
        logfile = out_dir / "execute.log"
        with open(logfile, "a", encoding="utf-8") as logfh:
            launcher = self._take_spare(limits, slot)
            record.detail["prestarted"] = launcher is not None
            if launcher is None:
                launcher = self.start_sandbox(limits, slot, logfh)
            launcher.logfh = logfh
            deadline = threading.Timer(limits.wall_time, launcher.kill_all)
            deadline.daemon = True
            deadline.start()
            try:
                launcher.admit(work_src)
                record.detail["sandbox_ready_s"] = round(time.monotonic() - start, 3)
                for name in notebooks:
                    outcome = self._run_notebook(
                        name,
                        work_src,
                        launcher.work,
                        launcher.scratch,
                        out_dir,
                        launcher,
                        settings,
                        limits,
                        logfh,
                        start,
                    )
                    record.notebooks.append(outcome)
            finally:
                deadline.cancel()
                record.detail["teardown"] = _close(launcher)
        record.seconds = round(time.monotonic() - start, 3)
        record.save(out_dir / RECORD.format(step="execute"))
        return record

    def _run_notebook(
        self,
        name: str,
        work_src: Path,
        work: Path,
        scratch: Path,
        out_dir: Path,
        launcher: KernelLauncher,
        settings: dict[str, Any],
        limits: Limits,
        logfh: Any,
        start: float,
    ) -> NotebookOutcome:
        from papermill.engines import papermill_engines
        from papermill.execute import prepare_notebook_metadata
        from papermill.iorw import load_notebook_node

        from ..integrity import IntegrityMonitor
        from ..kernel import SandboxKernelManager

        target = out_dir / f"{name}.ipynb"
        nb = prepare_notebook_metadata(
            load_notebook_node(str(work_src / f"{name}.ipynb")), str(work_src / f"{name}.ipynb"), str(target)
        )
        kernel_name = nb.metadata.get("kernelspec", {}).get("name", "python3")
        ipc = launcher.ipc / str(len(launcher.kernels))  # short: socket paths have a length limit
        ipc.mkdir()
        km = SandboxKernelManager(
            kernel_name=kernel_name,
            launcher=launcher,
            transport="ipc",
            ip=str(ipc / "k"),
            connection_file=str(ipc / "kernel.json"),
        )
        launcher.kernels.append(km)
        t0 = time.monotonic()
        logfh.write(f"[execute] {name}: starting kernel {kernel_name!r} in sandbox {self.name}\n")
        logfh.flush()
        outcome = NotebookOutcome(name)
        monitor = IntegrityMonitor(nb) if self.integrity else None
        # nbclient's own messages (timeouts, interrupts) belong in this submission's log
        handler = logging.StreamHandler(logfh)
        handler.setFormatter(logging.Formatter("[nbclient] %(message)s"))
        log.addHandler(handler)
        log.propagate = False
        try:
            papermill_engines.execute_notebook_with_engine(
                "gradeflow",
                nb,
                kernel_name=kernel_name,
                output_path=None,  # written once below: saving after every cell costs more than the cells
                progress_bar=False,
                km=km,
                resources={"metadata": {"path": str(work)}},
                max_output_bytes=limits.output_kb * 1024,
                shutdown_kernel="immediate",
                integrity=monitor,
                **settings,
            )
        except Exception as e:  # noqa: BLE001 - a dead kernel is the student's result, not our crash
            launcher.drain_log()
            if not any(c.get("execution_count") or c.get("outputs") for c in nb.cells if c.cell_type == "code"):
                # no cell ever ran: the sandbox could not start the kernel. That is our failure, not
                # the student's; the step fails (exit 75) and a retry may help.
                raise SandboxError(
                    f"the {self.name} sandbox could not start a kernel ({type(e).__name__}: "
                    f"{str(e).strip()[:200]}){_log_tail(out_dir / 'execute.log')}",
                    f"see {out_dir / 'execute.log'}; fix the sandbox or the limits, then run again",
                ) from e
            elapsed = time.monotonic() - start
            if isinstance(e, CellTimeoutError):
                why = (
                    "a cell timed out and the kernel did not go quiet after the interrupt (a loop that keeps "
                    "printing?); nbgrader stops on such a notebook too"
                )
            elif elapsed >= limits.wall_time - 1:
                why = f"the submission hit the wall-time limit of {limits.wall_time} s and was stopped"
            else:
                why = (
                    f"the kernel died ({type(e).__name__}: {str(e).strip()[:160]}); probably the memory "
                    f"({limits.memory_mb} MiB), process or CPU-time limit"
                )
            outcome.status, outcome.reason = FAILED, why
            nb.metadata.setdefault("gradeflow", {})["failed"] = why
            banner = nbformat.v4.new_markdown_cell(
                f"<div style='color:#b00'><b>gradeflow:</b> execution stopped: {why}. "
                "This notebook was not graded.</div>"
            )
            banner.metadata["tags"] = ["gradeflow-error"]
            if nb.get("nbformat_minor", 5) < 5:
                del banner["id"]
            nb.cells.insert(0, banner)
        finally:
            log.removeHandler(handler)
            log.propagate = True
        cells = [c for c in nb.cells if c.cell_type == "code"]
        outcome.detail = {
            "seconds": round(time.monotonic() - t0, 3),
            "code_cells": len(cells),
            "error_cells": sum(any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in cells),
            "timeouts": sum(any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", [])) for c in cells),
        }
        if monitor is not None:
            outcome.detail["integrity"] = monitor.summary()
        launcher.drain_log()
        nbformat.write(nb, str(target), version=4)
        logfh.write(
            f"[execute] {name}: {outcome.status} in {outcome.detail['seconds']} s, "
            f"{outcome.detail['error_cells']} cell(s) with errors, {outcome.detail['timeouts']} timeout(s) "
            f"{outcome.reason}\n"
        )
        logfh.flush()
        return outcome
