"""The course the forgery corpus is graded in: one notebook, four test cells, 8 points.

`make_course(root, students)` builds it with nbgrader's real `generate_assignment` and submits
one notebook per student, with the `mean_answer` cell replaced by the student's source. The test
cells use what real tests use: `assert ==`, `math.isclose` (the test cell imports math itself),
`np.testing.assert_allclose` (numpy imported by the teacher's setup cell), `isinstance` and `abs`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import coursekit as ck  # noqa: E402

NOTEBOOK = "stats"
SOLUTION = "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"
TESTS = {
    "test_mean_assert": "assert mean([1, 2, 3]) == 2",
    "test_mean_isclose": "import math\nassert math.isclose(mean([1.0, 2.0]), 1.5)",
    "test_mean_numpy": "np.testing.assert_allclose(mean([2, 4]), 3)",
    "test_mean_type": "assert isinstance(mean([1, 3]), float)\nassert abs(mean([1, 3]) - 2) < 1e-9",
}
MAX_SCORE = 2.0 * len(TESTS)
WRONG = "def mean(xs):\n    return 0\n"  # every forgery starts from this wrong answer: the honest score is 0


def stats_notebook():
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    nb.cells = [
        new_markdown_cell("# Mean\nWrite `mean(xs)`.", metadata=ck._meta("intro", locked=True)),
        new_code_cell("import numpy as np", metadata=ck._meta("setup", locked=True)),
        new_code_cell(SOLUTION, metadata=ck._meta("mean_answer", solution=True)),
        *[new_code_cell(src, metadata=ck._meta(gid, grade=True, locked=True, points=2)) for gid, src in TESTS.items()],
    ]
    return nb


def make_course(
    root: Path, students: dict[str, str], extra_files: dict[str, dict[str, str]] | None = None, setup: str | None = None
) -> Path:
    """The course in root, with one submission per student ({student: source of mean_answer})."""
    nb = stats_notebook()
    if setup is not None:
        nb.cells[1].source = setup
    course = ck.build_course(root, {NOTEBOOK: nb})
    for student, source in students.items():
        ck.submit(
            course, student, {"mean_answer": source}, notebook=NOTEBOOK, extra_files=(extra_files or {}).get(student)
        )
    return course


CONTINUED = "#   "  # a header line that continues the value above (lines stay under 120 characters)


def load(folder: Path) -> dict[str, tuple[dict[str, str], str]]:
    """{student: (header, source without the header)} for every file of folder (see README.md)."""
    out = {}
    for path in sorted(folder.glob("[!_]*.py")):
        if path.name in ("forgery_course.py", "forgery_measure.py"):
            continue
        lines = path.read_text().splitlines()
        header: dict[str, str] = {}
        key = ""
        while lines and lines[0].startswith("# ") and (": " in lines[0] or (key and lines[0].startswith(CONTINUED))):
            line = lines.pop(0)
            if key and line.startswith(CONTINUED):  # a long value goes on over indented lines
                header[key] += " " + line[len(CONTINUED) :].strip()
                continue
            key, value = line[2:].split(": ", 1)
            header[key] = value
        out[path.stem.replace("_", "-")] = (header, "\n".join(lines) + "\n")
    return out
