"""The local runner: the grading DAG on this machine, no cluster needed.

collect → (restore → execute → score per submission, N in parallel) → merge, calling the
same `steps` functions the Argo pods run, with artifacts
in a store (a directory in the course by default). Submissions graded before with the same
content are not regraded unless forced.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing as mp
import os
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from steps.collect import collect, new_run_id
from steps.contract import STEPS
from steps.errors import TeacherError
from steps.merge import CourseWriter, merge
from steps.records import FAILED, MISSING, OK, REPAIRED, Manifest, NotebookOutcome, StepRecord, read_json, write_json
from steps.sandbox import DEFAULT_SANDBOX, Limits, get_sandbox

from .store import open_store

__all__ = ["GradeOptions", "grade", "RUNS_DIR", "Event"]

RUNS_DIR = "gradeflow_runs"  # in the course directory: the default store, state and lock
log = logging.getLogger("gradeflow.local")


@dataclass
class GradeOptions:
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    students: Sequence[str] | None = None
    sandbox: str = DEFAULT_SANDBOX
    limits: Limits = field(default_factory=Limits)
    store: str | None = None  # default: COURSE_DIR/gradeflow_runs
    force: bool = False
    strict: bool = False  # no recovery of malformed notebooks (restore's `strict`): nbgrader's behaviour


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


@contextlib.contextmanager
def _course_lock(course_dir: Path, assignment: str) -> Iterator[None]:
    """One grading run per course and assignment at a time: two would race on gradebook.db."""
    runs = course_dir / RUNS_DIR
    runs.mkdir(exist_ok=True)
    with open(runs / f".{assignment}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TeacherError(f"another gradeflow run is grading {assignment!r} in this course", "wait for it to finish") from None
        yield


def _state_path(course_dir: Path, assignment: str) -> Path:
    return course_dir / RUNS_DIR / "state" / f"{assignment}.json"


def _drop_unchanged(manifest: Manifest, course_dir: Path, force: bool) -> None:
    """Leave out submissions graded before with the same content (nbgrader skips them too)."""
    if force:
        return
    state = read_json(_state_path(course_dir, manifest.assignment)) if _state_path(course_dir, manifest.assignment).is_file() else {}
    autograded = course_dir / "autograded"
    keep = []
    for sub in manifest.submissions:
        prev = state.get(sub.student, {})
        if prev.get("content_hash") == sub.content_hash and (autograded / sub.student / manifest.assignment).is_dir():
            manifest.unchanged.append(sub.student)
        else:
            keep.append(sub)
    manifest.submissions = keep


def _remember(course_dir: Path, results: dict[str, Any]) -> None:
    path = _state_path(course_dir, results["assignment"])
    state = read_json(path) if path.is_file() else {}
    for s in results["students"]:
        if s["status"] in (OK, REPAIRED, MISSING):
            state[s["student"]] = {"content_hash": s["content_hash"], "run_id": results["run_id"]}
        else:
            state.pop(s["student"], None)  # skipped or failed: try again next time
    write_json(path, state)


# --- the parallel part: one process per job, each with its own sandbox slot -------------------

_slot: int = 0
_scratch: Path | None = None  # the worker's scratch gradebook dir: one path, so one engine (steps.gradebook)


def _init_worker(slots: Any) -> None:
    global _slot, _scratch
    import shutil
    import tempfile
    from multiprocessing.util import Finalize

    _slot = slots.get()
    _scratch = Path(tempfile.mkdtemp(prefix=f"gradeflow-worker-{_slot}-"))
    Finalize(None, shutil.rmtree, args=(_scratch,), kwargs={"ignore_errors": True}, exitpriority=10)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")


def _grade_submission(workspace: str, student: str, sandbox: str, limits: Limits, strict: bool = False) -> tuple[StepRecord, StepRecord]:
    """restore → execute → score for one submission, in a worker: the per-submission part of
    the DAG runs as soon as a slot is free instead of step by step for the whole class."""
    from steps.execute import execute
    from steps.restore import restore_submission
    from steps.score import score_submission

    ws = Path(workspace)
    manifest = Manifest.load(ws / "manifest.json")
    snapshot = read_json(ws / "snapshot.json")
    assert _scratch is not None, "runs in a worker started by _pool"
    restore_submission(ws, manifest, snapshot, student, _scratch, strict)
    try:
        executed = execute(ws, student, sandbox, limits, _slot)
    except Exception as e:  # noqa: BLE001 - our side broke for this submission; the batch goes on
        log.exception("execute failed for %s", student)
        executed = StepRecord("execute", student, detail={"error": f"{type(e).__name__}: {e}"})
        executed.notebooks = [NotebookOutcome(n, FAILED, f"gradeflow could not execute it ({type(e).__name__}: {e}); retry the run") for n in manifest.submission(student).notebooks]
        out = ws / "executed" / student
        out.mkdir(parents=True, exist_ok=True)
        executed.save(out / "execute.json")
    scored = score_submission(ws, manifest, snapshot, student, _scratch)
    return executed, scored


def _warm() -> None:
    """Start a worker (its imports come from the forkserver's preload) before there is work."""


def _start_warming(pool: ProcessPoolExecutor, jobs: int) -> threading.Thread:
    """Start the workers in the background: starting one waits for the forkserver's imports,
    which should run beside collect, not before it."""

    def run() -> None:
        with contextlib.suppress(RuntimeError):  # the pool was shut down (collect failed)
            wait([pool.submit(_warm) for _ in range(jobs)])

    thread = threading.Thread(target=run, name="gradeflow-warm", daemon=True)
    thread.start()
    return thread


def _pool(jobs: int) -> ProcessPoolExecutor:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["steps.restore", "steps.execute", "steps.score", "nbgrader.preprocessors", "papermill", "nbclient"])
    slots = ctx.Queue()
    for i in range(jobs):
        slots.put(i)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots,))


def _write_report(workspace: Path) -> None:
    """results/report.html; a report that cannot be written never fails the grading."""
    try:
        from .report import render_report

        render_report(workspace)
    except Exception:  # noqa: BLE001 - the grades are written; `gradeflow report RUN_DIR` can retry
        log.warning("could not write results/report.html (grading is complete; retry with `gradeflow report %s`)", workspace, exc_info=True)


def grade(course_dir: Path, assignment: str, options: GradeOptions | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Grade every (changed) submission of `assignment`; return the run's results.json content."""
    options = options or GradeOptions()
    progress = progress or (lambda e: None)
    course_dir = Path(course_dir).resolve()
    if not course_dir.is_dir():
        raise TeacherError(f"course directory {course_dir} does not exist", "give the folder that holds gradebook.db")
    sandbox = get_sandbox(options.sandbox)  # refuse before doing anything if it cannot run here
    store = open_store(options.store or course_dir / RUNS_DIR)
    run_id = new_run_id(assignment)
    jobs = max(1, options.jobs)
    clock = time.monotonic()
    timings: dict[str, float] = {"course_writes_s": 0.0}  # where the run's time went (bench/, report)
    with _course_lock(course_dir, assignment), store.workspace(run_id) as ws, _pool(jobs) as pool:
        warming = _start_warming(pool, jobs)
        progress(Event("collect", "start"))
        try:
            manifest = collect(course_dir, assignment, ws, options.students, run_id)
        except TeacherError:
            if store.is_local:  # nothing was graded: leave no empty run folder behind
                import shutil

                shutil.rmtree(ws, ignore_errors=True)
            raise
        _drop_unchanged(manifest, course_dir, options.force)
        manifest.save(ws / "manifest.json")
        for a in STEPS["collect"].outputs:
            store.push(ws, run_id, a.path)
        students = manifest.students()
        progress(Event("collect", "done", total=len(students)))
        timings["collect_s"] = time.monotonic() - clock

        progress(Event("execute", "start", total=len(students)))
        writer = CourseWriter(ws, course_dir)
        warming.join()
        pending = {pool.submit(_grade_submission, str(ws), s, sandbox.name, options.limits, options.strict): s for s in students}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                student = pending.pop(fut)
                executed, scored = fut.result()
                for step_dir in ("restored", "executed", "scored"):
                    store.push(ws, run_id, f"{step_dir}/{student}")
                # merge's gradebook writes for this submission now, while the workers run the next
                t = time.monotonic()
                writer.write(student)
                timings["course_writes_s"] += time.monotonic() - t
                progress(Event("execute", "submission", total=len(students), student=student, status=scored.status, seconds=executed.seconds))
        progress(Event("execute", "done", total=len(students)))
        timings["graded_s"] = time.monotonic() - clock

        progress(Event("merge", "start"))
        results = merge(ws)  # the gradebook already has every submission: only results/ is left
        results["run_dir"] = store.run_url(run_id)
        results["sandbox"] = sandbox.name
        results["jobs"] = jobs
        timings["results_s"] = time.monotonic() - clock
        results["timings"] = {k: round(v, 3) for k, v in timings.items()}
        write_json(ws / "results" / "results.json", results)
        _write_report(ws)
        store.push(ws, run_id, "results")
        if not store.is_local:  # the teacher keeps the results next to the course either way
            import shutil

            shutil.copytree(ws / "results", course_dir / RUNS_DIR / run_id / "results", dirs_exist_ok=True)
        _remember(course_dir, results)
        progress(Event("merge", "done"))
    return results
