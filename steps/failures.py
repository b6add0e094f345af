"""When gradeflow itself fails on one submission: never a grade, and never the whole batch.

A step that decides the grade (restore, execute, score) and raises for one student leaves that
student UNGRADED, with a reason that names the step; the other submissions go on, nothing is
written to the course for this one, and the run exits 75. An optional step (feedback) that
raises costs only its own output: the grades stand. Both runners use this: the local runner's
chain (pipelines.chain) and the step CLIs an Argo pod runs (steps.cli.for_each_submission).

A failed step writes its own record with every notebook UNGRADED and the reason; the steps
after it pass that status through (score keeps an UNGRADED restore outcome), so merge sees it.
"""

from __future__ import annotations

import errno
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

from .contract import OPTIONAL, STEPS, Step
from .errors import InfraError, TeacherError
from .records import UNGRADED, Manifest, NotebookOutcome, StepRecord
from .workspace import Workspace

__all__ = [
    "infra_reason",
    "failed_record",
    "ungraded_record",
    "optional_failed",
    "log_failure",
    "step_failed",
    "contained",
]

log = logging.getLogger("gradeflow.failures")

OneSubmission = Callable[[Path, Manifest, dict, str, Path], StepRecord]


def infra_reason(e: BaseException, step: str = "") -> tuple[str, str]:
    """(kind, one line) for a failure of gradeflow or the sandbox: kind tells failures apart.
    `step`: where it happened, named in the line."""
    where = f" in {step}" if step else ""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            "disk-full",
            f"no space left on the grader's disk ({e.filename or tempfile.gettempdir()}){where}: "
            "free space, then run again",
        )
    if isinstance(e, InfraError):
        return type(e).__name__, f"{step}: {e.what}" if step else e.what
    return (
        type(e).__name__,
        f"gradeflow failed{where} ({type(e).__name__}: {str(e).strip()[:200]}); run again, and report it if it repeats",
    )


def failed_record(
    ws: Path | Workspace, manifest: Manifest, step: str | Step, student: str, reason: str, kind: str
) -> StepRecord:
    """`step`'s record of a submission gradeflow could not take through it: every notebook
    UNGRADED, so merge writes nothing for it and the course keeps what it had."""
    name = step if isinstance(step, str) else step.name
    rec = StepRecord(name, student, detail={"infra": kind, "notebooks": {}})
    rec.notebooks = [NotebookOutcome(n, UNGRADED, f"not graded: {reason}") for n in manifest.notebooks]
    path = Workspace(ws).record(name, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.save(path)
    return rec


def ungraded_record(ws: Path | Workspace, manifest: Manifest, student: str, reason: str, kind: str) -> StepRecord:
    """The score record of a submission gradeflow could not grade (what merge reads)."""
    return failed_record(ws, manifest, "score", student, reason, kind)


def optional_failed(ws: Path | Workspace, manifest: Manifest, step: Step, student: str, e: Exception) -> StepRecord:
    """An optional step (feedback) failed for one submission: its record says so; the grades stand."""
    log.exception("%s failed for %s", step.name, student)
    rec = StepRecord(step.name, student, detail={"error": f"{type(e).__name__}: {e}"})
    rec.notebooks = [
        NotebookOutcome(
            n,
            UNGRADED,
            f"gradeflow could not write its {step.name} ({type(e).__name__}: {e}); "
            f"regrade it with --force --{step.name}",
        )
        for n in manifest.submission(student).notebooks
    ]
    path = Workspace(ws).record(step, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.save(path)
    return rec


def log_failure(student: str, reason: str, e: BaseException) -> None:
    if isinstance(e, InfraError):  # the reason is in the summary; the log has the rest
        log.info("gradeflow could not grade %s: %s", student, reason)
    else:
        log.warning("gradeflow could not grade %s: %s", student, reason, exc_info=True)


def step_failed(
    ws: Path | Workspace, manifest: Manifest, step: Step, student: str, e: Exception, as_step: str | None = None
) -> tuple[StepRecord, str]:
    """`step` raised for one submission: write and return the record that says so, with the
    failure's kind. An optional step's failure costs only its own output (kind ""); any other
    leaves the submission UNGRADED, recorded as `as_step` (default: the step itself)."""
    if step.name in OPTIONAL:
        return optional_failed(ws, manifest, step, student, e), ""
    kind, reason = infra_reason(e, step.name)
    log_failure(student, reason, e)
    return failed_record(ws, manifest, as_step or step, student, reason, kind), kind


def contained(step: Step | str, one: OneSubmission) -> OneSubmission:
    """`one` (a step's function for one submission) with its failure contained to that submission.

    A teacher's problem (TeacherError: the course, not this submission) still stops the step."""
    s = STEPS[step] if isinstance(step, str) else step

    def run(ws: Path, manifest: Manifest, snapshot: dict[str, Any], student: str, scratch: Path) -> StepRecord:
        try:
            return one(ws, manifest, snapshot, student, scratch)
        except TeacherError:
            raise
        except Exception as e:  # noqa: BLE001 - our side broke for this submission: not a grade; the batch goes on
            return step_failed(ws, manifest, s, student, e)[0]

    return run
