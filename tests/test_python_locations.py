"""The sandbox runs a kernel wherever gradeflow's Python lives.

Scenario: a teacher installs gradeflow in a venv under /tmp, in HOME, under /work (the path
where the sandbox shows the submission's files) or in a conda-like environment under /opt.
bubblewrap's private /tmp and the work-dir mount must not hide that Python from the kernel.
Each case runs the canary (the test kernel every run starts before grading) with that venv's
interpreter: a real kernel in a real bubblewrap sandbox, `1 + 1` evaluated.

The venvs hold the packages of the interpreter running the tests (conftest.make_venv_like_this:
a copy of its venv, or `venv --system-site-packages` of a base interpreter); the /opt case is
such a venv at /opt, standing in for conda.
The system Python case is Debian's /usr/bin/python3 with gradeflow installed by `pip install
--user --break-system-packages` into the checkout's .sysuser (.ci/setup prepares it). The
unprivileged cases run as uid 65534: the canary, and a whole `gradeflow grade` whose grades
must equal a root run's.
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
import coursekit as ck  # noqa: E402
from conftest import make_venv_like_this, require_sandbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CANARY = (
    "from pipelines.local import _canary\nfrom steps.sandbox import Limits\n"
    "print('canary:', repr(_canary('bubblewrap', Limits(memory_mb=512, wall_time=120))))"
)


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
        yield str(make_venv_like_this(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if made_parent:
            shutil.rmtree(parent, ignore_errors=True)


def test_a_kernel_starts_in_the_sandbox_from_a_venv_wherever_it_lives(venv_python: str) -> None:
    run = subprocess.run(
        [venv_python, "-c", CANARY],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    assert "canary: ''" in run.stdout, run.stdout + run.stderr


SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSUSER = ROOT / ".sysuser"  # .ci/setup: pip install --user --break-system-packages, PYTHONUSERBASE=here


def test_the_system_python() -> None:
    """Debian's own Python with gradeflow installed by `pip install --user` (as .ci/setup does, in
    a per-checkout user base): the sandbox must see the user site."""
    require_sandbox("bubblewrap")
    if (SYSUSER / "UNAVAILABLE").is_file():
        pytest.skip(f"NO SYSTEM PYTHON TO TEST: {(SYSUSER / 'UNAVAILABLE').read_text().strip()}")
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"NO SYSTEM PYTHON TO TEST: {SYSTEM_PYTHON} does not exist")
    assert (SYSUSER / ".gradeflow-setup").is_file(), (
        f"gradeflow is not installed for {SYSTEM_PYTHON} in {SYSUSER}: run `.ci/setup test` (make setup)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUSERBASE": str(SYSUSER)}
    env.pop("VIRTUAL_ENV", None)
    where = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys, ipykernel; print(sys.prefix, ipykernel.__file__)"],
        capture_output=True,
        text=True,
        env=env,
    )
    prefix, ipykernel = where.stdout.split()
    assert prefix == "/usr" and ipykernel.startswith(str(SYSUSER)), (
        where.stdout + where.stderr
    )  # really the system Python and the user site
    run = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", CANARY], capture_output=True, text=True, timeout=300, cwd="/", env=env
    )
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
    return (
        f"mount --bind {prefix} {stage} && mount -t tmpfs -o mode=755 gradeflow-test {closed}"
        f" && mkdir -p {prefix} && mount --move {stage} {prefix} && rmdir {stage}"
    )


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
        pytest.skip(
            "NEEDS ROOT to switch to an unprivileged uid"
            " (as a normal user, every other test here is already the unprivileged case)"
        )
    uid = 65534
    script = (
        f"{_reachable_python_command()} && exec setpriv --reuid {uid} --regid {uid} --clear-groups"
        f' env HOME={unprivileged_home} PYTHONPATH={ROOT} {sys.executable} -c "$0"'
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, CANARY],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert "canary: ''" in run.stdout, run.stdout + run.stderr


NOBODY = 65534


def _grades(course: Path) -> dict[tuple[str, str], tuple[float | None, bool]]:
    """(student, cell) -> (auto score, needs manual grade), as the gradebook holds them."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            (s.student.id, g.name): (g.auto_score, g.needs_manual_grade)
            for s in gb.find_assignment("ps1").submissions
            for g in s.notebooks[0].grades
        }


def test_a_whole_grade_run_unprivileged_gives_the_grades_of_a_root_run(squares_built: Path) -> None:
    """`gradeflow grade` from start to end as uid 65534 on a course it owns (bubblewrap as that
    uid: no cgroup, no uid switch), against the same course graded as root."""
    require_sandbox("bubblewrap")
    if os.geteuid() != 0:
        pytest.skip(
            "NEEDS ROOT to switch to an unprivileged uid"
            " (as a normal user, every other run is already the unprivileged case)"
        )
    top = Path(tempfile.mkdtemp(prefix="gradeflow-test-unprivileged-"))  # pytest's tmp dirs are 0700 root's
    top.chmod(0o755)
    try:
        courses = {}
        for who in ("root", "nobody"):
            courses[who] = ck.copy_course(squares_built, top / who / "course")
            for i, source in enumerate([ck.CORRECT, ck.WRONG, ck.RAISES, ck.CORRECT]):
                ck.submit(courses[who], f"s{i}", {"squares": source})
        home = top / "nobody" / "home"
        home.mkdir()
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(top / "nobody")], check=True)
        grade = ["-m", "pipelines.cli", "grade", "ps1", "-q", "--jobs", "2"]
        path = f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        as_root = subprocess.run(
            [sys.executable, *grade[:3], str(courses["root"]), *grade[3:]],
            capture_output=True,
            text=True,
            timeout=600,
            cwd="/",
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert as_root.returncode == 0, as_root.stdout + as_root.stderr
        script = (
            f"{_reachable_python_command()} && exec setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups "
            f"env -i HOME={home} PATH={path} LANG=C.UTF-8 PYTHONPATH={ROOT} {sys.executable}"
            f" {' '.join(grade[:3])} {courses['nobody']} {' '.join(grade[3:])}"
        )
        as_nobody = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            cwd="/",
        )
        assert as_nobody.returncode == 0, as_nobody.stdout + as_nobody.stderr
        assert "4 submission(s), 4 graded" in as_nobody.stdout, as_nobody.stdout
        assert "Traceback" not in as_nobody.stderr, as_nobody.stderr
        theirs, ours = _grades(courses["root"]), _grades(courses["nobody"])
        assert ours == theirs and len(ours) == 4 * 2
        assert ours[("s0", "test_squares")] == (2.0, False) and ours[("s1", "test_squares")] == (0.0, False)
        autograded = courses["nobody"] / "autograded" / "s0" / "ps1" / "squares.ipynb"
        assert autograded.stat().st_uid == NOBODY  # written by the unprivileged run itself
    finally:
        shutil.rmtree(top, ignore_errors=True)
