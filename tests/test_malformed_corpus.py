"""The malformed corpus through gradeflow: each case reported with its reason, none over-scored.

Scenario: the example course receives every case of tests/corpus/malformed/ (deleted,
duplicated and renamed grade cells, edited points and metadata, invalid JSON, an empty file,
wrong nbformat, a missing notebook, a 20 MB notebook, a too-new nbgrader schema) next to one
correct student. The run completes; each case gets the status and reason below; no malformed
notebook scores more than the correct student's same notebook (nbgrader's best case).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pipelines.local import GradeOptions, grade

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

# case -> (notebook, status, words in the reason)
EXPECTED = {
    "deleted-test-cell": ("problems", "skipped", "was deleted"),
    "duplicated-grade-id": ("problems", "skipped", "appears 2 times"),
    "renamed-grade-id": ("problems", "skipped", "not a cell of this assignment"),
    "edited-points": ("problems", "repaired", "points of cell 'test_squares' were edited"),
    "invalid-json": ("problems", "skipped", "not valid JSON"),
    "empty-file": ("problems", "skipped", "empty"),
    "wrong-nbformat": ("problems", "skipped", "nbformat version 5"),
    "missing-notebook": ("data_analysis", "missing", "was not submitted"),
    "very-large-notebook": ("problems", "ok", ""),
    "edited-nbgrader-metadata": ("problems", "skipped", "'solution' flag changed"),
    "schema-version-too-new": ("problems", "skipped", "nbgrader could not validate"),
}


def test_every_malformed_case_is_reported_and_never_over_scored(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_course", ROOT / "examples" / "make_course.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    course = mc.make_course(tmp_path / "course", variants=["correct", *EXPECTED])
    results = grade(course, "ps1", GradeOptions(jobs=2))

    students = {s["student"]: s for s in results["students"]}
    correct = next(s for k, s in students.items() if k.endswith("-correct"))
    best = {n["notebook"]: n.get("score", 0.0) for n in correct["notebooks"]}
    assert results["counts"]["failed"] == 0
    for case, (notebook, status, words) in EXPECTED.items():
        student = next(s for k, s in students.items() if k.endswith(case))
        entry = next(n for n in student["notebooks"] if n["notebook"] == notebook)
        assert entry["status"] == status, (case, entry)
        assert words in entry["reason"], (case, entry["reason"])
        for n in student["notebooks"]:
            assert n.get("score", 0.0) <= best[n["notebook"]], (case, n)
