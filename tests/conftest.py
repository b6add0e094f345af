"""Shared fixtures and helpers: built courses, sandbox availability, host-side evidence.

Building an nbgrader course runs `nbgrader generate_assignment` (about 10 s), so the squares
course is built once per session (`squares_built`) and copied for each test that needs one
(`squares_course`). The helpers look at the host from outside a sandbox: which processes a
finished run left behind, what a directory tree held before and after, what a notebook printed,
who connected to a server on the host (`HostListener`); `planted_file` puts a canary somewhere
on the host for the length of a test and `runner_environment` puts variables (fake secrets) in
the environment the runner's worker processes inherit.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing.forkserver
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The tests start the venv's commands (nbgrader calls `alembic`, the tests `jupyter`): `make test`
# runs .venv/bin/python without activating the venv, so its bin/ goes first on PATH.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
import coursekit as ck  # noqa: E402
from steps.errors import SandboxUnavailable  # noqa: E402

# Small limits that keep sandboxed runs quick; hostile corpora are bounded below them.
FAST_LIMITS = dict(memory_mb=256, pids=64, wall_time=60, cell_timeout=10, disk_mb=32, output_kb=2048)


@pytest.fixture(scope="session")
def squares_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The squares course (coursekit.squares_course), built once per session. Do not modify it."""
    return ck.squares_course(tmp_path_factory.mktemp("squares-built") / "course")


@pytest.fixture
def squares_course(squares_built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built squares course, with no submissions yet."""
    return ck.copy_course(squares_built, tmp_path / "course")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server (Debian's postgresql-15) for this session, started and stopped here (tests/pgserver.py)."""
    import pgserver

    why = pgserver.missing()
    if why:
        pytest.skip(why)
    server = pgserver.PgServer()
    try:
        yield server.start()
    finally:
        server.destroy()


def require_sandbox(name: str) -> None:
    """Skip, saying why, unless the sandbox `name` is registered and can run on this machine."""
    from steps.sandbox import SANDBOXES, get_sandbox

    if name not in SANDBOXES:
        pytest.skip(
            f"SANDBOX BACKEND MISSING: no sandbox is registered as {name!r} (known: {', '.join(sorted(SANDBOXES))});"
            f" its backend steps/sandbox/{name}.py is not there yet"
        )
    if name == "podman" and not shutil.which("podman"):
        pytest.skip(
            "PODMAN MISSING: the podman sandbox is registered but `podman` is not installed here"
            " (apt-get install podman)"
        )
    try:
        get_sandbox(name)
    except SandboxUnavailable as e:
        pytest.skip(f"SANDBOX UNAVAILABLE: {e}")


def make_venv_like_this(dest: Path) -> Path:
    """A venv at `dest` that holds the packages of the Python running the tests; its python3.

    From a base interpreter, `venv --system-site-packages` gives them. From a venv (make test
    runs in .venv) that would give the BASE's packages, not the venv's: the venv is copied
    instead, as hard links (no space, about a second), so its packages live inside `dest` as a
    teacher's venv there would have them, and the sandbox must find them there."""
    import subprocess

    if sys.prefix == sys.base_prefix:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(dest)],
            check=True,
            capture_output=True,
        )
    else:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--link", f"{sys.prefix}/.", str(dest)], check=True, capture_output=True)
    return dest / "bin" / "python3"


def restart_forkserver() -> None:
    """Make the next process pool start a fresh forkserver, which inherits the current os.environ.

    The local runner's workers fork from multiprocessing's forkserver, started once per process
    with the environment of that moment; a test that puts secrets in the runner's environment
    must restart it, before and after, for the workers to see exactly that environment.
    """
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


@contextlib.contextmanager
def runner_environment(variables: dict[str, str]) -> Iterator[None]:
    """Put `variables` in the grading process's environment, where the runner's workers see them."""
    restart_forkserver()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in variables.items():
                mp.setenv(key, value)
            yield
    finally:
        restart_forkserver()  # later pools start without the variables


def sandbox_leftovers(markers: Iterable[str] = (), settle: float = 2.0) -> list[str]:
    """Host processes left by finished sandboxed runs, as 'pid: comm: cmdline'.

    A kernel's command line names its scratch dir (/tmp/gradeflow-execute-*), which is deleted
    when its submission is done: a process naming a deleted one outlived its submission. Forked
    or exec'd processes are found by a marker in their command line or name instead. Killed
    processes can take a moment to be reaped, so this looks again for up to `settle` seconds.
    """
    markers = [m for m in markers if m]
    deadline = time.monotonic() + settle
    while True:
        found = _leftovers(markers)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _leftovers(markers: list[str]) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        stale = [d for d in re.findall(r"/\S*?/gradeflow-execute-[^/\s]+", cmd) if not Path(d).exists()]
        if stale or any(m in cmd or m[:15] in comm for m in markers):
            found.append(f"{proc.name}: {comm}: {cmd[:200]}")
    return found


def tree_digest(root: Path, parts: Iterable[str]) -> dict[str, str]:
    """sha256 of every file (and the target of every symlink) under root/<part>, by relative path."""
    digest = {}
    for part in parts:
        base = root / part
        paths = [base] if base.is_file() else sorted(base.rglob("*")) if base.is_dir() else []
        for p in paths:
            rel = str(p.relative_to(root))
            if p.is_symlink():
                digest[rel] = "symlink:" + os.readlink(p)
            elif p.is_file():
                digest[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                digest[rel] = "dir"
    return digest


def notebook_text(path: Path) -> dict[str, str]:
    """Every code cell's printed text (streams, results, errors), by grade_id or cell index."""
    nb = nbformat.read(str(path), as_version=4)
    out = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        key = cell.metadata.get("nbgrader", {}).get("grade_id") or str(i)
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif o.get("output_type") == "error":
                parts.append(f"{o.get('ename')}: {o.get('evalue')}\n")
            else:
                parts.append(str(o.get("data", {}).get("text/plain", "")) + "\n")
        out[key] = "".join(parts)
    return out


def error_names(path: Path) -> dict[str, list[str]]:
    """The error outputs' names (e.g. CellTimeoutError), by grade_id or cell index."""
    nb = nbformat.read(str(path), as_version=4)
    return {
        cell.metadata.get("nbgrader", {}).get("grade_id") or str(i): [
            o.get("ename", "") for o in cell.get("outputs", []) if o.get("output_type") == "error"
        ]
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
    }


@contextlib.contextmanager
def planted_file(path: Path, text: str) -> Iterator[None]:
    """Create a file (and its missing parents) for the duration; leave anything that existed alone."""
    if path.exists():
        yield
        return
    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        for p in created:  # innermost first
            try:
                p.rmdir()
            except OSError:
                pass


class HostListener:
    """A TCP server on all of the host's addresses (loopback included) and an abstract Unix socket;
    records every connection it accepts."""

    def __init__(self, marker: str) -> None:
        self.hits: list[str] = []
        self.tcp = socket.create_server(("0.0.0.0", 0))
        self.port = self.tcp.getsockname()[1]
        self.abstract = f"gradeflow-test-{marker}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in (self.tcp, self.unix)]
        for t in self._threads:
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, addr = sock.accept()
            except (TimeoutError, OSError):
                continue
            self.hits.append(f"{sock.family.name} from {addr!r}")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.tcp.close()
        self.unix.close()


# --- headless Chromium, for the report and the Jupyter page --------------------------------------

ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots (gitignored)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
    " --disable-component-update --disable-sync"
).split()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by selenium, with a fresh profile."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="BROWSER TESTS NEED selenium: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("BROWSER TESTS NEED CHROMIUM: apt-get install chromium chromium-driver (.ci/setup does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + ["--window-size=1280,1000"]:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="gradeflow-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def full_page_screenshot(driver, name: str) -> Path:
    """Screenshot the whole page into tests/artifacts/NAME."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1280, min(max(height + 120, 700), 6000))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path
