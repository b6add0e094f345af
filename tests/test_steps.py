"""Each step through its own function, on a one-notebook course built by nbgrader.

Scenario: a teacher released `ps1` (a `squares` solution cell, a test cell with hidden tests,
a manually graded answer). Students submit correct, wrong and tampered notebooks; each step's
outputs are checked on their own: collect's manifest and snapshot, restore's repairs and
refusals, score's nbgrader grades, merge's gradebook rows and its rerun safety.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coursekit as ck  # noqa: E402
from steps.collect import collect  # noqa: E402
from steps.errors import TeacherError  # noqa: E402
from steps.merge import merge  # noqa: E402
from steps.records import Manifest, StepRecord  # noqa: E402
from steps.restore import restore  # noqa: E402
from steps.score import score  # noqa: E402


@pytest.fixture
def course(squares_course: Path) -> Path:
    return squares_course


def _record(ws: Path, step: str, student: str) -> StepRecord:
    name = {"restore": "restored", "execute": "executed", "score": "scored"}[step]
    return StepRecord.load(ws / name / student / f"{step}.json")


def test_collect_writes_manifest_and_a_snapshot_of_this_assignment_only(course: Path, tmp_path: Path) -> None:
    ck.submit(course, "alice", {"squares": ck.CORRECT}, extra_files={"notes.txt": "mine"})
    (course / "submitted" / "bob" / "ps1").mkdir(parents=True)
    (course / "submitted" / "bob" / "ps1" / "timestamp.txt").write_text(ck.TIMESTAMP)
    ws = tmp_path / "ws"
    m = collect(course, "ps1", ws)
    assert m.assignment == "ps1" and m.notebooks == ["squares"] and m.course_id == "test-course"
    alice, bob = m.submission("alice"), m.submission("bob")
    assert alice.notebooks == ["squares"] and alice.missing == [] and alice.timestamp.startswith("2026-11-20T10:00:00")
    assert bob.notebooks == [] and bob.missing == ["squares"]
    assert len(alice.content_hash) == 64 and alice.content_hash != bob.content_hash
    assert (ws / "submissions" / "alice" / "notes.txt").read_text() == "mine"
    snap = json.loads((ws / "snapshot.json").read_text())
    assert [nb["name"] for nb in snap["notebooks"]] == ["squares"]
    cells = {c["name"]: c for c in snap["notebooks"][0]["source_cells"]}
    assert "### BEGIN HIDDEN TESTS" in cells["test_squares"]["source"]  # hidden tests travel in the snapshot
    assert {c["name"]: c["max_score"] for c in snap["notebooks"][0]["grade_cells"]} == {
        "test_squares": 2.0,
        "explain": 1.0,
    }
    assert "students" not in json.dumps(snap) and "alice" not in json.dumps(snap)  # nothing of the students' rows


def test_collect_explains_a_missing_gradebook_and_an_unknown_assignment(course: Path, tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="known assignments: ps1"):
        collect(course, "ps9", tmp_path / "ws")
    (course / "gradebook.db").unlink()
    with pytest.raises(TeacherError, match="nbgrader generate_assignment ps1"):
        collect(course, "ps1", tmp_path / "ws2")


def _tampered(course: Path) -> None:
    """One submission per way of breaking a notebook."""
    ck.submit(course, "ok", {"squares": ck.CORRECT})
    ck.submit(course, "edited-test", {"squares": ck.CORRECT, "test_squares": "pass"})
    d = ck.submit(course, "edited-points", {"squares": ck.CORRECT})
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    nb.cells[2].metadata.nbgrader.points = 100
    nbformat.write(nb, str(d / "squares.ipynb"))
    d = ck.submit(course, "deleted-test", {"squares": ck.CORRECT})
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    del nb.cells[2]
    nbformat.write(nb, str(d / "squares.ipynb"))
    d = ck.submit(course, "duplicated", {"squares": ck.CORRECT})
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    nb.cells.append(nb.cells[2])
    nbformat.write(nb, str(d / "squares.ipynb"))
    d = ck.submit(course, "renamed", {"squares": ck.CORRECT})
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    nb.cells[2].metadata.nbgrader.grade_id = "my_test"
    nbformat.write(nb, str(d / "squares.ipynb"))
    d = ck.submit(course, "unflagged", {"squares": ck.CORRECT})
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    nb.cells[2].metadata.nbgrader.grade = False
    nbformat.write(nb, str(d / "squares.ipynb"))
    d = ck.submit(course, "invalid-json")
    (d / "squares.ipynb").write_text('{"cells": [')
    d = ck.submit(course, "empty")
    (d / "squares.ipynb").write_text("")
    d = ck.submit(course, "nbformat3")
    data = json.loads((d / "squares.ipynb").read_text())
    data["nbformat"] = 3
    (d / "squares.ipynb").write_text(json.dumps(data))
    d = ck.submit(course, "missing")
    (d / "squares.ipynb").unlink()


def test_restore_repairs_like_nbgrader_and_skips_what_it_cannot_grade_faithfully(
    course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI quiets nbgrader's shared "traitlets" logger; repairs must be reported regardless
    monkeypatch.setattr(logging.getLogger("traitlets"), "level", logging.ERROR)
    _tampered(course)
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    restore(ws)
    status = {s: _record(ws, "restore", s).notebooks[0] for s in ck.student_ids(course)}
    assert status["ok"].status == "ok"
    assert (
        status["edited-test"].status == "repaired"
        and "locked cell 'test_squares' was edited" in status["edited-test"].reason
    )
    assert (
        status["edited-points"].status == "repaired"
        and "points of cell 'test_squares'" in status["edited-points"].reason
    )
    restored = nbformat.read(str(ws / "restored" / "edited-test" / "work" / "squares.ipynb"), as_version=4)
    assert restored.cells[2].source == ck.TESTS  # the hidden tests are back, exactly
    repaired = {  # recovered: graded, the repair named per cell
        "deleted-test": ("test_squares", "deleted", "cell 'test_squares' was deleted: put back"),
        "duplicated": ("test_squares", "duplicate", "cell 'test_squares' appears 2 times"),
        "renamed": ("test_squares", "attributed", "cell 'my_test' is the released cell 'test_squares'"),
        "unflagged": ("test_squares", "metadata", "'grade' flag of cell 'test_squares' was edited"),
    }
    for student, (cell, kind, words) in repaired.items():
        o = status[student]
        assert o.status == "repaired" and words in o.reason, (student, o.reason)
        assert {"cell": cell, "repair": kind} in [{k: r[k] for k in ("cell", "repair")} for r in o.detail["repairs"]], (
            student,
            o.detail,
        )
        nb = nbformat.read(str(ws / "restored" / student / "work" / "squares.ipynb"), as_version=4)
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_squares"]
        assert len(tests) == 1 and tests[0].source == ck.TESTS and tests[0].metadata.nbgrader["points"] == 2.0, student
    reasons = {
        "invalid-json": "not valid JSON",
        "empty": "empty",
        "nbformat3": "nbformat version 3",
    }
    for student, words in reasons.items():
        assert status[student].status == "skipped", student
        assert words in status[student].reason, (student, status[student].reason)
        assert not (ws / "restored" / student / "work" / "squares.ipynb").exists()
    assert status["missing"].status == "missing"


def test_strict_restore_does_not_recover(course: Path, tmp_path: Path) -> None:
    _tampered(course)
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    restore(ws, strict=True)
    status = {s: _record(ws, "restore", s).notebooks[0] for s in ck.student_ids(course)}
    assert status["deleted-test"].status == "ok"  # graded as nbgrader grades it: the deleted cell scores 0
    reasons = {
        "duplicated": "grade cell 'test_squares' appears 2 times",
        "renamed": "cell 'my_test' is not a cell of this assignment",
        "unflagged": "'grade' flag changed",
    }
    for student, words in reasons.items():
        assert status[student].status == "skipped" and words in status[student].reason, (
            student,
            status[student].reason,
        )
    assert _record(ws, "restore", "ok").detail["strict"] is True


def test_restore_cli_takes_strict(course: Path, tmp_path: Path) -> None:
    from steps.restore import main

    ck.submit(course, "duplicated", {"squares": ck.CORRECT})
    d = course / "submitted" / "duplicated" / "ps1"
    nb = nbformat.read(str(d / "squares.ipynb"), as_version=4)
    nb.cells.append(nb.cells[2])
    nbformat.write(nb, str(d / "squares.ipynb"))
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    assert main(["--workspace", str(ws), "--strict", "true"]) == 0
    assert _record(ws, "restore", "duplicated").notebooks[0].status == "skipped"
    assert main(["--workspace", str(ws), "--strict", "false"]) == 0
    assert _record(ws, "restore", "duplicated").notebooks[0].status == "repaired"


def _execute_in_process(ws: Path, students: list[str]) -> None:
    from steps.execute import execute
    from steps.sandbox import Limits

    for s in students:
        execute(ws, s, "bubblewrap", Limits(wall_time=120))


def test_score_uses_nbgrader_rules_and_merge_writes_the_gradebook_safely_twice(course: Path, tmp_path: Path) -> None:
    from nbgrader.api import Gradebook

    ck.submit(course, "good", {"squares": ck.CORRECT, "explain": "Because."})
    ck.submit(course, "wrong", {"squares": "def squares(n):\n    return [1, 4, 9]"})  # passes visible, fails hidden
    ck.submit(course, "late", {"squares": ck.CORRECT}, timestamp="2026-12-24 10:00:00.000000 UTC")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment("ps1", duedate="2026-12-01 00:00:00 UTC")
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    restore(ws)
    _execute_in_process(ws, ["good", "wrong", "late"])
    score(ws)
    grades = {s: _record(ws, "score", s).detail["notebooks"]["squares"] for s in ("good", "wrong", "late")}
    cell = {s: {g["cell"]: g for g in grades[s]["grades"]} for s in grades}
    assert cell["good"]["test_squares"]["auto_score"] == 2.0
    assert cell["wrong"]["test_squares"]["auto_score"] == 0.0  # the hidden test failed
    assert cell["good"]["explain"]["needs_manual_grade"] is True  # a written answer needs a person
    assert grades["late"]["late_submission_penalty"] is None  # nbgrader's default plugin: no penalty
    assert _record(ws, "score", "late").detail["timestamp"].startswith("2026-12-24")

    results = merge(ws, course)
    results_again = merge(ws, course)
    assert results["counts"] == results_again["counts"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        subs = gb.find_assignment("ps1").submissions
        assert sorted(s.student.id for s in subs) == ["good", "late", "wrong"]  # no duplicate rows
        good = gb.find_submission("ps1", "good")
        assert good.code_score == 2.0 and good.needs_manual_grade
        assert gb.find_submission("ps1", "late").total_seconds_late > 0
    assert (course / "autograded" / "good" / "ps1" / "squares.ipynb").is_file()
    summary = (ws / "results" / "summary.txt").read_text()
    assert "3 submission(s), 3 graded" in summary
    csv = (ws / "results" / "grades.csv").read_text().splitlines()
    assert csv[0].startswith("assignment,student_id") and len(csv) == 4


def test_merge_keeps_a_graders_manual_score(course: Path, tmp_path: Path) -> None:
    from nbgrader.api import Gradebook

    ck.submit(course, "good", {"squares": ck.CORRECT})
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    restore(ws)
    _execute_in_process(ws, ["good"])
    score(ws)
    merge(ws, course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        g = gb.find_grade("test_squares", "squares", "ps1", "good")
        g.manual_score = 1.5
        gb.db.commit()
    merge(ws, course)  # an autograde rerun must not erase the grader's work; nbgrader flags it for review
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        g = gb.find_grade("test_squares", "squares", "ps1", "good")
        assert g.manual_score == 1.5 and g.auto_score == 2.0 and g.needs_manual_grade is True


def test_merge_cli_exits_75_when_a_submission_is_ungraded_after_writing_the_rest(
    course: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Argo merge pod: an UNGRADED submission (its execute never finished) makes the step exit
    75, so the run shows Failed and `gradeflow retry` reruns it; everything else is written."""
    from nbgrader.api import Gradebook

    from steps.contract import EXIT_INFRA, EXIT_OK
    from steps.merge import main

    ck.submit(course, "good", {"squares": ck.CORRECT})
    ck.submit(course, "crashed", {"squares": ck.CORRECT})
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)
    restore(ws)
    _execute_in_process(ws, ["good"])  # crashed's execute pod failed: no executed/crashed/
    score(ws)
    assert main(["--workspace", str(ws), "--course-dir", str(course)]) == EXIT_INFRA
    out, err = capsys.readouterr()
    assert "UNGRADED crashed / squares.ipynb" in out and "NOT GRADED: 1 notebook(s) of 1 submission(s)" in out
    assert "1 submission(s) not graded" in err and "gradeflow retry" in err and "Traceback" not in err
    results = json.loads((ws / "results" / "results.json").read_text())
    assert results["counts"]["ungraded_submissions"] == 1 and results["counts"]["graded"] == 1
    assert "UNGRADED crashed" in (ws / "results" / "summary.txt").read_text()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert [s.student.id for s in gb.find_assignment("ps1").submissions] == ["good"]  # nothing of crashed
    assert main(["--workspace", str(ws)]) == EXIT_INFRA  # the Argo pod: no course dir, same rule
    # `gradeflow retry`: the failed execute runs again, then score and merge
    _execute_in_process(ws, ["crashed"])
    score(ws)
    assert main(["--workspace", str(ws), "--course-dir", str(course)]) == EXIT_OK
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert sorted(s.student.id for s in gb.find_assignment("ps1").submissions) == ["crashed", "good"]


def test_manifest_round_trips() -> None:
    from steps.records import Submission

    m = Manifest("r1", "c", "ps1", ["a"], [Submission("s", ["a"], timestamp=None)])
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with pytest.raises(KeyError, match="collect again"):
        m.submission("nobody")
