"""Container tier: the example course graded through the grader image (podman sandbox).

Scenario: a platform admin built `images/grader` (`make image`, cached) and grades the example
course with `--sandbox podman`. Every student's autograded score must be what nbgrader gives
(the roster written by examples/make_course.py records nbgrader's scores, checked against a
real `nbgrader autograde` in tests/test_example_course.py), and every kernel container must
be gone afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.local import GradeOptions, grade
from steps.sandbox import Limits

pytestmark = [pytest.mark.container, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def podman_ready() -> None:
    if not shutil.which("podman"):
        pytest.skip("SKIPPED LOUDLY: podman is not installed; `make setup` installs it (apt-get install podman runc)")
    build = subprocess.run(["bash", str(ROOT / "images" / "grader" / "build.sh")], capture_output=True, text=True)
    assert build.returncode == 0, f"images/grader/build.sh failed:\n{build.stderr[-3000:]}"


def test_example_course_through_the_grader_image(podman_ready: None, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_course", ROOT / "examples" / "make_course.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    variants = [v for v in mc.VARIANTS if v != "timeout"] + ["deleted-test-cell"]
    course = mc.make_course(tmp_path / "course", variants=variants)
    roster = json.loads((course / "roster.json").read_text())["students"]

    results = grade(course, "ps1", GradeOptions(jobs=2, sandbox="podman", limits=Limits(wall_time=300)))

    assert results["sandbox"] == "podman" and results["counts"]["failed"] == 0
    by_student = {s["student"]: s for s in results["students"]}
    for student, info in roster.items():
        got = by_student[student]
        if info["variant"] == "deleted-test-cell":
            # recovered (issue 13): the deleted test cell is put back from the assignment and graded
            repairs = " ".join(r["reason"] for n in got["notebooks"] for r in n.get("repairs", []))
            assert got["status"] == "repaired" and "was deleted" in repairs, got
            continue
        expected = sum(info["expected_auto_score"].values())
        auto = sum(c["auto_score"] or 0 for n in got["notebooks"] for c in n.get("cells", []))
        assert auto == expected, (student, auto, expected)
    teardown = [
        json.loads(p.read_text())["detail"]["teardown"]
        for p in (course / "gradeflow_runs").glob("ps1-*/executed/*/execute.json")
    ]
    assert teardown and all(t["leftover_containers"] == 0 for t in teardown)
    left = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", "name=gradeflow-"], capture_output=True, text=True
    ).stdout.split()
    assert left == []
