"""The local runner: the grading DAG on this machine, no cluster needed.

collect → (restore → execute → score per submission, N in parallel) → merge, calling the
same `steps` functions the Argo pods run, with artifacts
in a store (a directory in the course by default). Submissions graded before with the same
content are not regraded unless forced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from steps.collect import collect
from steps.contract import STEPS
from steps.course import new_run_id, open_course
from steps.errors import Busy, InfraError, Interrupted, SandboxError, TeacherError
from steps.merge import CourseWriter, merge
from steps.records import MISSING, OK, REPAIRED, UNGRADED, Manifest, NotebookOutcome, StepRecord, read_json, write_json
from steps.sandbox import DEFAULT_SANDBOX, Limits, Sandbox, get_sandbox

from .forkserver_preload import die_with_parent
from .store import RUNS_DIR, open_store

__all__ = ["GradeOptions", "grade", "RUNS_DIR", "Event"]

log = logging.getLogger("gradeflow.local")


@dataclass
class GradeOptions:
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    students: Sequence[str] | None = None
    sandbox: str = DEFAULT_SANDBOX
    sandbox_options: dict[str, Any] = field(default_factory=dict)  # e.g. image= for podman, zygote=
    limits: Limits = field(default_factory=Limits)
    store: str | None = None  # default: COURSE_DIR/gradeflow_runs
    force: bool = False
    strict: bool = False  # no recovery of malformed notebooks (restore's `strict`): nbgrader's behaviour
    feedback: bool = False  # also write each student's feedback (steps.feedback) in the same run
    feedback_hidden_tests: str = "redact"  # or "show": nbgrader's own behaviour
    max_submission_mb: int = 200  # larger submissions are SKIPPED with their size
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


@contextlib.contextmanager
def _course_lock(course_dir: Path, assignment: str) -> Iterator[None]:
    """One grading run per course and assignment at a time: two would race on the gradebook."""
    runs = course_dir / RUNS_DIR
    runs.mkdir(exist_ok=True)
    with open(runs / f".{assignment}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(
                f"another gradeflow run is grading {assignment!r} in this course", "wait for it to finish"
            ) from None
        yield


def _state_path(course_dir: Path, assignment: str) -> Path:
    return course_dir / RUNS_DIR / "state" / f"{assignment}.json"


def _drop_unchanged(manifest: Manifest, course_dir: Path, force: bool, feedback: bool = False) -> None:
    """Leave out submissions graded before with the same content (nbgrader skips them too)."""
    if force:
        return
    state = (
        read_json(_state_path(course_dir, manifest.assignment))
        if _state_path(course_dir, manifest.assignment).is_file()
        else {}
    )
    autograded = course_dir / "autograded"
    keep = []
    for sub in manifest.submissions:
        prev = state.get(sub.student, {})
        has_feedback = (
            not feedback or (course_dir / "feedback" / sub.student / manifest.assignment).is_dir()
        )  # --feedback: pages missing count as changed
        if (
            prev.get("content_hash") == sub.content_hash
            and (autograded / sub.student / manifest.assignment).is_dir()
            and has_feedback
        ):
            manifest.unchanged.append(sub.student)
        else:
            keep.append(sub)
    manifest.submissions = keep


def _remember(course_dir: Path, assignment: str, student: str, content_hash: str, run_id: str, status: str) -> None:
    """Record one merged submission at once, so a killed run resumes with only what is left."""
    if status == UNGRADED:
        return  # gradeflow failed on it: the course keeps its earlier grades, and so does the state
    path = _state_path(course_dir, assignment)
    state = read_json(path) if path.is_file() else {}
    if status in (OK, REPAIRED, MISSING):
        state[student] = {"content_hash": content_hash, "run_id": run_id}
    else:
        state.pop(student, None)  # skipped or failed: try again next time
    write_json(path, state)


STOP_AFTER = 3  # this many first submissions failing the same infrastructure way stop the run


def _submitted_bytes(course_dir: Path, assignment: str) -> int:
    total = 0
    for d in (course_dir / "submitted").glob(f"*/{assignment}"):
        for root, _, files in os.walk(d):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, f)).st_size
    return total


def _preflight(course_dir: Path, assignment: str, local_store: bool) -> None:
    """Refuse before grading when the course cannot take the results: read-only, or too little
    space. Teacher errors (exit 2) with the path and what is needed."""

    for d in (course_dir, course_dir / RUNS_DIR):
        if not d.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=d):
                pass
        except OSError as e:
            raise TeacherError(
                f"cannot write to {d} ({e.strerror})",
                "gradeflow writes autograded/, gradeflow_runs/ and (unless db_url names a database server) gradebook.db in the course: make it writable "
                "(remount it read-write, or fix its owner and permissions), then run again",
            ) from None
    # the run folder holds each submission about four times (collect, restore, execute, score),
    # autograded/ once more; 32 MiB for the gradebook's journal and the results
    need = _submitted_bytes(course_dir, assignment) * (5 if local_store else 1) + 32 * 2**20
    st = os.statvfs(course_dir)
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise TeacherError(
            f"not enough space on {course_dir}: {free // 2**20} MiB free, grading {assignment!r} needs about {need // 2**20} MiB",
            "free some space there (old run folders in gradeflow_runs/ can go) or put the runs elsewhere with --store, then run again",
        )


def _teacher_os_error(e: OSError) -> TeacherError | None:
    """A full or read-only disk met while writing the course: the teacher's to fix (exit 2)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return TeacherError(
            f"no space left on the disk of {e.filename or 'the course'}",
            "free some space, then run again: submissions already merged are kept and not regraded",
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return TeacherError(
            f"cannot write {e.filename or 'to the course'} ({e.strerror})",
            "make the course writable, then run again: submissions already merged are kept and not regraded",
        )
    return None


# --- the parallel part: one process per job, each with its own sandbox slot -------------------

_slot: int = 0
_scratch: Path | None = None  # the worker's scratch gradebook dir: one path, so one engine (steps.gradebook)
_stopping = False  # the worker got SIGTERM: it tears its sandbox down and exits


def _on_sigterm(signum: int, frame: Any) -> None:
    """Tear this worker's sandboxes down (kernels, cgroup, scratch tmpfs, temp dirs) and exit at
    once, quietly: the run prints one line, not one traceback per worker."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    from multiprocessing.util import _run_finalizers

    from steps.sandbox.base import teardown_active

    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    teardown_active()
    _run_finalizers()  # the worker's scratch gradebook and snapshot dirs
    os._exit(128 + signum)


def _init_worker(slots: Any) -> None:
    global _slot, _scratch
    import shutil
    from multiprocessing.util import Finalize

    from steps.sandbox.leftovers import temp_prefix

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    die_with_parent()  # SIGTERM when the forkserver (which ends with the run) dies: a killed run leaves no worker
    _slot = slots.get()
    _scratch = Path(tempfile.mkdtemp(prefix=temp_prefix("worker")))
    Finalize(None, shutil.rmtree, args=(_scratch,), kwargs={"ignore_errors": True}, exitpriority=10)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")


def _infra_reason(e: BaseException) -> tuple[str, str]:
    """(kind, one line) for a failure of gradeflow or the sandbox: kind tells failures apart."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            "disk-full",
            f"no space left on the grader's disk ({e.filename or tempfile.gettempdir()}): free space, then run again",
        )
    if isinstance(e, InfraError):
        return type(e).__name__, e.what
    return type(
        e
    ).__name__, f"gradeflow failed ({type(e).__name__}: {str(e).strip()[:200]}); run again, and report it if it repeats"


def ungraded_record(ws: Path, manifest: Manifest, student: str, reason: str, kind: str) -> StepRecord:
    """The score record of a submission gradeflow could not grade: every notebook UNGRADED, so
    merge writes nothing for it and the course keeps what it had."""
    rec = StepRecord("score", student, detail={"infra": kind, "notebooks": {}})
    rec.notebooks = [NotebookOutcome(n, UNGRADED, f"not graded: {reason}") for n in manifest.notebooks]
    out = ws / "scored" / student
    out.mkdir(parents=True, exist_ok=True)
    rec.save(out / "score.json")
    return rec


def _grade_submission(
    workspace: str,
    student: str,
    sandbox: Sandbox,
    limits: Limits,
    feedback: str | None = None,
    strict: bool = False,
    more: bool = False,
) -> tuple[StepRecord | None, StepRecord, str]:
    """restore → execute → score for one submission, in a worker: the per-submission part of
    the DAG runs as soon as a slot is free instead of step by step for the whole class.
    Returns the execute and score records and, when gradeflow failed on it, the failure's kind.
    `feedback`: None, or what feedback does with hidden tests ("redact" or "show").
    `more`: submissions are still queued, so the next sandbox of this slot starts (empty) as
    soon as this one is executed, while this one is scored and the next restored."""
    from steps.execute import execute
    from steps.restore import restore_submission
    from steps.sandbox import prestart
    from steps.score import score_submission

    ws = Path(workspace)
    manifest = Manifest.load(ws / "manifest.json")
    snapshot = read_json(ws / "snapshot.json")
    assert _scratch is not None, "runs in a worker started by _pool"
    try:
        restore_submission(ws, manifest, snapshot, student, _scratch, strict)
        try:
            executed = execute(
                ws, student, sandbox, limits, _slot, check=False
            )  # checked before the run; the canary ran in it
        finally:
            if more:
                prestart(sandbox, limits, _slot)
        scored = score_submission(ws, manifest, snapshot, student, _scratch)
    except Exception as e:  # noqa: BLE001 - our side broke for this submission: not a grade; the batch goes on
        kind, reason = _infra_reason(e)
        if isinstance(e, InfraError):  # the reason is in the summary; the log has the rest
            log.info("gradeflow could not grade %s: %s", student, reason)
        else:
            log.warning("gradeflow could not grade %s: %s", student, reason, exc_info=True)
        return None, ungraded_record(ws, manifest, student, reason, kind), kind
    if feedback:
        _feedback(ws, manifest, snapshot, student, feedback == "show")
    return executed, scored, ""


def _feedback(ws: Path, manifest: Manifest, snapshot: dict[str, Any], student: str, show_hidden_tests: bool) -> None:
    """One submission's feedback; a page that cannot be written never costs the student a grade."""
    from steps.feedback import feedback_submission

    assert _scratch is not None, "runs in a worker started by _pool"
    try:
        feedback_submission(
            ws, manifest, snapshot, student, _scratch, show_hidden_tests, scored_in_scratch=True
        )  # score just ran in _scratch
    except Exception as e:  # noqa: BLE001 - the grades stand; the summary says feedback is missing
        log.exception("feedback failed for %s", student)
        rec = StepRecord("feedback", student, detail={"error": f"{type(e).__name__}: {e}"})
        rec.notebooks = [
            NotebookOutcome(
                n,
                UNGRADED,
                f"gradeflow could not write its feedback ({type(e).__name__}: {e}); regrade it with --force --feedback",
            )
            for n in manifest.submission(student).notebooks
        ]
        rec.save(ws / "feedback" / student / "feedback.json")


def _canary(sandbox: Sandbox, limits: Limits) -> str:
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
        restored, out = tmp / "restored" / "canary", tmp / "executed" / "canary"
        work = restored / "work"
        work.mkdir(parents=True)
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("1 + 1")],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        nbformat.write(nb, str(work / "canary.ipynb"))
        write_json(tmp / "snapshot.json", {"notebooks": [], "config": {}})
        restore = StepRecord("restore", "canary")
        restore.notebooks = [NotebookOutcome("canary", OK)]
        restore.save(restored / "restore.json")
        try:
            rec = sandbox.execute_submission(work, ["canary"], out, limits, {}, _slot)
        except Exception as e:  # noqa: BLE001 - reported to the teacher, not raised in a worker
            return _infra_reason(e)[1]
        outcome = rec.outcome("canary")
        ran = nbformat.read(str(out / "canary.ipynb"), as_version=4).cells[-1].get("outputs", [])
        if outcome is None or outcome.status != OK or not any(o.get("output_type") == "execute_result" for o in ran):
            log_text = (
                (out / "execute.log").read_text(errors="replace")[-600:] if (out / "execute.log").is_file() else ""
            )
            return f"a kernel started but could not run `1 + 1` ({outcome.reason if outcome else 'no outcome'}); its log ends: {log_text.strip()}"
        _warm(False, sandbox, limits)  # the sandbox works: this worker's first submission gets one started now
        return ""
    finally:
        remove()


def _warm(feedback: bool = False, sandbox: Sandbox | None = None, limits: Limits | None = None) -> None:
    """Start a worker (its imports come from the forkserver's preload) before there is work,
    and its first sandbox (empty, see `_grade_submission`); with `feedback`, also load the
    feedback templates (about 1 s, once per worker)."""
    if sandbox is not None and limits is not None:
        from steps.sandbox import prestart

        prestart(sandbox, limits, _slot)
    if feedback:
        from steps.feedback import warm

        warm()


def _start_warming(
    pool: ProcessPoolExecutor, jobs: int, sandbox: Sandbox, limits: Limits, feedback: bool = False
) -> tuple[threading.Thread, list[Any]]:
    """Start the canary and the workers in the background: starting one waits for the
    forkserver's imports, which should run beside collect, not before it (nor under the course
    lock). Returns the thread and a list that will hold the canary's future."""
    canary: list[Any] = []

    def run() -> None:
        with contextlib.suppress(RuntimeError):  # the pool was shut down (collect failed)
            canary.append(pool.submit(_canary, sandbox, limits))
            wait([pool.submit(_warm, feedback, sandbox, limits) for _ in range(jobs - 1)])

    thread = threading.Thread(target=run, name="gradeflow-warm", daemon=True)
    thread.start()
    return thread, canary


def _pool(jobs: int) -> ProcessPoolExecutor:
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        [
            "pipelines.forkserver_preload",
            "steps.restore",
            "steps.execute",
            "steps.score",
            "steps.feedback",
            "nbgrader.preprocessors",
            "papermill",
            "nbclient",
        ]
    )
    forkserver.ensure_running()  # from this thread, not the warming thread: the workers' parent must outlive it
    slots = ctx.Queue()
    for i in range(jobs):
        slots.put(i)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots,))


def _stop_pool(pool: ProcessPoolExecutor, grace: float = 3.0) -> None:
    """SIGTERM every worker (each tears its sandbox down), SIGKILL what is left after `grace` s.

    The pool is shut down first: that takes the pool's lock, so no worker is half-started by the
    warming thread while we look, and none starts after. Every worker is joined before returning, so
    none is still unpickling the slot queue when this process exits and frees it."""
    processes = getattr(pool, "_processes", None) or {}  # the dict itself: shutdown drops the attribute
    pool.shutdown(wait=False, cancel_futures=True)
    procs = list(processes.values())
    for p in procs:
        with contextlib.suppress(OSError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGKILL)
            p.join(1)


class _Signals:
    """SIGINT/SIGTERM raise Interrupted in the main thread, but never in the middle of writing one
    submission into the course: that finishes first, so a stop loses nothing that was merged."""

    def __init__(self) -> None:
        self.critical = False
        self.pending: int | None = None
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.critical:
            self.pending = signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
        if self.pending is not None:
            raise Interrupted(self.pending)


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
    with _Signals() as signals:
        try:
            return _grade(course_dir, assignment, options, progress or (lambda e: None), signals)
        except OSError as e:
            teacher = _teacher_os_error(e)
            if teacher is None:
                raise
            raise teacher from e


def _grade(
    course_dir: Path, assignment: str, options: GradeOptions, progress: Progress, signals: _Signals
) -> dict[str, Any]:
    from steps.sandbox.leftovers import remove_dead_runs

    # resolved and checked once for the run, and passed down to every worker: refuse before doing anything
    sandbox = get_sandbox(options.sandbox, **options.sandbox_options)
    removed = remove_dead_runs()  # what runs killed before left behind (only theirs: dead owners)
    if any(removed.values()):
        log.info("removed what killed runs left behind: %s", removed)
    store = open_store(options.store or course_dir / RUNS_DIR)
    _preflight(course_dir, assignment, store.is_local)
    run_id = new_run_id(assignment)
    jobs = max(1, options.jobs)
    clock = time.monotonic()
    timings: dict[str, float] = {"course_writes_s": 0.0}  # where the run's time went (bench/, report)
    with _course_lock(course_dir, assignment), store.workspace(run_id) as ws:
        pool = _pool(jobs)
        try:
            warming, canary = _start_warming(pool, jobs, sandbox, options.limits, options.feedback)
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
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
    return results


def _run(
    course_dir: Path,
    assignment: str,
    options: GradeOptions,
    progress: Progress,
    signals: _Signals,
    store: Any,
    ws: Path,
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
        manifest = wait_for_gradebook(
            lambda: collect(
                course_dir, assignment, ws, options.students, run_id, max_submission_mb=options.max_submission_mb
            ),
            _db_url(course_dir),
            options.gradebook_wait,
        )
    except TeacherError:
        if store.is_local:  # nothing was graded: leave no empty run folder behind
            import shutil

            shutil.rmtree(ws, ignore_errors=True)
        raise
    _drop_unchanged(manifest, course_dir, options.force, options.feedback)
    manifest.save(ws / "manifest.json")
    for a in STEPS["collect"].outputs:
        store.push(ws, run_id, a.path)
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
                f"the {sandbox.name} sandbox could not run a test kernel with these limits ({options.limits.memory_mb} MiB memory, "
                f"{options.limits.pids} processes, {options.limits.wall_time} s): {why}",
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
                    _grade_submission,
                    str(ws),
                    s,
                    sandbox,
                    options.limits,
                    options.feedback_hidden_tests if options.feedback else None,
                    options.strict,
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
                    ungraded_record(ws, manifest, s, reason, "worker-died")
                    progress(Event("execute", "submission", total=len(students), student=s, status=UNGRADED))
                pending.clear()
                queue.clear()
                break
            for step_dir in ("restored", "executed", "scored", "feedback"):
                if (ws / step_dir / student).exists():
                    store.push(ws, run_id, f"{step_dir}/{student}")
            # merge's gradebook writes for this submission now, while the workers run the next
            t = time.monotonic()

            def write(student: str = student, status: str = scored.status) -> None:
                with signals.deferred():  # a stop waits for this one submission, not for a locked gradebook
                    writer.write(student)
                    _remember(course_dir, assignment, student, hashes[student], run_id, status)

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
                    reason = f"not run: the first {STOP_AFTER} submissions all failed the same way ({scored.notebooks[0].reason.removeprefix('not graded: ')})"
                    for s in reversed(queue):
                        ungraded_record(ws, manifest, s, reason, "stopped")
                        progress(Event("execute", "submission", total=len(students), student=s, status=UNGRADED))
                    queue.clear()
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
    progress(Event("merge", "done"))
    return results


def _db_url(course_dir: Path) -> str:
    return open_course(course_dir)[1].db_url
