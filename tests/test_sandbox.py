"""The bubblewrap sandbox on its own: what a kernel inside it can see, reach and use.

Scenario: one probe notebook runs through the bubblewrap backend's `execute_submission`, with a
course dir, a canary in the teacher's HOME, secrets in the grader's environment and a server on
the host's loopback all set up around it; each test reads one cell's report. Then the limits
that end a submission (a cell timeout, the wall-time limit), CPU fairness between two
submissions graded side by side, and the registry's errors (an unknown sandbox, a missing bwrap).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import coursekit as ck
from conftest import (
    FAST_LIMITS,
    HostListener,
    error_names,
    notebook_text,
    planted_file,
    require_sandbox,
    sandbox_leftovers,
)
from pipelines.local import RUNS_DIR, GradeOptions, grade
from steps.errors import SandboxUnavailable, TeacherError
from steps.records import FAILED, OK
from steps.sandbox import SANDBOXES, Limits, get_sandbox
from steps.sandbox.base import minimal_env
from steps.sandbox.bubblewrap import SANDBOX_UID_BASE, _work_mount

SECRETS = {"AWS_SECRET_ACCESS_KEY": "leak-me-unit", "GRADEFLOW_TEST_SECRET": "leak-me-unit-too"}
PROBE_TIMEOUT = 3  # the per-cell timeout of the probe notebook

# Each probe cell prints one JSON line; the tests below read them by key.
PROBES = {
    "identity": (
        "import os, json\n"
        "print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(), 'groups': os.getgroups()}))"
    ),
    "files": """import os, json
def visible(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
def listing(p):
    try:
        return sorted(os.listdir(p))
    except OSError as e:
        return type(e).__name__
print(json.dumps({'canary': visible(HOST['canary']), 'course': visible(HOST['course']),
                  'gradebook': visible(HOST['course'] + '/gradebook.db'),
                  'home': listing(HOST['home']), 'cwd': os.getcwd(), 'work': listing(os.getcwd()),
                  'tilde': os.path.expanduser('~')}))""",
    "environment": (
        "import json\n"
        "print(json.dumps(dict(v.split('=', 1) for v in open('/proc/self/environ').read().split('\\0') if v)))"
    ),
    "network": """import json, socket
def connect(addr):
    try:
        socket.create_connection(addr, timeout=2).close()
        return 'connected'
    except OSError as e:
        return type(e).__name__
print(json.dumps({'interfaces': [n for _, n in socket.if_nameindex()],
                  'host_loopback': connect(('127.0.0.1', HOST['port'])), 'internet': connect(('1.1.1.1', 53))}))""",
    "disk": """import json, os
def fill(d):
    written = 0
    try:
        for i in range(4):  # 4 files of 24 MiB: each below the 32 MiB limit, together above it
            with open(f'{d}/fill-{i}', 'wb') as fh:
                for _ in range(6):
                    written += fh.write(b'\\0' * (4 << 20))
        return written >> 20
    except OSError as e:
        return f'{type(e).__name__} after {written >> 20} MiB'
    finally:
        for i in range(4):
            if os.path.exists(f'{d}/fill-{i}'):
                os.remove(f'{d}/fill-{i}')
print(json.dumps({'work': fill('/work'), 'tmp': fill('/tmp'), 'root': fill('/')}))""",
    "timeout": "while True:\n    pass",
    "after_timeout": "import json\nprint(json.dumps({'ran': True}))",
}


def _probe_notebook(host: dict[str, Any]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell(f"HOST = {host!r}", metadata={"nbgrader": {"grade_id": "host"}})]
    nb.cells += [new_code_cell(src, metadata={"nbgrader": {"grade_id": key}}) for key, src in PROBES.items()]
    return nb


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the probe notebook once in the bubblewrap sandbox; the report of each cell, by key."""
    require_sandbox("bubblewrap")
    tmp = tmp_path_factory.mktemp("probe")
    course = tmp / "course"
    (course / "submitted").mkdir(parents=True)
    (course / "gradebook.db").write_text("not really a gradebook")
    canary = Path.home() / f".gradeflow-canary-{secrets.token_hex(4)}"
    listener = HostListener(secrets.token_hex(4))
    host = {"course": str(course), "canary": str(canary), "home": str(Path.home()), "port": listener.port}
    work = tmp / "work"
    work.mkdir()
    nbformat.write(_probe_notebook(host), str(work / "probe.ipynb"))
    limits = Limits(**{**FAST_LIMITS, "cell_timeout": PROBE_TIMEOUT})
    mp = pytest.MonkeyPatch()
    for key, value in SECRETS.items():
        mp.setenv(key, value)  # execute_submission runs in this process: its environment is the grader's
    try:
        with planted_file(canary, "the teacher's secret\n"):
            record = get_sandbox("bubblewrap").execute_submission(
                work, ["probe"], tmp / "out", limits, config={}, slot=0
            )
    finally:
        mp.undo()
        listener.close()
    executed = tmp / "out" / "probe.ipynb"
    printed = notebook_text(executed)
    report: dict[str, Any] = {
        k: json.loads(v.strip().splitlines()[-1]) if v.strip().startswith("{") else v for k, v in printed.items()
    }
    report["_record"], report["_errors"], report["_hits"], report["_leftovers"] = (
        record,
        error_names(executed),
        list(listener.hits),
        sandbox_leftovers(),
    )
    yield report


@pytest.mark.skipif(os.geteuid() != 0, reason="only a grader running as root switches the kernel to a sandbox uid")
def test_kernel_runs_as_an_unprivileged_uid_when_gradeflow_is_root(probe: dict[str, Any]) -> None:
    ident = probe["identity"]
    assert ident["uid"] == ident["euid"] == ident["gid"] == SANDBOX_UID_BASE  # slot 0
    assert ident["groups"] in ([], [SANDBOX_UID_BASE])


def test_home_course_dir_and_gradebook_are_invisible(probe: dict[str, Any]) -> None:
    files = probe["files"]
    assert files["canary"] is False and files["course"] is False and files["gradebook"] is False
    # HOME shows at most the read-only path to the Python installation, never its files
    assert files["home"] in ("FileNotFoundError", [], [".pyenv"]) or set(files["home"]) <= {
        Path(sys.prefix).relative_to(Path.home()).parts[0]
    }
    # the notebook itself is not in the work dir: cells reach the kernel one by one, so the hidden
    # tests cannot be read ahead of time
    # /work, or /gradeflow-work where the Python itself lives under /work (steps.sandbox.bubblewrap)
    assert files["cwd"] == _work_mount() and files["work"] == [] and files["tilde"] == "/tmp/home"


def test_no_network_but_an_isolated_loopback(probe: dict[str, Any]) -> None:
    net = probe["network"]
    assert net["interfaces"] == ["lo"]
    assert net["host_loopback"] == "ConnectionRefusedError"  # the sandbox's own lo: nobody listens
    assert net["internet"] == "OSError"  # ENETUNREACH: no route at all
    assert probe["_hits"] == []


def test_environment_is_exactly_the_minimal_one(probe: dict[str, Any]) -> None:
    env = probe["environment"]
    expected = minimal_env(
        "/tmp/home",
        {"IPYTHONDIR": "/tmp/home/.ipython", "MPLCONFIGDIR": "/tmp/home/.mpl", "USER": "student", "LOGNAME": "student"},
    )
    extra = set(env) - set(expected)
    assert extra <= {"PWD", "PYTHONPATH"}, f"unexpected variables in the kernel: {sorted(extra)}"
    assert {k: env[k] for k in expected} == expected
    assert not set(SECRETS) & set(env)


def test_files_count_against_the_disk_limit_together(probe: dict[str, Any]) -> None:
    disk = probe["disk"]
    assert str(disk["tmp"]).startswith("OSError after")  # /tmp: a tmpfs of disk_mb
    if os.geteuid() == 0:  # the work dir sits on a tmpfs of disk_mb when root can mount one
        assert str(disk["work"]).startswith("OSError after"), disk
        assert probe["_record"].detail["teardown"].get("disk_quota_mb")
    assert str(disk["root"]).startswith("OSError after 0 MiB")  # the sandbox's own root is read-only


def test_cell_timeout_interrupts_and_the_next_cell_still_runs(probe: dict[str, Any]) -> None:
    # the interrupt's KeyboardInterrupt, then nbgrader's own error output for a timed-out cell
    assert probe["_errors"]["timeout"][-1] == "CellTimeoutError"
    assert probe["after_timeout"] == {"ran": True}
    outcome = probe["_record"].notebooks[0]
    assert outcome.status == OK and outcome.detail["timeouts"] == 1


def test_nothing_is_left_running_after_the_submission(probe: dict[str, Any]) -> None:
    assert probe["_leftovers"] == []


def test_wall_time_limit_stops_a_submission_which_is_failed_and_not_graded(squares_course: Path) -> None:
    require_sandbox("bubblewrap")
    ck.submit(squares_course, "spinner", {"squares": "while True:\n    pass"})
    ck.submit(squares_course, "honest", {"squares": ck.CORRECT})
    limits = Limits(**{**FAST_LIMITS, "wall_time": 6, "cell_timeout": 60})
    results = grade(squares_course, "ps1", GradeOptions(jobs=2, sandbox="bubblewrap", limits=limits))
    s = {r["student"]: r for r in results["students"]}
    spinner = s["spinner"]
    assert spinner["status"] == FAILED and "wall-time limit of 6 s" in spinner["notebooks"][0]["reason"]
    assert spinner["score"] == 0 and spinner["needs_manual_grade"]
    assert s["honest"]["status"] != FAILED and s["honest"]["score"] == 2.0
    executed = squares_course / RUNS_DIR / results["run_id"] / "executed" / "spinner" / "squares.ipynb"
    banner = nbformat.read(str(executed), as_version=4).cells[0]
    assert "gradeflow-error" in banner.metadata.get("tags", []) and "not graded" in banner.source
    assert sandbox_leftovers() == []


HOG = """import os, time
end = time.monotonic() + 20
for _ in range(40):  # 40 busy processes, each in a session (and CPU autogroup) of its own
    if os.fork() == 0:
        os.setsid()
        while time.monotonic() < end:
            pass
        os._exit(0)
while time.monotonic() < end:
    time.sleep(0.2)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="CPU groups per submission need root (a cgroup)")
def test_a_cpu_hog_does_not_starve_the_submission_beside_it(squares_course: Path) -> None:
    require_sandbox("bubblewrap")
    ck.submit(squares_course, "a_hog", {"squares": HOG + ck.CORRECT})
    ck.submit(squares_course, "b_honest", {"squares": ck.CORRECT})
    limits = Limits(**{**FAST_LIMITS, "cell_timeout": 30})
    results = grade(squares_course, "ps1", GradeOptions(jobs=2, sandbox="bubblewrap", limits=limits))
    s = {r["student"]: r for r in results["students"]}
    hog, honest = s["a_hog"]["execute_seconds"], s["b_honest"]["execute_seconds"]
    assert hog >= 20  # they really ran side by side
    # Alone it takes about 2 s; sharing the CPU per process with 40 spinners it took as long as
    # the hog ran (19 s of 25 s). With a CPU group per submission it takes 2 to 3 s.
    assert honest < hog / 2, f"the honest submission took {honest} s next to a {hog} s CPU hog"
    assert s["b_honest"]["score"] == 2.0


def test_unknown_sandbox_names_the_known_ones() -> None:
    with pytest.raises(TeacherError) as err:
        get_sandbox("nope")
    assert "'nope'" in str(err.value)
    for name in SANDBOXES:
        assert name in str(err.value)


def test_missing_bwrap_is_a_clear_error_and_nothing_runs(squares_course: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "bwrap" else real_which(cmd, *a, **k))
    with pytest.raises(SandboxUnavailable) as err:
        get_sandbox("bubblewrap")
    assert "bwrap not found" in str(err.value) and "apt-get install bubblewrap" in str(err.value)
    ck.submit(squares_course, "alice", {"squares": ck.CORRECT})
    with pytest.raises(SandboxUnavailable):
        grade(squares_course, "ps1", GradeOptions(jobs=1, sandbox="bubblewrap"))
    assert not (squares_course / RUNS_DIR).exists() and not (squares_course / "autograded").exists()
