"""The HTTP side of the Jupyter extension: the /gradeflow page, its JSON API, and run files.

Every handler requires a logged-in Jupyter user (`@web.authenticated`); POSTs are also
checked against Jupyter's XSRF cookie (the page sends it as `X-XSRFToken`). Files of a run
(report, logs, notebooks, feedback pages) are served read-only from COURSE/gradeflow_runs/<run>/
(and feedback pages from COURSE/feedback/, for a run synced from Argo) with a
Content-Security-Policy `sandbox`, because executed notebooks hold student output: nothing a
student printed can run script in the teacher's Jupyter session.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any, Callable

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from steps.contract import EXECUTED, FEEDBACK, RESULTS, SUBMISSIONS
from steps.errors import Busy, NotFound, TeacherError
from steps.workspace import REPORT_HTML, RESULTS_JSON

from .jobs import argo_client

__all__ = ["handlers"]

PAGE = Path(__file__).with_name("page.html")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# the evidence and feedback pages a report links to
SERVED_DIRS = tuple(a.at() for a in (RESULTS, EXECUTED, SUBMISSIONS, FEEDBACK))
SANDBOX_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


class _Base(JupyterHandler):
    @property
    def gradeflow(self) -> Any:
        return self.settings["gradeflow"]

    def report_url(self, run_id: str) -> str:
        return url_path_join(self.base_url, "gradeflow", "runs", run_id, RESULTS.at(), REPORT_HTML)


class PageHandler(_Base):
    """GET /gradeflow: the page a teacher uses (inline CSS and JS; talks to the API below)."""

    @web.authenticated
    def get(self) -> None:
        boot = {
            "base_url": self.base_url,
            "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
        }
        html = PAGE.read_text(encoding="utf-8").replace("/*BOOT*/null", json.dumps(boot).replace("</", "<\\/"))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


class _Api(APIHandler, _Base):
    def teacher_error(self, e: TeacherError, status: int = 400) -> None:
        self.set_status(status)
        self.finish(json.dumps({"error": str(e), "what": e.what, "todo": e.todo}))

    def start_job(self, start: Callable[[], Any]) -> None:
        """201 with the job `start` made, or the teacher's error (409: already being graded)."""
        try:
            job = start()
        except TeacherError as e:
            self.teacher_error(e, 409 if isinstance(e, Busy) else 400)
            return
        self.set_status(201)
        self.finish(json.dumps(job.to_json(self.report_url)))


class CourseHandler(_Api):
    """GET /gradeflow/api/course: the course, its assignments (from the gradebook), runners and jobs."""

    @web.authenticated
    def get(self) -> None:
        gf = self.gradeflow
        doc: dict[str, Any] = {
            "course_dir": str(gf.course_dir),
            "runners": _runners(gf),
            "jobs": [j.to_json(self.report_url) for j in gf.jobs.jobs.values()],
        }
        try:
            doc.update(_course(gf.course_dir))
        except TeacherError as e:
            doc.update(error=str(e), assignments=[])
        for a in doc["assignments"]:
            last = _last_run(gf.runs_dir, a["name"])
            a["last_run"] = last and {
                **last,
                "report_url": self.report_url(last["run_id"]) if last.get("report") else "",
            }
        self.finish(json.dumps(doc))


class JobsHandler(_Api):
    """POST /gradeflow/api/jobs {assignment, runner, force, feedback, students}: start grading."""

    @web.authenticated
    def post(self) -> None:
        self.start_job(lambda: _start(self.gradeflow, self.get_json_body() or {}))


def _start(gf: Any, body: dict[str, Any]) -> Any:
    """Check what the page asked for, then start the job."""
    assignment = str(body.get("assignment") or "")
    known = [a["name"] for a in _course(gf.course_dir)["assignments"]]
    if assignment not in known:
        raise NotFound(
            f"assignment {assignment!r} is not in the gradebook",
            f"known assignments: {', '.join(known) or 'none'}; run `nbgrader generate_assignment "
            f"{assignment or 'ASSIGNMENT'}` to add it",
        )
    runner = str(body.get("runner") or "local")
    if runner == "argo" and not _runners(gf)["argo"]["available"]:
        raise TeacherError("the Argo runner is not available", _runners(gf)["argo"]["why"])
    students = [str(s) for s in body.get("students") or []]
    return gf.jobs.start(assignment, runner, students, bool(body.get("force")), feedback=bool(body.get("feedback")))


class JobHandler(_Api):
    """GET /gradeflow/api/jobs/ID: progress and, when done, the run's summary."""

    @web.authenticated
    def get(self, job_id: str) -> None:
        job = self.gradeflow.jobs.jobs.get(job_id)
        if job is None:
            raise web.HTTPError(404, f"no grading job {job_id}")
        self.finish(json.dumps(job.to_json(self.report_url)))


class RetryHandler(_Api):
    """POST /gradeflow/api/jobs/ID/retry: regrade that job's failed submissions (forced)."""

    @web.authenticated
    def post(self, job_id: str) -> None:
        gf = self.gradeflow
        job = gf.jobs.jobs.get(job_id)
        if job is None:
            raise web.HTTPError(404, f"no grading job {job_id}")
        self.start_job(lambda: gf.jobs.retry(job))


class RunFileHandler(_Base):
    """GET /gradeflow/runs/RUN/PATH: a run's report, logs and notebooks (rendered), read-only and sandboxed."""

    @property
    def content_security_policy(self) -> str:
        return SANDBOX_CSP

    @web.authenticated
    async def get(self, run_id: str, rel: str) -> None:
        path = self._resolve(run_id, rel)
        self.set_header("Cache-Control", "no-store")
        html = None
        if path.suffix == ".ipynb" and self.get_argument("raw", "") != "1":
            from tornado.ioloop import IOLoop

            html = await IOLoop.current().run_in_executor(None, _notebook_html, path)
        if html is not None:
            body = html
            self.set_header("Content-Type", "text/html; charset=utf-8")
        elif path.suffix == ".html" and (rel == f"{RESULTS.at()}/{REPORT_HTML}" or Path(rel).parts[0] == FEEDBACK.at()):
            body = path.read_bytes()
            self.set_header("Content-Type", "text/html; charset=utf-8")
        elif path.suffix in (".log", ".txt", ".csv", ".json", ".ipynb", ".py", ".md"):
            body = path.read_bytes()
            self.set_header("Content-Type", "text/plain; charset=utf-8")
        else:
            body = path.read_bytes()
            self.set_header(
                "Content-Type",
                mimetypes.guess_type(path.name)[0]
                if path.suffix in (".png", ".jpg", ".jpeg", ".gif")
                else "application/octet-stream",
            )
            self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
        self.finish(body)

    def _resolve(self, run_id: str, rel: str) -> Path:
        runs = Path(self.gradeflow.runs_dir).resolve()
        parts = Path(rel).parts
        if not RUN_ID.match(run_id) or not parts or parts[0] not in SERVED_DIRS or ".." in parts:
            raise web.HTTPError(404)
        path = (runs / run_id / rel).resolve()
        if not path.is_relative_to(runs / run_id) or not path.is_file():
            raise web.HTTPError(404, f"{run_id}/{rel} does not exist")
        return path


class CourseFeedbackHandler(_Base):
    """GET /gradeflow/feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html: a page in the course's feedback/,
    where a report links when its run folder holds only results/ (a run synced from Argo): the
    report's `../../../feedback/...` from /gradeflow/runs/RUN/results/ lands here. Read-only,
    sandboxed like every run file (feedback pages hold student output)."""

    @property
    def content_security_policy(self) -> str:
        return SANDBOX_CSP

    @web.authenticated
    def get(self, student: str, assignment: str, page: str) -> None:
        root = (Path(self.gradeflow.course_dir) / "feedback").resolve()
        if any(x in ("", ".", "..") or "/" in x or "\\" in x for x in (student, assignment, page)) or not page.endswith(
            ".html"
        ):
            raise web.HTTPError(404)
        path = (root / student / assignment / page).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPError(404, f"no feedback page {student}/{assignment}/{page}")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(path.read_bytes())


def _notebook_html(path: Path) -> str | None:
    """The notebook as nbconvert's HTML; None for a malformed one (a skipped submission), shown as text."""
    import nbformat
    from nbconvert import HTMLExporter

    try:
        nb = nbformat.read(str(path), as_version=4)
        body, _ = HTMLExporter().from_notebook_node(nb)
    except Exception:  # noqa: BLE001 - malformed notebooks are exactly what a teacher comes to look at
        return None
    return body


def _course(course_dir: Path) -> dict[str, Any]:
    """The course id and its assignments as nbgrader's gradebook knows them (with submission counts)."""
    from steps.course import open_course, open_gradebook, submission_dirs

    _, coursedir = open_course(
        Path(course_dir), "set c.GradeflowConfig.course_dir to the folder that holds nbgrader_config.py"
    )
    todo = (
        "start Jupyter in your nbgrader course folder (or set c.GradeflowConfig.course_dir), and run `nbgrader "
        "generate_assignment ASSIGNMENT` there first"
    )
    with open_gradebook(coursedir, todo) as gb:
        assignments = [
            {"name": a.name, "duedate": a.duedate.isoformat() if a.duedate else None, "notebooks": len(a.notebooks)}
            for a in gb.assignments
        ]
    for a in assignments:
        a["submissions"] = len(submission_dirs(coursedir, a["name"]))
    return {"course_id": coursedir.course_id, "assignments": sorted(assignments, key=lambda a: a["name"])}


def _last_run(runs_dir: Path, assignment: str) -> dict[str, Any] | None:
    """The newest finished run of `assignment` in the course's run folder."""
    import glob

    from steps.course import run_id_prefix

    # run ids start with run_id_prefix(assignment); before it, with the assignment itself
    prefixes = {run_id_prefix(assignment), assignment}
    runs = sorted(
        {p for pre in prefixes for p in Path(runs_dir).glob(f"{glob.escape(pre)}-*/{RESULTS.at()}/{RESULTS_JSON}")},
        reverse=True,
    )
    for results_json in runs:
        try:
            r = json.loads(results_json.read_text())
        except (OSError, ValueError):
            continue
        if r.get("assignment") == assignment:
            return {
                "run_id": r["run_id"],
                "counts": r["counts"],
                "created": r.get("created"),
                "report": (results_json.parent / REPORT_HTML).is_file(),
            }
    return None


def _runners(gf: Any) -> dict[str, Any]:
    client, why = argo_client(gf.jobs.argo.settings)
    return {
        "local": {"available": True, "label": f"this server ({gf.sandbox} sandbox, {gf.jobs_label})", "why": ""},
        "argo": {"available": client is not None, "label": "Argo Workflows (one pod per submission)", "why": why},
    }


def handlers(base_url: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    def u(path: str) -> str:
        return url_path_join(base_url, path)

    return [
        (u(r"/gradeflow/?"), PageHandler),
        (u(r"/gradeflow/api/course"), CourseHandler),
        (u(r"/gradeflow/api/jobs"), JobsHandler),
        (u(r"/gradeflow/api/jobs/([0-9a-f]+)"), JobHandler),
        (u(r"/gradeflow/api/jobs/([0-9a-f]+)/retry"), RetryHandler),
        (u(r"/gradeflow/runs/([^/]+)/(.+)"), RunFileHandler),
        (u(r"/gradeflow/feedback/([^/]+)/([^/]+)/([^/]+)"), CourseFeedbackHandler),
    ]
