"""The `pod` sandbox: the kernel inside a container that is already the outer boundary.

It runs in the Argo execute pod: the pod gives the non-root uid, the read-only root, no
capabilities, no token and the NetworkPolicy, but papermill and the kernel share that uid and
that container. So the kernel is confined further with Landlock (`landlock.py`) before it
starts: it reads only the system and Python dirs, writes only its scratch dir and the pod's /tmp, so the hidden
tests in /gradeflow and Argo's /var/run/argo (exit code, outputs) are out of its reach; it
has no TCP and, on Linux 6.12+, cannot signal the grader. rlimits as in bubblewrap; its OOM
score is raised so a memory blow-up kills the kernel, not the grader. Without Landlock the
sandbox is unavailable: the step exits 75 and says why. Off-cluster it is tested inside
the emulated execute pod (`argo_pod.py`, `--sandbox argo-pod`).
"""

from __future__ import annotations

import site
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import landlock
from .base import KernelLauncher, KernelSandbox, Limits, minimal_env

__all__ = ["PodSandbox", "PodLauncher", "KERNEL_READABLE"]

# What a kernel may read besides the Python installation: the OS (read-only in the pod anyway).
KERNEL_READABLE = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/proc",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)
KERNEL_WRITABLE_DEVICES = ("/dev/null", "/dev/full")


def _python_dirs() -> list[str]:
    dirs = {sys.base_prefix, sys.prefix, *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return sorted(str(Path(d).resolve()) for d in dirs if Path(d).exists())


class PodLauncher(KernelLauncher):
    """Starts each kernel (or the zygote) through landlock.py with the scratch dir as its only writable place."""

    def __init__(self, work: Path, scratch: Path, limits: Limits, slot: int = 0) -> None:
        super().__init__(work, scratch, limits, slot)
        self.confinement: dict[str, Any] = {"landlock_abi": landlock.abi()}
        # Landlock stops ptrace-attach (/proc/PID/mem) but not ptrace-read: /proc/PID/environ
        # and maps of the grader stay readable to the kernel unless the grader is not dumpable.
        landlock.set_dumpable(False)

    def kernel_env(self) -> dict[str, str]:
        return minimal_env(str(self.scratch / "home"))

    def kernel_command(self, argv: list[str], as_pid_1: bool = False) -> list[str]:
        lim = self.limits
        cmd = [sys.executable, "-I", landlock.__file__]
        for path in (*KERNEL_READABLE, *_python_dirs()):
            cmd += ["--ro", path]
        # /tmp: in the pod an emptyDir of its own that holds only this step's scratch dir (as a
        # private /tmp in bubblewrap); notebooks that write /tmp/x work as under nbgrader.
        for path in (str(self.scratch), "/tmp", *KERNEL_WRITABLE_DEVICES):
            cmd += ["--rw", path]
        rlimits = {
            "as": lim.memory_mb * 1024 * 1024 * 4,
            "cpu": lim.cpu_time,
            "fsize": lim.disk_mb * 1024 * 1024,
            "nofile": lim.nofile,
            "core": 0,
        }
        for name, value in rlimits.items():
            cmd += ["--rlimit", f"{name}={value}"]
        return cmd + ["--oom-score-adj", "1000", "--", *argv]

    def teardown(self) -> dict[str, Any]:
        """Nothing to remove besides the kernels; the evidence is what Landlock could deny."""
        abi = self.confinement["landlock_abi"]
        return {"landlock": {"abi": abi, "tcp_denied": abi >= 4, "signals_scoped": abi >= 6}}


@dataclass(kw_only=True)
class PodSandbox(KernelSandbox):
    name = "pod"
    guarantee = (
        "the enclosing pod's (non-root, read-only root, no capabilities, no token, NetworkPolicy), "
        "plus Landlock on the kernel: reads only system and Python dirs, writes only the pod's /tmp "
        "(not /gradeflow, not /var/run/argo), no TCP, no signals to the grader on Linux 6.12+; rlimits; "
        "clean environment"
    )
    launcher_class = PodLauncher

    def unavailable(self) -> str | None:
        if landlock.abi() < 1:
            return (
                "the node's kernel offers no Landlock (needed to keep student code from the hidden tests and "
                "from Argo's /var/run/argo): run execute pods on nodes with Linux 5.13+ and the landlock LSM "
                "enabled (docs/security.md)"
            )
        return None
