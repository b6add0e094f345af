"""A gradebook another program holds locked: wait for it, then say who holds it.

Formgrader, a notebook with nbgrader's Gradebook open, or `sqlite3` on the command line can
hold gradebook.db's lock. SQLite gives up after its own 5 s; a teacher would rather the run
waited a little longer, and when it cannot, be told which program to close.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, TypeVar

from .errors import TeacherError

__all__ = ["gradebook_locked", "lock_holders", "wait_for_gradebook"]

T = TypeVar("T")
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def gradebook_locked(exc: BaseException) -> bool:
    """Is this (or what it wraps: SQLAlchemy, nbgrader's InvalidEntry) SQLite's busy/locked error?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sqlite3.OperationalError) and (getattr(e, "sqlite_errorcode", 0) & 0xFF) in (
            _SQLITE_BUSY,
            _SQLITE_LOCKED,
        ):
            return True
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return False


def lock_holders(db_path: Path) -> list[str]:
    """`pid (command)` of each other process with the gradebook (or its journal) open, as far as
    /proc lets us see; empty when that cannot be known."""
    targets = {str(db_path), f"{db_path}-journal", f"{db_path}-wal"}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append(f"{pid} ({cmd[:80]})")
    return found


def wait_for_gradebook(action: Callable[[], T], db_url: str, wait_s: float) -> T:
    """Run `action`; while the gradebook is locked, retry with backoff for up to `wait_s` seconds,
    then raise a TeacherError naming the holder."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as e:
            if not gradebook_locked(e):
                raise
            if time.monotonic() + delay > deadline:
                path = Path(db_url.removeprefix("sqlite:///"))
                holders = lock_holders(path) if db_url.startswith("sqlite:///") else []
                who = f" by process {', '.join(holders)}" if holders else " by another program"
                raise TeacherError(
                    f"the gradebook {path} is locked{who} and stayed locked for {wait_s:.0f} s",
                    "close the program holding it (Formgrader, a notebook using nbgrader's Gradebook, sqlite3)"
                    " or wait longer with --gradebook-wait SECONDS, then run again:"
                    " submissions already merged are kept and not regraded",
                ) from None
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
