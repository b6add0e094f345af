"""Scores equal `nbgrader autograde`'s, cell by cell, on two corpora.

Scenario: the same course is graded twice, once by the real `nbgrader autograde ps1 --force`
and once by `gradeflow grade` (bubblewrap sandbox, 2 jobs). For every student, notebook and
grade cell, (auto_score, max_score, needs_manual_grade) must be identical. Where gradeflow
refuses a notebook (malformed) it must say why and never give more than nbgrader did; where
it recovers one nbgrader gave up on (steps.preprocessors), it must never give less. Where
its integrity check finds that student code changed how the tests run (nbgrader's own cheat
attempts replace `showtraceback`), the affected test cells get 0 and need a manual grade.
Corpus 1 is nbgrader's own test notebooks (shipped in its wheel), paired as nbgrader's own
autograde tests pair them; corpus 2 is gradeflow's example course.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import parity  # noqa: E402
from pipelines.local import GradeOptions, grade  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _both_ways(course: Path, tmp_path: Path) -> tuple[parity.Parity, dict]:
    ours = tmp_path / "gradeflow"
    shutil.copytree(course, ours)
    proc = parity.run_nbgrader(course, "autograde", "ps1", "--force")
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    results = grade(ours, "ps1", GradeOptions(jobs=2))
    return parity.compare(course, ours, results), results


@pytest.mark.parametrize("name", sorted(parity.PEER_CORPUS))
def test_peer_corpus_matches_nbgrader(name: str, tmp_path: Path) -> None:
    course = parity.make_peer_course(tmp_path / "nbgrader", name)
    p, results = _both_ways(course, tmp_path)
    print(f"parity {name}: {p.line()}")
    assert not p.different, p.different
    assert not p.skipped_above, p.skipped_above
    assert not p.recovered_below, p.recovered_below  # recovery never scores below nbgrader
    for s in results["students"]:
        for n in s["notebooks"]:
            assert n["status"] == "ok" or n["reason"], (s["student"], n)
    if name != "infinite-loops":
        assert results["counts"]["failed"] == 0
    # nbgrader's own cheat attempts replace InteractiveShell.showtraceback: gradeflow's integrity
    # check withholds their test cells (0, needs manual grade); everything else is identical
    tampered = {s["student"] for s in results["students"] if s["status"] == "tampered"}
    assert tampered == ({"cheat", "cheat-alt"} if name == "basic" else set())
    assert {k[0] for k in p.withheld} == tampered
    # A loop that prints forever can fill the kernel's memory limit with queued output before the
    # timeout interrupt lands (nbgrader runs without a memory limit). Then the notebook is reported
    # failed with a reason, scored 0 and flagged for manual grading: never above nbgrader.


def _example_module():
    spec = importlib.util.spec_from_file_location("make_course", ROOT / "examples" / "make_course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_course_matches_nbgrader(tmp_path: Path) -> None:
    course = _example_module().make_course(tmp_path / "nbgrader" / "course")
    p, results = _both_ways(course, tmp_path)
    print(f"parity example course: {p.line()}")
    assert not p.different, p.different
    assert not p.skipped_above and not p.recovered_below
    assert len(p.identical) >= 10
