"""The /gradeflow page in a real Jupyter server, driven by headless Chromium like a teacher would.

Scenario: a teacher runs Jupyter in the course folder with the extension enabled, opens
/gradeflow, picks ps1 from the gradebook (Argo is not configured here, so that option is
hidden with the reason), starts grading and watches the progress until the counts are in:
two graded, one failed (the student's code killed its kernel), one skipped (a malformed
notebook), each with its reason, and feedback pages for the graded ones. They retry the
failed submission, open the report and its execute log, and find the page linked from
Formgrader's sidebar. The API refuses requests without a login and POSTs without the XSRF
token. Each stage is saved as a screenshot in
tests/artifacts/jupyter-*.png.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from processes import JupyterServer  # noqa: E402

import coursekit as ck  # noqa: E402
from conftest import full_page_screenshot  # noqa: E402

GRADING_TIMEOUT = 240


@pytest.fixture(scope="module")
def course(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("jupyter") / "course")
    return ck.submit_kinds(course, ["good", "wrong", "crash", "broken"])


@pytest.fixture(scope="module")
def server(course: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """`jupyter server` in the course folder, the extension enabled by a config file, as a teacher would."""
    with JupyterServer(course, tmp_path_factory.mktemp("jupyter-home")) as srv:
        yield srv


def counts(driver) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        c.get_attribute("data-count"): c.find_element(By.CLASS_NAME, "n").text
        for c in driver.find_elements(By.CSS_SELECTOR, "#counts .card")
    }


def wait_for_job(driver, timeout: float = GRADING_TIMEOUT) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        lambda d: d.find_element(By.ID, "state").get_attribute("data-state") in ("done", "error")
    )
    return driver.find_element(By.ID, "state").get_attribute("data-state")


def test_a_teacher_grades_retries_and_opens_the_report_from_jupyter(
    server: JupyterServer, course: Path, browser
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    # 1. the page lists the gradebook's assignments; Argo is hidden, with the reason
    browser.get(server.url + f"gradeflow?token={server.token}")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#assignment option"))
    Select(browser.find_element(By.ID, "assignment")).select_by_value("ps1")
    assert "4 submission(s)" in browser.find_element(By.ID, "assignment-info").text
    assert browser.find_element(By.ID, "runner-local").is_selected()
    assert not browser.find_elements(By.ID, "runner-argo")
    assert "ARGO_SERVER" in browser.find_element(By.ID, "runner-argo-why").text
    full_page_screenshot(browser, "jupyter-1-start.png")

    # 2. start grading, with feedback for the students, and watch it run
    browser.find_element(By.ID, "feedback").click()
    browser.find_element(By.ID, "start").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "state").get_attribute("data-state") == "running")
    assert browser.find_element(By.ID, "start").get_attribute("disabled"), "one run per assignment at a time"
    WebDriverWait(browser, GRADING_TIMEOUT).until(
        lambda d: (
            not d.find_element(By.ID, "progress-text").text.startswith("0 /")
            or d.find_element(By.ID, "state").get_attribute("data-state") != "running"
        )
    )
    full_page_screenshot(browser, "jupyter-2-running.png")

    # 3. the counts and every failed or skipped submission with its reason
    assert wait_for_job(browser) == "done", browser.find_element(By.ID, "error").text
    assert counts(browser) == {"done": "4", "graded": "2", "failed": "1", "skipped": "1"}
    rows = {
        r.get_attribute("data-student"): r.text for r in browser.find_elements(By.CSS_SELECTOR, "#problems tbody tr")
    }
    assert sorted(rows) == ["broken", "crash"]
    assert "the kernel died" in rows["crash"] and "not valid JSON" in rows["broken"]
    assert browser.find_element(By.ID, "retry").text == "Retry 1 failed submission(s)"
    full_page_screenshot(browser, "jupyter-3-done.png")
    assert sorted(p.parent.parent.name for p in course.glob("feedback/*/ps1/squares.html")) == ["good", "wrong"], (
        "feedback for the graded submissions"
    )

    # 4. retry regrades only the failed submission, forced
    browser.find_element(By.ID, "retry").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "job-title").text == "Retrying ps1 (crash)")
    assert wait_for_job(browser) == "done", browser.find_element(By.ID, "error").text
    assert counts(browser) == {"done": "1", "graded": "0", "failed": "1", "skipped": "0"}
    full_page_screenshot(browser, "jupyter-4-retried.png")

    # 5. the report of that run, and the execute log it links to, served by the extension
    report_url = browser.find_element(By.ID, "report-link").get_attribute("href")
    assert "/gradeflow/runs/" in report_url and report_url.endswith("/results/report.html")
    browser.find_element(By.ID, "report-link").click()
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) == 2)
    browser.switch_to.window(browser.window_handles[-1])
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#summary .card"))
    assert "the kernel died" in browser.find_element(By.ID, "problems").text
    full_page_screenshot(browser, "jupyter-5-report.png")
    log_link = browser.find_element(By.LINK_TEXT, "execute log").get_attribute("href")
    browser.get(log_link)
    assert "[execute] squares: failed" in browser.find_element(By.TAG_NAME, "body").text
    browser.close()
    browser.switch_to.window(browser.window_handles[0])

    # 6. Formgrader's sidebar links to the page
    browser.get(server.url + "formgrader/manage_assignments")
    link = WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gradeflow-nav a"))[0]
    assert link.get_attribute("href").endswith("/gradeflow")
    try:  # a nicer screenshot once Formgrader's own table has loaded; not what this test checks
        WebDriverWait(browser, 15).until(
            lambda d: "Loading, please wait" not in d.find_element(By.TAG_NAME, "body").text
        )
    except TimeoutException:
        pass
    full_page_screenshot(browser, "jupyter-6-formgrader.png")


def test_the_api_needs_a_login_and_the_xsrf_token(server: JupyterServer, browser) -> None:
    assert server.get("gradeflow/api/course", token=False)[0] == 403
    status, _ = server.get("gradeflow/runs/x/results/report.html", token=False)
    assert status in (302, 403) or status == 200 and "login" in _, "run files need a login"
    status, body = server.get("gradeflow/api/course")
    assert status == 200 and json.loads(body)["course_id"] == "test-course"

    browser.get(server.url + f"gradeflow?token={server.token}")  # logged in by cookie from here on
    without_xsrf = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/gradeflow/api/jobs', {method: 'POST', credentials: 'same-origin',"
        " body: JSON.stringify({assignment: 'ps1'})})"
        ".then(r => done(r.status)).catch(e => done(String(e)));"
    )
    assert without_xsrf == 403


def test_a_teacher_error_is_shown_with_what_to_do(server: JupyterServer) -> None:
    req = urllib.request.Request(
        server.url + f"gradeflow/api/jobs?token={server.token}",
        data=json.dumps({"assignment": "ps9"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    body = json.loads(err.value.read())
    assert body["what"] == "assignment 'ps9' is not in the gradebook"
    assert "known assignments: ps1" in body["todo"] and "nbgrader generate_assignment ps9" in body["todo"]


def test_run_files_are_confined_to_the_run_folder(server: JupyterServer) -> None:
    for path in (
        "gradeflow/runs/..%2F..%2Fgradebook.db/results/x",
        "gradeflow/runs/x/../../gradebook.db",
        "gradeflow/runs/ps1/manifest.json",
    ):
        assert server.get(path)[0] == 404, path


def run_job(manager, assignment: str, runner: str, timeout: float = 60):
    """Start a job from the page's JobManager and wait (in its own event loop) until it ends."""
    import asyncio

    async def started():
        job = manager.start(assignment, runner)
        while job.state == "running":
            await asyncio.sleep(0.05)
        return job

    return asyncio.run(asyncio.wait_for(started(), timeout))


def test_the_argo_runner_shows_why_argo_refused(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ARGO_SERVER set the page offers Argo; a rejected token ends the job with the client's advice."""
    import http.server
    import threading

    pytest.importorskip("pipelines.client", reason="ARGO CLIENT MISSING: pipelines.client is not there yet")
    from pipelines.jupyter.jobs import JobManager, argo_client

    class Rejects(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"code":16,"message":"token not valid"}'  # what an Argo Server answers
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Rejects)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("ARGO_SERVER", f"127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setenv("ARGO_SECURE", "false")
    monkeypatch.setenv("ARGO_TOKEN", "Bearer expired")
    try:
        assert argo_client()[0] is not None, "configured: the option is offered"

        job = run_job(JobManager(course), "ps1", "argo")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert job.state == "error"
    assert "Argo rejected the token" in job.error and "ARGO_TOKEN" in job.error


def test_a_folder_without_a_gradebook_is_explained_on_the_page(tmp_path: Path) -> None:
    from pipelines.jupyter.handlers import _course
    from steps.errors import TeacherError

    with pytest.raises(TeacherError) as err:
        _course(tmp_path)
    assert err.value.what == f"no gradebook at {tmp_path}/gradebook.db"
    assert "start Jupyter in your nbgrader course folder (or set c.GradeflowConfig.course_dir)" in err.value.todo


def test_an_argo_run_from_the_page_gets_the_teachers_limits(course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """c.GradeflowConfig.grade_args (--cell-timeout, --memory, ...) reach the Argo run's parameters,
    as they reach `gradeflow grade` for a local run; a flag Argo cannot take is said in the log."""
    pytest.importorskip("pipelines.client", reason="ARGO CLIENT MISSING: pipelines.client is not there yet")
    from test_argo_client import INSTALLED, FakeArgo, a_workflow

    from pipelines.jupyter.jobs import JobManager

    argo = FakeArgo()
    ns = "grading"
    argo.routes[("GET", "/api/v1/version")] = (200, {"version": "v3.7.2"})
    argo.routes[("GET", f"/api/v1/workflow-templates/{ns}/gradeflow-autograde")] = (200, INSTALLED)

    def create(req: dict) -> dict:  # the run exists from now on, and has finished when next read
        name = req["body"]["workflow"]["metadata"]["name"]
        argo.routes[("GET", f"/api/v1/workflows/{ns}/{name}")] = (200, a_workflow(name, "Succeeded"))
        return req["body"]["workflow"]

    argo.routes[("POST", f"/api/v1/workflows/{ns}")] = (200, create)

    for k, v in {
        "ARGO_SERVER": argo.address,
        "ARGO_SECURE": "false",
        "ARGO_TOKEN": "Bearer t",
        "ARGO_NAMESPACE": ns,
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GRADEFLOW_ARGO_STORE", raising=False)
    try:
        manager = JobManager(
            course, ["--jobs", "2", "--sandbox", "bubblewrap", "--cell-timeout", "60", "--memory=2048", "--pids", "99"]
        )
        job = run_job(manager, "ps1", "argo")
    finally:
        argo.close()
    assert job.state == "submitted", job.error
    post = next(r for r in argo.requests if r["method"] == "POST")
    params = {p["name"]: p["value"] for p in post["body"]["workflow"]["spec"]["arguments"]["parameters"]}
    assert (params["cell-timeout"], params["memory"], params["cpu-time"], params["wall-time"]) == (
        "60",
        "2048",
        "300",
        "600",
    )
    assert any("--pids is not applied on Argo" in line for line in job.log)


def test_the_reports_feedback_links_open_the_pages_sandboxed(server: JupyterServer, course: Path) -> None:
    """A report's feedback links, followed from /gradeflow/runs/RUN/results/report.html, open the
    run's own page or, for a run that keeps only results/ (synced from Argo), the course's; both
    with the sandbox policy (the pages hold student output) and never outside the course."""
    import re
    import shutil
    from urllib.parse import urljoin

    from pipelines.report import render_report

    run = course / "gradeflow_runs" / "ps1-00000000T000000Z-links"
    page = "<!DOCTYPE html><html><body><p>feedback of {}</p><script>alert(1)</script></body></html>"
    (run / "feedback" / "inrun").mkdir(parents=True)
    (run / "feedback" / "inrun" / "squares.html").write_text(page.format("inrun"))
    (course / "feedback" / "synced" / "ps1").mkdir(parents=True)
    (course / "feedback" / "synced" / "ps1" / "squares.html").write_text(page.format("synced"))
    (run / "results").mkdir()
    students = [
        {"student": s, "status": "ok", "score": 1, "max_score": 3, "notebooks": [], "feedback": {"squares": "ok"}}
        for s in ("inrun", "synced")
    ]
    counts = {"submissions": 2, "graded": 2, "ok": 2}
    (run / "results" / "results.json").write_text(
        json.dumps(
            {
                "run_id": run.name,
                "assignment": "ps1",
                "counts": counts,
                "students": students,
                "problems": [],
                "unchanged": [],
            }
        )
    )
    try:
        html = render_report(run).read_text()
        hrefs = dict(
            re.findall(r'<tr data-student="([^"]+)">.*?<td class="feedback"><a href="([^"]+)"', html, flags=re.S)
        )
        assert hrefs == {
            "inrun": "../feedback/inrun/squares.html",
            "synced": "../../../feedback/synced/ps1/squares.html",
        }
        for student, href in hrefs.items():
            url = urljoin(server.url + f"gradeflow/runs/{run.name}/results/report.html", href)
            with urllib.request.urlopen(f"{url}?token={server.token}", timeout=30) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/html"), url
                assert "sandbox" in r.headers["Content-Security-Policy"], (
                    "no script a student printed runs in the teacher's session"
                )
                assert r.read().decode() == page.format(student)
        for bad in (
            "gradeflow/feedback/..%2F..%2Fgradebook.db/ps1/x.html",
            "gradeflow/feedback/synced/ps1/..%2F..%2F..%2Fgradebook.db",
            "gradeflow/feedback/synced/ps1/squares.ipynb",
        ):
            assert server.get(bad)[0] == 404, bad
    finally:
        shutil.rmtree(run)
        shutil.rmtree(course / "feedback" / "synced")
