"""collect: find an assignment's submissions and export the gradebook snapshot.

This is the only step that reads the nbgrader course directory. It copies each submission
(nbgrader's `submitted/STUDENT/ASSIGNMENT/`, overlaid with the assignment's own data files
exactly as `nbgrader autograde` overlays them) into the workspace, writes the manifest, and
exports the snapshot of this assignment's cells. Nothing else of the gradebook (a SQLite
gradebook.db or the database `c.CourseDirectory.db_url` names) leaves, except the teacher's
manual scores and comments of the students in this run (manual.json), which only the
feedback step reads.
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
from .course import assignment_gradebook, new_run_id, open_course, submission_dirs
from .errors import TeacherError
from .records import Manifest, Submission, write_json

__all__ = ["collect", "main", "shard_of", "parse_shard"]

STEP = STEPS["collect"]
MAX_SUBMISSION_MB = 200  # the default of --max-submission-mb


def shard_of(student: str, shards: int) -> int:
    """Which of `shards` runs grades `student`: the same answer in every run, whoever else submitted.

    A class too big for one Argo Workflow object is graded as several runs (pipelines.workflow
    `build_shards`); each collect keeps only its shard's students, chosen by a hash of the id
    so that a submission arriving between two shards' collects moves no one to another shard.
    """
    return int.from_bytes(hashlib.sha256(student.encode()).digest()[:8], "big") % shards


def parse_shard(text: str) -> tuple[int, int]:
    """`i/S` (shard i of S, from 0) as a pair; refuses anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not int(m.group(2)) or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: give i/S with 0 <= i < S, e.g. 0/1 for the whole class")
    return int(m.group(1)), int(m.group(2))


def _files(root: Path, ignore: Sequence[str], dropped: list[str] | None = None) -> list[Path]:
    """Regular files below root, relative to it, as nbgrader's own find_all_files sees them.
    Symlinks and special files (fifos, sockets, devices) are never followed: listed in `dropped`."""
    from nbgrader.utils import find_all_files

    found = []
    for f in find_all_files(str(root), list(ignore)):
        rel = Path(os.path.relpath(f, root))
        if os.path.islink(f) or not os.path.isfile(f):
            if dropped is not None:
                dropped.append(str(rel))
            continue
        found.append(rel)
    return sorted(found)


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


def collect(
    course_dir: Path,
    assignment: str,
    workspace: Path,
    students: Sequence[str] | None = None,
    run_id: str | None = None,
    max_submission_mb: int = MAX_SUBMISSION_MB,
    shard: tuple[int, int] = (0, 1),
) -> Manifest:
    """Copy the submissions into `workspace` and write manifest.json and snapshot.json.
    A submission over `max_submission_mb` is left out (`Manifest.left_out`, with its size);
    with `shard` (i, S), only the students `shard_of` puts in shard i are collected."""
    from .feedback import export_manual
    from .snapshot import export_snapshot

    config, coursedir = open_course(Path(course_dir))
    gb = assignment_gradebook(coursedir, assignment)
    notebook_dirs = tuple(
        Path(coursedir.format_path(d, ".", assignment))
        for d in (coursedir.source_directory, coursedir.release_directory)
    )
    with gb:
        snapshot = export_snapshot(gb, assignment, config, notebook_dirs)
        manual = export_manual(gb, assignment)
    expected = [nb["name"] for nb in snapshot["notebooks"]]
    if not expected:
        raise TeacherError(
            f"assignment {assignment!r} has no notebooks in the gradebook",
            f"run `nbgrader generate_assignment {assignment}` first",
        )

    found = submission_dirs(coursedir, assignment)
    excluded = set(filter(None, (coursedir.student_id_exclude or "").split(",")))
    if students:
        unknown = sorted(set(students) - set(found))
        if unknown:
            raise TeacherError(
                f"no submission of {assignment!r} for: {', '.join(unknown)}",
                "submissions are read from "
                f"{coursedir.format_path(coursedir.submitted_directory, 'STUDENT', assignment)}",
            )
        found = {s: found[s] for s in students}
    found = {
        s: p for s, p in found.items() if s not in excluded and (shard[1] == 1 or shard_of(s, shard[1]) == shard[0])
    }

    ignore = list(coursedir.ignore)
    source_dir = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    keep_student_version = set(
        snapshot["config"].get("Autograde", {}).get("exclude_overwriting", {}).get(assignment, [])
    )
    overlay = (
        [f for f in _files(source_dir, ignore + ["*.ipynb"]) if str(f) not in keep_student_version]
        if source_dir.is_dir()
        else []
    )

    workspace = Path(workspace)
    (workspace / "submissions").mkdir(parents=True, exist_ok=True)
    submissions, problems, left_out = [], [], []
    for student, src in sorted(found.items()):
        dropped: list[str] = []
        files = _files(src, ignore, dropped)
        if dropped:
            dropped.sort()
            shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
            problems.append(
                {
                    "student": student,
                    "reason": f"{len(dropped)} symlink(s) or special file(s) not copied (never followed): {shown}",
                }
            )
        size = sum((src / f).stat().st_size for f in files)
        if size > max_submission_mb * 2**20:
            left_out.append(
                {
                    "student": student,
                    "reason": f"submission is {size / 2**20:.1f} MiB, over the {max_submission_mb} MiB limit:"
                    " not graded (raise it with --max-submission-mb)",
                }
            )
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
        left_out=left_out,
    )
    write_json(workspace / "snapshot.json", snapshot)
    write_json(workspace / "manual.json", {s.student: manual[s.student] for s in submissions if s.student in manual})
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
    p.add_argument(
        "--max-submission-mb",
        type=int,
        default=MAX_SUBMISSION_MB,
        help=f"larger submissions are skipped with their size (default {MAX_SUBMISSION_MB})",
    )
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="i/S",
        help="collect only shard i of S (by a hash of the student id; default 0/1: everyone)",
    )
    a = p.parse_args(argv)
    return run_step(
        STEP,
        lambda: collect(
            a.course_dir, a.assignment, a.workspace, a.students or None, a.run_id, a.max_submission_mb, a.shard
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
