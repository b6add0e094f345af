"""The per-submission part of the DAG, in a local worker: restore → execute → score (→ feedback).

The chain is not wired by hand: it is `steps.workspace.submission_chain()`, the contract's DAG
steps whose outputs are per student, each called through its module's `per_submission` with one
signature. A submission runs as soon as a slot is free instead of step by step for the class.

Every step's failure is contained to its submission: when gradeflow itself fails in a step that
decides the grade (restore, execute, score), the submission is UNGRADED with a reason naming the
step, nothing is written to the course for it, and the batch goes on; an optional step's failure
(feedback) costs only its own output. Also here: the canary, a one-notebook test of the sandbox
before any submission is touched, and the warming of workers and their first sandboxes.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Iterator, Mapping

from steps.contract import OPTIONAL, Step
from steps.failures import infra_reason, step_failed
from steps.records import OK, Manifest, NotebookOutcome, StepRecord, read_json, write_json
from steps.sandbox import Limits, Sandbox
from steps.workspace import EXECUTE_LOG, SubmissionOptions, Workspace, per_submission, submission_chain

from .pool import worker_scratch, worker_slot

__all__ = ["grade_submission", "canary", "start_warming", "warm"]

log = logging.getLogger("gradeflow.local")


@contextlib.contextmanager
def _next_sandbox_after(step: Step, opts: SubmissionOptions, more: bool) -> Iterator[None]:
    """After the step that runs student code, start this slot's next sandbox (empty) while the
    submission is scored and the next one restored, when more are queued."""
    try:
        yield
    finally:
        if more and step.runs_student_code:
            from steps.sandbox import prestart

            prestart(opts.sandbox, opts.limits or Limits(), opts.slot)


def grade_submission(
    workspace: str,
    student: str,
    sandbox: Sandbox,
    limits: Limits,
    params: Mapping[str, Any] | None = None,
    more: bool = False,
) -> tuple[StepRecord | None, StepRecord, str]:
    """The per-submission chain for one submission, in a worker.

    Returns the execute and score records and, when gradeflow failed on it, the failure's kind.
    `params`: the steps' parameters by Param name (`GradeOptions.params`), handed to every step,
    which reads its own (`SubmissionOptions.param`); `feedback` true adds the feedback step.
    `more`: submissions are still queued, so the next sandbox of this slot starts (empty) as
    soon as this one is executed, while this one is scored and the next restored."""
    ws = Workspace(workspace)
    manifest = Manifest.load(ws.manifest)
    snapshot = read_json(ws.snapshot)
    opts = SubmissionOptions(
        scratch=worker_scratch(),
        sandbox=sandbox,
        limits=limits,
        slot=worker_slot(),
        check=False,  # checked before the run; the canary ran in it
        scored_in_scratch=True,  # score runs in this worker's scratch gradebook just before feedback
        params=dict(params or {}),
    )
    records: dict[str, StepRecord] = {}
    for step in submission_chain({"feedback"} if opts.param("feedback") else set()):
        try:
            with _next_sandbox_after(step, opts, more):
                records[step.name] = per_submission(step)(ws, manifest, snapshot, student, opts)
        except Exception as e:  # noqa: BLE001 - our side broke for this submission: not a grade; the batch goes on
            # the chain stops here: score's record (what merge reads) says UNGRADED and why
            record, kind = step_failed(ws, manifest, step, student, e, as_step="score")
            if step.name not in OPTIONAL:
                return None, record, kind
    return records.get("execute"), records["score"], ""


def canary(sandbox: Sandbox, limits: Limits) -> str:
    """Start one kernel in the chosen sandbox with the chosen limits and run `1 + 1`; return ""
    or why it failed. Runs in a worker beside collect, so a broken sandbox stops the run before
    any submission is touched."""
    import shutil
    from multiprocessing.util import Finalize

    import nbformat

    from steps.sandbox.leftovers import temp_prefix

    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix("canary")))
    remove = Finalize(
        None, shutil.rmtree, args=(tmp,), kwargs={"ignore_errors": True}, exitpriority=10
    )  # also on SIGTERM
    try:
        # a one-notebook workspace laid out as restore leaves it: backends that run the whole
        # execute step (the emulated Argo pod) read restore.json and snapshot.json from it
        ws = Workspace(tmp)
        work, out = ws.work("canary"), ws.executed("canary")
        work.mkdir(parents=True)
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("1 + 1")],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        nbformat.write(nb, str(work / "canary.ipynb"))
        write_json(ws.snapshot, {"notebooks": [], "config": {}})
        restore = StepRecord("restore", "canary")
        restore.notebooks = [NotebookOutcome("canary", OK)]
        restore.save(ws.record("restore", "canary"))
        try:
            rec = sandbox.execute_submission(work, ["canary"], out, limits, {}, worker_slot())
        except Exception as e:  # noqa: BLE001 - reported to the teacher, not raised in a worker
            return infra_reason(e)[1]
        outcome = rec.outcome("canary")
        ran = nbformat.read(str(out / "canary.ipynb"), as_version=4).cells[-1].get("outputs", [])
        if outcome is None or outcome.status != OK or not any(o.get("output_type") == "execute_result" for o in ran):
            log_file = out / EXECUTE_LOG
            log_text = log_file.read_text(errors="replace")[-600:] if log_file.is_file() else ""
            return (
                f"a kernel started but could not run `1 + 1` ({outcome.reason if outcome else 'no outcome'}); "
                f"its log ends: {log_text.strip()}"
            )
        warm(False, sandbox, limits)  # the sandbox works: this worker's first submission gets one started now
        return ""
    finally:
        remove()


def warm(feedback: bool = False, sandbox: Sandbox | None = None, limits: Limits | None = None) -> None:
    """Start a worker (its imports come from the forkserver's preload) before there is work,
    and its first sandbox (empty, see `grade_submission`); with `feedback`, also load the
    feedback templates (about 1 s, once per worker)."""
    if sandbox is not None and limits is not None:
        from steps.sandbox import prestart

        prestart(sandbox, limits, worker_slot())
    if feedback:
        from steps.feedback import warm as warm_feedback

        warm_feedback()


def start_warming(
    pool: ProcessPoolExecutor, jobs: int, sandbox: Sandbox, limits: Limits, feedback: bool = False
) -> tuple[threading.Thread, list[Any]]:
    """Start the canary and the workers in the background: starting one waits for the
    forkserver's imports, which should run beside collect, not before it (nor under the course
    lock). Returns the thread and a list that will hold the canary's future."""
    future: list[Any] = []

    def run() -> None:
        with contextlib.suppress(RuntimeError):  # the pool was shut down (collect failed)
            future.append(pool.submit(canary, sandbox, limits))
            wait([pool.submit(warm, feedback, sandbox, limits) for _ in range(jobs - 1)])

    thread = threading.Thread(target=run, name="gradeflow-warm", daemon=True)
    thread.start()
    return thread, future
