"""Generate malformed ps1 submissions from the example course's release notebooks.

Every case starts from a fully *correct* submission (see examples/make_course.py) and
breaks exactly one thing, so what nbgrader does with it shows in the score. The cases
and nbgrader 0.9.6's reaction to each are described in README.md beside this file.

    build_malformed(release_dir, dest_submitted)
        -> dest_submitted/<case>/ps1/{problems.ipynb, data_analysis.ipynb, data/, timestamp.txt}

Command line (writes into COURSE/submitted/, COURSE made by examples/make_course.py)::

    python tests/corpus/malformed/malformed_build.py COURSE [--cases a,b,...]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[3]
ASSIGNMENT = "ps1"
DEFAULT_TIMESTAMP = "2026-11-20 12:00:00.000000 UTC"  # before the example course's due date

#: case name -> what it breaks (nbgrader's reaction is in README.md)
CASES: dict[str, str] = {
    "deleted-test-cell": "problems.ipynb: the test_word_counts grade cell is deleted",
    "duplicated-grade-id": "problems.ipynb: test_fibonacci copied below itself, the copy edited to `assert True`",
    "renamed-grade-id": "problems.ipynb: test_squares's grade_id renamed to test_squares_v2",
    "edited-points": "problems.ipynb: test_squares's points changed from 1 to 100",
    "invalid-json": "problems.ipynb truncated in the middle (not JSON)",
    "empty-file": "problems.ipynb is a 0-byte file",
    "wrong-nbformat": "problems.ipynb claims nbformat 5; data_analysis.ipynb is saved as nbformat 3",
    "missing-notebook": "data_analysis.ipynb not submitted",
    "very-large-notebook": "problems.ipynb carries ~20 MB of stream output in one cell",
    "edited-nbgrader-metadata": "problems.ipynb: test_squares's `solution` flag flipped to true",
    "schema-version-too-new": "problems.ipynb: test_squares's metadata claims schema_version 4",
}

LARGE_OUTPUT_BYTES = 20 * 1024 * 1024


def _make_course_module():
    name = "gradeflow_example_make_course"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "make_course.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _cell(nb, grade_id):
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return i, cell
    raise KeyError(grade_id)


def _deleted_test_cell(nb):
    i, _ = _cell(nb, "test_word_counts")
    del nb.cells[i]


def _duplicated_grade_id(nb):
    i, cell = _cell(nb, "test_fibonacci")
    dup = copy.deepcopy(cell)
    dup["id"] = "test_fibonacci-copy"
    dup.source = "assert True  # my copy of the test"
    nb.cells.insert(i + 1, dup)


def _renamed_grade_id(nb):
    _cell(nb, "test_squares")[1].metadata.nbgrader["grade_id"] = "test_squares_v2"


def _edited_points(nb):
    _cell(nb, "test_squares")[1].metadata.nbgrader["points"] = 100


def _edited_nbgrader_metadata(nb):
    _cell(nb, "test_squares")[1].metadata.nbgrader["solution"] = True


def _schema_too_new(nb):
    _cell(nb, "test_squares")[1].metadata.nbgrader["schema_version"] = 4


def _very_large(nb):
    line = "progress: " + "#" * 89 + "\n"  # 100 bytes
    n = LARGE_OUTPUT_BYTES // len(line)
    for cell in nb.cells:
        if cell.get("id") == "task_work":
            cell.execution_count = 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=line * n)]
            return
    raise KeyError("task_work")


_PROBLEMS_EDITS = {
    "deleted-test-cell": _deleted_test_cell,
    "duplicated-grade-id": _duplicated_grade_id,
    "renamed-grade-id": _renamed_grade_id,
    "edited-points": _edited_points,
    "edited-nbgrader-metadata": _edited_nbgrader_metadata,
    "very-large-notebook": _very_large,
    "schema-version-too-new": _schema_too_new,
}


def write_case(
    name: str, release_dir: Path, dest: Path, timestamp: str = DEFAULT_TIMESTAMP, base: str = "correct"
) -> Path:
    """Write malformed submission *name* into *dest* (= .../<student>/ps1).

    *base* is the example course's variant whose answers the submission carries (default
    all correct); `honest_submission` writes the same answers without the malformation."""
    if name not in CASES:
        raise ValueError(f"unknown malformed case {name!r}; known: {sorted(CASES)}")
    mc = _make_course_module()
    release_dir, dest = Path(release_dir), Path(dest)
    # start from a correct submission, with the data files and nbgrader's layout
    mc.write_submission(release_dir, dest, base, mc.DUE_DATE)
    if name == "missing-notebook":
        (dest / "data_analysis.ipynb").unlink()
    (dest / "timestamp.txt").write_text(timestamp)

    problems = dest / "problems.ipynb"
    if name in _PROBLEMS_EDITS:
        nb = nbformat.read(problems, as_version=4)
        _PROBLEMS_EDITS[name](nb)
        # nbformat.write would refuse some of these (e.g. schema checks are not
        # nbformat's business, but keep the writer out of the way anyway)
        problems.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    elif name == "invalid-json":
        text = problems.read_text()
        problems.write_text(text[: len(text) // 2])
    elif name == "empty-file":
        problems.write_bytes(b"")
    elif name == "wrong-nbformat":
        raw = json.loads(problems.read_text())
        raw["nbformat"], raw["nbformat_minor"] = 5, 0
        problems.write_text(json.dumps(raw, indent=1, sort_keys=True) + "\n")
        da = dest / "data_analysis.ipynb"
        nb3 = nbformat.convert(nbformat.read(da, as_version=4), 3)
        da.write_text(nbformat.writes(nb3, version=3) + "\n")
    return dest


def honest_kind(name: str) -> str:
    """Which honest submission case *name* is compared with: "base" or "missing-notebook"."""
    return "missing-notebook" if name == "missing-notebook" else "base"


def honest_submission(
    name: str, release_dir: Path, dest: Path, timestamp: str = DEFAULT_TIMESTAMP, base: str = "correct"
) -> Path:
    """The submission case *name* breaks, unbroken: the same answers (*base*), what an honest
    student hands in. Not submitting a notebook is no malformation, so missing-notebook's
    honest submission lacks it too."""
    mc = _make_course_module()
    dest = Path(dest)
    mc.write_submission(Path(release_dir), dest, base, mc.DUE_DATE)
    (dest / "timestamp.txt").write_text(timestamp)
    if honest_kind(name) == "missing-notebook":
        (dest / "data_analysis.ipynb").unlink()
    return dest


def build_malformed(
    release_dir: Path,
    dest_submitted: Path,
    cases: list[str] | None = None,
    timestamp: str = DEFAULT_TIMESTAMP,
    base: str = "correct",
) -> list[Path]:
    """Write every case (or *cases*) as ``dest_submitted/<case>/ps1/``; return those dirs."""
    out = []
    for name in cases if cases is not None else list(CASES):
        out.append(
            write_case(
                name, Path(release_dir), Path(dest_submitted) / name / ASSIGNMENT, timestamp=timestamp, base=base
            )
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write malformed ps1 submissions into COURSE/submitted/.")
    ap.add_argument("course", type=Path, help="a course made by examples/make_course.py")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c] if args.cases else None
    for d in build_malformed(args.course / "release" / ASSIGNMENT, args.course / "submitted", cases):
        print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
