"""Fault injection: a failure of gradeflow, the sandbox or the machine never costs a grade.

Scenario: a teacher grades the squares course, then things go wrong. The sandbox breaks on a
regrade (bwrap is replaced by one that fails), the run is killed with SIGKILL or stopped with
SIGTERM/SIGINT halfway, another program holds the gradebook locked, the course sits on a tiny
tmpfs or a read-only mount, a student submits too much. Each time the course keeps what it had
(every grade row byte-identical), the exit code and the one-line message say what happened, and
nothing is left behind: no mounts, cgroups, temp dirs or processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coursekit as ck  # noqa: E402
from conftest import make_venv_like_this, require_sandbox, tree_digest  # noqa: E402
from steps.sandbox.leftovers import leftovers  # noqa: E402

SLOW = ck.CORRECT + "\nimport time\ntime.sleep(3)"  # long enough to stop a run in the middle


def gradeflow(
    course: Path, *args: str, python: str = sys.executable, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "pipelines.cli", "grade", str(course), "ps1", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gradebook_rows(course: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables autograde writes: byte-identical means nothing was touched."""
    con = sqlite3.connect(course / "gradebook.db")
    try:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
            for t in ("submitted_assignment", "submitted_notebook", "grade", "comment")
        }
    finally:
        con.close()


def class_total(course: Path) -> float:
    con = sqlite3.connect(course / "gradebook.db")
    try:
        return con.execute("SELECT COALESCE(SUM(COALESCE(manual_score, auto_score, 0)), 0) FROM grade").fetchone()[0]
    finally:
        con.close()


def course_state(course: Path) -> dict[str, Any]:
    return {"rows": gradebook_rows(course), "autograded": tree_digest(course, ["autograded"])}


NOTHING: dict[str, list[str]] = {"temp_dirs": [], "mounts": [], "cgroups": [], "containers": []}


def run_leftovers(pids: set[int]) -> dict[str, list[str]]:
    """Mounts, cgroups, temp dirs and podman containers named for any of `pids` (a run's
    processes), dead or alive."""
    found = leftovers(alive=True)
    return {k: [x for x in v if any(f"-p{p}-" in x or f"gradeflow-{p}-" in x for p in pids)] for k, v in found.items()}


def live_processes() -> dict[int, list[str]]:
    """Every live process's /proc/PID/stat fields after the command name (zombies waiting for init
    to reap them hold nothing)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                found[int(proc.name)] = fields
    return found


def group_members(pgid: int) -> set[int]:
    """Live processes of the process group."""
    return {pid for pid, fields in live_processes().items() if int(fields[2]) == pgid}


@pytest.fixture(scope="module")
def graded(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The squares course with six students, graded once, cleanly."""
    require_sandbox("bubblewrap")
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("graded") / "course")
    for i, source in enumerate([ck.CORRECT, ck.WRONG, ck.CORRECT, ck.RAISES, ck.CORRECT, ck.WRONG]):
        ck.submit(course, f"s{i}", {"squares": source})
    first = gradeflow(course, "--jobs", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "6 submission(s), 6 graded" in first.stdout
    return course


@pytest.fixture
def course(graded: Path, tmp_path: Path) -> Path:
    return ck.copy_course(graded, tmp_path / "course")


@pytest.fixture
def broken_bwrap() -> Any:
    made: list[Path] = []

    def make(allow: int) -> str:
        made.append(_broken_bwrap(allow))
        return str(made[-1] / "venv" / "bin" / "python3")

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def _broken_bwrap(allow: int) -> Path:
    """A venv Python whose bin/ holds a bwrap that lets `allow` sandboxes start, then fails the way
    a shadowed interpreter does. The kernel's PATH starts with the interpreter's bin/, so this
    bwrap is the one the sandbox runs; gradeflow's own availability probe still finds the real one."""
    real = subprocess.run(["sh", "-c", "command -v bwrap"], capture_output=True, text=True).stdout.strip()
    tmp_path = Path(tempfile.mkdtemp(prefix="gradeflow-test-bwrap-"))  # reachable by the sandbox uid
    tmp_path.chmod(0o755)
    venv = make_venv_like_this(tmp_path / "venv").parent.parent
    script = venv / "bin" / "bwrap"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            n=$(cat {tmp_path}/bwrap-count 2>/dev/null || echo 0)
            echo $((n + 1)) > {tmp_path}/bwrap-count
            [ "$n" -lt {allow} ] && exec {real} "$@"
            echo "bwrap: execvp /venv/bin/python3: No such file or directory" >&2
            exit 1
            """
        )
    )
    script.chmod(0o755)
    (tmp_path / "bwrap-count").write_text("0")
    (tmp_path / "bwrap-count").chmod(0o666)
    return tmp_path


def test_a_sandbox_broken_from_the_start_is_refused_before_grading(course: Path, broken_bwrap: Any) -> None:
    before, total = course_state(course), class_total(course)
    run = gradeflow(course, "--force", python=broken_bwrap(0))
    assert run.returncode == 75, run.stdout + run.stderr
    assert "could not run a test kernel" in run.stderr and "execvp /venv/bin/python3" in run.stderr, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
    assert course_state(course) == before and class_total(course) == total > 0


def test_an_impossible_memory_limit_is_refused_before_grading(course: Path) -> None:
    before = course_state(course)
    run = gradeflow(course, "--force", "--memory", "30")
    assert run.returncode == 75, run.stdout + run.stderr
    assert "could not run a test kernel" in run.stderr and "30 MiB memory" in run.stderr, run.stderr
    assert course_state(course) == before


def test_a_sandbox_that_breaks_after_the_canary_writes_nothing_and_stops_early(course: Path, broken_bwrap: Any) -> None:
    before, total = course_state(course), class_total(course)
    run = gradeflow(course, "--force", "--jobs", "1", python=broken_bwrap(1))
    assert run.returncode == 75, run.stdout + run.stderr
    assert "6 submission(s), 0 graded, 0 skipped, 0 failed, 6 not graded" in run.stdout, run.stdout
    assert "NOT GRADED: 6 notebook(s) of 6 submission(s)" in run.stdout
    assert "not run: the first 3 submissions all failed the same way" in run.stdout, run.stdout
    assert "execvp /venv/bin/python3" in run.stdout
    assert course_state(course) == before and class_total(course) == total > 0
    # the course still holds the grades of this very content: a plain rerun has nothing to do
    again = gradeflow(course)
    assert again.returncode == 0 and "(+6 unchanged, not regraded)" in again.stdout, again.stdout + again.stderr
    assert course_state(course) == before


def _start(course: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "grade", str(course), "ps1", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def slow_course(squares_built: Path, tmp_path: Path) -> Path:
    require_sandbox("bubblewrap")
    course = ck.copy_course(squares_built, tmp_path / "course")
    for i in range(4):
        ck.submit(course, f"s{i}", {"squares": SLOW})
    return course


def _merged(course: Path) -> dict[str, Any]:
    path = course / "gradeflow_runs" / "state" / "ps1.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_kill_9_mid_run_then_rerun_loses_nothing_and_grades_only_the_rest(slow_course: Path) -> None:
    proc = _start(slow_course, "--jobs", "1")
    pids: set[int] = set()

    def merged_one() -> bool:
        pids.update(group_members(proc.pid))
        return len(_merged(slow_course)) >= 1

    _wait_for(merged_one, 300, "the first submission was merged", proc)
    pids.update(group_members(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = set(_merged(slow_course))
    assert 1 <= len(done) < 4
    deadline = time.monotonic() + 10  # workers and the forkserver follow their parent
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_members(proc.pid), "workers or forkserver outlived the killed run"

    rerun = gradeflow(slow_course, "--jobs", "2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rest = 4 - len(done)
    assert (
        f"{rest} submission(s), {rest} graded" in rerun.stdout
        and f"(+{len(done)} unchanged, not regraded)" in rerun.stdout
    ), rerun.stdout
    assert set(_merged(slow_course)) == {f"s{i}" for i in range(4)}
    rows = gradebook_rows(slow_course)
    assert len(rows["submitted_assignment"]) == 4 and len(rows["grade"]) == 4 * 2  # once each, nothing twice
    con = sqlite3.connect(slow_course / "gradebook.db")
    scores = con.execute(
        "SELECT auto_score FROM grade JOIN base_cell ON grade.cell_id = base_cell.id"
        " WHERE base_cell.name = 'test_squares'"
    ).fetchall()
    con.close()
    assert scores == [(2.0,)] * 4
    assert run_leftovers(pids) == NOTHING  # the rerun removed the dead run's


def podman_containers(pids: set[int]) -> list[str]:
    """What `podman ps -a` lists of the containers started by any of `pids`."""
    from steps.sandbox.leftovers import OWNER_LABEL

    out = subprocess.run(
        ["podman", "ps", "--all", "--filter", f"label={OWNER_LABEL}", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(c["Names"][0] for c in json.loads(out or "[]") if int(c["Labels"][OWNER_LABEL]) in pids)


def executing_a_submission(pids: set[int]) -> bool:
    """Whether a sandbox of the run (`pids`) holds a submission's files in its /work (nbgrader's
    timestamp.txt; the notebook stays outside, with papermill). The run's first sandbox is the
    canary's (a one-cell test of the sandbox with nothing in /work, ended and removed by the run
    itself within a second), and the next ones start empty too, ahead of their submission."""
    return any((Path(d) / "work" / "timestamp.txt").exists() for d in run_leftovers(pids)["temp_dirs"])


def test_kill_9_mid_execute_in_podman_ends_its_containers_by_itself(slow_course: Path) -> None:
    require_sandbox("podman")
    proc = _start(slow_course, "--jobs", "1", "--sandbox", "podman")
    pids: set[int] = set()

    def container_running() -> bool:
        pids.update(group_members(proc.pid))
        return executing_a_submission(pids) and bool(podman_containers(pids))

    _wait_for(container_running, 300, "a podman sandbox was executing a submission", proc)
    time.sleep(1.0)
    pids.update(group_members(proc.pid))
    running = podman_containers(pids)
    # SIGKILL to the whole group (an OOM kill, a stop that escalated): the workers die without the
    # teardown a SIGTERM gives them. Their containers, and the podman clients attached to them (each
    # in a session of its own, out of the signal's reach), would outlive them: each zygote reads end
    # of file on its pipe from the dead worker and ends its container itself.
    os.killpg(proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    proc.wait()
    while (podman_containers(pids) or podman_clients(pids)) and time.monotonic() < t0 + 15:
        time.sleep(0.1)
    print(f"containers running at the kill: {running}; all gone in {time.monotonic() - t0:.1f} s")
    assert running, "no container was running at the kill: this test would show nothing"
    assert podman_containers(pids) == []  # `podman ps -a` shows none of the dead run's
    assert podman_clients(pids) == []

    rerun = gradeflow(slow_course, "--sandbox", "podman")  # grades the rest, removes the temp dirs
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert run_leftovers(pids) == NOTHING


def test_the_next_run_removes_the_containers_of_dead_runs_only(squares_course: Path) -> None:
    """What a zygote cannot end itself (a container whose zygote hung, or a kernel started in a
    container of its own) is removed by the next run, but only if the run that made it is dead."""
    require_sandbox("podman")
    from steps.sandbox.leftovers import OWNER_LABEL
    from steps.sandbox.podman import DEFAULT_IMAGE, PODMAN

    dead = subprocess.Popen(["true"])
    dead.wait()
    owners = {"dead": dead.pid, "alive": os.getpid()}
    for who, pid in owners.items():
        subprocess.run(
            [
                *PODMAN,
                "run",
                "--detach",
                "--rm",
                "--name",
                f"gradeflow-{pid}-9-{who}",
                "--label",
                f"{OWNER_LABEL}={pid}",
            ]
            + ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
            + [DEFAULT_IMAGE, "sleep", "600"],
            check=True,
            capture_output=True,
        )
    try:
        assert podman_containers({dead.pid}) == [f"gradeflow-{dead.pid}-9-dead"]
        ck.submit(squares_course, "s0", {"squares": ck.CORRECT})
        run = gradeflow(squares_course)
        assert run.returncode == 0, run.stdout + run.stderr
        assert podman_containers({dead.pid}) == []
        assert podman_containers({os.getpid()}) == [f"gradeflow-{os.getpid()}-9-alive"]  # a live run's: kept
    finally:
        subprocess.run(
            [*PODMAN, "rm", "--force", "--ignore", "--time", "0"] + [f"gradeflow-{p}-9-{w}" for w, p in owners.items()],
            capture_output=True,
        )


def podman_clients(pids: set[int]) -> list[int]:
    """Live `podman run` processes of containers started by any of `pids`."""
    from steps.sandbox.leftovers import OWNER_LABEL

    labels = {f"{OWNER_LABEL}={p}".encode() for p in pids}
    found = []
    for pid in live_processes():
        try:
            argv = set(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
        except OSError:
            continue
        if b"run" in argv and labels & argv:
            found.append(pid)
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_group_stops_within_seconds_and_leaves_nothing(slow_course: Path, signum: int) -> None:
    proc = _start(slow_course, "--jobs", "2")
    pids: set[int] = set()

    def sandbox_running() -> bool:
        pids.update(group_members(proc.pid))
        return executing_a_submission(pids)

    _wait_for(sandbox_running, 300, "a submission was executing", proc)
    time.sleep(1.0)
    pids.update(group_members(proc.pid))
    t0 = time.monotonic()
    os.killpg(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    stopped_s = time.monotonic() - t0
    print(f"stopped {signal.Signals(signum).name} in {stopped_s:.2f} s")
    assert proc.returncode == 128 + signum, out + err
    assert err.strip().count("\n") == 0 and err.startswith("gradeflow: stopped"), err
    assert stopped_s < 10, f"took {stopped_s:.1f} s to stop (goal: 5 s)"
    time.sleep(0.5)
    assert not group_members(proc.pid)
    assert run_leftovers(pids) == NOTHING


def grade_while_locked(course: Path, seconds: float, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Grade while another program holds gradebook.db's write lock for `seconds` (as Formgrader
    can); return the run and the holder's pid."""
    code = (
        "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(float(sys.argv[2]))\n"
        "c.execute('COMMIT')\ntime.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(course / "gradebook.db"), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        return gradeflow(course, "--force", *args), holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_gradebook_locked_past_the_wait_is_a_teacher_error_naming_the_holder(course: Path) -> None:
    before = course_state(course)
    run, holder = grade_while_locked(course, 120, "--gradebook-wait", "1")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"is locked by process {holder}" in run.stderr and "--gradebook-wait" in run.stderr, run.stderr
    assert "internal error" not in run.stderr
    assert course_state(course) == before


def test_a_gradebook_released_during_the_wait_is_graded(course: Path) -> None:
    run, _ = grade_while_locked(course, 8, "--gradebook-wait", "60")
    assert run.returncode == 0 and "6 submission(s), 6 graded" in run.stdout, run.stdout + run.stderr


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def mounted(tmp_path: Path) -> Any:
    if os.geteuid() != 0:
        pytest.skip("NEEDS ROOT: this test mounts a tmpfs / a read-only bind mount")
    points: list[Path] = []
    yield points
    for p in reversed(points):
        subprocess.run(["umount", "--lazy", str(p)], check=False)


def test_a_course_on_a_tiny_disk_is_refused_with_the_space_needed(
    graded: Path, tmp_path: Path, mounted: list[Path]
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=3m", "tiny", str(disk))
    mounted.append(disk)
    course = ck.copy_course(graded, disk / "course")
    before = course_state(course)
    run = gradeflow(course, "--force")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"not enough space on {course}" in run.stderr and "MiB free" in run.stderr and "needs about" in run.stderr, (
        run.stderr
    )
    assert course_state(course) == before


def test_a_read_only_course_is_refused_before_grading(course: Path, tmp_path: Path, mounted: list[Path]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    _mount("--bind", str(course), str(ro))
    mounted.append(ro)
    _mount("-o", "remount,bind,ro", str(ro))
    before = course_state(ro)
    run = gradeflow(ro, "--force")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"cannot write to {ro}" in run.stderr and "Read-only file system" in run.stderr, run.stderr
    assert "internal error" not in run.stderr
    assert course_state(ro) == before


def test_a_too_large_submission_is_skipped_with_its_size_and_every_student_appears(squares_course: Path) -> None:
    require_sandbox("bubblewrap")
    ck.submit(squares_course, "small", {"squares": ck.CORRECT})
    big = ck.submit(squares_course, "big", {"squares": ck.CORRECT})
    (big / "data.bin").write_bytes(b"\0" * (3 * 2**20))
    linked = ck.submit(squares_course, "linked", {"squares": ck.CORRECT})
    (linked / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(linked / "pipe")
    run = gradeflow(squares_course, "--max-submission-mb", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 submission(s), 2 graded, 1 skipped, 0 failed, 0 not graded" in run.stdout, run.stdout
    assert "SKIPPED  big / squares.ipynb: submission is 3.0 MiB, over the 2 MiB limit" in run.stdout, run.stdout
    assert "NOTE     linked: 2 symlink(s) or special file(s) not copied (never followed): passwd, pipe" in run.stdout, (
        run.stdout
    )
