"""The malformed corpus through gradeflow: never below nbgrader, never above the honest score.

Scenario: the example course receives every case of tests/corpus/malformed/ (deleted,
duplicated and renamed grade cells, edited points and metadata, invalid JSON, an empty file,
wrong nbformat, a missing notebook, a 20 MB notebook, a too-new nbgrader schema), each with
the same partly right answers, next to the honest submissions of those answers. What
nbgrader gives each case and each honest submission is recorded in scores.json by
malformed_measure.py, and measured again here with real `nbgrader autograde`. gradeflow then grades
the course: every case is reported (repaired, with the cell and the reason, or skipped, with
the reason), and every grade cell scores at least nbgrader's and at most the honest score.
With --strict (no recovery) gradeflow scores every cell exactly as nbgrader did. The table
in docs/troubleshooting.md is the one these runs produce.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.local import GradeOptions, grade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "corpus" / "malformed"))
import malformed_build as build  # noqa: E402
import malformed_measure as measure  # noqa: E402

pytestmark = pytest.mark.slow
RECORDED = json.loads(measure.SCORES.read_text())

# case -> (notebook, status, words in the reason) with recovery (the default)
EXPECTED = {
    "deleted-test-cell": (
        "problems",
        "repaired",
        "cell 'test_word_counts' was deleted: put back from the assignment after 'word_counts'",
    ),
    "duplicated-grade-id": ("problems", "repaired", "cell 'test_fibonacci' appears 2 times"),
    "renamed-grade-id": ("problems", "repaired", "cell 'test_squares_v2' is the released cell 'test_squares'"),
    "edited-points": ("problems", "repaired", "points of cell 'test_squares' were edited"),
    "invalid-json": ("problems", "skipped", "not valid JSON"),
    "empty-file": ("problems", "skipped", "empty"),
    "wrong-nbformat": ("problems", "skipped", "nbformat version 5"),
    "missing-notebook": ("data_analysis", "missing", "was not submitted"),
    "very-large-notebook": ("problems", "ok", ""),
    "edited-nbgrader-metadata": ("problems", "repaired", "'solution' flag of cell 'test_squares' was edited"),
    "schema-version-too-new": ("problems", "repaired", "schema version 4"),
}
# the cell each repair names
REPAIRED_CELL = {
    "deleted-test-cell": "test_word_counts",
    "duplicated-grade-id": "test_fibonacci",
    "renamed-grade-id": "test_squares",
    "edited-points": "test_squares",
    "edited-nbgrader-metadata": "test_squares",
    "schema-version-too-new": "test_squares",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The example course with each case's malformed and honest submissions (do not modify)."""
    return measure.make_corpus_course(tmp_path_factory.mktemp("corpus") / "course", RECORDED["base"])


def _copy(corpus: tuple[Path, Any], dest: Path) -> Path:
    return Path(shutil.copytree(corpus[0], dest, symlinks=True))


def _per_cell(results: dict[str, Any], student: str) -> dict[str, dict[str, float]]:
    """gradeflow's auto score per notebook and grade cell (0 for what it did not grade)."""
    s = next(s for s in results["students"] if s["student"] == student)
    return {n["notebook"]: {c["cell"]: c["auto_score"] or 0.0 for c in n.get("cells", [])} for n in s["notebooks"]}


@pytest.fixture(scope="module")
def graded(corpus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    course = _copy(corpus, tmp_path_factory.mktemp("gradeflow") / "course")
    return grade(course, "ps1", GradeOptions(jobs=2))


@pytest.fixture(scope="module")
def graded_strict(corpus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    course = _copy(corpus, tmp_path_factory.mktemp("strict") / "course")
    return grade(course, "ps1", GradeOptions(jobs=2, strict=True, students=[m for m, _ in corpus[1].values()]))


def test_recorded_scores_are_what_nbgrader_autograde_gives(corpus, tmp_path: Path) -> None:
    course = _copy(corpus, tmp_path / "course")
    honest = {}
    for case, (m, h) in corpus[1].items():
        if h not in honest:
            honest[h] = measure.nbgrader_scores(course, h)
        assert honest[h] == RECORDED["cases"][case]["honest"], (case, "honest")
        assert measure.nbgrader_scores(course, m) == RECORDED["cases"][case]["nbgrader"], (case, "nbgrader")
    assert set(RECORDED["cases"]) == set(build.CASES)


def test_every_cell_scores_between_nbgrader_and_the_honest_score(corpus, graded) -> None:
    assert graded["counts"]["failed"] == 0
    for case, (m, h) in corpus[1].items():
        ours, rec = _per_cell(graded, m), RECORDED["cases"][case]
        honest_ours = _per_cell(graded, h)  # gradeflow grades the honest submission as nbgrader does
        assert {(nb, c): honest_ours.get(nb, {}).get(c, 0.0) for nb, cells in rec["honest"].items() for c in cells} == {
            (nb, c): v or 0.0 for nb, cells in rec["honest"].items() for c, v in cells.items()
        }, case
        for nb, cells in rec["honest"].items():
            for cell, honest in cells.items():
                theirs, got = rec["nbgrader"][nb][cell] or 0.0, ours.get(nb, {}).get(cell, 0.0)
                assert theirs <= got <= (honest or 0.0), (case, nb, cell, theirs, got, honest)


def test_every_case_is_reported_with_its_cell_and_reason(corpus, graded) -> None:
    run = Path(graded["run_dir"].removeprefix("file://"))
    summary = (run / "results" / "summary.txt").read_text()
    report = (run / "results" / "report.html").read_text()
    for case, (notebook, status, words) in EXPECTED.items():
        student = next(s for s in graded["students"] if s["student"] == corpus[1][case][0])
        entry = next(n for n in student["notebooks"] if n["notebook"] == notebook)
        assert entry["status"] == status, (case, entry)
        assert words in entry["reason"], (case, entry["reason"])
        if status == "repaired":
            cell = REPAIRED_CELL[case]
            assert any(r["cell"] == cell and words in r["reason"] for r in entry["repairs"]), (case, entry["repairs"])
            assert next(c for c in entry["cells"] if c["cell"] == cell)["repaired"], (case, "results.json cell")
            assert f"REPAIRED {student['student']} / {notebook}.ipynb: " in summary.replace("  ", " ")
            assert words.replace("'", "&#x27;") in report, (case, "report.html")


def test_strict_scores_every_cell_as_nbgrader_does(corpus, graded, graded_strict) -> None:
    for case, (m, _) in corpus[1].items():
        rec = RECORDED["cases"][case]["nbgrader"]
        ours = _per_cell(graded_strict, m)
        for nb, cells in rec.items():
            for cell, theirs in cells.items():
                assert ours.get(nb, {}).get(cell, 0.0) == (theirs or 0.0), (case, nb, cell)
    statuses = {s["student"]: {n["notebook"]: n["status"] for n in s["notebooks"]} for s in graded_strict["students"]}
    assert statuses["m-duplicated-grade-id"]["problems"] == "skipped"
    assert statuses["m-deleted-test-cell"]["problems"] == "ok"  # graded, the deleted cell 0: nbgrader's way


def test_the_table_in_troubleshooting_is_this_run(corpus, graded, graded_strict) -> None:
    docs = (ROOT / "docs" / "troubleshooting.md").read_text()
    table = measure.table(
        RECORDED,
        {c: _per_cell(graded, m) for c, (m, _) in corpus[1].items()},
        {c: _per_cell(graded_strict, m) for c, (m, _) in corpus[1].items()},
        {c: next(s for s in graded["students"] if s["student"] == m) for c, (m, _) in corpus[1].items()},
    )
    assert table in docs, "docs/troubleshooting.md's table is out of date; it should read:\n" + table
