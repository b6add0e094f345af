"""execute: run one submission's restored notebooks in a sandbox, with papermill.

The only step that runs student code. It reads `restored/<student>/` (the work dir and
restore.json, which says which notebooks can be graded) and writes `executed/<student>/`:
each executed notebook, execute.json and execute.log. A student's exception, timeout or
killed kernel is recorded in those files, never raised: the step itself fails (exit 75) only
when our side breaks, which is what Argo retries.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from .contract import STEPS
from .limits import limits_from_args
from .records import OK, REPAIRED, Manifest, StepRecord, read_json
from .sandbox import DEFAULT_SANDBOX, Limits, Sandbox, check_available, get_sandbox, options_from_env
from .workspace import SubmissionOptions, Workspace

__all__ = ["execute", "per_submission", "main"]

STEP = STEPS["execute"]


def execute(
    workspace: Path,
    student: str,
    sandbox: Sandbox | str = DEFAULT_SANDBOX,
    limits: Limits = Limits(),
    slot: int = 0,
    check: bool = True,
) -> StepRecord:
    """Execute every gradable notebook of one submission in `sandbox` (a name: its defaults).
    `check`: first make sure the sandbox can run here (the local runner did once for the whole
    run, and passes the sandbox it resolved then)."""
    ws = Workspace(workspace)
    if isinstance(sandbox, str):
        sandbox = get_sandbox(sandbox, check=False)  # checked below, when there is something to execute
    restore_record = StepRecord.load(ws.record("restore", student))
    notebooks = [o.notebook for o in restore_record.notebooks if o.status in (OK, REPAIRED)]
    config = read_json(ws.snapshot).get("config", {})
    out = ws.executed(student)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if not notebooks:
        record = StepRecord("execute", student, detail={"sandbox": sandbox.name, "note": "nothing gradable to execute"})
        record.save(ws.record(STEP, student))
        return record
    if check:
        check_available(sandbox)
    return sandbox.execute_submission(ws.work(student), notebooks, out, limits, config, slot)


def per_submission(
    ws: Workspace, manifest: Manifest, snapshot: dict[str, Any], student: str, opts: SubmissionOptions
) -> StepRecord:
    """The local runner's chain entry (steps.workspace.PerSubmission)."""
    return execute(ws, student, opts.sandbox or DEFAULT_SANDBOX, opts.limits or Limits(), opts.slot, check=opts.check)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import step_main

    def run(workspace: Path, student: str, sandbox: str, slot: int, **limits: int | None) -> StepRecord:
        # configuration is read here, at the edge: GRADEFLOW_ZYGOTE becomes the sandbox's `zygote` option
        box = get_sandbox(sandbox, check=False, **options_from_env(os.environ))
        return execute(workspace, student, box, limits_from_args(argparse.Namespace(**limits)), slot)

    return step_main(STEP, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
