"""The JSON documents steps pass to each other: the run manifest and per-step records.

Steps never share globals; everything one step tells the next is in one of these files.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "Submission",
    "Manifest",
    "NotebookOutcome",
    "StepRecord",
    "read_json",
    "write_json",
    "OK",
    "REPAIRED",
    "SKIPPED",
    "FAILED",
    "MISSING",
    "TAMPERED",
    "UNGRADED",
]

# Outcome of one notebook in one step. A student's failing code is still OK for execute:
# the errors are in the notebook and score grades them.
OK = "ok"
REPAIRED = "repaired"  # nbgrader-style repair (locked cell put back, points reset): graded
SKIPPED = "skipped"  # malformed: not graded, reported with a reason
FAILED = "failed"  # the student's code stopped the run (kernel died, wall time): needs a person
MISSING = "missing"  # not submitted: zero, like nbgrader
TAMPERED = "tampered"  # student code changed how test cells run: those cells get no automatic credit
UNGRADED = "ungraded"  # gradeflow or the sandbox broke: nothing written, earlier grades stay; rerun

T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically, so a crash never leaves a half-written manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)


@dataclass
class Submission:
    """One student's submission of the assignment, as collect found it."""

    student: str
    notebooks: list[str]  # notebook ids present and known to the gradebook
    missing: list[str] = field(default_factory=list)  # expected but not submitted
    unknown: list[str] = field(default_factory=list)  # submitted .ipynb the gradebook does not know
    timestamp: str | None = None  # nbgrader's timestamp.txt, ISO 8601 UTC
    content_hash: str = ""  # sha256 over the submitted files
    files: int = 0


@dataclass
class Manifest:
    """What collect found: the run's identity and every submission."""

    run_id: str
    course_id: str
    assignment: str
    notebooks: list[str]  # the assignment's notebooks, from the gradebook
    submissions: list[Submission]
    created: str = ""
    problems: list[dict[str, str]] = field(default_factory=list)  # submissions collect could not take
    unchanged: list[str] = field(default_factory=list)  # graded before with the same content: not regraded
    left_out: list[dict[str, str]] = field(default_factory=list)  # submitted but not taken (too large): student, reason
    format: str = "gradeflow.manifest/1"

    def students(self) -> list[str]:
        return [s.student for s in self.submissions]

    def submission(self, student: str) -> Submission:
        for s in self.submissions:
            if s.student == student:
                return s
        raise KeyError(f"student {student!r} is not in run {self.run_id}; run collect again to add late submissions")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        data = dict(data)
        data["submissions"] = [_from_dict(Submission, s) for s in data.get("submissions", [])]
        return _from_dict(cls, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Manifest":
        return cls.from_dict(read_json(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


@dataclass
class NotebookOutcome:
    """What one step did to one notebook."""

    notebook: str
    status: str = OK
    reason: str = ""  # one line a teacher can act on, when not OK
    changes: list[str] = field(default_factory=list)  # repairs, one line each
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepRecord:
    """A step's account of one submission: written next to the step's outputs."""

    step: str
    student: str
    notebooks: list[NotebookOutcome] = field(default_factory=list)
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    format: str = "gradeflow.record/1"

    def outcome(self, notebook: str) -> NotebookOutcome | None:
        for o in self.notebooks:
            if o.notebook == notebook:
                return o
        return None

    @property
    def status(self) -> str:
        """The worst status of any notebook: ungraded > failed > skipped > tampered > repaired > missing > ok."""
        order = [UNGRADED, FAILED, SKIPPED, TAMPERED, REPAIRED, MISSING, OK]
        present = {o.status for o in self.notebooks} or {OK}
        return next(s for s in order if s in present)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepRecord":
        data = dict(data)
        data["notebooks"] = [_from_dict(NotebookOutcome, o) for o in data.get("notebooks", [])]
        return _from_dict(cls, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "StepRecord":
        return cls.from_dict(read_json(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())
