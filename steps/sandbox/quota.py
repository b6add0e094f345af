"""A disk quota for the files a kernel writes: its scratch dir on a size-limited tmpfs.

RLIMIT_FSIZE bounds each file; a tmpfs of a fixed size bounds all of them together. The
tmpfs's pages are charged to the memory cgroup of whoever writes them, so a disk filler is
also stopped by the memory limit. Root only; where mounting is not allowed, None.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["mount_quota", "grow_quota", "unmount_quota"]


def mount_quota(scratch: Path, disk_mb: int) -> int | None:
    """Put the scratch dir (work dir and kernel sockets, both writable by the kernel) on a tmpfs
    of disk_mb plus what is already there, so that all the files the kernel writes together,
    not only each one (RLIMIT_FSIZE), stay under the disk limit. Root only; None if it can't."""
    used = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file() and not p.is_symlink())
    size_mb = disk_mb + used // 2**20 + 1
    staged = scratch.with_name(scratch.name + ".staged")
    os.rename(scratch, staged)
    scratch.mkdir(mode=0o755)
    try:
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size_mb}m,mode=0755,nosuid,nodev",
                "gradeflow-scratch",
                str(scratch),
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):  # no CAP_SYS_ADMIN here: only the per-file limit applies
        scratch.rmdir()
        os.rename(staged, scratch)
        return None
    for entry in staged.iterdir():
        shutil.move(str(entry), str(scratch / entry.name))
    staged.rmdir()
    return size_mb


def grow_quota(scratch: Path, size_mb: int) -> int:
    """Resize the scratch tmpfs to `size_mb` (a sandbox started before its submission was known
    makes room for the submission's files, as mount_quota would have); return the size."""
    subprocess.run(["mount", "-o", f"remount,size={size_mb}m", str(scratch)], check=True, capture_output=True)
    return size_mb


def unmount_quota(scratch: Path) -> None:
    subprocess.run(["umount", "--lazy", str(scratch)], check=False, capture_output=True)
