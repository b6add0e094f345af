"""Every error a teacher can meet says what happened and what to do, and exits with code 2.

Scenario: a teacher makes each mistake once, at the command line: grades a folder with no
gradebook, a misspelt assignment, a student who submitted nothing; grades on a machine with
no sandbox, with the podman sandbox before its image is built, while another run holds the
course, or into a store that cannot be reached; and sends a run to an Argo Server that
rejects the token, that cannot be reached, or that lacks the WorkflowTemplate. Each time
gradeflow prints one line naming the problem and the next step (a command or a setting),
with no traceback, and exits 2 (EXIT_USAGE), never 75.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import processes  # noqa: E402

import coursekit as ck  # noqa: E402
from steps.contract import EXIT_USAGE  # noqa: E402


class _FakeArgo(http.server.BaseHTTPRequestHandler):
    """An Argo Server that answers every request with one status."""

    status = 401
    body = b'{"code":16,"message":"token not valid"}'

    def _answer(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_argo(status: int, body: bytes) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Handler", (_FakeArgo,), {"status": status, "body": body})
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def gradeflow(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return processes.gradeflow(*args, timeout=240, **kw)


@pytest.fixture(scope="module")
def runs(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every mistake made once, all at the same time (each is a separate `gradeflow` process)."""
    root = tmp_path_factory.mktemp("errors")
    course = ck.copy_course(squares_built, root / "course")
    ck.submit(course, "good", {"squares": ck.CORRECT})
    locked = ck.copy_course(course, root / "locked")
    bare = ck.copy_course(course, root / "bare")
    (root / "empty").mkdir()
    (root / "empty-path").mkdir()
    fake = root / "podman-without-image"  # podman and runc are there (first on PATH), the grader image is not
    fake.mkdir()
    for tool in ("podman", "runc"):
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ACCESS_KEY_ID": "teacher",
        "AWS_SECRET_ACCESS_KEY": "wrong",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    argo = ("submit", "course", "ps1", "--argo", "--argo-plaintext", "--argo-server")
    (locked / "gradeflow_runs").mkdir(exist_ok=True)
    with (
        fake_argo(401, b'{"code":16,"message":"token not valid"}') as rejects,
        fake_argo(404, b'{"code":5,"message":"not found"}') as empty_cluster,
        open(locked / "gradeflow_runs" / ".ps1.lock", "w") as lock,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the course
        scenarios = {
            "no gradebook": lambda: gradeflow("grade", str(root / "empty"), "ps1"),
            "unknown assignment": lambda: gradeflow("grade", str(course), "ps9"),
            "unknown student": lambda: gradeflow("grade", str(course), "ps1", "--student", "zed"),
            "no course folder": lambda: gradeflow("grade", str(root / "nope"), "ps1"),
            "no sandbox": lambda: gradeflow("grade", str(bare), "ps1", env={"PATH": str(root / "empty-path")}),
            "image not built": lambda: gradeflow(
                "grade",
                str(bare),
                "ps1",
                "--sandbox",
                "podman",
                env={"PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"},
            ),
            "locked": lambda: gradeflow("grade", str(locked), "ps1"),
            "store unreachable": lambda: gradeflow(
                "grade", str(course), "ps1", "--store", "s3://gradeflow-runs/course", "--force", env=aws, drop=("AWS_",)
            ),
            "store scheme": lambda: gradeflow("grade", str(course), "ps1", "--store", "nosuch://bucket/runs"),
            "argo token": lambda: gradeflow(*argo, rejects, "--argo-token", "Bearer expired", drop=("ARGO_", "KUBE")),
            "argo unreachable": lambda: gradeflow(*argo, f"127.0.0.1:{closed_port()}", drop=("ARGO_", "KUBE")),
            "argo template": lambda: gradeflow(*argo, empty_cluster, drop=("ARGO_", "KUBE")),
        }
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(run) for name, run in scenarios.items()}
            results: dict[str, Any] = {name: f.result() for name, f in futures.items()}
    results["bare course"] = bare
    yield results


def assert_teacher_error(run: subprocess.CompletedProcess[str], what: str, todo: str) -> None:
    """Exit 2, one `gradeflow: WHAT. TODO` line on stderr, no traceback."""
    assert run.returncode == EXIT_USAGE, f"exit {run.returncode}, expected {EXIT_USAGE}:\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr, run.stderr
    message = [line for line in run.stderr.splitlines() if line.startswith("gradeflow: ")]
    assert message, run.stderr
    assert what in message[-1], f"{what!r} not in {message[-1]!r}"
    assert todo in message[-1], f"{todo!r} not in {message[-1]!r}"


# --- the course and the arguments ---------------------------------------------------------------


def test_a_folder_without_a_gradebook(runs: dict[str, Any]) -> None:
    assert_teacher_error(
        runs["no gradebook"], "/empty/gradebook.db", "run `nbgrader generate_assignment ps1` in the course directory"
    )
    assert "no gradebook at " in runs["no gradebook"].stderr


def test_an_unknown_assignment(runs: dict[str, Any]) -> None:
    assert_teacher_error(
        runs["unknown assignment"],
        "assignment 'ps9' is not in the gradebook",
        "known assignments: ps1; run `nbgrader generate_assignment ps9`",
    )


def test_a_student_without_a_submission(runs: dict[str, Any]) -> None:
    assert_teacher_error(runs["unknown student"], "no submission of 'ps1' for: zed", "submissions are read from")


def test_a_course_folder_that_does_not_exist(runs: dict[str, Any]) -> None:
    assert_teacher_error(runs["no course folder"], "does not exist", "give the folder that holds nbgrader_config.py")


# --- the machine --------------------------------------------------------------------------------


def test_no_sandbox_available(runs: dict[str, Any]) -> None:
    """bubblewrap is not installed (nothing on PATH): refuse, and never fall back to running unsandboxed."""
    assert_teacher_error(runs["no sandbox"], "the bubblewrap sandbox is not available", "apt-get install bubblewrap")
    assert "--unsafe-no-sandbox" in runs["no sandbox"].stderr
    assert not list(runs["bare course"].glob("gradeflow_runs/ps1-*")), "refused before anything ran"


def test_the_grader_image_is_not_built(runs: dict[str, Any]) -> None:
    from steps.sandbox import SANDBOXES

    if "podman" not in SANDBOXES:
        pytest.skip("PODMAN SANDBOX MISSING: steps/sandbox/podman.py is not registered")
    if os.geteuid() != 0:
        pytest.skip("NEEDS ROOT: as a normal user the podman sandbox first says it needs rootful podman")
    assert_teacher_error(runs["image not built"], "the grader image", "is not built: run `bash images/grader/build.sh`")


def test_another_run_is_grading_the_assignment(runs: dict[str, Any]) -> None:
    assert_teacher_error(
        runs["locked"], "another gradeflow run is grading 'ps1' in this course", "wait for it to finish"
    )


def test_the_store_cannot_be_reached(runs: dict[str, Any]) -> None:
    pytest.importorskip("s3fs", reason="S3 STORE NEEDS s3fs: pip install 'gradeflow[s3]'")
    assert_teacher_error(
        runs["store unreachable"],
        "could not upload manifest.json to s3://gradeflow-runs/course/",
        "check the store URL, credentials and that the bucket exists",
    )


def test_a_store_url_with_an_unknown_scheme(runs: dict[str, Any]) -> None:
    assert_teacher_error(runs["store scheme"], "nosuch", "file://")


# --- Argo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def argo_client() -> None:
    try:
        import pipelines.client  # noqa: F401
    except ImportError as e:
        pytest.skip(
            f"ARGO CLIENT MISSING: pipelines.client cannot be imported ({e}); `gradeflow submit` is not there yet"
        )


def test_argo_rejects_the_token(argo_client: None, runs: dict[str, Any]) -> None:
    assert_teacher_error(runs["argo token"], "Argo rejected the token", "set ARGO_TOKEN to a valid token")


def test_argo_cannot_be_reached(argo_client: None, runs: dict[str, Any]) -> None:
    assert_teacher_error(
        runs["argo unreachable"], "cannot reach Argo", "check ARGO_SERVER, or port-forward the Argo Server"
    )


def test_argo_has_no_gradeflow_template(argo_client: None, runs: dict[str, Any]) -> None:
    assert_teacher_error(runs["argo template"], "is not installed in", "kubectl apply")
