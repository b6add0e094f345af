"""What every step CLI shares: exit codes and how errors are shown.

Each `steps/<name>.py` parses its own arguments and makes one call through `run_step`, so
the same function runs on a laptop, in the local runner and in an Argo pod.
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
from .records import Manifest, StepRecord, read_json, write_json
from .workspace import Workspace

__all__ = ["run_step", "setup_logging", "for_each_submission", "submissions_main"]


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


def submissions_main(
    step: Step,
    run: Callable[[Path, Sequence[str] | None], Any],
    argv: Sequence[str] | None,
    emit: Callable[[list[StepRecord]], list[dict]] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> int:
    """The CLI of a step that takes a workspace and optionally some students.

    `options` adds step-specific arguments (flag -> argparse keywords, `dest` naming the
    keyword `run` receives).

    With `emit`, the CLI also takes `--emit-students PATH` and writes `emit(records)` there as
    JSON: the list an Argo workflow fans the next step out over (see pipelines.workflow), and
    `--class-size N`, refusing a fan-out of more than N: score and merge size their scratch
    space from N, so a bigger class must stop here, before any notebook runs, not in score.
    """
    p = argparse.ArgumentParser(prog=f"python -m {step.module}", description=run.__doc__)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--students", nargs="*", default=None)
    if emit:
        p.add_argument(
            "--emit-students",
            type=Path,
            default=None,
            metavar="PATH",
            help="also write one JSON entry per student to PATH",
        )
    for flag, kwargs in (options or {}).items():
        p.add_argument(flag, **kwargs)
        p.add_argument("--class-size", type=int, default=None, metavar="N", help="refuse more than N submissions")
    a = p.parse_args(argv)
    extra = {kw["dest"]: getattr(a, kw["dest"]) for kw in (options or {}).values()}

    def call() -> None:
        records = run(a.workspace, a.students or None, **extra)
        if emit and a.class_size is not None and len(records) > a.class_size:
            raise TeacherError(
                f"{len(records)} submissions, but the run's class-size is {a.class_size}: score and merge would run "
                "out of scratch space",
                f"submit the run again with class-size {len(records)} or more",
            )
        if emit and a.emit_students:
            write_json(a.emit_students, emit(records))

    return run_step(step, call)
