"""A course's grading state, kept between local runs: the lock, what was graded, the preflight.

One run per course and assignment at a time (`course_lock`); submissions graded before with the
same content are left out (`drop_unchanged`, as nbgrader skips them); each merged submission is
remembered at once (`remember`), so a killed run resumes with only what is left; and a course
that cannot take the results is refused before grading (`preflight`, `teacher_os_error`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

from steps.errors import Busy, TeacherError
from steps.records import MISSING, OK, REPAIRED, UNGRADED, Manifest, read_json, write_json

from .store import RUNS_DIR

__all__ = ["course_lock", "drop_unchanged", "remember", "preflight", "teacher_os_error"]


@contextlib.contextmanager
def course_lock(course_dir: Path, assignment: str) -> Iterator[None]:
    """One grading run per course and assignment at a time: two would race on the gradebook."""
    runs = course_dir / RUNS_DIR
    runs.mkdir(exist_ok=True)
    with open(runs / f".{assignment}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(
                f"another gradeflow run is grading {assignment!r} in this course", "wait for it to finish"
            ) from None
        yield


def _state_path(course_dir: Path, assignment: str) -> Path:
    return course_dir / RUNS_DIR / "state" / f"{assignment}.json"


def drop_unchanged(manifest: Manifest, course_dir: Path, force: bool, feedback: bool = False) -> None:
    """Leave out submissions graded before with the same content (nbgrader skips them too)."""
    if force:
        return
    state = (
        read_json(_state_path(course_dir, manifest.assignment))
        if _state_path(course_dir, manifest.assignment).is_file()
        else {}
    )
    autograded = course_dir / "autograded"
    keep = []
    for sub in manifest.submissions:
        prev = state.get(sub.student, {})
        has_feedback = (
            not feedback or (course_dir / "feedback" / sub.student / manifest.assignment).is_dir()
        )  # --feedback: pages missing count as changed
        if (
            prev.get("content_hash") == sub.content_hash
            and (autograded / sub.student / manifest.assignment).is_dir()
            and has_feedback
        ):
            manifest.unchanged.append(sub.student)
        else:
            keep.append(sub)
    manifest.submissions = keep


def remember(course_dir: Path, assignment: str, student: str, content_hash: str, run_id: str, status: str) -> None:
    """Record one merged submission at once, so a killed run resumes with only what is left."""
    if status == UNGRADED:
        return  # gradeflow failed on it: the course keeps its earlier grades, and so does the state
    path = _state_path(course_dir, assignment)
    state = read_json(path) if path.is_file() else {}
    if status in (OK, REPAIRED, MISSING):
        state[student] = {"content_hash": content_hash, "run_id": run_id}
    else:
        state.pop(student, None)  # skipped or failed: try again next time
    write_json(path, state)


def _submitted_bytes(course_dir: Path, assignment: str) -> int:
    total = 0
    for d in (course_dir / "submitted").glob(f"*/{assignment}"):
        for root, _, files in os.walk(d):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, f)).st_size
    return total


def preflight(course_dir: Path, assignment: str, local_store: bool) -> None:
    """Refuse before grading when the course cannot take the results: read-only, or too little
    space. Teacher errors (exit 2) with the path and what is needed."""

    for d in (course_dir, course_dir / RUNS_DIR):
        if not d.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=d):
                pass
        except OSError as e:
            raise TeacherError(
                f"cannot write to {d} ({e.strerror})",
                "gradeflow writes autograded/, gradeflow_runs/ and (unless db_url names a database server) "
                "gradebook.db in the course: make it writable "
                "(remount it read-write, or fix its owner and permissions), then run again",
            ) from None
    # the run folder holds each submission about four times (collect, restore, execute, score),
    # autograded/ once more; 32 MiB for the gradebook's journal and the results
    need = _submitted_bytes(course_dir, assignment) * (5 if local_store else 1) + 32 * 2**20
    st = os.statvfs(course_dir)
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise TeacherError(
            f"not enough space on {course_dir}: {free // 2**20} MiB free, grading {assignment!r} needs about "
            f"{need // 2**20} MiB",
            "free some space there (old run folders in gradeflow_runs/ can go) or put the runs elsewhere with --store, "
            "then run again",
        )


def teacher_os_error(e: OSError) -> TeacherError | None:
    """A full or read-only disk met while writing the course: the teacher's to fix (exit 2)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return TeacherError(
            f"no space left on the disk of {e.filename or 'the course'}",
            "free some space, then run again: submissions already merged are kept and not regraded",
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return TeacherError(
            f"cannot write {e.filename or 'to the course'} ({e.strerror})",
            "make the course writable, then run again: submissions already merged are kept and not regraded",
        )
    return None
