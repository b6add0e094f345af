"""Grade the forgery corpus with real `nbgrader autograde` and record each technique's score.

    python tests/corpus/forgery/forgery_measure.py [--write]

Builds the corpus course (forgery_course.py) with one student per technique plus an honest wrong and
an honest correct answer, runs `nbgrader autograde`, and prints every student's automatic
score. With --write it records the score in each technique file's `# nbgrader:` header line.
tests/test_forgery.py re-measures and checks that the recorded scores still hold.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import forgery_course as cc  # noqa: E402
from parity import gradebook_grades, run_nbgrader  # noqa: E402

HONEST = {"honest-correct": "def mean(xs):\n    return sum(xs) / len(xs)\n", "honest-wrong": cc.WRONG}


def nbgrader_scores(root: Path, folder: Path = HERE) -> dict[str, float]:
    """{student: automatic points} from `nbgrader autograde` on the corpus in folder."""
    corpus = {s: text for s, (_, text) in cc.load(folder).items()}
    course = cc.make_course(root, {**HONEST, **corpus})
    run_nbgrader(course, "autograde", "ps1", "--force")
    scores: dict[str, float] = {}
    for (student, _, _), (auto, _, _) in gradebook_grades(course).items():
        scores[student] = scores.get(student, 0.0) + (auto or 0.0)
    return scores


def main() -> int:
    import nbgrader

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help="record the scores in the technique files")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scores = nbgrader_scores(Path(tmp) / "course")
    for student, score in sorted(scores.items()):
        print(f"{student:28} {score:g} of {cc.MAX_SCORE:g}")
        path = HERE / f"{student.replace('-', '_')}.py"
        if a.write and path.is_file():
            line = f"# nbgrader: {score:g} of {cc.MAX_SCORE:g} (measured: nbgrader {nbgrader.__version__} autograde)"
            path.write_text(re.sub(r"^# nbgrader: .*$", line, path.read_text(), count=1, flags=re.M))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
