"""collect: find an assignment's submissions and export the gradebook snapshot.

This is the only step that reads the nbgrader course directory. It copies each submission
(nbgrader's `submitted/STUDENT/ASSIGNMENT/`, overlaid with the assignment's own data files
exactly as `nbgrader autograde` overlays them) into the workspace, writes the manifest, and
exports the snapshot of this assignment's cells. Nothing else of gradebook.db leaves.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

from .contract import STEPS
from .errors import TeacherError
from .records import Manifest, Submission, write_json

__all__ = ["collect", "main", "new_run_id"]

STEP = STEPS["collect"]
MAX_SUBMISSION_BYTES = 200 * 1024 * 1024


def new_run_id(assignment: str) -> str:
    """A sortable, unique run id such as `ps1-20261122T101500Z`."""
    return f"{assignment}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"


def _course(course_dir: Path):
    from nbgrader.coursedir import CourseDirectory

    from .snapshot import load_course_config

    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course_dir.resolve())
    return config, coursedir


def _open_gradebook(coursedir, assignment: str):
    from nbgrader.api import Gradebook, MissingEntry

    db_url = coursedir.db_url
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///") :]).is_file():
        raise TeacherError(
            f"no gradebook at {db_url[len('sqlite:///'):]}",
            f"run `nbgrader generate_assignment {assignment}` in the course directory first",
        )
    gb = Gradebook(db_url, coursedir.course_id)
    try:
        gb.find_assignment(assignment)
    except MissingEntry:
        known = sorted(a.name for a in gb.assignments)
        gb.close()
        raise TeacherError(
            f"assignment {assignment!r} is not in the gradebook",
            f"known assignments: {', '.join(known) or 'none'}; "
            f"run `nbgrader generate_assignment {assignment}` to add it",
        ) from None
    return gb


def _files(root: Path, ignore: Sequence[str]) -> list[Path]:
    """Files below root, relative to it, as nbgrader's own find_all_files sees them."""
    from nbgrader.utils import find_all_files

    return sorted(Path(os.path.relpath(f, root)) for f in find_all_files(str(root), list(ignore)) if not os.path.islink(f))


def _hash_files(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(str(rel).encode() + b"\0")
        with open(root / rel, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _timestamp(directory: Path) -> tuple[str | None, str]:
    """nbgrader's timestamp.txt as ISO UTC, or (None, why) when absent or unreadable."""
    from nbgrader.utils import parse_utc

    path = directory / "timestamp.txt"
    if not path.is_file():
        return None, ""
    text = path.read_text(errors="replace").strip()
    if not text:
        return None, "empty timestamp.txt: graded as on time"
    try:
        return parse_utc(text).isoformat(), ""
    except (ValueError, OverflowError):
        return None, f"unreadable timestamp.txt ({text[:40]!r}): graded as on time"


def _submission_dirs(coursedir, assignment: str) -> dict[str, Path]:
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment)
    regexp = coursedir.format_path(coursedir.submitted_directory, "(?P<student_id>[^/]+)", re.escape(assignment), escape=True)
    found = {}
    import glob

    for path in sorted(glob.glob(pattern)):
        m = re.fullmatch(regexp, path)
        if m and os.path.isdir(path):
            found[m.group("student_id")] = Path(path)
    return found


def collect(
    course_dir: Path,
    assignment: str,
    workspace: Path,
    students: Sequence[str] | None = None,
    run_id: str | None = None,
) -> Manifest:
    """Copy the submissions into `workspace` and write manifest.json and snapshot.json."""
    from .snapshot import export_snapshot

    course_dir = Path(course_dir)
    if not course_dir.is_dir():
        raise TeacherError(f"course directory {course_dir} does not exist", "give the folder that holds gradebook.db")
    config, coursedir = _course(course_dir)
    gb = _open_gradebook(coursedir, assignment)
    notebook_dirs = tuple(Path(coursedir.format_path(d, ".", assignment)) for d in (coursedir.source_directory, coursedir.release_directory))
    with gb:
        snapshot = export_snapshot(gb, assignment, config, notebook_dirs)
    expected = [nb["name"] for nb in snapshot["notebooks"]]
    if not expected:
        raise TeacherError(
            f"assignment {assignment!r} has no notebooks in the gradebook",
            f"run `nbgrader generate_assignment {assignment}` first",
        )

    found = _submission_dirs(coursedir, assignment)
    excluded = set(filter(None, (coursedir.student_id_exclude or "").split(",")))
    if students:
        unknown = sorted(set(students) - set(found))
        if unknown:
            raise TeacherError(
                f"no submission of {assignment!r} for: {', '.join(unknown)}",
                f"submissions are read from {coursedir.format_path(coursedir.submitted_directory, 'STUDENT', assignment)}",
            )
        found = {s: found[s] for s in students}
    found = {s: p for s, p in found.items() if s not in excluded}

    ignore = list(coursedir.ignore)
    source_dir = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    keep_student_version = set(snapshot["config"].get("Autograde", {}).get("exclude_overwriting", {}).get(assignment, []))
    overlay = [f for f in _files(source_dir, ignore + ["*.ipynb"]) if str(f) not in keep_student_version] if source_dir.is_dir() else []

    workspace = Path(workspace)
    (workspace / "submissions").mkdir(parents=True, exist_ok=True)
    submissions, problems = [], []
    for student, src in sorted(found.items()):
        files = _files(src, ignore)
        size = sum((src / f).stat().st_size for f in files)
        if size > MAX_SUBMISSION_BYTES:
            problems.append({"student": student, "reason": f"submission is {size // 2**20} MiB, over the {MAX_SUBMISSION_BYTES // 2**20} MiB limit"})
            continue
        top_notebooks = {f.stem for f in files if f.suffix == ".ipynb" and len(f.parts) == 1}
        timestamp, ts_note = _timestamp(src)
        dest = workspace / "submissions" / student
        if dest.exists():
            shutil.rmtree(dest)
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)
        for rel in overlay:  # nbgrader autograde puts the teacher's data files over the student's
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_dir / rel, dest / rel)
        dest.mkdir(parents=True, exist_ok=True)
        submissions.append(
            Submission(
                student=student,
                notebooks=[n for n in expected if n in top_notebooks],
                missing=[n for n in expected if n not in top_notebooks],
                unknown=sorted(top_notebooks - set(expected)),
                timestamp=timestamp,
                content_hash=_hash_files(src, files),
                files=len(files),
            )
        )
        if ts_note:
            problems.append({"student": student, "reason": ts_note})

    manifest = Manifest(
        run_id=run_id or new_run_id(assignment),
        course_id=coursedir.course_id,
        assignment=assignment,
        notebooks=expected,
        submissions=submissions,
        created=dt.datetime.now(dt.timezone.utc).isoformat(),
        problems=problems,
    )
    write_json(workspace / "snapshot.json", snapshot)
    manifest.save(workspace / "manifest.json")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_step

    p = argparse.ArgumentParser(prog="python -m steps.collect", description=collect.__doc__)
    p.add_argument("--course-dir", type=Path, required=True)
    p.add_argument("--assignment", required=True)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--students", nargs="*", default=None)
    p.add_argument("--run-id", default=None)
    a = p.parse_args(argv)
    return run_step(STEP, lambda: collect(a.course_dir, a.assignment, a.workspace, a.students or None, a.run_id))


if __name__ == "__main__":
    raise SystemExit(main())
