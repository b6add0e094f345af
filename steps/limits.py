"""The resource limits a teacher sets, declared once: flag, `Limits` field, help, and whether Argo takes it.

The values' defaults live in `steps.sandbox.Limits`; everything else that names a limit is
generated from `FLAGS` here, through `steps.params` (each limit is a parameter of execute): the
flags of `gradeflow grade`, of the execute step (`python -m steps.execute`, which the pods run)
and of `gradeflow submit --argo`, the WorkflowTemplate's parameters and execute's cache key, the
Argo parameters the Jupyter page passes, and what tests/test_limits.py checks. On Argo, --pids,
--disk and --output are not parameters: the execute pod's own limits (steps/sandbox/argo_pod.py)
stand in for them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .sandbox import Limits

__all__ = [
    "LimitFlag",
    "FLAGS",
    "ARGO_FLAGS",
    "FIXED",
    "add_limit_arguments",
    "limits_from_args",
    "argo_parameters",
    "limit_arguments",
    "type_of",
    "NOT_ON_ARGO",
]


@dataclass(frozen=True)
class LimitFlag:
    flag: str  # the command-line flag without "--", and the Argo parameter's name
    field: str  # the attribute of steps.sandbox.Limits
    help: str
    argo: str  # the WorkflowTemplate parameter's description; '' when Argo does not take it (NOT_ON_ARGO)

    @property
    def default(self) -> Any:
        from .sandbox import Limits  # not at import: the Argo client needs no sandbox code

        return getattr(Limits(), self.field)

    @property
    def dest(self) -> str:  # argparse's attribute for --flag
        return self.flag.replace("-", "_")


FLAGS: tuple[LimitFlag, ...] = (
    LimitFlag(
        "cell-timeout",
        "cell_timeout",
        "seconds per cell (default, or '': nbgrader's Execute.timeout, 30)",
        "seconds per cell ('' = the course's nbgrader Execute.timeout)",
    ),
    LimitFlag("memory", "memory_mb", "MiB per submission", "MiB for one submission's notebooks"),
    LimitFlag("cpu-time", "cpu_time", "CPU seconds per process", "CPU seconds per process"),
    LimitFlag(
        "wall-time",
        "wall_time",
        "seconds for one submission",
        "seconds for one submission; its pod is stopped 300 s later",
    ),
    LimitFlag("pids", "pids", "processes per submission", ""),
    LimitFlag("disk", "disk_mb", "MiB of files the notebook may write", ""),
    LimitFlag("output", "output_kb", "KiB of output kept per notebook", ""),
)
NOT_ON_ARGO = "the execute pod's own limits stand in for it (docs/argo.md)"
ARGO_FLAGS = tuple(f for f in FLAGS if f.argo)
# Fields of Limits that are not a teacher's setting, and why.
FIXED = {"nofile": "open files per process: a notebook needs no more than the default"}


def _seconds_or_course_default(value: str) -> int | None:
    """An int, or '' for "not set" (an Argo parameter cannot leave a flag out)."""
    return int(value) if value.strip() else None


def type_of(f: LimitFlag) -> Any:
    return _seconds_or_course_default if f.default is None else int


def add_limit_arguments(p: Any, flags: Sequence[LimitFlag] = FLAGS, defaults: bool = True) -> None:
    """One option per limit; `defaults=False` leaves unset ones None (the template's default stands)."""
    from .params import LIMIT, add_arguments

    add_arguments(p, [LIMIT[f.flag] for f in flags], defaults=defaults)


def limits_from_args(a: argparse.Namespace) -> Limits:
    from .sandbox import Limits

    return Limits(**{f.field: getattr(a, f.dest) for f in FLAGS})


def _text(limits: Limits, f: LimitFlag) -> str:
    """One limit as a command line or an Argo parameter carries it ('' for a cell timeout left to the course)."""
    value = getattr(limits, f.field)
    return "" if value is None else str(value)


def limit_arguments(limits: Limits) -> list[str]:
    """`limits` as the command-line flags of a step (`--memory 1024 ...`), for a command built by
    hand, such as the emulated execute pod's."""
    return [arg for f in FLAGS for arg in (f"--{f.flag}", _text(limits, f))]


def argo_parameters(limits: Limits) -> dict[str, str]:
    """The Argo parameters of `limits`, as strings."""
    return {f.flag: _text(limits, f) for f in ARGO_FLAGS}
