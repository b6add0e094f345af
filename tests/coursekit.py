"""Tiny nbgrader courses for tests, built with nbgrader's real `generate_assignment`.

`squares_course(root)` makes a one-notebook assignment (a solution cell, a test cell with
hidden tests, a manually graded answer) whose gradebook comes from nbgrader itself; `submit`
writes a student's submission from the release notebook with chosen cell sources replaced.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

TIMESTAMP = "2026-11-20 10:00:00.000000 UTC"
SOLUTION = "def squares(n):\n    ### BEGIN SOLUTION\n    return [i * i for i in range(1, n + 1)]\n    ### END SOLUTION"
TESTS = "assert squares(3) == [1, 4, 9]\n### BEGIN HIDDEN TESTS\nassert squares(1) == [1]\n### END HIDDEN TESTS"
CORRECT = "def squares(n):\n    return [i * i for i in range(1, n + 1)]"
WRONG = "def squares(n):\n    return []"
RAISES = "def squares(n):\n    raise RuntimeError('not done yet')"
KILLS_ITS_KERNEL = "def squares(n):\n    import os\n    os._exit(3)"  # the kernel dies when the test cell calls it


def _meta(
    grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False, points: float | None = None
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def squares_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    nb.cells = [
        new_markdown_cell("# Squares\nWrite `squares(n)`.", metadata=_meta("intro", locked=True)),
        new_code_cell(SOLUTION, metadata=_meta("squares", solution=True)),
        new_code_cell(TESTS, metadata=_meta("test_squares", grade=True, locked=True, points=2)),
        new_markdown_cell("YOUR ANSWER HERE", metadata=_meta("explain", grade=True, solution=True, points=1)),
    ]
    return nb


def build_course(
    root: Path,
    notebooks: dict[str, nbformat.NotebookNode],
    config: str = "",
    data: dict[str, str] | None = None,
    assignment: str = "ps1",
) -> Path:
    """A course dir with source/<assignment>/ and a gradebook made by nbgrader generate_assignment."""
    course = root
    src = course / "source" / assignment
    src.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'test-course'\n{config}"
    )
    for name, nb in notebooks.items():
        nbformat.write(nb, str(src / f"{name}.ipynb"))
    for rel, text in (data or {}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--create", "--force"],
        cwd=course,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return course


def squares_course(root: Path, config: str = "") -> Path:
    return build_course(root, {"squares": squares_notebook()}, config)


def submit(
    course: Path,
    student: str,
    sources: dict[str, str] | None = None,
    notebook: str = "squares",
    assignment: str = "ps1",
    timestamp: str = TIMESTAMP,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Submit the release notebook with the cells named in `sources` (grade_id -> source) replaced."""
    nb = nbformat.read(str(course / "release" / assignment / f"{notebook}.ipynb"), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if sources and gid in sources:
            cell.source = sources[gid]
    d = course / "submitted" / student / assignment
    d.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(d / f"{notebook}.ipynb"))
    (d / "timestamp.txt").write_text(timestamp)
    for rel, text in (extra_files or {}).items():
        (d / rel).write_text(text)
    return d


def copy_course(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def student_ids(course: Path, assignment: str = "ps1") -> Iterable[str]:
    return sorted(p.name for p in (course / "submitted").iterdir() if (p / assignment).is_dir())


def submit_kinds(course: Path, kinds: Iterable[str]) -> Path:
    """Submit one student per kind, named after it: `good` (correct), `wrong` (wrong answer),
    `raises` (an exception), `crash` (kills its kernel: failed), `broken` (invalid JSON: skipped)."""
    sources = {"good": CORRECT, "wrong": WRONG, "raises": RAISES, "crash": KILLS_ITS_KERNEL, "broken": CORRECT}
    for kind in kinds:
        folder = submit(course, kind, {"squares": sources[kind]})
        if kind == "broken":
            (folder / "squares.ipynb").write_text("{ not json")
    return course


def alice_and_bob(course: Path) -> Path:
    """The two-student class of the Argo tests: alice is correct, bob's solution raises."""
    submit(course, "alice", {"squares": CORRECT})
    submit(course, "bob", {"squares": RAISES})
    return course
