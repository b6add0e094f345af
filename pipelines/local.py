"""The local runner: the grading DAG on this machine, no cluster needed.

collect → (the per-submission chain, restore → execute → score [→ feedback], N in parallel) →
merge, calling the same `steps` functions the Argo pods run, with artifacts in a store (a
directory in the course by default). Submissions graded before with the same content are not
regraded unless forced. This module sequences the run; the work is done in
`pipelines.chain` (one submission, in a worker), `pipelines.pool` (the workers and signals)
and `pipelines.runstate` (the course's lock and grading state).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from steps.collect import collect
from steps.contract import OPTIONAL, RESULTS, STEPS
from steps.course import new_run_id, open_course
from steps.errors import SandboxError, TeacherError
from steps.failures import ungraded_record
from steps.merge import CourseWriter, merge
from steps.params import teacher_fields
from steps.records import UNGRADED
from steps.sandbox import DEFAULT_SANDBOX, Limits, Sandbox, get_sandbox
from steps.workspace import Workspace, submission_chain

from .chain import grade_submission, start_warming
from .pool import Signals, close_pool, make_pool, stop_pool
from .runstate import course_lock, drop_unchanged, preflight, remember, teacher_os_error
from .store import RUNS_DIR, open_store

__all__ = ["GradeOptions", "grade", "RUNS_DIR", "Event"]

log = logging.getLogger("gradeflow.local")


@dataclass
@teacher_fields  # and one keyword per step parameter `gradeflow grade` takes, e.g. strict=, feedback=
class GradeOptions:
    """A local run's options. The steps' parameters a teacher sets (steps/params.py, `grade=True`:
    strict, feedback, feedback_hidden_tests, max_submission_mb, ...) are generated keywords with
    their declared defaults; `options.params` is them by Param name, as every step gets them."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    students: Sequence[str] | None = None
    sandbox: str = DEFAULT_SANDBOX
    sandbox_options: dict[str, Any] = field(default_factory=dict)  # e.g. image= for podman, zygote=
    limits: Limits = field(default_factory=Limits)
    store: str | None = None  # default: COURSE_DIR/gradeflow_runs
    force: bool = False
    gradebook_wait: float = 60.0  # seconds to wait for a gradebook another program holds locked


@dataclass
class Event:
    """Progress, for whoever shows it: a step started or finished, or one submission finished."""

    step: str
    kind: str  # "start" | "done" | "submission"
    total: int = 0
    student: str = ""
    status: str = ""
    seconds: float = 0.0


Progress = Callable[[Event], None]


STOP_AFTER = 3  # this many first submissions failing the same infrastructure way stop the run


def _write_report(workspace: Path) -> None:
    """results/report.html; a report that cannot be written never fails the grading."""
    try:
        from .report import render_report

        render_report(workspace)
    except Exception:  # noqa: BLE001 - the grades are written; `gradeflow report RUN_DIR` can retry
        log.warning(
            "could not write results/report.html (grading is complete; retry with `gradeflow report %s`)",
            workspace,
            exc_info=True,
        )


def grade(
    course_dir: Path, assignment: str, options: GradeOptions | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Grade every (changed) submission of `assignment`; return the run's results.json content."""
    options = options or GradeOptions()
    course_dir = Path(course_dir).resolve()
    if not course_dir.is_dir():
        raise TeacherError(
            f"course directory {course_dir} does not exist", "give the folder that holds nbgrader_config.py"
        )
    with Signals() as signals:
        try:
            return _grade(course_dir, assignment, options, progress or (lambda e: None), signals)
        except OSError as e:
            teacher = teacher_os_error(e)
            if teacher is None:
                raise
            raise teacher from e


def _grade(
    course_dir: Path, assignment: str, options: GradeOptions, progress: Progress, signals: Signals
) -> dict[str, Any]:
    from steps.sandbox.leftovers import remove_dead_runs

    # resolved and checked once for the run, and passed down to every worker: refuse before doing anything
    sandbox = get_sandbox(options.sandbox, **options.sandbox_options)
    removed = remove_dead_runs()  # what runs killed before left behind (only theirs: dead owners)
    if any(removed.values()):
        log.info("removed what killed runs left behind: %s", removed)
    store = open_store(options.store or course_dir / RUNS_DIR)
    preflight(course_dir, assignment, store.is_local)
    run_id = new_run_id(assignment)
    jobs = max(1, options.jobs)
    clock = time.monotonic()
    timings: dict[str, float] = {"course_writes_s": 0.0}  # where the run's time went (bench/, report)
    with course_lock(course_dir, assignment), store.workspace(run_id) as root:
        ws = Workspace(root)
        pool = make_pool(jobs)
        try:
            warming, canary = start_warming(pool, jobs, sandbox, options.limits, options.feedback)
            results = _run(
                course_dir,
                assignment,
                options,
                progress,
                signals,
                store,
                ws,
                run_id,
                pool,
                canary,
                warming,
                sandbox,
                jobs,
                clock,
                timings,
            )
        except BaseException:
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)
        close_pool(pool)
    return results


def _run(
    course_dir: Path,
    assignment: str,
    options: GradeOptions,
    progress: Progress,
    signals: Signals,
    store: Any,
    ws: Workspace,
    run_id: str,
    pool: ProcessPoolExecutor,
    canary: list[Any],
    warming: threading.Thread,
    sandbox: Sandbox,
    jobs: int,
    clock: float,
    timings: dict[str, float],
) -> dict[str, Any]:
    from steps.locks import wait_for_gradebook

    progress(Event("collect", "start"))
    try:
        # the teacher's collect parameters by name, as the chain hands each step its own: a new
        # `grade=True` Param of collect reaches it with no edit here
        chosen = {p.dest: options.params[p.name] for p in STEPS["collect"].params if p.name in options.params}
        manifest = wait_for_gradebook(
            lambda: collect(course_dir, assignment, ws, options.students, run_id, **chosen),
            _db_url(course_dir),
            options.gradebook_wait,
        )
    except TeacherError:
        if store.is_local:  # nothing was graded: leave no empty run folder behind
            import shutil

            shutil.rmtree(ws, ignore_errors=True)
        raise
    drop_unchanged(manifest, course_dir, options.force, options.feedback)
    manifest.save(ws.manifest)
    for a in STEPS["collect"].outputs:
        store.push(ws.root, run_id, ws.rel(a))
    students = manifest.students()
    progress(Event("collect", "done", total=len(students)))
    timings["collect_s"] = time.monotonic() - clock

    warming.join()
    if students:
        why = canary[0].result()
        if why:
            import shutil

            if store.is_local:
                shutil.rmtree(ws, ignore_errors=True)
            raise SandboxError(
                f"the {sandbox.name} sandbox could not run a test kernel with these limits "
                f"({options.limits.memory_mb} MiB memory, {options.limits.pids} processes, "
                f"{options.limits.wall_time} s): {why}",
                "nothing was graded and the course is unchanged; fix the sandbox or the limits, then run again",
            )
    progress(Event("execute", "start", total=len(students)))
    writer = CourseWriter(ws, course_dir)
    hashes = {s.student: s.content_hash for s in manifest.submissions}
    queue = list(reversed(students))  # submitted a few at a time, so a failing run can stop early
    pending: dict[Any, str] = {}
    first_kinds: list[str] = []  # how the first submissions ended: "" graded, else the infrastructure failure
    while queue or pending:
        while queue and len(pending) < 2 * jobs:
            s = queue.pop()
            pending[
                pool.submit(
                    grade_submission,
                    str(ws.root),
                    s,
                    sandbox,
                    options.limits,
                    options.params,
                    bool(queue),
                )
            ] = s
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            student = pending.pop(fut)
            try:
                executed, scored, kind = fut.result()
            except BrokenProcessPool as e:  # a worker was killed (OOM killer, kill -9): ours, not the student's
                reason = f"a grading worker died ({e}); run again"
                for s in [student, *pending.values(), *reversed(queue)]:
                    ungraded_record(ws.root, manifest, s, reason, "worker-died")
                    progress(Event("execute", "submission", total=len(students), student=s, status=UNGRADED))
                pending.clear()
                queue.clear()
                break
            for step in submission_chain(OPTIONAL):  # every per-submission output there is
                if ws.output(step, student).exists():
                    store.push(ws.root, run_id, ws.rel(step.outputs[0], student))
            # merge's gradebook writes for this submission now, while the workers run the next
            t = time.monotonic()

            def write(student: str = student, status: str = scored.status) -> None:
                with signals.deferred():  # a stop waits for this one submission, not for a locked gradebook
                    writer.write(student)
                    remember(course_dir, assignment, student, hashes[student], run_id, status)

            wait_for_gradebook(write, writer.coursedir.db_url, options.gradebook_wait)
            timings["course_writes_s"] += time.monotonic() - t
            progress(
                Event(
                    "execute",
                    "submission",
                    total=len(students),
                    student=student,
                    status=scored.status,
                    seconds=executed.seconds if executed else 0.0,
                )
            )
            if len(first_kinds) < STOP_AFTER:
                first_kinds.append(kind)
                if len(first_kinds) == STOP_AFTER and first_kinds[0] and len(set(first_kinds)) == 1 and queue:
                    first = scored.notebooks[0].reason.removeprefix("not graded: ")
                    reason = f"not run: the first {STOP_AFTER} submissions all failed the same way ({first})"
                    for s in reversed(queue):
                        ungraded_record(ws.root, manifest, s, reason, "stopped")
                        progress(Event("execute", "submission", total=len(students), student=s, status=UNGRADED))
                    queue.clear()
    progress(Event("execute", "done", total=len(students)))
    timings["graded_s"] = time.monotonic() - clock

    progress(Event("merge", "start"))
    timings["results_s"] = time.monotonic() - clock
    run = {
        "run_dir": store.run_url(run_id),
        "sandbox": sandbox.name,
        "jobs": jobs,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    results = merge(ws, run=run)  # the gradebook already has every submission: only results/ is left
    _write_report(ws.root)
    store.push(ws.root, run_id, ws.rel(RESULTS))
    if not store.is_local:  # the teacher keeps the results next to the course either way
        import shutil

        shutil.copytree(ws.results, Workspace(course_dir / RUNS_DIR / run_id).results, dirs_exist_ok=True)
    progress(Event("merge", "done"))
    return results


def _db_url(course_dir: Path) -> str:
    return open_course(course_dir)[1].db_url
