"""A memory + pids cgroup per running submission (root only; cgroup v1 or v2).

rlimits are per process; a cgroup bounds the whole tree a notebook starts (a fork bomb, a
memory bomb spread over children) and lets us kill every process it left behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["Cgroup"]

ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    def __init__(self, dirs: list[Path], memory_file: Path | None, peak_file: Path | None) -> None:
        self.dirs = dirs
        self.memory_file = memory_file
        self.peak_file = peak_file

    @classmethod
    def create(cls, name: str, memory_mb: int, pids: int) -> "Cgroup | None":
        """Make the cgroup, or return None where cgroups cannot be written (rlimits still apply)."""
        try:
            if (ROOT / "cgroup.controllers").is_file():  # v2: one tree
                d = ROOT / name
                d.mkdir(exist_ok=True)
                (d / "memory.max").write_text(str(memory_mb * 1024 * 1024))
                (d / "memory.swap.max").exists() and (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(pids))
                return cls([d], d / "memory.max", d / "memory.peak")
            mem, pid = ROOT / "memory" / name, ROOT / "pids" / name
            mem.mkdir(exist_ok=True)
            pid.mkdir(exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
            (pid / "pids.max").write_text(str(pids))
            # A cpu group of its own: the submission's processes share one CPU share, so a
            # submission running many busy processes cannot starve the ones graded beside it.
            cpu = [ROOT / "cpu" / name] if (ROOT / "cpu" / "cpu.shares").is_file() else []
            for d in cpu:
                d.mkdir(exist_ok=True)
            return cls([mem, pid, *cpu], mem / "memory.limit_in_bytes", mem / "memory.max_usage_in_bytes")
        except OSError:
            return None

    def join_command(self) -> list[str]:
        """argv prefix that moves the process into this cgroup, then execs the rest."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        script = "".join(f'echo $$ > "{p}" && ' for p in procs) + 'exec "$@"'
        return ["sh", "-c", script, "sh"]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def kill_all(self) -> int:
        """SIGKILL everything in the cgroup until it is empty; return how many were killed."""
        killed: set[int] = set()
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                    killed.add(p)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        return len(killed)

    def memory_peak_mb(self) -> float | None:
        try:
            return round(int(self.peak_file.read_text()) / 2**20, 1) if self.peak_file else None
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
