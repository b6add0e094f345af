"""Parity with `nbgrader autograde`: build a course, grade it both ways, compare gradebooks.

Used by the parity tests and by `bench/bench.py` (whose runs must give nbgrader's grades). The
peer corpus is nbgrader's own test notebooks, shipped in its wheel under
`nbgrader/tests/apps/files/`, paired the way nbgrader's own autograde tests pair them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbgrader

from steps.preprocessors import RECOVERY_REPAIRS

FILES = Path(nbgrader.__file__).parent / "tests" / "apps" / "files"
TIMESTAMP = "2026-11-20 10:00:00.000000 UTC"

# course name -> (source notebooks {name: file}, submissions {student: {name: file}}, extra config)
# Pairings follow nbgrader/tests/apps/test_nbgrader_autograde.py.
PEER_CORPUS: dict[str, tuple[dict[str, str], dict[str, dict[str, str]], str]] = {
    "basic": (
        {"p1": "submitted-unchanged.ipynb"},
        {
            "unchanged": {"p1": "submitted-unchanged.ipynb"},
            "changed": {"p1": "submitted-changed.ipynb"},
            "cheat": {"p1": "submitted-cheat-attempt.ipynb"},
            "cheat-alt": {"p1": "submitted-cheat-attempt-alternative.ipynb"},
            "locked-changed": {"p1": "submitted-locked-cell-changed.ipynb"},
            "grade-changed": {"p1": "submitted-grade-cell-changed.ipynb"},
            "with-output": {"p1": "test-with-output.ipynb"},
        },
        "",
    ),
    "two-notebooks": (
        {"p1": "submitted-unchanged.ipynb", "p2": "submitted-unchanged.ipynb"},
        {
            "both": {"p1": "submitted-changed.ipynb", "p2": "submitted-unchanged.ipynb"},
            "only-p1": {"p1": "submitted-changed.ipynb"},
        },
        "",
    ),
    "autotest-simple": (
        {"p1": "autotest-simple.ipynb"},
        {"unchanged": {"p1": "autotest-simple-unchanged.ipynb"}, "changed": {"p1": "autotest-simple-changed.ipynb"}},
        "",
    ),
    "autotest-multi": (
        {"p1": "autotest-multi.ipynb"},
        {"unchanged": {"p1": "autotest-multi-unchanged.ipynb"}, "changed": {"p1": "autotest-multi-changed.ipynb"}},
        "",
    ),
    "autotest-hidden": (
        {"p1": "autotest-hidden.ipynb"},
        {
            "unchanged": {"p1": "autotest-hidden-unchanged.ipynb"},
            "wrong": {"p1": "autotest-hidden-changed-wrong.ipynb"},
            "right": {"p1": "autotest-hidden-changed-right.ipynb"},
        },
        "",
    ),
    "autotest-hashed": (
        {"p1": "autotest-hashed.ipynb"},
        {"unchanged": {"p1": "autotest-hashed-unchanged.ipynb"}, "changed": {"p1": "autotest-hashed-changed.ipynb"}},
        "",
    ),
    "environment": (
        {"p1": "validating-environment-variable.ipynb"},
        {"student": {"p1": "validating-environment-variable.ipynb"}},
        "",
    ),
    "side-effects": ({"p1": "side-effects.ipynb"}, {"student": {"p1": "side-effects.ipynb"}}, ""),
    "timeouts": (
        {"p1": "timeout.ipynb"},
        {"student": {"p1": "timeout.ipynb"}},
        "c.Execute.timeout = 4\n",
    ),
    "infinite-loops": (
        {"p1": "infinite-loop.ipynb", "p2": "infinite-loop-with-output.ipynb"},
        {"student": {"p1": "infinite-loop.ipynb", "p2": "infinite-loop-with-output.ipynb"}},
        "c.Execute.timeout = 4\n",
    ),
}

Key = tuple[str, str, str]  # student, notebook, cell


def make_peer_course(root: Path, name: str) -> Path:
    """Create one course of the peer corpus, with its gradebook, in root/name."""
    sources, submissions, config = PEER_CORPUS[name]
    course = root / name
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'peer-{name}'\n{config}"
    )
    shutil.copy(FILES / "autotests.yml", course / "autotests.yml")
    shutil.copy(FILES / "data.txt", course / "source" / "ps1" / "data.txt")
    for nb, src in sources.items():
        shutil.copy(FILES / src, course / "source" / "ps1" / f"{nb}.ipynb")
    run_nbgrader(course, "generate_assignment", "ps1", "--create", "--force")
    for student, nbs in submissions.items():
        d = course / "submitted" / student / "ps1"
        d.mkdir(parents=True)
        (d / "timestamp.txt").write_text(TIMESTAMP)
        for nb, src in nbs.items():
            shutil.copy(FILES / src, d / f"{nb}.ipynb")
    return course


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0 and args[0] != "autograde":  # autograde exits 1 when any student failed
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def gradebook_grades(course: Path, assignment: str = "ps1") -> dict[Key, tuple[float | None, float, bool]]:
    """(auto_score, max_score, needs_manual_grade) per student, notebook and grade cell, read from
    the course's own gradebook (gradebook.db or whatever database its db_url names)."""
    from nbgrader.api import Gradebook

    from steps.course import open_course

    out: dict[Key, tuple[float | None, float, bool]] = {}
    with Gradebook(open_course(course)[1].db_url) as gb:
        for sub in gb.find_assignment(assignment).submissions:
            for nb in sub.notebooks:
                for g in nb.grades:
                    out[(sub.student.id, nb.name, g.name)] = (g.auto_score, g.max_score, g.needs_manual_grade)
    return out


@dataclass
class Parity:
    identical: list[Key] = field(default_factory=list)
    different: list[tuple[Key, Any, Any]] = field(default_factory=list)
    skipped_not_above: list[Key] = field(default_factory=list)  # gradeflow skipped it; score <= nbgrader's
    skipped_above: list[Key] = field(default_factory=list)  # must stay empty
    withheld: list[Key] = field(
        default_factory=list
    )  # a TAMPERED notebook's test cell: no automatic credit, needs manual grade
    recovered_not_below: list[Key] = field(
        default_factory=list
    )  # gradeflow recovered a notebook nbgrader could not grade
    recovered_below: list[Key] = field(default_factory=list)  # must stay empty

    def line(self) -> str:
        return (
            f"{len(self.identical)} identical, {len(self.different)} different,"
            f" {len(self.skipped_not_above)} skipped (score <= nbgrader), "
            f"{len(self.skipped_above)} skipped above nbgrader,"
            f" {len(self.recovered_not_below)} recovered (score >= nbgrader),"
            f" {len(self.recovered_below)} recovered below nbgrader, "
            f"{len(self.withheld)} withheld (tampered)"
        )


def compare(nbgrader_course: Path, gradeflow_course: Path, results: dict[str, Any]) -> Parity:
    """Compare per cell; where gradeflow skipped or failed a notebook, only require score <= nbgrader's."""
    ours, theirs = gradebook_grades(gradeflow_course), gradebook_grades(nbgrader_course)
    not_graded = {
        (s["student"], n["notebook"])
        for s in results["students"]
        for n in s["notebooks"]
        if n["status"] in ("skipped", "failed")
    }
    tampered = {
        (s["student"], n["notebook"]) for s in results["students"] for n in s["notebooks"] if n["status"] == "tampered"
    }
    # notebooks gradeflow's recovery repaired (steps.preprocessors): nbgrader gave up on them
    recovered = {
        (s["student"], n["notebook"])
        for s in results["students"]
        for n in s["notebooks"]
        if any(r["repair"] in RECOVERY_REPAIRS for r in n.get("repairs", []))
    }
    p = Parity()
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if (key[0], key[1]) in tampered and a and a[0] == 0 and a[2] and b and not b[2]:
            p.withheld.append(key)  # gradeflow's integrity check withheld it: 0, needs manual grade
        elif (key[0], key[1]) in recovered:
            (
                p.recovered_not_below if ((a[0] if a else 0) or 0) >= ((b[0] if b else 0) or 0) else p.recovered_below
            ).append(key)
        elif (key[0], key[1]) in not_graded:
            (p.skipped_not_above if (a[0] or 0) <= ((b[0] if b else 0) or 0) else p.skipped_above).append(key)
        elif a == b:
            p.identical.append(key)
        else:
            p.different.append((key, a, b))
    return p
