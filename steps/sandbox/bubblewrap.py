"""The bubblewrap sandbox: the kernel alone runs in a fresh set of Linux namespaces.

What the kernel sees: the OS's /usr (read-only), the Python environment it needs (read-only),
a private /tmp, and the submission's work dir at /work. No network (not even loopback to the
host), no course dir, no gradebook, no HOME, no other submission, none of the teacher's
environment variables. When gradeflow runs as root the kernel runs as an unprivileged uid of
its own per parallel slot, inside a memory and pids cgroup; limits are also set with rlimits.
papermill and the notebook stay outside, talking to the kernel over Unix sockets.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import KernelLauncher, KernelSandbox, Limits, minimal_env
from .cgroup import Cgroup

__all__ = ["BubblewrapSandbox", "BubblewrapLauncher", "SANDBOX_UID_BASE"]

SANDBOX_UID_BASE = 61000  # slot k runs as uid/gid 61000+k when gradeflow runs as root
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts", "mime.types", "ssl")


def _python_binds() -> dict[Path, Path]:
    """Where the kernel's Python must appear (as the host names it, and its real path) and what to
    bind there, outside /usr: wherever it lives (a venv in /tmp, HOME or /work, conda in /opt)."""
    binds: dict[Path, Path] = {}
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    for d in {sys.base_prefix, sys.prefix, *([user_site] if user_site and Path(user_site).is_dir() else [])}:
        real = Path(d).resolve()
        for dest in (Path(os.path.abspath(d)), real):
            if not (dest == Path("/usr") or Path("/usr") in dest.parents):
                binds[dest] = real
    return dict(sorted(binds.items()))


def _python_dirs() -> list[Path]:
    """The real directories the kernel's Python needs, outside /usr."""
    return sorted(set(_python_binds().values()))


def _work_mount() -> str:
    """Where the submission's work dir appears: /work, unless the Python lives there."""
    work = Path("/work")
    shadowed = any(dest == work or work in dest.parents for dest in _python_binds())
    return "/gradeflow-work" if shadowed else str(work)


def _traversable_by(path: Path, uid: int) -> bool:
    """Could `uid` (not root) reach `path`? Every parent needs the x bit for 'other'."""
    if uid == 0:
        return True
    for parent in [*reversed(path.parents), path]:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            return False
    return True


class BubblewrapLauncher(KernelLauncher):
    def __init__(self, work: Path, scratch: Path, limits: Limits, slot: int = 0) -> None:
        self.root = os.geteuid() == 0
        # as root, the kernel runs as an unprivileged uid of its own per slot; else as us
        self.kernel_uid = SANDBOX_UID_BASE + slot if self.root else None
        self.cgroup = (
            Cgroup.create(f"gradeflow-{os.getpid()}-{slot}", limits.memory_mb, limits.pids) if self.root else None
        )
        super().__init__(work, scratch, limits, slot)  # the scratch quota and ownership (`kernel_uid`)

    def kernel_env(self) -> dict[str, str]:
        env = minimal_env(
            "/tmp/home",
            {
                "IPYTHONDIR": "/tmp/home/.ipython",
                "MPLCONFIGDIR": "/tmp/home/.mpl",
                "USER": "student",
                "LOGNAME": "student",
            },
        )
        user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
        if user_site and Path(user_site).is_dir():
            env["PYTHONPATH"] = user_site
        return env

    def _bwrap(self, argv: list[str], hidden: dict[Path, Path], as_pid_1: bool) -> list[str]:
        lim = self.limits
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--hostname", "sandbox", "--clearenv"]
        if as_pid_1:
            cmd += ["--as-pid-1"]
        for key, value in self.kernel_env().items():
            cmd += ["--setenv", key, value]
        cmd += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        for name in _ETC:
            if os.path.exists(f"/etc/{name}"):
                cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--size", str(lim.disk_mb * 1024 * 1024), "--tmpfs", "/tmp", "--dir", "/tmp/home"]
        work = _work_mount()
        cmd += ["--bind", str(self.work), work, "--bind", str(self.ipc), str(self.ipc), "--chdir", work]
        # the Python last: a venv under /tmp must not be hidden by the private /tmp above
        for dest, real in _python_binds().items():
            cmd += ["--ro-bind", str(hidden.get(real, real)), str(dest)]
        cmd += ["--remount-ro", "/"]  # the sandbox's own root is a tmpfs: files there would be unbounded memory
        cmd += ["--cap-drop", "ALL", "--"]
        return cmd + argv

    def kernel_command(self, argv: list[str], as_pid_1: bool = False) -> list[str]:
        lim = self.limits
        hidden: dict[Path, Path] = {}
        if self.kernel_uid is not None:
            # A Python under /root (pyenv, a venv in the teacher's home) is not reachable by the
            # sandbox uid. In a private mount namespace, bind each such dir somewhere reachable
            # first; the host's mounts are untouched and nothing else of HOME is exposed.
            for i, d in enumerate(_python_dirs()):
                if not _traversable_by(d, self.kernel_uid):
                    hidden[d] = self.scratch / f"python-{i}"
                    hidden[d].mkdir(exist_ok=True)
        chain: list[str] = []
        if self.cgroup is not None:
            chain += self.cgroup.join_command()
        if hidden:
            mounts = " && ".join(f"mount --bind -o ro {src} {dst}" for src, dst in hidden.items())
            chain += ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]
        chain += [
            "prlimit",
            f"--as={lim.memory_mb * 1024 * 1024 * 4}",  # address space: a backstop; the cgroup counts real memory
            f"--cpu={lim.cpu_time}",
            f"--fsize={lim.disk_mb * 1024 * 1024}",
            f"--nofile={lim.nofile}",
            "--core=0",
        ]
        if self.root:
            chain += [
                f"--nproc={lim.pids}",
                "--",
                "setpriv",
                f"--reuid={self.kernel_uid}",
                f"--regid={self.kernel_uid}",
                "--clear-groups",
                "--no-new-privs",
            ]
        else:
            chain += ["--"]
        return chain + self._bwrap(argv, hidden, as_pid_1)

    def kill_contained(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def teardown(self) -> dict[str, Any]:
        if self.cgroup is None:
            return {}
        evidence = {"leftover_processes_killed": self.cgroup.kill_all(), "memory_peak_mb": self.cgroup.memory_peak_mb()}
        self.cgroup.remove()
        return evidence


@dataclass(kw_only=True)
class BubblewrapSandbox(KernelSandbox):
    name = "bubblewrap"
    guarantee = (
        "kernel only in fresh namespaces (no network, private /tmp, read-only system), unprivileged uid "
        "when run as root, cgroup memory/pids limits; the notebook and papermill stay outside"
    )
    launcher_class = BubblewrapLauncher

    def unavailable(self) -> str | None:
        missing = [
            t
            for t in ("bwrap", "prlimit") + (("setpriv", "unshare") if os.geteuid() == 0 else ())
            if not shutil.which(t)
        ]
        if missing:
            return f"{', '.join(missing)} not found: install them with `apt-get install bubblewrap util-linux`"
        probe = subprocess.run(
            ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, text=True
        )
        if probe.returncode != 0:
            return (
                f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:200]}); enable unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1) or use --sandbox podman"
            )
        return None
