"""score: grade every cell of the executed notebooks with nbgrader's own rules.

Runs the part of `nbgrader autograde`'s preprocessor list that comes after execution
(by default IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
AssignLatePenalties, CheckCellMetadata; the course's own list when it sets one, see
steps/nbgrader_pipeline.py) against a scratch gradebook built from the snapshot, then reads the grades
back out as JSON. So partial credit, checksums of unchanged answers, needs-manual-grade and
late penalties are nbgrader's, computed without the real gradebook. A test cell that execute's
integrity probe found tampered with (steps/integrity.py) gets an error output saying why, so
nbgrader's rules give it 0, and needs a manual grade; its notebook is TAMPERED. Before grading it checks
that the executed notebook still has the restored cells: a kernel that rewrote its own
notebook file (possible where papermill runs inside the sandbox) is not graded.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import nbformat

from .cli import each_submission, step_main
from .contract import STEPS
from .integrity import flag_for_review, withhold_credit
from .nbgrader_pipeline import run_preprocessors, score_preprocessors
from .records import MISSING, OK, SKIPPED, TAMPERED, UNGRADED, Manifest, NotebookOutcome, StepRecord
from .snapshot import scratch_gradebook
from .workspace import SubmissionOptions, Workspace

__all__ = ["score", "score_submission", "per_submission", "main", "read_grades"]

STEP = STEPS["score"]


def read_grades(gb: Any, assignment: str, notebook: str, student: str) -> dict[str, Any]:
    """One submitted notebook's grades, comments and late penalty, read from a Gradebook."""
    snb = gb.find_submission_notebook(notebook, assignment, student)
    return {
        "grades": [
            {
                "cell": g.name,
                "auto_score": g.auto_score,
                "manual_score": g.manual_score,
                "score": g.score,
                "max_score": g.max_score,
                "needs_manual_grade": g.needs_manual_grade,
            }
            for g in sorted(snb.grades, key=lambda g: g.name)
        ],
        "comments": {c.name: c.auto_comment for c in sorted(snb.comments, key=lambda c: c.name)},
        "late_submission_penalty": snb.late_submission_penalty,
        "score": snb.score,
        "max_score": snb.max_score,
    }


def _cells_unchanged(restored: Any, executed: Any) -> str:
    """'' when the executed notebook has the restored cells, else what changed."""
    if len(restored.cells) != len(executed.cells):
        return f"it has {len(executed.cells)} cells instead of {len(restored.cells)}"
    for i, (a, b) in enumerate(zip(restored.cells, executed.cells)):
        if (
            a.cell_type != b.cell_type
            or a.source != b.source
            or a.metadata.get("nbgrader") != b.metadata.get("nbgrader")
        ):
            return f"cell {i} was changed"
    return ""


def _strip_papermill(nb: Any) -> Any:
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
    return nb


def score_submission(
    workspace: Path, manifest: Manifest, snapshot: dict[str, Any], student: str, scratch: Path
) -> StepRecord:
    """Score one submission into `scored/<student>/`: graded notebooks and score.json."""
    from nbgrader.api import Gradebook

    start = time.monotonic()
    sub = manifest.submission(student)
    ws = Workspace(workspace)
    executed_dir, out = ws.executed(student), ws.scored(student)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    restore_rec = StepRecord.load(ws.record("restore", student))
    exec_path = ws.record("execute", student)
    exec_rec = StepRecord.load(exec_path) if exec_path.is_file() else None
    db_url = scratch_gradebook(snapshot, scratch)
    with Gradebook(db_url) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(
            manifest.assignment, student, **({"timestamp": sub.timestamp} if sub.timestamp else {})
        )
    record = StepRecord("score", student, detail={"timestamp": sub.timestamp, "notebooks": {}})
    config = snapshot.get("config", {})
    score_preprocessors(
        config
    )  # a preprocessor the course names but gradeflow cannot import is the teacher's to fix, not a skip
    for name in manifest.notebooks:
        r = restore_rec.outcome(name)
        e = exec_rec.outcome(name) if exec_rec else None
        if r is None or r.status in (MISSING, SKIPPED, UNGRADED):  # UNGRADED: restore failed on it
            record.notebooks.append(
                NotebookOutcome(name, r.status if r else MISSING, r.reason if r else "not restored")
            )
            continue
        if e is None:
            record.notebooks.append(
                NotebookOutcome(
                    name,
                    UNGRADED,
                    "not executed (the execute step did not finish for this submission): nothing written; run again",
                )
            )
            continue
        if e.status != OK:
            record.notebooks.append(NotebookOutcome(name, e.status, e.reason))
            continue
        executed = nbformat.read(str(executed_dir / f"{name}.ipynb"), as_version=4)
        changed = _cells_unchanged(nbformat.read(str(ws.work(student) / f"{name}.ipynb"), as_version=4), executed)
        if changed:
            record.notebooks.append(
                NotebookOutcome(name, SKIPPED, f"the notebook was modified while it ran ({changed}): not graded")
            )
            continue
        tampered, why = withhold_credit(executed, e.detail.get("integrity") or {})
        resources = {
            "nbgrader": {"student": student, "assignment": manifest.assignment, "notebook": name, "db_url": db_url}
        }
        try:
            graded = run_preprocessors(score_preprocessors(config), _strip_papermill(executed), resources)[0]
        except Exception as ex:  # noqa: BLE001 - nbgrader's validation of the executed notebook
            record.notebooks.append(
                NotebookOutcome(
                    name,
                    SKIPPED,
                    "nbgrader could not grade the executed notebook: "
                    f"{str(ex).splitlines()[0] if str(ex) else type(ex).__name__}",
                )
            )
            continue
        nbformat.write(graded, str(out / f"{name}.ipynb"), version=4)
        flag_for_review(db_url, manifest.assignment, name, student, tampered)
        with Gradebook(db_url) as gb:
            record.detail["notebooks"][name] = read_grades(gb, manifest.assignment, name, student)
        repairs = {"repairs": r.detail.get("repairs", [])} if r.detail.get("repairs") else {}
        if tampered:
            record.notebooks.append(
                NotebookOutcome(name, TAMPERED, why, list(r.changes), {"tampered_cells": tampered, **repairs})
            )
        else:
            record.notebooks.append(NotebookOutcome(name, r.status, r.reason, list(r.changes), repairs))
    record.seconds = round(time.monotonic() - start, 3)
    record.save(ws.record(STEP, student))
    return record


def per_submission(
    ws: Workspace, manifest: Manifest, snapshot: dict[str, Any], student: str, opts: SubmissionOptions
) -> StepRecord:
    """The local runner's chain entry (steps.workspace.PerSubmission)."""
    return score_submission(ws, manifest, snapshot, student, opts.scratch)


def score(workspace: Path, students: Sequence[str] | None = None) -> list[StepRecord]:
    """Score every submission in the manifest (or only `students`)."""
    return each_submission(STEP, workspace, students)


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(STEP, score, argv)


if __name__ == "__main__":
    raise SystemExit(main())
