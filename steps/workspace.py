"""Workspace paths, from the step contract only.

`steps.contract` declares each step's artifacts (`Artifact.at()` gives an artifact's
workspace-relative path). This module adds what the steps agree on *inside* those artifacts:
each per-submission step's record (`restored/<student>/restore.json`, ...), the work dir,
and the files of `results/`. Every step, runner, report and store reads paths here, so a
renamed artifact or file is one edit.

It also declares the local runner's per-submission chain: the steps of `contract.DAG` whose
outputs are all per-student folders, each with one function of one signature
(`per_submission(ws, manifest, snapshot, student, opts)`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from .contract import (
    DAG,
    EXECUTED,
    EXECUTED_ONE,
    FEEDBACK,
    MANIFEST,
    MANUAL,
    RESTORED,
    RESTORED_ONE,
    RESULTS,
    SCORED,
    SNAPSHOT,
    STEPS,
    SUBMISSIONS,
    Artifact,
    Step,
)

if TYPE_CHECKING:
    from .records import Manifest, StepRecord
    from .sandbox import Limits, Sandbox

__all__ = [
    "Workspace",
    "SubmissionOptions",
    "PerSubmission",
    "STUDENT_DIRS",
    "SUBMISSION_CHAIN",
    "RECORD",
    "RESULTS_FILES",
    "STUDENTS_JSON",
    "RESULTS_JSON",
    "GRADES_CSV",
    "CELLS_CSV",
    "SUMMARY_TXT",
    "REPORT_HTML",
    "WORK_DIR",
    "EXECUTE_LOG",
    "submission_chain",
    "per_submission",
]

# Artifacts laid out as one folder per student (`restored/<student>/`); the `{student}`
# artifacts (RESTORED_ONE, EXECUTED_ONE) are one such folder each.
STUDENT_DIRS: frozenset[Artifact] = frozenset({SUBMISSIONS, RESTORED, EXECUTED, SCORED, FEEDBACK})

# Inside the artifacts: the names every step and runner agree on.
RECORD = "{step}.json"  # a per-submission step's record, in its student folder (steps.records.StepRecord)
WORK_DIR = "work"  # restore's copy of the submission, notebooks restored: what execute runs
EXECUTE_LOG = "execute.log"  # the kernels' and sandbox's log, beside the executed notebooks
RESULTS_JSON = "results.json"
GRADES_CSV = "grades.csv"
CELLS_CSV = "cells.csv"
SUMMARY_TXT = "summary.txt"
REPORT_HTML = "report.html"
RESULTS_FILES = (RESULTS_JSON, GRADES_CSV, CELLS_CSV, SUMMARY_TXT)  # what merge writes into results/
STUDENTS_JSON = "students.json"  # restore's fan-out list (`--emit-students`): one entry per restored submission


class Workspace(os.PathLike):
    """A run's workspace: a directory laid out as `steps.contract` declares it.

    `Workspace(root).path(RESTORED_ONE, student)` is that artifact's path; the named accessors
    below are the files the steps share. A Workspace is path-like (`Path(ws)` is its root), so
    code that takes a directory takes a Workspace too.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __fspath__(self) -> str:
        return str(self.root)

    __str__ = __fspath__

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    def path(self, artifact: Artifact, student: str | None = None) -> Path:
        """The artifact's path; with a student, that student's folder of a per-student artifact."""
        if student and not artifact.per_submission:
            if artifact not in STUDENT_DIRS:
                raise ValueError(f"artifact {artifact.name!r} has no per-student folders")
            return self.root / artifact.at() / student
        return self.root / artifact.at(student)

    def rel(self, artifact: Artifact, student: str | None = None) -> str:
        """The same, relative to the workspace: the key under the run's prefix in a store."""
        return self.path(artifact, student).relative_to(self.root).as_posix()

    # --- run-wide files ---------------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.path(MANIFEST)

    @property
    def snapshot(self) -> Path:
        return self.path(SNAPSHOT)

    @property
    def manual(self) -> Path:
        return self.path(MANUAL)

    @property
    def results(self) -> Path:
        return self.path(RESULTS)

    def result(self, name: str) -> Path:
        """A file of results/ (RESULTS_JSON, GRADES_CSV, ..., REPORT_HTML)."""
        return self.results / name

    # --- per student ------------------------------------------------------------------------------
    def submission(self, student: str) -> Path:
        return self.path(SUBMISSIONS, student)

    def restored(self, student: str) -> Path:
        return self.path(RESTORED_ONE, student)

    def work(self, student: str) -> Path:
        return self.restored(student) / WORK_DIR

    def executed(self, student: str) -> Path:
        return self.path(EXECUTED_ONE, student)

    def scored(self, student: str) -> Path:
        return self.path(SCORED, student)

    def feedback(self, student: str) -> Path:
        return self.path(FEEDBACK, student)

    def output(self, step: str | Step, student: str) -> Path:
        """A per-submission step's folder for one student (restore → restored/<student>/)."""
        s = STEPS[step] if isinstance(step, str) else step
        return self.path(s.outputs[0], student)

    def record(self, step: str | Step, student: str) -> Path:
        """A per-submission step's record for one student (restored/<student>/restore.json)."""
        s = STEPS[step] if isinstance(step, str) else step
        return self.output(s, student) / RECORD.format(step=s.name)


@dataclass(frozen=True)
class SubmissionOptions:
    """What a per-submission step may need besides the workspace, beyond the manifest and snapshot.

    One value for the whole chain: each step reads only its own fields."""

    scratch: Path  # a scratch dir for nbgrader's gradebook (one per worker: steps.snapshot)
    sandbox: "Sandbox | str" = ""  # execute: the run's sandbox, or a name ("" = steps.sandbox.DEFAULT_SANDBOX)
    limits: "Limits | None" = None  # execute: None = steps.sandbox.Limits()
    slot: int = 0  # execute: the parallel slot (picks the sandbox uid when run as root)
    check: bool = True  # execute: check the sandbox can run here first (the local runner did once)
    scored_in_scratch: bool = False  # feedback: score has just graded this submission in `scratch`
    # the steps' parameters (steps/params.py) by Param name, e.g. {"strict": True}: a step reads
    # its own with `param(name)`, so a new parameter needs no field here
    params: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        """The step parameter `name` (a Param's name): its value in this run, else its declared default."""
        from .params import param_value

        return param_value(self.params, name)


class PerSubmission(Protocol):
    def __call__(
        self, ws: Workspace, manifest: "Manifest", snapshot: dict[str, Any], student: str, opts: SubmissionOptions
    ) -> "StepRecord": ...


def _per_student(step: Step) -> bool:
    return bool(step.outputs) and all(a in STUDENT_DIRS or a.per_submission for a in step.outputs)


# restore → execute → score → feedback: the DAG's steps whose every output is per student.
SUBMISSION_CHAIN: tuple[str, ...] = tuple(name for name in DAG if _per_student(STEPS[name]))


def per_submission(step: str | Step) -> PerSubmission:
    """The step module's `per_submission` function (imported on first use)."""
    import importlib

    s = STEPS[step] if isinstance(step, str) else step
    return importlib.import_module(s.module).per_submission  # type: ignore[no-any-return]


def submission_chain(optional: frozenset[str] | set[str] = frozenset()) -> list[Step]:
    """The per-submission steps in DAG order, leaving out optional ones not in `optional`."""
    from .contract import OPTIONAL

    return [STEPS[n] for n in SUBMISSION_CHAIN if n not in OPTIONAL or n in optional]
