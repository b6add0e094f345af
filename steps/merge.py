"""merge: gather a run's scores into results, and (given the course) into the gradebook.

Always writes `results/`: results.json (every student, notebook and cell), grades.csv (one
row per student), cells.csv (one row per graded cell) and summary.txt (counts, then one line
per skipped, failed, repaired or missing notebook with its reason). With a course directory
it also does what `nbgrader autograde` does to the course: the submission and its grades in
the course's gradebook, whatever database `c.CourseDirectory.db_url` names (through
nbgrader's own SaveAutoGrades and AssignLatePenalties, so a grader's manual scores are
respected) and the graded notebooks in autograded/STUDENT/ASSIGNMENT/, and the feedback
step's pages, if any, in feedback/STUDENT/ASSIGNMENT/.
Re-running is safe: rows are updated, never duplicated; each submission is one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from .contract import STEPS
from .integrity import flag_for_review
from .records import (
    FAILED,
    MISSING,
    OK,
    REPAIRED,
    SKIPPED,
    TAMPERED,
    UNGRADED,
    Manifest,
    StepRecord,
    read_json,
    write_json,
)
from .workspace import CELLS_CSV, GRADES_CSV, RESULTS_JSON, SUMMARY_TXT, Workspace

__all__ = ["merge", "summarize", "apply_to_course", "CourseWriter", "main"]

STEP = STEPS["merge"]


def _load(path: Path) -> StepRecord | None:
    return StepRecord.load(path) if path.is_file() else None


def summarize(workspace: Path) -> dict[str, Any]:
    """Build results.json's content from the manifest and every score record."""
    ws = Workspace(workspace)
    manifest = Manifest.load(ws.manifest)
    snapshot = read_json(ws.snapshot)
    max_total = sum(float(c["max_score"]) for nb in snapshot["notebooks"] for c in nb["grade_cells"] + nb["task_cells"])
    students: list[dict[str, Any]] = []
    counts = {
        "submissions": 0,
        "graded": 0,
        "skipped_submissions": 0,
        "failed_submissions": 0,
        "ungraded_submissions": 0,
        OK: 0,
        REPAIRED: 0,
        SKIPPED: 0,
        FAILED: 0,
        MISSING: 0,
        UNGRADED: 0,
        TAMPERED: 0,
    }
    for sub in manifest.submissions:
        counts["submissions"] += 1
        rec = _load(ws.record("score", sub.student))
        fb = _load(ws.record("feedback", sub.student))
        execd = _load(ws.record("execute", sub.student))
        notebooks, total, penalty = [], 0.0, 0.0
        for name in manifest.notebooks:
            o = rec.outcome(name) if rec else None
            status, reason = (
                (o.status, o.reason)
                if o
                else (UNGRADED, "not scored (the run stopped before score): nothing written; run again")
            )
            g = rec.detail["notebooks"].get(name) if rec else None
            e = execd.outcome(name) if execd else None
            counts[status] += 1
            entry = {"notebook": name, "status": status, "reason": reason, "changes": o.changes if o else []}
            repairs = o.detail.get("repairs", []) if o else []
            if repairs:
                entry["repairs"] = repairs  # what restore repaired, per cell
            if g:
                total += g["score"]
                penalty += g["late_submission_penalty"] or 0.0
                fixed = {r["cell"]: r["reason"] for r in repairs}
                cells = [dict(c, repaired=fixed[c["cell"]]) if c["cell"] in fixed else c for c in g["grades"]]
                entry.update(
                    score=g["score"],
                    max_score=g["max_score"],
                    late_submission_penalty=g["late_submission_penalty"],
                    cells=cells,
                )
            if e:
                entry["execute_seconds"] = e.detail.get("seconds")
            notebooks.append(entry)
        worst = next(
            (
                s
                for s in (UNGRADED, FAILED, SKIPPED, TAMPERED, REPAIRED, MISSING)
                if any(n["status"] == s for n in notebooks)
            ),
            OK,
        )
        counts["graded"] += worst in (OK, REPAIRED, MISSING, TAMPERED)
        counts["skipped_submissions"] += worst == SKIPPED
        counts["failed_submissions"] += worst == FAILED
        counts["ungraded_submissions"] += worst == UNGRADED
        students.append(
            {
                "student": sub.student,
                "status": worst,
                "timestamp": sub.timestamp,
                "content_hash": sub.content_hash,
                "score": round(total - penalty, 6),
                "raw_score": round(total, 6),
                "late_submission_penalty": round(penalty, 6),
                "max_score": max_total,
                "needs_manual_grade": any(c["needs_manual_grade"] for n in notebooks for c in n.get("cells", []))
                or worst in (SKIPPED, FAILED, UNGRADED),
                "execute_seconds": execd.seconds if execd else None,
                "sandbox": execd.detail.get("sandbox") if execd else None,
                "notebooks": notebooks,
                **({"feedback": {o.notebook: o.status for o in fb.notebooks}} if fb else {}),
            }
        )
    for left in manifest.left_out:  # collect could not take it (too large): every student appears
        counts["submissions"] += 1
        counts["skipped_submissions"] += 1
        counts[SKIPPED] += len(manifest.notebooks)
        notebooks = [
            {"notebook": name, "status": SKIPPED, "reason": left["reason"], "changes": []}
            for name in manifest.notebooks
        ]
        students.append(
            {
                "student": left["student"],
                "status": SKIPPED,
                "timestamp": None,
                "content_hash": "",
                "score": 0.0,
                "raw_score": 0.0,
                "late_submission_penalty": 0.0,
                "max_score": max_total,
                "needs_manual_grade": True,
                "execute_seconds": None,
                "sandbox": None,
                "notebooks": notebooks,
            }
        )
    return {
        "format": "gradeflow.results/1",
        "run_id": manifest.run_id,
        "course_id": manifest.course_id,
        "assignment": manifest.assignment,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "counts": counts,
        "problems": manifest.problems,
        "unchanged": manifest.unchanged,
        "students": students,
    }


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The run summary a teacher reads: counts, then one line per notebook that needs a look."""
    c = results["counts"]
    unchanged = len(results.get("unchanged") or [])
    lines = [
        f"{results['assignment']} run {results['run_id']}: {c['submissions']} submission(s), "
        f"{c['graded']} graded, {c.get('skipped_submissions', 0)} skipped, {c.get('failed_submissions', 0)} failed, "
        f"{c.get('ungraded_submissions', 0)} not graded (gradeflow failed)"
        + (f" (+{unchanged} unchanged, not regraded)" if unchanged else "")
        + f"; notebooks: {c[OK]} ok, {c[REPAIRED]} repaired, {c[MISSING]} missing, "
        f"{c[SKIPPED]} skipped, {c[FAILED]} failed, {c.get(UNGRADED, 0)} not graded"
        + (f", {c[TAMPERED]} tampered" if c.get(TAMPERED) else "")
    ]
    for s in results["students"]:
        for n in s["notebooks"]:
            if n["status"] != OK:
                lines.append(f"  {n['status'].upper():8} {s['student']} / {n['notebook']}.ipynb: {n['reason']}")
    for p in results["problems"]:
        lines.append(f"  NOTE     {p['student']}: {p['reason']}")
    pages = [n for s in results["students"] for n, status in s.get("feedback", {}).items() if status == OK]
    if any("feedback" in s for s in results["students"]):
        lines.append(
            f"  feedback: {len(pages)} page(s) in feedback/STUDENT/{results['assignment']}/ "
            f"(`nbgrader release_feedback {results['assignment']}` publishes them)"
        )
    if results.get("unchanged"):
        lines.append(
            f"  {len(results['unchanged'])} submission(s) unchanged since they were last graded: "
            "not regraded (use --force to regrade)"
        )
    if c.get("ungraded_submissions"):
        lines.append(
            f"  NOT GRADED: {c[UNGRADED]} notebook(s) of {c['ungraded_submissions']} submission(s), "
            "because gradeflow or the sandbox failed "
            "(reasons above). Nothing was written for them: their earlier grades and autograded/ files are unchanged. "
            "Fix the cause and run the same command again: only these are graded."
        )
    return lines


def _write_results(workspace: Path, results: dict[str, Any]) -> Path:
    out = Workspace(workspace).results
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RESULTS_JSON, results)
    with open(out / GRADES_CSV, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "assignment",
                "student_id",
                "timestamp",
                "status",
                "raw_score",
                "late_submission_penalty",
                "score",
                "max_score",
                "needs_manual_grade",
            ]
        )
        for s in results["students"]:
            w.writerow(
                [
                    results["assignment"],
                    s["student"],
                    s["timestamp"] or "",
                    s["status"],
                    s["raw_score"],
                    s["late_submission_penalty"],
                    s["score"],
                    s["max_score"],
                    s["needs_manual_grade"],
                ]
            )
    with open(out / CELLS_CSV, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "notebook", "cell", "auto_score", "max_score", "needs_manual_grade"])
        for s in results["students"]:
            for n in s["notebooks"]:
                for cell in n.get("cells", []):
                    w.writerow(
                        [
                            s["student"],
                            n["notebook"],
                            cell["cell"],
                            cell["auto_score"],
                            cell["max_score"],
                            cell["needs_manual_grade"],
                        ]
                    )
    (out / SUMMARY_TXT).write_text("\n".join(summary_lines(results)) + "\n")
    return out


def _replace_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    shutil.copyfile(src, dest)


class CourseWriter:
    """Writes scored submissions into the gradebook and autograded/, as nbgrader autograde does.

    Reads the manifest, snapshot and course config once, so the local runner can write each
    submission as soon as it is scored (`write`) without paying that per student.
    """

    def __init__(self, workspace: Path, course_dir: Path) -> None:
        from traitlets.config import Config

        from .course import open_course
        from .gradebook import share_engines

        share_engines()  # one engine for the whole run, not one per notebook
        self.workspace = Path(workspace)
        self.ws = Workspace(workspace)
        self.manifest = Manifest.load(self.ws.manifest)
        self.snapshot = read_json(self.ws.snapshot)
        _, self.coursedir = open_course(Path(course_dir))
        self.config = Config(self.snapshot.get("config", {}))
        self.permissions = 0o664 if self.coursedir.groupshared else 0o444
        self.written = 0  # submissions written by this writer, for the message when the database goes away

    def write(self, student: str) -> bool:
        """One submission into the course; False when it has no score record (not scored).

        The gradebook part is one transaction (steps.gradebook.one_transaction): a database
        that goes away mid-submission leaves none of it, and autograded/ is only written after
        the commit, so the course never holds half a submission.
        """
        from nbgrader.api import Gradebook

        from .gradebook import database_errors, one_transaction
        from .nbgrader_pipeline import merge_preprocessors, run_preprocessors

        ws, assignment, coursedir = self.ws, self.manifest.assignment, self.coursedir
        sub = self.manifest.submission(student)
        rec = _load(self.ws.record("score", student))
        if rec is None or any(o.status == UNGRADED for o in rec.notebooks):
            return False  # not scored, or gradeflow failed on it: the course keeps what it had
        graded: dict[str, Any] = {}  # notebook -> the graded notebook for autograded/, or None
        todo = (
            f"nothing of {student}'s {assignment} was written ({self.written} submission(s) of this run were); "
            "when the database is back, run the same command again: it grades what is missing"
        )
        with (
            database_errors(
                coursedir.db_url, "lost the gradebook database {url} while writing " + f"{student}'s {assignment}", todo
            ),
            one_transaction(coursedir.db_url),
        ):
            with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
                gb.update_or_create_student(student)
                gb.update_or_create_submission(
                    assignment, student, **({"timestamp": sub.timestamp} if sub.timestamp else {})
                )
            for o in rec.notebooks:
                if o.status in (OK, REPAIRED, TAMPERED):
                    nb = nbformat.read(str(ws.scored(student) / f"{o.notebook}.ipynb"), as_version=4)
                    resources = {
                        "nbgrader": {
                            "student": student,
                            "assignment": assignment,
                            "notebook": o.notebook,
                            "db_url": coursedir.db_url,
                        }
                    }
                    nb, resources = run_preprocessors(merge_preprocessors(self.config), nb, resources)
                    flag_for_review(
                        coursedir.db_url, assignment, o.notebook, student, o.detail.get("tampered_cells", [])
                    )
                    graded[o.notebook] = nb
                    continue
                with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
                    snb = gb.find_submission_notebook(o.notebook, assignment, student)
                    for grade in snb.grades:
                        grade.auto_score = 0
                        # nbgrader's rule for a missing notebook; a skipped or failed one needs a person
                        grade.needs_manual_grade = o.status != MISSING
                    gb.db.commit()
                graded[o.notebook] = None
        self.written += 1
        dest = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
        dest.mkdir(parents=True, exist_ok=True)
        work = ws.work(student)
        for f in work.rglob("*"):
            if f.is_file() and f.suffix != ".ipynb":
                _replace_file(f, dest / f.relative_to(work))
        for name, nb in graded.items():
            target = dest / f"{name}.ipynb"
            if target.exists():
                target.unlink()
            if nb is not None:
                nbformat.write(nb, str(target), version=4)
        for f in dest.rglob("*"):
            if f.is_file():
                os.chmod(f, self.permissions)
        self.write_feedback(student)
        return True

    def write_feedback(self, student: str) -> None:
        """The feedback step's pages into feedback/STUDENT/ASSIGNMENT/, as `nbgrader generate_feedback`
        leaves them: with the submission's timestamp.txt and submission_secret.txt, which
        `nbgrader release_feedback` reads to name each page for the student's exchange."""
        src, record = self.ws.feedback(student), self.ws.record("feedback", student)
        if not record.is_file():
            return
        coursedir, work = self.coursedir, self.ws.work(student)
        dest = Path(coursedir.format_path(coursedir.feedback_directory, student, self.manifest.assignment))
        for o in StepRecord.load(record).notebooks:
            target = dest / f"{o.notebook}.html"
            if o.status == OK:
                _replace_file(src / f"{o.notebook}.html", target)
            elif target.exists():  # an earlier submission's page: not this one's feedback
                target.unlink()
        for name in ("timestamp.txt", "submission_secret.txt"):
            if (work / name).is_file():
                _replace_file(work / name, dest / name)
        for f in dest.glob("*"):
            if f.is_file():
                os.chmod(f, 0o664 if coursedir.groupshared else 0o644)  # GenerateFeedback's permissions


def apply_to_course(workspace: Path, course_dir: Path, students: Sequence[str] | None = None) -> list[str]:
    """Write scored submissions (all, or only `students`) into the course; return who was written."""
    writer = CourseWriter(workspace, course_dir)
    return [
        s.student
        for s in writer.manifest.submissions
        if (not students or s.student in students) and writer.write(s.student)
    ]


def merge(
    workspace: Path,
    course_dir: Path | None = None,
    students: Sequence[str] | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results/ for the run; with `course_dir`, also the gradebook and autograded/.

    `run`: facts only the caller knows (the local runner's run_dir, sandbox, jobs and timings),
    added to results.json, so it is written once and complete."""
    workspace = Path(workspace)
    if course_dir is not None:
        apply_to_course(workspace, Path(course_dir), students)
    results = summarize(workspace)
    results.update(run or {})
    _write_results(workspace, results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0, or EXIT_INFRA (75) when any submission is UNGRADED: everything that could be
    written is (results/, the summary, the graded submissions), and the non-zero exit makes the
    Argo run Failed, so `gradeflow retry` re-runs the failed execute pods and then score and
    merge. (Argo does not retry merge's pod for it: the same inputs would end the same way.)"""
    import sys

    from .cli import step_main
    from .contract import EXIT_INFRA, EXIT_OK

    def run(workspace: Path, course_dir: Path | None) -> dict[str, Any]:
        results = merge(workspace, course_dir)
        print("\n".join(summary_lines(results)))
        return results

    def finish(results: dict[str, Any]) -> int:
        ungraded = results["counts"].get("ungraded_submissions", 0)
        if not ungraded:
            return EXIT_OK
        print(
            f"merge: {ungraded} submission(s) not graded because gradeflow or the sandbox failed (UNGRADED above); "
            "the results of the others are written. Exit code 75: fix the cause and run the failed steps again "
            "(on Argo: `gradeflow retry RUN`).",
            file=sys.stderr,
        )
        return EXIT_INFRA

    return step_main(STEP, run, argv, finish)


if __name__ == "__main__":
    raise SystemExit(main())
