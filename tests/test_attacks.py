"""The attack corpus (tests/corpus/attacks/), graded in one run per sandbox beside honest students.

Scenario: a class of ps1 where most students are hostile. Each attack student's solution cell
is one file of the corpus: it tries to read the teacher's HOME, the gradebook, other students'
work, the runner's secrets and a Kubernetes token; to reach a server on the host's loopback or
the internet; to exhaust processes, memory, disk or output; to leave a daemon behind, kill its
parent, rewrite the notebook being graded or write into the course dir. Two honest students
(one right, one wrong) are graded in the same run, with `jobs=2`.

Checked per attack: the executed notebook prints no `LEAK:` line, the notebook is reported as
the attack's header says (graded with the expected score, or failed), and host-side evidence
where the attack aims at the host. Checked per run: it completed, the honest students got
exactly their scores, no process outlived it, the course dir changed only by gradeflow's own
outputs, the gradebook only through merge, the loopback server saw no connection, and no
secret reached any output. The corpus is never graded without a sandbox.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import nbformat
import pytest

import coursekit as ck
from conftest import (
    FAST_LIMITS,
    HostListener,
    error_names,
    notebook_text,
    planted_file,
    require_sandbox,
    runner_environment,
    sandbox_leftovers,
    tree_digest,
)
from pipelines.local import RUNS_DIR, GradeOptions, grade
from steps.records import FAILED, OK, REPAIRED
from steps.sandbox import Limits
from steps.sandbox.argo_pod import pod_limits

CORPUS = Path(__file__).parent / "corpus" / "attacks"
# never "none"; "pod" relies on an outer container, so it is graded as "argo-pod": inside podman laid
# out as the Argo execute pod (uid 1000, /gradeflow with the hidden tests, /var/run/argo), kernels in Landlock
BACKENDS = ["bubblewrap", "podman", "argo-pod"]
LIMITS = Limits(**FAST_LIMITS)
HONEST = {
    "honest_correct": (ck.CORRECT, 2.0),
    "honest_wrong": ("def squares(n):\n    return [i for i in range(n)]", 0.0),
}
SECRETS = {"AWS_SECRET_ACCESS_KEY": "leak-me-aws-7f3e", "GRADEFLOW_TEST_SECRET": "leak-me-gradeflow-91c2"}
K8S_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
BUDGET = 6  # seconds each attack may spend, under the 10 s cell timeout
# In a pod the kernel shares the pod's CPU, memory and pids with the grader (no cgroup of its
# own): a fork or memory bomb stays inside the pod's limits, but may starve its own kernel past
# the cell timeout, so its own notebook may end `failed` (not graded) or its cell interrupted
# before it prints BLOCKED. No LEAK, and every other student's grade, still count.
POD_SHARED_LIMITS = {"fork_bomb", "memory_bomb_children"}
COURSE_PARTS = ("source", "submitted", "release", "nbgrader_config.py")


@dataclass(frozen=True)
class Attack:
    """One corpus file: its header (name, threat, contained, outcome, score) and its code."""

    student: str
    header: dict[str, str]
    code: str

    @property
    def outcome(self) -> str:
        return self.header.get("outcome", "graded").split()[0]

    @property
    def score(self) -> float:
        return float(self.header.get("score", 2))

    def source(self, host: dict[str, Any]) -> str:
        preamble = (CORPUS / "_preamble.py").read_text().replace("__HOST__", repr(host))
        return preamble + "\n" + self.code


def _load(path: Path) -> Attack:
    text = path.read_text()
    lines = text.splitlines()
    leading = lines[: next(i for i, line in enumerate(lines) if not line.startswith("# "))]
    header = dict(m.groups() for m in map(re.compile(r"# (\w+): (.*)").fullmatch, leading) if m)
    assert {"name", "threat", "contained", "outcome"} <= set(header), f"{path.name}: header incomplete"
    assert header["outcome"].split()[0] in ("graded", "failed", "any"), f"{path.name}: outcome {header['outcome']!r}"
    return Attack(path.stem, header, text)


ATTACKS = [_load(p) for p in sorted(CORPUS.glob("[!_]*.py"))]


def _host_ips() -> list[str]:
    """The host's own non-loopback IPv4 addresses (where a sandbox with a network could reach it)."""
    out = (
        subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        if Path("/usr/sbin/ip").exists() or Path("/usr/bin/ip").exists()
        else ""
    )
    ips = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)", out)
    return [ip for ip in ips if not ipaddress.ip_address(ip).is_loopback][:3]


def _tag_cell(path: Path, grade_id: str, tags: list[str]) -> None:
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.metadata["tags"] = tags
    nbformat.write(nb, str(path))


def _gradebook_state(course: Path) -> dict[str, Any]:
    """What a student must not be able to change in gradebook.db: the assignment's cells and points,
    the students and the submissions, plus the tables (an attack would add its own)."""
    import sqlite3

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        state: dict[str, Any] = {"students": sorted(s.id for s in gb.students), "assignments": {}}
        for a in gb.assignments:
            state["assignments"][a.name] = {
                nb.name: {
                    "source_cells": {c.name: (c.checksum, c.source, c.locked) for c in nb.source_cells},
                    "grade_cells": {c.name: c.max_score for c in nb.grade_cells},
                }
                for nb in a.notebooks
            }
            state["submissions"] = sorted(s.student.id for s in a.submissions)
    con = sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True)
    state["tables"] = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    con.close()
    return state


@dataclass
class AttackRun:
    """Everything one graded run of the corpus left as evidence, collected right after it ended."""

    sandbox: str
    course: Path
    marker: str
    results: dict[str, Any]
    seconds: float
    listener_hits: list[str]
    leftovers: list[str]
    digest_before: dict[str, str]
    digest_after: dict[str, str]
    top_before: set[str]
    top_after: set[str]
    gradebook_before: dict[str, Any]
    gradebook_after: dict[str, Any]
    by_student: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_student = {s["student"]: s for s in self.results["students"]}

    @property
    def run_dir(self) -> Path:
        return self.course / RUNS_DIR / self.results["run_id"]

    def executed(self, student: str) -> Path:
        return self.run_dir / "executed" / student / "squares.ipynb"

    def printed(self, student: str) -> str:
        return notebook_text(self.executed(student)).get("squares", "")

    def cell(self, student: str, cell: str) -> dict[str, Any]:
        nb = self.by_student[student]["notebooks"][0]
        return next(c for c in nb.get("cells", []) if c["cell"] == cell)


@pytest.fixture(scope="module", params=BACKENDS)
def attack_run(
    request: pytest.FixtureRequest, squares_built: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AttackRun]:
    sandbox = request.param
    require_sandbox(sandbox)
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp(f"attacks-{sandbox}") / "course")
    marker = f"gfx{secrets.token_hex(4)}"
    listener = HostListener(marker)
    canary = f".gradeflow-canary-{marker}"
    host = {
        "budget": BUDGET,
        "marker": marker,
        "course": str(course),
        "gradebook": str(course / "gradebook.db"),
        "runs": str(course / RUNS_DIR),
        "other": "honest_correct",
        "home": str(Path.home()),
        "canary": canary,
        "k8s_token": str(K8S_TOKEN),
        "port": listener.port,
        "abstract": listener.abstract,
        "host_ips": _host_ips(),
        "secret_names": sorted(SECRETS),
        # what bounds the whole sandbox: in a pod, its own limits bound the kernel and the grader together
        "memory_mb": pod_limits(LIMITS)[0] if sandbox == "argo-pod" else LIMITS.memory_mb,
        "pids": pod_limits(LIMITS)[1] if sandbox == "argo-pod" else LIMITS.pids,
        "disk_mb": LIMITS.disk_mb,
    }
    for student, (code, _) in HONEST.items():
        ck.submit(course, student, {"squares": code})
    for attack in ATTACKS:
        submitted = ck.submit(course, attack.student, {"squares": attack.source(host)}) / "squares.ipynb"
        if attack.header.get("test_cell_tags"):
            _tag_cell(submitted, "test_squares", attack.header["test_cell_tags"].split())
    digest_before, top_before = tree_digest(course, COURSE_PARTS), {p.name for p in course.iterdir()}
    gradebook_before = _gradebook_state(course)
    try:
        with (
            planted_file(Path.home() / canary, f"teacher's secret {marker}\n"),
            planted_file(K8S_TOKEN, f"fake-token-{marker}\n"),
            runner_environment(SECRETS),
        ):
            start = time.monotonic()
            results = grade(course, "ps1", GradeOptions(jobs=2, sandbox=sandbox, limits=LIMITS))
            seconds = time.monotonic() - start
            leftovers = sandbox_leftovers([marker])
    finally:
        listener.close()
    yield AttackRun(
        sandbox,
        course,
        marker,
        results,
        seconds,
        list(listener.hits),
        leftovers,
        digest_before,
        tree_digest(course, COURSE_PARTS),
        top_before,
        {p.name for p in course.iterdir()},
        gradebook_before,
        _gradebook_state(course),
    )
    for line in sandbox_leftovers([marker]):  # never leave a hostile process on the machine
        subprocess.run(["kill", "-9", line.split(":")[0]], check=False)


# --- the run as a whole ---------------------------------------------------------------------


def test_run_completes_with_every_student(attack_run: AttackRun) -> None:
    students = set(attack_run.by_student)
    assert students == {a.student for a in ATTACKS} | set(HONEST)
    assert (attack_run.run_dir / "results" / "results.json").is_file()
    assert attack_run.results["sandbox"] == attack_run.sandbox


def test_honest_students_get_exactly_their_scores(attack_run: AttackRun) -> None:
    for student, (_, expected) in HONEST.items():
        s = attack_run.by_student[student]
        assert s["status"] in (OK, REPAIRED), f"{student}: {s['status']}: {s['notebooks'][0]['reason']}"
        assert attack_run.cell(student, "test_squares")["auto_score"] == expected
        assert s["score"] == expected and s["max_score"] == 3.0 and not s["needs_manual_grade"]


def test_no_process_outlives_the_run(attack_run: AttackRun) -> None:
    assert attack_run.leftovers == []


def test_course_dir_changes_only_by_gradeflow(attack_run: AttackRun) -> None:
    assert attack_run.digest_after == attack_run.digest_before
    assert attack_run.top_after - attack_run.top_before <= {RUNS_DIR, "autograded"}
    planted = [str(p) for p in attack_run.course.rglob(f"*{attack_run.marker}*")]
    assert planted == []


def test_gradebook_changes_only_through_merge(attack_run: AttackRun) -> None:
    before, after = attack_run.gradebook_before, attack_run.gradebook_after
    assert after["assignments"] == before["assignments"]
    assert after["tables"] == before["tables"]
    assert set(after["students"]) == set(before["students"]) | set(attack_run.by_student)
    assert set(after["submissions"]) == set(attack_run.by_student)
    assert attack_run.marker.encode() not in (attack_run.course / "gradebook.db").read_bytes()


def test_host_loopback_server_sees_no_connection(attack_run: AttackRun) -> None:
    assert attack_run.listener_hits == []


def test_no_secret_reaches_any_output(attack_run: AttackRun) -> None:
    values = [v.encode() for v in SECRETS.values()]
    for path in (attack_run.run_dir / "executed").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [v for v in values if v in data], f"{path} holds a secret"


# --- each attack --------------------------------------------------------------------------


def _check_gradebook(run: AttackRun) -> None:
    assert "gradeflow_attack" not in run.gradebook_after["tables"]


def _check_output_flood(run: AttackRun) -> None:
    nb, log = run.executed("output_flood"), run.run_dir / "executed" / "output_flood" / "execute.log"
    assert nb.stat().st_size <= LIMITS.output_kb * 1024 + 256 * 1024, f"{nb.stat().st_size} bytes kept"
    assert "output limit" in run.printed("output_flood")
    assert log.stat().st_size <= LIMITS.disk_mb * 2**20 + 64 * 1024, (
        f"execute.log holds {log.stat().st_size} bytes"
    )  # + gradeflow's own lines


def _check_planted_paths(run: AttackRun) -> None:
    for d in ("/", "/tmp", "/etc", "/root", "/var", "/opt", "/usr"):
        assert not Path(d, f"planted-{run.marker}.txt").exists(), (
            f"an attack wrote {d}/planted-{run.marker}.txt on the host"
        )


def _check_memory_peak(run: AttackRun, student: str) -> None:
    execute = json.loads((run.run_dir / "executed" / student / "execute.json").read_text())
    peak = execute["detail"].get("teardown", {}).get("memory_peak_mb")
    if peak is not None:  # bubblewrap's cgroup reports it
        assert peak <= LIMITS.memory_mb * 1.05, f"memory peak {peak} MiB"


HOST_CHECKS: dict[str, Callable[[AttackRun], None]] = {
    "read_gradebook": _check_gradebook,
    "output_flood": _check_output_flood,
    "write_course_dir": _check_planted_paths,
    "net_loopback": lambda run: test_host_loopback_server_sees_no_connection(run),
    "memory_bomb": lambda run: _check_memory_peak(run, "memory_bomb"),
    "memory_bomb_children": lambda run: _check_memory_peak(run, "memory_bomb_children"),
    "fork_bomb": lambda run: test_no_process_outlives_the_run(run),
    "daemon_left_behind": lambda run: test_no_process_outlives_the_run(run),
}


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.header["name"])
def test_attack_is_contained(attack_run: AttackRun, attack: Attack) -> None:
    s = attack_run.by_student[attack.student]
    printed = attack_run.printed(attack.student)
    leaks = [line for line in printed.splitlines() if line.startswith("LEAK:")]
    assert leaks == [], f"{attack.header['name']} ({attack_run.sandbox}): {attack.header['threat']}"
    notebook = s["notebooks"][0]
    graded = notebook["status"] in (OK, REPAIRED)
    outcome = "any" if attack_run.sandbox == "argo-pod" and attack.student in POD_SHARED_LIMITS else attack.outcome
    expected = {"graded": (OK, REPAIRED), "failed": (FAILED,), "any": (OK, REPAIRED, FAILED)}[outcome]
    assert notebook["status"] in expected, f"{notebook['status']}: {notebook['reason']}"
    if graded:  # the attack ran to its end and the kernel still graded the test cell
        allowed = set(attack.header.get("allowed_errors", "").split("(")[0].split())
        if attack_run.sandbox == "argo-pod" and attack.student in POD_SHARED_LIMITS:
            allowed |= {
                "KeyboardInterrupt",
                "CellTimeoutError",
            }  # its own cell may be interrupted before it reports (docs/security.md)
        assert "BLOCKED:" in printed or "CellTimeoutError" in allowed - set(
            attack.header.get("allowed_errors", "").split()
        ), printed[-2000:]
        assert set(error_names(attack_run.executed(attack.student))["squares"]) <= allowed, printed[-2000:]
        assert attack_run.cell(attack.student, "test_squares")["auto_score"] == attack.score
    HOST_CHECKS.get(attack.student, lambda run: None)(attack_run)
