"""Measure the malformed corpus with real `nbgrader autograde`: its score and the honest score.

For every case, two submissions of the same answers (the example course's *base* variant):
the malformed one (malformed_build.py) and the honest one (the same without the malformation). Each
is graded by nbgrader in its own `nbgrader autograde ps1 --student ID` run, because some
cases stop nbgrader's whole run. The result, per case and per grade cell, is the auto score
nbgrader gave each (None: nbgrader set none, which counts 0). scores.json beside this file is
what this script wrote; tests/test_malformed_corpus.py measures again and compares.

    python tests/corpus/malformed/malformed_measure.py [--base partial] [--cases a,b] [--write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import malformed_build as build  # noqa: E402

SCORES = HERE / "scores.json"
#: The answers every case carries: all right but fibonacci, whose large-n test fails (10 of 12
#: automatic points). So a grader that loses the deleted or renamed (passing) tests falls
#: below the honest score, and one that credits the copied (failing) test rises above it.
BASE = "imprecise-fibonacci"

Scores = dict[str, dict[str, float | None]]  # notebook -> grade cell -> auto score


def make_corpus_course(
    dest: Path, base: str = BASE, cases: list[str] | None = None
) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The example course with, per case, the malformed (`m-<case>`) and honest (`h-<case>`)
    submissions; returns the course and {case: (malformed student, honest student)}."""
    mc = build._make_course_module()
    course = mc.make_course(dest, variants=[])
    release = course / "release" / build.ASSIGNMENT
    students = {}
    for case in cases or list(build.CASES):
        m = f"m-{case}"
        h = "h-" + build.honest_kind(case)  # one honest student per kind of honest submission
        build.write_case(case, release, course / "submitted" / m / build.ASSIGNMENT, base=base)
        if not (course / "submitted" / h).exists():
            build.honest_submission(case, release, course / "submitted" / h / build.ASSIGNMENT, base=base)
        students[case] = (m, h)
    return course, students


def nbgrader_scores(course: Path, student: str) -> Scores:
    """Run `nbgrader autograde` for one student; the auto score of each grade cell it saved."""
    from nbgrader.api import Gradebook, MissingEntry

    mc = build._make_course_module()
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", build.ASSIGNMENT, "--student", student, "--force"],
        cwd=course,
        capture_output=True,
        text=True,
        env=mc.nbgrader_env(),
        timeout=900,
    )
    out: Scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for nb in gb.find_assignment(build.ASSIGNMENT).notebooks:
            out[nb.name] = {c.name: None for c in nb.grade_cells}
            try:
                snb = gb.find_submission_notebook(nb.name, build.ASSIGNMENT, student)
            except MissingEntry:  # nbgrader stopped before it created the submission
                continue
            for g in snb.grades:
                out[nb.name][g.name] = g.auto_score
    return out


def measure(base: str = BASE, cases: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gradeflow-malformed-") as tmp:
        course, students = make_corpus_course(Path(tmp) / "course", base, cases)
        honest = {h: nbgrader_scores(course, h) for h in sorted({h for _, h in students.values()})}
        return {
            "base": base,
            "cases": {
                case: {"nbgrader": nbgrader_scores(course, m), "honest": honest[h]} for case, (m, h) in students.items()
            },
        }


def total(scores: Scores) -> float:
    return sum(v or 0.0 for cells in scores.values() for v in cells.values())


def table(
    recorded: dict[str, Any],
    gradeflow: dict[str, Scores],
    strict: dict[str, Scores],
    students: dict[str, dict[str, Any]],
) -> str:
    """The corpus table of docs/troubleshooting.md: automatic points per case, of 12."""
    rows = [
        "| case | nbgrader | gradeflow | gradeflow `--strict` | honest score | gradeflow reports |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in recorded["cases"]:
        rec = recorded["cases"][case]
        said = (
            ", ".join(f"{n['notebook']}: {n['status']}" for n in students[case]["notebooks"] if n["status"] != "ok")
            or "ok"
        )
        rows.append(
            f"| `{case}` | {total(rec['nbgrader']):g} | {total(gradeflow[case]):g} | {total(strict[case]):g}"
            f" | {total(rec['honest']):g} | {said} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=BASE)
    ap.add_argument("--cases", default=None)
    ap.add_argument("--write", action="store_true", help=f"write {SCORES.name}")
    a = ap.parse_args(argv)
    result = measure(a.base, a.cases.split(",") if a.cases else None)
    for case, r in result["cases"].items():
        print(f"{case:26} nbgrader {total(r['nbgrader']):5.1f}  honest {total(r['honest']):5.1f}")
    if a.write:
        SCORES.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
