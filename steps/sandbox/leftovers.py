"""What a killed run leaves behind, and how the next run removes it: only a dead owner's.

Every temp dir, scratch tmpfs, cgroup and podman container gradeflow makes carries the id of
the process that made it (`gradeflow-execute-p1234-…`, cgroup `gradeflow-1234-0`, container
label `gradeflow.owner=1234`). A run killed with SIGKILL cannot clean up after itself, so each
run first removes what belongs to processes that no longer exist. Anything whose owner is
alive (another run, another user's test) is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .cgroup import ROOT as CGROUP_ROOT

__all__ = ["temp_prefix", "remove_dead_runs", "leftovers", "owner_alive", "OWNER_LABEL"]

OWNER_LABEL = "gradeflow.owner"  # podman containers: the pid of the process that started them
_PODMAN = ["podman", "--runtime", "runc"]

_TEMP = re.compile(r"^gradeflow-[a-z]+-p(\d+)-")
_CGROUP = re.compile(r"^gradeflow-(\d+)-\d+$")


def temp_prefix(kind: str) -> str:
    """The prefix of a temp dir of this process (`kind`: execute, worker, snapshot, canary)."""
    return f"gradeflow-{kind}-p{os.getpid()}-"


def owner_alive(pid: int) -> bool:
    """Is `pid` a live process? A zombie is not: a killed run's workers can stay zombies until
    whoever inherited them reaps them, and what they left must not wait for that."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _mountpoints() -> list[str]:
    try:
        with open("/proc/self/mountinfo") as fh:
            return [line.split()[4].replace("\\040", " ") for line in fh]
    except OSError:
        return []


def _cgroup_dirs() -> list[Path]:
    roots = (
        [CGROUP_ROOT]
        if (CGROUP_ROOT / "cgroup.controllers").is_file()
        else [CGROUP_ROOT / c for c in ("memory", "pids", "cpu")]
    )
    return [d for r in roots if r.is_dir() for d in r.iterdir() if d.is_dir() and _CGROUP.match(d.name)]


def _containers() -> dict[str, int]:
    """gradeflow's podman containers, running or not, by name -> owner pid. Only rootful podman
    (the podman sandbox needs root), and only when podman is installed: a bubblewrap-only
    machine pays nothing."""
    if os.geteuid() != 0 or not shutil.which("podman"):
        return {}
    try:
        out = subprocess.run(
            [*_PODMAN, "ps", "--all", "--filter", f"label={OWNER_LABEL}", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        listed = json.loads(out.stdout or "[]") if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}  # podman itself is broken: the podman sandbox will say so
    found = {}
    for c in listed or []:
        owner = (c.get("Labels") or {}).get(OWNER_LABEL, "")
        names = c.get("Names") or []
        if owner.isdigit() and names:
            found[names[0]] = int(owner)
    return found


def leftovers(alive: bool = False) -> dict[str, list[str]]:
    """gradeflow's temp dirs, scratch mounts, cgroups and podman containers whose owner is dead
    (or all of them, `alive`)."""
    tmp = Path(tempfile.gettempdir())
    keep = lambda name, rx: (m := rx.match(name)) is not None and (alive or not owner_alive(int(m.group(1))))  # noqa: E731
    dirs = sorted(str(p) for p in tmp.glob("gradeflow-*") if keep(p.name, _TEMP))
    mounts = sorted(
        m
        for m in _mountpoints()
        if m.startswith(f"{tmp}/gradeflow-") and keep(Path(m).relative_to(tmp).parts[0], _TEMP)
    )
    cgroups = sorted(str(d) for d in _cgroup_dirs() if keep(d.name, _CGROUP))
    containers = sorted(name for name, owner in _containers().items() if alive or not owner_alive(owner))
    return {"temp_dirs": dirs, "mounts": mounts, "cgroups": cgroups, "containers": containers}


def remove_dead_runs() -> dict[str, int]:
    """Remove what dead gradeflow processes left behind; return how many of each were removed."""
    found = leftovers()
    if found["containers"]:  # first: their kernels hold the dead run's mounts and scratch dirs
        subprocess.run(
            [*_PODMAN, "rm", "--force", "--ignore", "--time", "0", *found["containers"]],
            capture_output=True,
            check=False,
        )
    for m in sorted(found["mounts"], key=len, reverse=True):
        subprocess.run(["umount", "--lazy", m], check=False, capture_output=True)
    for d in found["temp_dirs"]:
        shutil.rmtree(d, ignore_errors=True)
    for d in found["cgroups"]:
        cg = Path(d)
        for _ in range(50):  # the dead run's kernels, if any survived it
            try:
                pids = [int(x) for x in (cg / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        try:
            cg.rmdir()
        except OSError:
            pass
    return {k: len(v) for k, v in found.items()}
