"""The grader image, run the way the podman sandbox runs it.

Scenario: a teacher builds the grader image on a machine with no container registry
(images/grader/build.sh: a debootstrap Debian base, then the Containerfile; cached, so only
the first run of this module pays for the build). A student's notebook then runs in it under
the sandbox's flags: runc, no network, a read-only root filesystem, uid 1000, no
capabilities, no-new-privileges, memory/pids limits, explicit ulimits and tmpfs /work and
/tmp. We check from outside that the container really is non-root, read-only and offline,
and that papermill inside it executes a notebook whose middle cell raises, running the cells
after it when errors are allowed, as nbgrader's autograding does.

Needs podman, runc and debootstrap (`make setup`), and root for the one-time base build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "images" / "grader" / "build.sh"
IMAGE = "localhost/gradeflow-grader:dev"

# The flags a sandboxed run uses (images/README.md explains each one). runc, not crun, and
# explicit ulimits: without them container creation fails on this kind of host.
SANDBOX_FLAGS = [
    "--runtime",
    "runc",
    "--rm",
    "--network",
    "none",
    "--read-only",
    "--user",
    "1000",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--memory",
    "512m",
    "--pids-limit",
    "128",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=256:256",
    "--tmpfs",
    "/work:rw,size=64m,mode=1777",
    "--tmpfs",
    "/tmp:rw,size=64m,mode=1777",
]


INPUTS = ["pyproject.toml", "constraints.txt", "README.md", "steps", "pipelines", "images/grader"]


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the image's inputs, so edits made to the checkout while the tests run cannot
    change them between two builds. Its build.sh hashes the same files as the checkout's."""
    root = tmp_path_factory.mktemp("image-inputs")
    for name in INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, root / name)
    return root


def build(snapshot: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(snapshot / "images/grader/build.sh")], cwd=snapshot, capture_output=True, text=True, timeout=1800
    )


@pytest.fixture(scope="module")
def image(snapshot: Path) -> str:
    """The grader image, built (or found up to date) by images/grader/build.sh."""
    if not shutil.which("podman"):
        pytest.skip(
            "PODMAN MISSING: `podman` is not installed, so the grader image cannot be built or run here "
            "(install it with `make setup`, or apt-get install podman runc debootstrap)"
        )
    proc = build(snapshot)
    assert proc.returncode == 0, f"build.sh exited {proc.returncode}:\n{tail(proc.stderr)}"
    assert proc.stdout.strip().splitlines()[-1] == IMAGE, proc.stdout
    return IMAGE


def run(image: str, *command: str, stdin: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """Run `command` in the image under the sandbox flags."""
    interactive = ["-i"] if stdin is not None else []
    return subprocess.run(
        ["podman", "run", *SANDBOX_FLAGS, *interactive, image, *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(image: str, code: str, stdin: str | None = None) -> dict:
    """Run Python `code` in the image; it prints one JSON object as its last stdout line."""
    proc = run(image, "python", "-c", code, stdin=stdin)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_build_is_cached(image: str, snapshot: Path) -> None:
    """A second build.sh with unchanged inputs builds nothing, and says so."""
    proc = build(snapshot)
    assert proc.returncode == 0, tail(proc.stderr)
    assert "up to date" in proc.stderr, tail(proc.stderr)
    assert "STEP" not in proc.stderr, "a cached build must not run podman build:\n" + tail(proc.stderr)
    label = subprocess.run(
        ["podman", "image", "inspect", "--format", '{{ index .Config.Labels "gradeflow.inputs" }}', image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(label) == 64, f"gradeflow.inputs label is not a sha256: {label!r}"
    assert label[:12] in proc.stderr, "build.sh reports the inputs hash it matched"


def test_build_names_the_apt_packages_when_tools_are_missing(tmp_path: Path) -> None:
    """Without podman/runc/debootstrap on PATH, build.sh exits 3 and says what to apt-get install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date", "sed", "awk", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    bash = shutil.which("bash") or "/bin/bash"
    proc = subprocess.run(
        [bash, str(BUILD)], cwd=REPO, capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir)}
    )
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert "apt-get install -y podman runc debootstrap" in proc.stderr, proc.stderr


def test_runs_as_uid_1000_without_privileges(image: str) -> None:
    config = json.loads(
        subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    )[0]["Config"]
    assert config.get("User") == "1000", "the image itself must default to uid 1000, not root"
    assert not config.get("Entrypoint"), "no ENTRYPOINT: the sandbox passes the whole command"
    got = run_python(
        image,
        r"""
import json, os
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "home": os.environ.get("HOME"),
                  "cwd": os.getcwd(), "capeff": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip()}))
""",
    )
    assert got["uid"] == got["euid"] == 1000, got
    assert got["uid"] != 0 and got["gid"] != 0, got
    assert int(got["capeff"], 16) == 0, f"capabilities left: {got['capeff']}"
    assert got["nnp"] == "1", "no-new-privileges is not set"
    assert got["cwd"] == "/work" and got["home"] == "/tmp", got


def test_default_command_is_the_execute_step_help(image: str) -> None:
    proc = run(image)
    assert proc.returncode == 0, proc.stderr
    assert "steps.execute" in proc.stdout and "--workspace" in proc.stdout, proc.stdout


def test_root_filesystem_is_read_only(image: str) -> None:
    got = run_python(
        image,
        r"""
import errno, json, os, sys
def write(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "written"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
prefix = sys.prefix
print(json.dumps({p: write(p) for p in ["/evil", "/etc/evil", "/usr/lib/evil", os.path.join(prefix, "evil"),
                                         "/work/ok", "/tmp/ok"]}))
""",
    )
    for path, result in got.items():
        if path.startswith(("/work/", "/tmp/")):
            assert result == "written", f"{path} should be writable (tmpfs): {result}"
        else:
            assert result == "EROFS", f"{path}: expected a read-only file system, got {result}"


def test_no_network(image: str) -> None:
    got = run_python(
        image,
        r"""
import json, os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(("1.1.1.1", 53))
    result = "connected"
except OSError as e:
    result = type(e).__name__ + ": " + str(e)
try:
    socket.getaddrinfo("pypi.org", 443)
    dns = "resolved"
except OSError as e:
    dns = type(e).__name__
print(json.dumps({"connect": result, "dns": dns, "interfaces": sorted(os.listdir("/sys/class/net"))}))
""",
    )
    assert got["connect"] != "connected", "a container with --network none reached 1.1.1.1:53"
    assert got["dns"] != "resolved", got
    assert got["interfaces"] == ["lo"], got


def test_papermill_runs_a_raising_notebook_when_errors_are_allowed(image: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)"),
        nbformat.v4.new_code_cell("raise ValueError('student bug')"),
        nbformat.v4.new_code_cell("import os\nprint('after', answer, os.getuid())"),
    ]
    # The notebook goes in on stdin (a bind mount of a root-owned 0700 pytest dir is not
    # readable by uid 1000); papermill writes to the /work tmpfs, the kernel runs as uid 1000.
    got = run_python(
        image,
        r"""
import json, sys
import nbformat, papermill
from papermill.exceptions import PapermillExecutionError
open("/work/in.ipynb", "w").write(sys.stdin.read())
raised = None
try:
    papermill.execute_notebook("/work/in.ipynb", "/work/out.ipynb", kernel_name="python3",
                               allow_errors=True, progress_bar=False)
except PapermillExecutionError as e:  # papermill re-raises the first error after running everything
    raised = e.ename
out = nbformat.read("/work/out.ipynb", as_version=4)
cells = [c for c in out.cells if c.cell_type == "code"]
print(json.dumps({"raised": raised,
                  "outputs": [[{"type": o.output_type, "text": o.get("text"), "ename": o.get("ename")}
                               for o in c.outputs] for c in cells],
                  "counts": [c.execution_count for c in cells]}))
""",
        stdin=nbformat.writes(nb),
    )
    first, second, third = got["outputs"]
    assert first == [{"type": "stream", "text": "42\n", "ename": None}], first
    assert [o["ename"] for o in second if o["type"] == "error"] == ["ValueError"], second
    assert third == [{"type": "stream", "text": "after 42 1000\n", "ename": None}], (
        "cells after the error must run: " + str(third)
    )
    assert got["counts"] == [1, 2, 3], got
    assert got["raised"] == "ValueError", got


def test_the_packages_courses_use_are_there_at_the_pinned_versions(image: str) -> None:
    """The default image stands in for a course image: numpy (the forgery corpus's numpy.testing
    techniques and every numpy course need it), at constraints.txt's version, as gradeflow's own."""
    got = run_python(
        image,
        "import json, numpy, ipykernel\nprint(json.dumps({'numpy': numpy.__version__,"
        " 'ipykernel': ipykernel.__version__, 'sum': int(numpy.arange(10).sum())}))",
    )
    pins = dict(
        line.split(";")[0].strip().split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#") and ('python_version >= "3.11"' in line or ";" not in line)
    )
    assert got["sum"] == 45
    assert got["numpy"] == pins["numpy"] and got["ipykernel"] == pins["ipykernel"], (
        got,
        pins["numpy"],
        pins["ipykernel"],
    )
