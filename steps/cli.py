"""What every step CLI shares: its arguments (generated from the contract), exit codes and how
errors are shown.

Each `steps/<name>.py`'s `main` is one `step_main` call, so the same function runs on a laptop,
in the local runner and in an Argo pod, with the parameters steps/params.py declares.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from .contract import EXIT_INFRA, EXIT_OK, EXIT_USAGE, Step
from .errors import TeacherError
from .failures import OneSubmission, contained
from .params import add_arguments
from .records import Manifest, StepRecord, read_json
from .workspace import Workspace

__all__ = ["run_step", "setup_logging", "for_each_submission", "each_submission", "step_main", "step_parser"]


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def run_step(step: Step, call: Callable[[], Any]) -> int:
    """Run a step; map a teacher's problem to EXIT_USAGE and our own crash to EXIT_INFRA."""
    setup_logging()
    log = logging.getLogger(f"gradeflow.{step.name}")
    try:
        call()
    except TeacherError as e:
        log.error("%s", e)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - the traceback is the evidence; the exit code says "retry may help"
        log.error("%s failed:\n%s", step.name, traceback.format_exc())
        return EXIT_INFRA
    return EXIT_OK


def for_each_submission(
    step: Step, one: OneSubmission, workspace: Path, students: Sequence[str] | None
) -> list[StepRecord]:
    """Run a per-submission step function over the manifest's students (or only `students`).

    Each submission's failure is contained to it (steps.failures.contained)."""
    ws = Workspace(workspace)
    if not ws.manifest.is_file():
        # In Argo, score runs in the exit handler even when collect never finished: no retry
        # can make the manifest appear, so this is not our crash (EXIT_INFRA) but a stop.
        raise TeacherError(
            f"{step.name}: no manifest.json in {workspace}: collect did not finish for this run",
            "fix what collect reported (gradeflow logs RUN) and run again",
        )
    manifest = Manifest.load(ws.manifest)
    snapshot = read_json(ws.snapshot)
    with tempfile.TemporaryDirectory(prefix=f"gradeflow-{step.name}-") as scratch:
        one = contained(step, one)  # a crash on one submission leaves it UNGRADED; the others go on
        return [one(ws.root, manifest, snapshot, s, Path(scratch)) for s in (students or manifest.students())]


def each_submission(step: Step, workspace: Path, students: Sequence[str] | None, **params: Any) -> list[StepRecord]:
    """`step`'s `per_submission` (what the local chain calls) over the manifest's students, with
    `params` as `step_main` gives them (by argparse attribute) handed on by Param name: the step
    CLI reads its parameters the way the local runner passes them, so a new one needs no edit here."""
    from .params import by_name
    from .workspace import SubmissionOptions, per_submission

    unknown = set(params) - {prm.dest for prm in step.params}
    if unknown:
        raise TypeError(
            f"{step.name} takes no parameter {', '.join(sorted(unknown))} (steps/contract.py lists its own)"
        )
    named = by_name(step.params, params)
    fn = per_submission(step)

    def one(ws: Path, manifest: Manifest, snapshot: dict[str, Any], student: str, scratch: Path) -> StepRecord:
        return fn(Workspace(ws), manifest, snapshot, student, SubmissionOptions(scratch=scratch, params=named))

    return for_each_submission(step, one, workspace, students)


def step_parser(step: Step) -> argparse.ArgumentParser:
    """`step`'s command line: `--workspace` and one option per parameter it declares."""
    p = argparse.ArgumentParser(prog=f"python -m {step.module}", description=step.description)
    p.add_argument("--workspace", type=Path, required=True, help="the run's workspace (steps/contract.py)")
    add_arguments(p, step.params)
    return p


def step_main(
    step: Step,
    run: Callable[..., Any],
    argv: Sequence[str] | None = None,
    finish: Callable[[Any], int] | None = None,
) -> int:
    """The CLI of `step` (`python -m steps.<name>`), generated from the contract: `--workspace`
    and one option per parameter the step declares (steps.params).

    `run(workspace=..., <param>=...)` gets every parameter by its keyword (`students` None when
    none are given): the step's function itself, or a small adapter where the function takes
    them otherwise. `finish(result)` maps a finished run's result to the exit code (merge: 75
    when a submission is UNGRADED); without it a finished run exits 0.
    """
    a = step_parser(step).parse_args(argv)
    kwargs = {prm.dest: getattr(a, prm.dest) for prm in step.params}
    kwargs.update({prm.dest: None for prm in step.params if prm.nargs == "*" and not kwargs[prm.dest]})
    result: list[Any] = []
    code = run_step(step, lambda: result.append(run(workspace=a.workspace, **kwargs)))
    return finish(result[0]) if finish and code == EXIT_OK else code
