"""Confine a kernel with Linux Landlock, then exec it: the `pod` sandbox's containment.

Why: in the Argo execute pod the grader (papermill) and the kernel run as the same uid in the
same container, and a restricted pod may not create namespaces or switch uids. Without more,
student code could read /gradeflow/snapshot.json and the restored notebooks (the hidden
tests), or write /var/run/argo/ctr/main/exitcode and /var/run/argo/outputs/ (Argo's emissary
writes outputs there and its wait container uploads whatever it finds once `exitcode`
exists), forging its grade. Landlock lets an unprivileged process give up file access for
itself and every process it starts: after this, the kernel may read only the system and
Python directories and write only its scratch dir (ABI 1+); it may not connect or bind TCP
(ABI 4+), nor signal or use abstract sockets outside its domain (ABI 6+), and it cannot
ptrace (or read /proc/PID/mem or environ of) the grader at any ABI.

This file runs as a script (`python -I landlock.py --ro DIR --rw DIR -- ARGV`), importing
only the standard library, so the wrapper costs one small interpreter start per zygote.
"""

from __future__ import annotations

import ctypes
import os
import resource
import stat
import sys

__all__ = ["abi", "confine", "set_dumpable", "main", "FS_RO", "FS_RW"]

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # all a rule on a non-directory may hold
FS_RO = EXECUTE | READ_FILE | READ_DIR
FS_RW = (
    FS_RO
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in linux/landlock.h
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: object) -> int:
    r = _libc.syscall(ctypes.c_long(nr), *args)
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def abi() -> int:
    """The Landlock ABI version the running kernel offers; 0 when it has none (or seccomp forbids it)."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def confine(read_only: list[str], read_write: list[str]) -> dict[str, object]:
    """Restrict this process (and all it will start) to `read_only` and `read_write` paths,
    no TCP and no signals out of its domain, as far as the kernel's ABI goes. Raises OSError
    when Landlock is missing: never run student code unconfined."""
    version = abi()
    if version < 1:
        raise OSError(
            "Landlock is not available (Linux 5.13+ with the landlock LSM enabled, "
            "and a seccomp profile that allows its syscalls)"
        )
    fs = _FS_BY_ABI.get(version, _FS_BY_ABI[5])
    attr = _RulesetAttr(handled_access_fs=fs)
    size = 8
    if version >= 4:
        attr.handled_access_net, size = NET_BIND_TCP | NET_CONNECT_TCP, 16  # no rule: no TCP at all
    if version >= 6:
        attr.scoped, size = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL, 24
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    granted: list[str] = []
    try:
        for paths, rights in ((read_only, FS_RO), (read_write, FS_RW)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    allowed = rights & fs
                    if not stat.S_ISDIR(os.fstat(fd).st_mode):
                        allowed &= _FILE_RIGHTS
                    rule = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
                    _syscall(
                        _ADD_RULE, ruleset, ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)
                    )
                    granted.append(path)
                finally:
                    os.close(fd)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return {"abi": version, "tcp_denied": version >= 4, "signals_scoped": version >= 6, "paths": granted}


def set_dumpable(on: bool) -> None:
    """prctl(PR_SET_DUMPABLE): a process that is not dumpable has its /proc/PID files owned by root."""
    if _libc.prctl(_PR_SET_DUMPABLE, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def main(argv: list[str]) -> int:
    """`--ro P --rw P --rlimit NAME=N --oom-score-adj N -- ARGV`: confine, then exec ARGV."""
    ro: list[str] = []
    rw: list[str] = []
    i = 0
    while argv[i] != "--":
        flag, value = argv[i], argv[i + 1]
        if flag == "--ro":
            ro.append(value)
        elif flag == "--rw":
            rw.append(value)
        elif flag == "--rlimit":
            name, n = value.split("=")
            _limit(getattr(resource, f"RLIMIT_{name.upper()}"), int(n))
        elif flag == "--oom-score-adj":  # raising it needs no privilege: the OOM killer takes the kernel first
            try:
                with open("/proc/self/oom_score_adj", "w") as fh:
                    fh.write(value)
            except OSError:
                pass
        else:
            raise SystemExit(f"landlock.py: unknown flag {flag}")
        i += 2
    command = argv[i + 1 :]
    try:
        confine(ro, rw)
    except OSError as e:
        print(f"gradeflow: refusing to start the kernel unconfined: {e}", file=sys.stderr, flush=True)
        return 126
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
