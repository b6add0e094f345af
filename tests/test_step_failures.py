"""Per-submission failure containment in every step of the local chain, not only execute.

Scenario: a teacher grades three students, then one of them (s1) resubmits a fixed notebook and
the teacher regrades the class. This time gradeflow itself breaks on s1 in one step: restore
raises before it writes anything, or score raises after it has written its notebook and record.
The batch goes on: the other two are graded with the scores they have without the fault; s1 is
UNGRADED with a reason that names the step, its gradebook rows and autograded/ files are
untouched (they still hold the first, wrong submission); the run exits 75; and a plain rerun,
once the fault is gone, grades s1's new submission.

The fault is injected in the worker processes by a `sitecustomize` module (every Python process
of the run imports it, the forkserver and its workers included) that wraps the step's
`per_submission` function, the one the runner's chain calls (steps.workspace.per_submission).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from processes import gradeflow  # noqa: E402

import coursekit as ck  # noqa: E402
from conftest import require_sandbox, tree_digest  # noqa: E402

SITECUSTOMIZE = textwrap.dedent(
    """
    import os

    _fault = os.environ.get("GRADEFLOW_TEST_FAULT")  # "STEP:STUDENT:before" or "STEP:STUDENT:after"
    if _fault:
        import steps.workspace as _ws

        _step, _student, _when = _fault.split(":")
        _real = _ws.per_submission

        def per_submission(step):
            fn = _real(step)
            name = step if isinstance(step, str) else step.name
            if name != _step:
                return fn

            def faulty(ws, manifest, snapshot, student, opts):
                if student != _student:
                    return fn(ws, manifest, snapshot, student, opts)
                if _when == "after":
                    fn(ws, manifest, snapshot, student, opts)
                raise RuntimeError(f"injected fault in {name} for {student}")

            return faulty

        _ws.per_submission = per_submission
    """
)


def grade(course: Path, *args: str, fault: str = "", hook: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`gradeflow grade COURSE ps1 --json`; with `fault`, the hook's sitecustomize injects it."""
    env = {}
    if fault:
        assert hook is not None
        env["GRADEFLOW_TEST_FAULT"] = fault
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return gradeflow("grade", str(course), "ps1", "--json", "-q", "--jobs", "2", *args, env=env)


def student_rows(course: Path, student: str) -> list[tuple[Any, ...]]:
    """Every grade, comment and submission row of one student's ps1."""
    con = sqlite3.connect(course / "gradebook.db")
    try:
        rows: list[tuple[Any, ...]] = con.execute(
            "SELECT * FROM submitted_assignment WHERE student_id = ? ORDER BY id", (student,)
        ).fetchall()
        for table in ("grade", "comment"):
            rows += con.execute(
                f"SELECT t.* FROM {table} t JOIN submitted_notebook n ON t.notebook_id = n.id "
                "JOIN submitted_assignment a ON n.assignment_id = a.id WHERE a.student_id = ? ORDER BY t.id",
                (student,),
            ).fetchall()
        return rows
    finally:
        con.close()


def scores(results: dict[str, Any]) -> dict[str, float]:
    return {s["student"]: s["score"] for s in results["students"]}


@pytest.fixture(scope="module")
def graded(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """Three students graded once, cleanly; then s1 resubmits a correct notebook."""
    require_sandbox("bubblewrap")
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("graded") / "course")
    for student, source in (("s0", ck.CORRECT), ("s1", ck.WRONG), ("s2", ck.CORRECT)):
        ck.submit(course, student, {"squares": source})
    first = grade(course)
    assert first.returncode == 0, first.stdout + first.stderr
    clean = scores(json.loads(first.stdout))
    assert clean == {"s0": 2.0, "s1": 0.0, "s2": 2.0}
    ck.submit(course, "s1", {"squares": ck.CORRECT}, timestamp="2026-11-21 09:00:00.000000 UTC")
    return course, clean


@pytest.mark.parametrize("fault", ["restore:s1:before", "score:s1:after"])
def test_a_failing_step_leaves_only_its_submission_ungraded(
    graded: tuple[Path, dict[str, float]], tmp_path: Path, fault: str
) -> None:
    built, clean = graded
    course = ck.copy_course(built, tmp_path / "course")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    step = fault.split(":")[0]
    rows_before, files_before = student_rows(course, "s1"), tree_digest(course, ["autograded/s1"])
    assert rows_before

    run = grade(course, "--force", fault=fault, hook=hook)
    assert run.returncode == 75, run.stdout + run.stderr
    results = json.loads(run.stdout)
    by_student = {s["student"]: s for s in results["students"]}
    assert {s: by_student[s]["score"] for s in ("s0", "s2")} == {"s0": clean["s0"], "s2": clean["s2"]}
    assert by_student["s0"]["status"] == by_student["s2"]["status"] == "ok"
    s1 = by_student["s1"]
    assert s1["status"] == "ungraded", s1
    reason = s1["notebooks"][0]["reason"]
    assert f"gradeflow failed in {step}" in reason and "injected fault" in reason, reason
    assert results["counts"]["graded"] == 2 and results["counts"]["ungraded_submissions"] == 1
    # nothing written for s1: its rows and autograded/ files are those of the first (wrong) submission
    assert student_rows(course, "s1") == rows_before
    assert tree_digest(course, ["autograded/s1"]) == files_before
    # results.json is merge's one write, with the runner's facts in it
    on_disk = json.loads((Path(results["run_dir"]) / "results" / "results.json").read_text())
    assert on_disk["timings"] == results["timings"] and on_disk["jobs"] == 2 and on_disk["sandbox"] == "bubblewrap"

    # the fault gone, a plain rerun grades only what is left: s1's new, correct submission
    again = grade(course)
    assert again.returncode == 0, again.stdout + again.stderr
    assert scores(json.loads(again.stdout)) == {"s1": 2.0}
    assert student_rows(course, "s1") != rows_before


def test_the_step_functions_an_argo_pod_runs_contain_a_failure_to_its_submission(
    squares_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Argo pods' path (steps.cli.for_each_submission): restore raises for s1 and score for s2.
    Restore's fan-out leaves s1 out, score passes restore's UNGRADED on, s0 is graded and written,
    and the merge pod exits 75 with nothing of s1 or s2 in the gradebook."""
    from nbgrader.api import Gradebook

    import steps.restore
    import steps.score
    from steps.collect import collect
    from steps.contract import EXIT_INFRA
    from steps.execute import execute
    from steps.merge import main as merge_main
    from steps.restore import fan_out_items, restore
    from steps.sandbox import Limits
    from steps.score import score

    require_sandbox("bubblewrap")
    course = squares_course
    for student in ("s0", "s1", "s2"):
        ck.submit(course, student, {"squares": ck.CORRECT})
    ws = tmp_path / "ws"
    collect(course, "ps1", ws)

    def failing(real: Any, who: str) -> Any:
        def one(*args: Any, **kwargs: Any) -> Any:
            if args[3] == who:
                raise RuntimeError(f"injected fault for {who}")
            return real(*args, **kwargs)

        return one

    monkeypatch.setattr(steps.restore, "restore_submission", failing(steps.restore.restore_submission, "s1"))
    monkeypatch.setattr(steps.score, "score_submission", failing(steps.score.score_submission, "s2"))
    restored = restore(ws)
    assert [r.student for r in restored] == ["s0", "s1", "s2"]
    assert [item["student"] for item in fan_out_items(restored)] == ["s0", "s2"]  # s1 is not executed
    for student in ("s0", "s2"):
        execute(ws, student, "bubblewrap", Limits(wall_time=120))
    scored = {r.student: r for r in score(ws)}
    assert scored["s0"].notebooks[0].status == "ok"
    assert "gradeflow failed in restore" in scored["s1"].notebooks[0].reason
    assert "gradeflow failed in score" in scored["s2"].notebooks[0].reason
    assert scored["s1"].notebooks[0].status == scored["s2"].notebooks[0].status == "ungraded"

    assert merge_main(["--workspace", str(ws), "--course-dir", str(course)]) == EXIT_INFRA
    results = json.loads((ws / "results" / "results.json").read_text())
    assert {s["student"]: s["status"] for s in results["students"]} == {"s0": "ok", "s1": "ungraded", "s2": "ungraded"}
    assert {s["student"]: s["score"] for s in results["students"]}["s0"] == 2.0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert [s.student.id for s in gb.find_assignment("ps1").submissions] == ["s0"]
    assert not (course / "autograded" / "s1").exists() and not (course / "autograded" / "s2").exists()
    capsys.readouterr()
