"""execute: run one submission's restored notebooks in a sandbox, with papermill.

The only step that runs student code. It reads `restored/<student>/` (the work dir and
restore.json, which says which notebooks can be graded) and writes `executed/<student>/`:
each executed notebook, execute.json and execute.log. A student's exception, timeout or
killed kernel is recorded in those files, never raised: the step itself fails (exit 75) only
when our side breaks, which is what Argo retries.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any, Sequence

from .contract import STEPS
from .limits import add_limit_arguments, limits_from_args
from .records import OK, REPAIRED, Manifest, StepRecord, read_json
from .sandbox import DEFAULT_SANDBOX, SANDBOXES, Limits, get_sandbox
from .workspace import SubmissionOptions, Workspace

__all__ = [
    "execute",
    "per_submission",
    "main",
    "add_limit_arguments",
    "limits_from_args",
]  # the latter two: steps.limits, for the CLIs

STEP = STEPS["execute"]


def execute(
    workspace: Path,
    student: str,
    sandbox: str = DEFAULT_SANDBOX,
    limits: Limits = Limits(),
    slot: int = 0,
    check: bool = True,
) -> StepRecord:
    """Execute every gradable notebook of one submission in the named sandbox. `check`: first
    make sure the sandbox can run here (the local runner did once for the whole run)."""
    ws = Workspace(workspace)
    restore_record = StepRecord.load(ws.record("restore", student))
    notebooks = [o.notebook for o in restore_record.notebooks if o.status in (OK, REPAIRED)]
    config = read_json(ws.snapshot).get("config", {})
    out = ws.executed(student)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if not notebooks:
        record = StepRecord("execute", student, detail={"sandbox": sandbox, "note": "nothing gradable to execute"})
        record.save(ws.record(STEP, student))
        return record
    return get_sandbox(sandbox, check=check).execute_submission(ws.work(student), notebooks, out, limits, config, slot)


def per_submission(
    ws: Workspace, manifest: Manifest, snapshot: dict[str, Any], student: str, opts: SubmissionOptions
) -> StepRecord:
    """The local runner's chain entry (steps.workspace.PerSubmission)."""
    return execute(ws, student, opts.sandbox or DEFAULT_SANDBOX, opts.limits or Limits(), opts.slot, check=opts.check)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_step

    p = argparse.ArgumentParser(prog="python -m steps.execute", description=execute.__doc__)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--student", required=True)
    p.add_argument("--sandbox", default=DEFAULT_SANDBOX, choices=sorted(SANDBOXES))
    p.add_argument("--slot", type=int, default=0, help="parallel slot (picks the sandbox uid when run as root)")
    add_limit_arguments(p)
    a = p.parse_args(argv)
    return run_step(STEP, lambda: execute(a.workspace, a.student, a.sandbox, limits_from_args(a), a.slot))


if __name__ == "__main__":
    raise SystemExit(main())
