"""Course access in one place: nbgrader's configuration, the course directory, its gradebook,
its submission folders, and the run id.

Every reader of an nbgrader course (collect, merge, `gradeflow sync`, the Jupyter page)
opens it here, the way nbgrader's own apps do: `nbgrader_config.py` from the system, user
and course folders, then a `CourseDirectory` rooted at the course. Student code never
reaches this module; it runs on the teacher's side only.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
from pathlib import Path
from typing import Any

from .errors import NotFound

__all__ = [
    "load_config",
    "open_course",
    "open_gradebook",
    "assignment_gradebook",
    "submission_dirs",
    "new_run_id",
    "run_id_prefix",
]

GIVE_COURSE = "give the folder that holds nbgrader_config.py"


def load_config(course_dir: Path) -> Any:
    """Load nbgrader_config.py the way nbgrader does: system, then user, then the course dir."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    for directory in [*reversed(jupyter_config_path()), str(course_dir)]:
        if (Path(directory) / "nbgrader_config.py").is_file():
            config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(directory)).load_config())
    return config


def open_course(course_dir: Path, todo: str = GIVE_COURSE) -> tuple[Any, Any]:
    """(config, nbgrader CourseDirectory) of the course at `course_dir`; NotFound when it is not there."""
    from nbgrader.coursedir import CourseDirectory

    course_dir = Path(course_dir)
    if not course_dir.is_dir():
        raise NotFound(f"course directory {course_dir} does not exist", todo)
    config = load_config(course_dir)
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course_dir.resolve())
    return config, coursedir


def open_gradebook(coursedir: Any, todo_missing: str) -> Any:
    """nbgrader's Gradebook on the course's database (SQLite file or server), looked at first."""
    from .gradebook import open_course_gradebook

    return open_course_gradebook(coursedir.db_url, coursedir.course_id, todo_missing)


def assignment_gradebook(coursedir: Any, assignment: str) -> Any:
    """The course's Gradebook, once `assignment` is known to be in it (NotFound lists the known ones)."""
    from nbgrader.api import MissingEntry

    gb = open_gradebook(coursedir, f"run `nbgrader generate_assignment {assignment}` in the course directory first")
    try:
        gb.find_assignment(assignment)
    except MissingEntry:
        known = sorted(a.name for a in gb.assignments)
        gb.close()
        raise NotFound(
            f"assignment {assignment!r} is not in the gradebook",
            f"known assignments: {', '.join(known) or 'none'}; "
            f"run `nbgrader generate_assignment {assignment}` to add it",
        ) from None
    return gb


def submission_dirs(coursedir: Any, assignment: str) -> dict[str, Path]:
    """student id -> that student's submitted folder of `assignment` (nbgrader's submitted_directory)."""
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment)
    regexp = coursedir.format_path(
        coursedir.submitted_directory, "(?P<student_id>[^/]+)", re.escape(assignment), escape=True
    )
    found = {}
    for path in sorted(glob.glob(pattern)):
        m = re.fullmatch(regexp, path)
        if m and os.path.isdir(path):
            found[m.group("student_id")] = Path(path)
    return found


def run_id_prefix(assignment: str) -> str:
    """What every run id of `assignment` starts with (before its `-DATE-TIME`): the assignment
    lowercased, anything but letters, digits and '-' made '-', at most 36 characters."""
    return re.sub(r"[^a-z0-9-]+", "-", assignment.lower()).strip("-")[:36].strip("-") or "run"


def new_run_id(assignment: str, now: dt.datetime | None = None) -> str:
    """A sortable, unique run id that is also a valid Argo workflow name and Kubernetes label
    value (at most 59 of the 63 characters): `ps1-20261122-101500-123456`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{run_id_prefix(assignment)}-{now.strftime('%Y%m%d-%H%M%S-%f')}"
