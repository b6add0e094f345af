"""Errors a teacher can act on: what happened, and what to do next.

Our own bugs stay ordinary exceptions (step CLIs exit with EXIT_INFRA for them); a
TeacherError is a problem with the course, the arguments or the machine that the teacher
can fix, so its message is the headline and the traceback is never shown.
"""

from __future__ import annotations

__all__ = [
    "TeacherError",
    "NotFound",
    "Busy",
    "Unreachable",
    "SandboxUnavailable",
    "InfraError",
    "SandboxError",
    "Interrupted",
    "GradebookUnavailable",
]


class _Explained(Exception):
    """An error shown as its message alone: `what` happened, `todo` what to do."""

    def __init__(self, what: str, todo: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.todo = todo

    def __str__(self) -> str:
        return f"{self.what}. {self.todo}" if self.todo else self.what


class TeacherError(_Explained):
    """A problem the teacher can fix (exit 2)."""


class NotFound(TeacherError):
    """What was asked for does not exist: a course folder, an assignment, a run, an Argo object."""


class Busy(TeacherError):
    """Someone else is already doing it (grading this assignment): wait, then try again."""


class Unreachable(TeacherError):
    """A service gradeflow talks to (the Argo Server, the Kubernetes API) cannot be reached."""


class SandboxUnavailable(TeacherError):
    """The chosen sandbox cannot run on this machine; student code is never run without one."""


class GradebookUnavailable(TeacherError):
    """The course's gradebook database cannot be reached (down, login refused, no driver, connection
    lost): whatever was being written was rolled back, so a rerun finishes the work."""


class InfraError(_Explained, RuntimeError):
    """gradeflow or the sandbox broke: never a grade (exit 75)."""


class SandboxError(InfraError):
    """The sandbox broke (a kernel could not start): our failure, retryable, never the student's."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop now, keep what is merged. A BaseException like KeyboardInterrupt,
    so that no `except Exception` on the way turns a stop into a result."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
