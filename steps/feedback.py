"""feedback: each student's graded notebooks as nbgrader's feedback HTML, hidden tests taken out.

`nbgrader generate_feedback` is a second pass over every autograded notebook after the run; here
the same conversion runs per submission as soon as score is done: nbgrader's GetGrades and
CSSHTMLHeaderPreprocessor, then nbconvert's HTMLExporter with nbgrader's own `feedback` template
(the one formgrader ships), on score's graded notebook (steps.feedback_html: the same conversion,
with what repeats across a worker's submissions remembered). GetGrades reads a scratch gradebook
holding the snapshot and this submission's grades from score.json (in the local runner, the
scratch gradebook score has just graded it in), plus the teacher's manual scores and comments
that collect exported (`manual.json`), so the page shows what `nbgrader generate_feedback`
would show after merge. It never runs student code and never reads the course.

Before conversion RedactHiddenTests (steps.redact) replaces hidden-test regions by a notice and
redacts the outputs that quote them, unless `show_hidden_tests` asks for nbgrader's behaviour.

Writes `feedback/<student>/<notebook>.html` and `feedback.json`; merge copies the pages into the
course's `feedback/STUDENT/ASSIGNMENT/` next to timestamp.txt and submission_secret.txt, where
`nbgrader release_feedback` looks for them.
"""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import nbformat

from .cli import each_submission, step_main
from .contract import MANUAL, STEPS
from .params import HIDDEN_TESTS, PARAMS  # noqa: F401 - HIDDEN_TESTS: --hidden-tests' values, where callers look
from .records import OK, REPAIRED, SKIPPED, Manifest, NotebookOutcome, StepRecord, read_json
from .workspace import SubmissionOptions, Workspace

__all__ = ["feedback", "feedback_submission", "per_submission", "export_manual", "main", "MANUAL_FILE"]

STEP = STEPS["feedback"]
MANUAL_FILE = MANUAL.at()  # kept for importers: the contract declares it


def export_manual(gradebook: Any, assignment: str) -> dict[str, Any]:
    """The teacher's manual scores, extra credit and comments on `assignment`, per student.

    Only what a grader entered (formgrader): {student: {notebook: {cell: {...}}}}. Feedback
    shows these as `nbgrader generate_feedback` would; merge never overwrites them.
    """
    from nbgrader.api import Assignment, Comment, Grade, SubmittedAssignment, SubmittedNotebook

    out: dict[str, Any] = {}

    def put(row: Any, **values: Any) -> None:
        cell = out.setdefault(row.student.id, {}).setdefault(row.notebook.name, {}).setdefault(row.name, {})
        cell.update({k: v for k, v in values.items() if v is not None})

    q = gradebook.db.query
    for g in (
        q(Grade)
        .join(SubmittedNotebook)
        .join(SubmittedAssignment)
        .join(Assignment)
        .filter(Assignment.name == assignment, (Grade.manual_score.isnot(None)) | (Grade.extra_credit.isnot(None)))
    ):
        put(g, manual_score=g.manual_score, extra_credit=g.extra_credit)
    for c in (
        q(Comment)
        .join(SubmittedNotebook)
        .join(SubmittedAssignment)
        .join(Assignment)
        .filter(Assignment.name == assignment, Comment.manual_comment.isnot(None))
    ):
        put(c, manual_comment=c.manual_comment)
    return out


@functools.lru_cache(maxsize=1)
def _exporter() -> Any:
    """nbgrader GenerateFeedback's exporter (steps.feedback_html). One per process: its first
    conversion loads the templates, later ones reuse them and what its filters remember."""
    from .feedback_html import feedback_exporter

    return feedback_exporter()


def warm() -> None:
    """Load the templates, the code lexer, the markdown renderer and the CSS selectors now (a
    worker calls this while it waits for work): the first page would otherwise pay about 1 s."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from .redact import RedactHiddenTests

    cell = new_code_cell(
        "x = 1\nprint(x)",
        metadata={
            "nbgrader": {"grade": True, "solution": True, "grade_id": "-", "points": 1, "score": 0, "comment": "-"}
        },
    )
    cell.outputs = [
        new_output("stream", name="stdout", text="1\n"),
        new_output("error", ename="E", evalue="-", traceback=["\x1b[0;31mE\x1b[0m: -"]),
        new_output("display_data", data={"text/html": "<b>-</b>", "text/plain": "-"}),
    ]
    nb = new_notebook(
        cells=[new_markdown_cell("*-*"), cell],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )
    nb, resources = RedactHiddenTests().preprocess(
        nb, {"nbgrader": {"notebook": "-", "score": 0, "max_score": 0, "late_penalty": 0}}
    )
    _exporter().from_notebook_node(nb, resources=resources)
    nbformat.validate(nbformat.v4.new_notebook())  # compiles the schema nbformat.read checks against


def _replay_grades(
    gb: Any, assignment: str, notebook: str, student: str, scored: dict[str, Any] | None, manual: dict[str, Any]
) -> None:
    """Put score's grades (None: they are there already) and the teacher's manual ones into the
    scratch gradebook."""
    snb = gb.find_submission_notebook(notebook, assignment, student)
    auto = {g["cell"]: g for g in scored["grades"]} if scored is not None else {}
    for grade in snb.grades:
        if scored is not None:
            g = auto.get(grade.name, {})
            grade.auto_score = g.get("auto_score")
            grade.needs_manual_grade = bool(g.get("needs_manual_grade", True))
        m = manual.get(grade.name, {})
        grade.manual_score = m.get("manual_score")
        grade.extra_credit = m.get("extra_credit")
    for comment in snb.comments:
        if scored is not None:
            comment.auto_comment = scored["comments"].get(comment.name)
        comment.manual_comment = manual.get(comment.name, {}).get("manual_comment")
    if scored is not None:
        snb.late_submission_penalty = scored.get("late_submission_penalty")
    gb.db.commit()


def _render(nb: Any, resources: dict[str, Any], config: dict[str, Any], show_hidden_tests: bool) -> str:
    from traitlets.config import Config

    from .feedback_html import GetGradesAtOnce
    from .redact import RedactHiddenTests

    cfg = Config(config)
    if not show_hidden_tests:
        nb, resources = RedactHiddenTests(config=cfg).preprocess(nb, resources)
    nb, resources = GetGradesAtOnce(config=cfg).preprocess(nb, resources)
    html, _ = _exporter().from_notebook_node(nb, resources=resources)
    return html


def feedback_submission(
    workspace: Path,
    manifest: Manifest,
    snapshot: dict[str, Any],
    student: str,
    scratch: Path,
    show_hidden_tests: bool = False,
    scored_in_scratch: bool = False,
) -> StepRecord:
    """Write `feedback/<student>/`: one HTML page per graded notebook, and feedback.json.

    `scored_in_scratch`: score has just graded this submission in `scratch`'s gradebook (the
    local runner's worker runs both in one scratch dir), so its grades are read from there and
    only the teacher's manual grades are added, instead of a new scratch gradebook being filled
    from score.json."""
    from nbgrader.api import Gradebook

    from .snapshot import scratch_gradebook, scratch_url

    start = time.monotonic()
    ws = Workspace(workspace)
    sub = manifest.submission(student)
    out = ws.feedback(student)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scored_dir = ws.scored(student)
    score_rec = StepRecord.load(ws.record("score", student))
    manual_path = ws.manual
    manual = (read_json(manual_path) if manual_path.is_file() else {}).get(student, {})
    record = StepRecord("feedback", student, detail={"show_hidden_tests": show_hidden_tests})
    graded = [
        o.notebook
        for o in score_rec.notebooks
        if o.status in (OK, REPAIRED) and o.notebook in score_rec.detail.get("notebooks", {})
    ]
    if scored_in_scratch:
        db_url = scratch_url(scratch)
        if any(manual.get(nb) for nb in graded):
            with Gradebook(db_url) as gb:
                for nb in graded:
                    _replay_grades(gb, manifest.assignment, nb, student, None, manual.get(nb, {}))
    else:
        db_url = scratch_gradebook(snapshot, scratch)
        with Gradebook(db_url) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(
                manifest.assignment, student, **({"timestamp": sub.timestamp} if sub.timestamp else {})
            )
            for nb in graded:
                _replay_grades(
                    gb, manifest.assignment, nb, student, score_rec.detail["notebooks"][nb], manual.get(nb, {})
                )
    config = snapshot.get("config", {})
    for o in score_rec.notebooks:
        if o.status not in (OK, REPAIRED):
            record.notebooks.append(NotebookOutcome(o.notebook, o.status, f"no feedback: {o.reason}"))
            continue
        nb = nbformat.read(str(scored_dir / f"{o.notebook}.ipynb"), as_version=4)
        resources = {
            "unique_key": o.notebook,
            "output_files_dir": f"{o.notebook}_files",
            "nbgrader": {
                "student": student,
                "assignment": manifest.assignment,
                "notebook": o.notebook,
                "db_url": db_url,
            },
        }
        try:
            html = _render(nb, resources, config, show_hidden_tests)
        except RuntimeError as e:  # nbgrader's own complaint about hidden-test markers (nested, unclosed)
            record.notebooks.append(
                NotebookOutcome(
                    o.notebook,
                    SKIPPED,
                    f"no feedback: its hidden-test markers are broken ({e}); fix the source notebook "
                    f"or pass --{PARAMS['hidden-tests'].teacher_flag} show",
                )
            )
            continue
        (out / f"{o.notebook}.html").write_text(html, encoding="utf-8")
        record.notebooks.append(
            NotebookOutcome(
                o.notebook, OK, detail={"hidden_lines_redacted": resources["nbgrader"].get("hidden_lines_redacted", 0)}
            )
        )
    record.seconds = round(time.monotonic() - start, 3)
    record.save(ws.record(STEP, student))
    return record


def per_submission(
    ws: Workspace, manifest: Manifest, snapshot: dict[str, Any], student: str, opts: SubmissionOptions
) -> StepRecord:
    """The local runner's chain entry (steps.workspace.PerSubmission)."""
    return feedback_submission(
        ws, manifest, snapshot, student, opts.scratch, opts.param("hidden-tests") == "show", opts.scored_in_scratch
    )


def feedback(workspace: Path, students: Sequence[str] | None = None, **params: Any) -> list[StepRecord]:
    """Write feedback for every scored submission in the manifest (or only `students`) through
    `per_submission`, with feedback's parameters by keyword (`hidden_tests="show"`: nbgrader's behaviour)."""
    ws = Workspace(workspace)
    manifest = Manifest.load(ws.manifest)
    students = [s for s in (students or manifest.students()) if ws.record("score", s).is_file()]
    return each_submission(STEP, workspace, students, **params) if students else []


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(STEP, feedback, argv)


if __name__ == "__main__":
    raise SystemExit(main())
