"""The sandbox runs a kernel wherever gradeflow's Python lives.

Scenario: a teacher installs gradeflow in a venv under /tmp, in HOME, under /work (the path
where the sandbox shows the submission's files) or in a conda-like environment under /opt.
bubblewrap's private /tmp and the work-dir mount must not hide that Python from the kernel.
Each case runs the canary (the test kernel every run starts before grading) with that venv's
interpreter: a real kernel in a real bubblewrap sandbox, `1 + 1` evaluated.

The venvs are `python -m venv --system-site-packages` of the interpreter running the tests
(their packages come from it); the /opt case is such a venv at /opt, standing in for conda.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import require_sandbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CANARY = "from pipelines.local import _canary\nfrom steps.sandbox import Limits\nprint('canary:', repr(_canary('bubblewrap', Limits(memory_mb=512, wall_time=120))))"


def _parent(where: str) -> Path:
    if where == "tmp":
        return Path(tempfile.gettempdir())
    if where == "home":
        return Path.home()
    if where == "work":  # the sandbox shows the submission at /work: a venv there must not be shadowed
        return Path("/work")
    if where == "opt":
        return Path("/opt")
    raise AssertionError(where)


@pytest.fixture(params=["tmp", "home", "work", "opt"])
def venv_python(request: pytest.FixtureRequest) -> Iterator[str]:
    require_sandbox("bubblewrap")
    parent = _parent(request.param)
    made_parent = not parent.exists()
    try:
        parent.mkdir(exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="gradeflow-test-venv-", dir=parent))
    except OSError as e:
        pytest.skip(f"CANNOT CREATE A VENV UNDER {parent}: {e}")
    d.chmod(0o755)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(d)], check=True, capture_output=True)
        yield str(d / "bin" / "python3")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if made_parent:
            shutil.rmtree(parent, ignore_errors=True)


def test_a_kernel_starts_in_the_sandbox_from_a_venv_wherever_it_lives(venv_python: str) -> None:
    run = subprocess.run([venv_python, "-c", CANARY], capture_output=True, text=True, timeout=300, cwd="/", env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert "canary: ''" in run.stdout, run.stdout + run.stderr


def test_the_system_python() -> None:
    require_sandbox("bubblewrap")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import nbclient, ipykernel, papermill, nbgrader"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"SYSTEM PYTHON LACKS THE PACKAGES: /usr/bin/python3 cannot import nbclient/ipykernel/papermill/nbgrader ({probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'no output'}); install them there (or in a venv of it) to run this case")
    run = subprocess.run(["/usr/bin/python3", "-c", CANARY], capture_output=True, text=True, timeout=300, cwd="/", env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "canary: ''" in run.stdout, run.stdout + run.stderr


def _reachable_python_command() -> str:
    """Shell commands (run as root in a private mount namespace) that make this interpreter
    reachable by `uid` without exposing anything else: a Python under /root (pyenv) sits behind
    a 0700 dir, so a tmpfs replaces that dir and only the interpreter's prefix is moved onto it."""
    prefix = Path(sys.base_prefix).resolve()
    closed = next((p for p in [*reversed(prefix.parents), prefix] if not p.stat().st_mode & 0o001), None)
    if closed is None:
        return "true"
    stage = tempfile.mkdtemp(prefix="gradeflow-test-stage-")
    return f"mount --bind {prefix} {stage} && mount -t tmpfs -o mode=755 gradeflow-test {closed} && mkdir -p {prefix} && mount --move {stage} {prefix} && rmdir {stage}"


@pytest.fixture
def unprivileged_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="gradeflow-test-home-"))
    home.chmod(0o755)
    os.chown(home, 65534, 65534)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_a_kernel_starts_in_the_sandbox_when_gradeflow_runs_unprivileged(unprivileged_home: Path) -> None:
    require_sandbox("bubblewrap")
    if os.geteuid() != 0:
        pytest.skip("NEEDS ROOT to switch to an unprivileged uid (as a normal user, every other test here is already the unprivileged case)")
    uid = 65534
    script = f"{_reachable_python_command()} && exec setpriv --reuid {uid} --regid {uid} --clear-groups env HOME={unprivileged_home} PYTHONPATH={ROOT} {sys.executable} -c \"$0\""
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, CANARY], capture_output=True, text=True, timeout=300, cwd="/")
    assert "canary: ''" in run.stdout, run.stdout + run.stderr
