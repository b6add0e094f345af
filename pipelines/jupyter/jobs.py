"""Grading jobs started from the Jupyter page: the runners, and what the page polls.

A job is one `grade` of one assignment. Runners are registered by name: "local" runs
`gradeflow grade COURSE ASSIGNMENT --json` in a child process (the same CLI a teacher types,
sandboxed and parallel, so a crash or a memory-hungry run never takes the Jupyter server down)
and follows its JSON progress lines; "argo" hands the run to `pipelines.client.submit` when
that client exists. Jobs live in memory: the run folders they write are the durable record.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import importlib
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from steps.errors import Busy, TeacherError

from . import ArgoConfig, argo_config

__all__ = ["Job", "JobManager", "argo_client", "RUNNERS"]

RUNNING, DONE, ERROR, SUBMITTED = "running", "done", "error", "submitted"
LOG_LINES = 200  # stderr lines kept per job, shown when a run breaks


def argo_client(settings: Any = None) -> tuple[Any, str]:
    """The Argo client module when it is installed and Argo is configured, else (None, why not).

    `settings` (an ArgoSettings) say how Argo is reached; default: the server's environment."""
    try:
        client = importlib.import_module("pipelines.client")
    except ImportError as e:
        return None, f"this gradeflow has no Argo client ({e}); grading runs on this server"
    if not callable(getattr(client, "submit", None)):
        return None, "pipelines.client has no submit(); grading runs on this server"
    settings = settings or argo_config().settings
    kubeconfig = settings.kubeconfig or os.path.expanduser("~/.kube/config")
    if not (settings.server or settings.in_cluster or os.path.isfile(kubeconfig.split(os.pathsep)[0])):
        return (
            None,
            "no Argo Server or Kubernetes cluster is configured for this Jupyter server: set ARGO_SERVER (and "
            "ARGO_TOKEN) or give it a kubeconfig (see docs/argo.md)",
        )
    return client, ""


@dataclass
class Job:
    """One grading run started from the page, and everything the page shows about it."""

    assignment: str
    runner: str
    students: list[str] = field(default_factory=list)
    force: bool = False
    retry_of: str = ""
    feedback: bool = False  # also write the students' feedback (--feedback)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = RUNNING
    step: str = "starting"
    total: int = 0
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    eta_seconds: float | None = None
    finished: list[dict[str, Any]] = field(default_factory=list)  # one per finished submission, newest last
    started: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())
    ended: str = ""
    error: str = ""
    workflow: str = ""  # the Argo workflow's name, for the argo runner
    results: dict[str, Any] | None = None
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LOG_LINES))
    process: Any = None

    def on_event(self, doc: dict[str, Any]) -> None:
        """Take one of `gradeflow grade --json`'s progress lines (see pipelines.progress.JsonPrinter)."""
        self.step = doc.get("step", self.step)
        self.total = doc.get("total") or self.total
        self.done = doc.get("done", self.done)
        self.counts = doc.get("counts") or self.counts
        self.eta_seconds = doc.get("eta_seconds")
        if doc.get("kind") == "submission":
            self.finished.append({k: doc.get(k) for k in ("student", "status", "seconds")})

    def failed_students(self) -> list[str]:
        """Students whose submission failed (the sandbox or gradeflow broke): what a retry regrades."""
        return sorted(
            s["student"] for s in (self.results or {}).get("students", []) if s["status"] in ("failed", "ungraded")
        )

    def to_json(self, report_url: Callable[[str], str]) -> dict[str, Any]:
        doc = {
            k: getattr(self, k)
            for k in (
                "id",
                "assignment",
                "runner",
                "students",
                "force",
                "feedback",
                "retry_of",
                "state",
                "step",
                "total",
                "done",
                "counts",
                "eta_seconds",
                "started",
                "ended",
                "error",
                "workflow",
            )
        }
        doc["finished"] = self.finished[-50:]
        if self.state == ERROR:
            doc["log_tail"] = list(self.log)[-30:]
        if self.results is not None:
            r = self.results
            doc["run_id"] = r["run_id"]
            doc["report_url"] = report_url(r["run_id"])
            doc["summary"] = {
                "counts": r["counts"],
                "unchanged": r.get("unchanged", []),
                "problems": [
                    {"student": s["student"], "notebook": n["notebook"], "status": n["status"], "reason": n["reason"]}
                    for s in r["students"]
                    for n in s["notebooks"]
                    if n["status"] in ("failed", "skipped", "ungraded")
                ],
                "failed_students": self.failed_students(),
            }
        return doc


class JobManager:
    """Starts jobs with a registered runner and keeps them for the page to poll."""

    def __init__(
        self, course_dir: Path, grade_args: list[str] | None = None, log: Any = None, argo: ArgoConfig | None = None
    ) -> None:
        from ..store import RUNS_DIR

        self.course_dir = Path(course_dir)
        self.runs_dir = self.course_dir / RUNS_DIR
        self.grade_args = list(grade_args or [])
        self.log = log
        self.argo = argo or argo_config()  # how the "argo" runner reaches Argo, and its store
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task] = set()

    def running(self, assignment: str | None = None) -> list[Job]:
        return [
            j for j in self.jobs.values() if j.state == RUNNING and (assignment is None or j.assignment == assignment)
        ]

    def start(
        self,
        assignment: str,
        runner: str = "local",
        students: list[str] | None = None,
        force: bool = False,
        retry_of: str = "",
        feedback: bool = False,
    ) -> Job:
        if runner not in RUNNERS:
            raise TeacherError(f"unknown runner {runner!r}", f"choose one of: {', '.join(RUNNERS)}")
        if self.running(assignment):
            raise Busy(
                f"{assignment} is already being graded (job {self.running(assignment)[0].id})", "wait for it to finish"
            )
        job = Job(assignment, runner, list(students or []), force, retry_of, feedback)
        self.jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(RUNNERS[runner](self, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def retry(self, job: Job) -> Job:
        failed = job.failed_students()
        if job.runner == "argo" and job.workflow and job.state in (ERROR, DONE):
            return self.start(
                job.assignment, "argo", failed, force=True, retry_of=job.id, feedback=job.feedback
            )  # Argo retries the failed nodes itself
        if not failed:
            raise TeacherError(
                f"job {job.id} has no failed submissions to retry",
                "skipped notebooks are malformed: fix the submission, then grade again",
            )
        return self.start(job.assignment, job.runner, failed, force=True, retry_of=job.id, feedback=job.feedback)

    def stop_all(self) -> None:
        """End the grading processes this manager started (their whole process groups)."""
        for job in self.running():
            proc = job.process
            if proc is not None and proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    # --- the teacher's limits, for every runner -------------------------------------------------

    def argo_limits(self) -> tuple[dict[str, str], list[str]]:
        """The limits in `grade_args` as the Argo template's parameters (what the local runner
        would apply, defaults included), and the flags Argo runs cannot take (with why)."""
        import argparse

        from steps.limits import add_limit_arguments, argo_parameters, limits_from_args
        from steps.params import not_on_argo

        p = argparse.ArgumentParser(add_help=False)
        add_limit_arguments(p)
        a, _ = p.parse_known_args(self.grade_args)
        return argo_parameters(limits_from_args(a)), not_on_argo(self.grade_args)

    def argo_parameters(self) -> dict[str, str]:
        """The steps' other parameters given in `grade_args` that the template takes (e.g.
        --strict, --feedback-hidden-tests), by the template's names (steps/params.py)."""
        import argparse

        from steps.params import OnArgo, add_arguments, grade_params

        params = [q for q in grade_params() if isinstance(q.argo, OnArgo) and not q.limit]
        p = argparse.ArgumentParser(add_help=False)
        add_arguments(p, params, "submit")  # unset: None, the template's default stands
        a, _ = p.parse_known_args(self.grade_args)
        given = {q.teacher_flag: getattr(a, q.teacher_dest) for q in params}
        return {k: "true" if v is True else v for k, v in given.items() if v not in (None, False)}

    # --- what the local runner runs ---------------------------------------------------------

    def command(self, job: Job) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "grade",
            str(self.course_dir),
            job.assignment,
            "--json",
            *self.grade_args,
        ]
        for s in job.students:
            cmd += ["--student", s]
        if job.force:
            cmd.append("--force")
        if job.feedback:
            cmd.append("--feedback")
        return cmd


def _finish(job: Job, state: str, error: str = "") -> None:
    job.state, job.error = state, error
    job.ended = dt.datetime.now(dt.timezone.utc).isoformat()


async def run_local(manager: JobManager, job: Job) -> None:
    """`gradeflow grade --json` in a child process; its JSON lines on stderr are the progress."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *manager.command(job),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            cwd=str(manager.course_dir),
            start_new_session=True,  # its own process group, so stop_all ends the workers too
            limit=1 << 22,
        )
    except OSError as e:
        _finish(
            job,
            ERROR,
            f"could not start gradeflow ({e}); check that gradeflow is installed in the Jupyter server's Python",
        )
        return
    job.process = proc
    stdout = asyncio.ensure_future(proc.stdout.read())
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        doc = None
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
        if isinstance(doc, dict) and doc.get("event") == "progress":
            job.on_event(doc)
        elif line.strip():
            job.log.append(line)
    out = await stdout
    rc = await proc.wait()
    if rc == 0:
        try:
            job.results = json.loads(out)
        except ValueError:
            _finish(job, ERROR, "gradeflow finished but printed no results; see the log below")
            return
        _finish(job, DONE)
        return
    teacher = [line[len("gradeflow: ") :] for line in job.log if line.startswith("gradeflow: ")]
    if rc == 2 and teacher:
        _finish(job, ERROR, teacher[-1])
    elif rc < 0:
        _finish(
            job,
            ERROR,
            f"grading was stopped (signal {-rc}); nothing was written to the gradebook for unfinished submissions",
        )
    else:
        _finish(
            job,
            ERROR,
            (teacher[-1] if teacher else f"gradeflow exited with code {rc}")
            + " (see the log below; exit 75 means gradeflow itself broke and a retry may help)",
        )


async def run_argo(manager: JobManager, job: Job) -> None:
    """Submit the run to Argo (or retry the failed nodes of an earlier one) and follow it.

    When the run succeeds and the page knows its bucket (c.GradeflowConfig.argo_store, default
    GRADEFLOW_ARGO_STORE), its results are synced into the course (its gradebook, autograded/,
    gradeflow_runs/RUN/results/) like `gradeflow sync` does, and the page shows them as for a
    local run.
    """
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, _follow_argo, manager, job)
    except TeacherError as e:
        _finish(job, ERROR, str(e))
        return
    except Exception as e:  # noqa: BLE001 - shown to the teacher; the server keeps running
        _finish(job, ERROR, f"the Argo run broke: {type(e).__name__}: {e}")
        return
    _finish(job, DONE if job.results is not None else SUBMITTED)


def _follow_argo(manager: JobManager, job: Job) -> None:
    client, why = argo_client(manager.argo.settings)
    if client is None:
        raise TeacherError("the Argo runner is not available", why)
    backend = client.connect(manager.argo.settings)
    job.step = "submitting to Argo"
    if job.retry_of and manager.jobs.get(job.retry_of) and manager.jobs[job.retry_of].workflow:
        wf = client.retry(backend, manager.jobs[job.retry_of].workflow, warn=job.log.append)
    else:
        limits, ignored = manager.argo_limits()  # the same limits `gradeflow grade` gets from this page
        job.log.extend(ignored)
        wf = client.submit(
            backend,
            str(manager.course_dir),
            job.assignment,
            limits=limits,
            parameters=manager.argo_parameters(),  # e.g. --strict in grade_args, as a local run gets it
            feedback=job.feedback,
            warn=job.log.append,
        )
    job.workflow = wf["metadata"]["name"]

    def progress(st: Any) -> None:
        ex = st.steps["execute"]
        job.step = f"Argo: {st.phase or 'Pending'}"
        job.total, job.done = ex.total, ex.done + ex.failed
        job.counts = {"ok": ex.done, "failed": ex.failed}

    st = client.wait(backend, job.workflow, progress=progress)
    if st.phase != "Succeeded":
        raise TeacherError(
            f"Argo run {job.workflow} {st.phase.lower()}: {st.message}",
            f"see why with `gradeflow logs {job.workflow}`; `gradeflow retry {job.workflow}` re-runs only what failed",
        )
    if manager.argo.store:
        job.step = "syncing results into the gradebook"
        job.results = client.sync(job.workflow, manager.course_dir, backend=backend, store=manager.argo.store)
        from ..report import render_report

        render_report(manager.runs_dir / job.results["run_id"])
    else:
        job.step = (
            "finished on Argo; set GRADEFLOW_ARGO_STORE (or c.GradeflowConfig.argo_store) to sync results here, "
            "or run `gradeflow sync`"
        )


RUNNERS: dict[str, Callable[[JobManager, Job], Any]] = {"local": run_local, "argo": run_argo}
