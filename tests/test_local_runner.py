"""The local runner end to end: `gradeflow grade` on a small course, locally and with S3.

Scenario: a teacher grades ps1 from the command line, looks at the summary, re-runs after a
late submission (only the new one is graded), forces a regrade, and finally keeps the run's
artifacts in an S3 bucket (a real S3 API server, moto, on 127.0.0.1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from processes import gradeflow, moto_s3  # noqa: E402

import coursekit as ck  # noqa: E402


@pytest.fixture(scope="module")
def built(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("built") / "course")
    ck.submit(course, "good", {"squares": ck.CORRECT})
    ck.submit(course, "wrong", {"squares": ck.WRONG})
    d = ck.submit(course, "broken", {"squares": ck.CORRECT})
    (d / "squares.ipynb").write_text("{ not json")
    return course


@pytest.fixture
def course(built: Path, tmp_path: Path) -> Path:
    return ck.copy_course(built, tmp_path / "course")


def test_grade_prints_a_summary_and_reruns_only_what_changed(course: Path) -> None:
    first = gradeflow("grade", str(course), "ps1", "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "3 submission(s), 2 graded" in first.stdout
    assert "SKIPPED  broken / squares.ipynb: the notebook is not valid JSON" in first.stdout
    assert (course / "autograded" / "good" / "ps1" / "squares.ipynb").is_file()

    ck.submit(course, "late", {"squares": ck.CORRECT}, timestamp="2026-11-21 09:00:00.000000 UTC")
    second = gradeflow("grade", str(course), "ps1", "--json")
    assert second.returncode == 0, second.stderr
    results = json.loads(second.stdout)
    # the broken one is tried again (it was not graded); good and wrong are unchanged
    assert sorted(s["student"] for s in results["students"]) == ["broken", "late"]
    assert sorted(results["unchanged"]) == ["good", "wrong"]

    forced = json.loads(gradeflow("grade", str(course), "ps1", "--json", "--force").stdout)
    scores = {s["student"]: s["score"] for s in forced["students"]}
    assert scores == {"broken": 0.0, "good": 2.0, "late": 2.0, "wrong": 0.0}


def test_grade_refuses_to_run_without_a_sandbox(course: Path, tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    (empty_path / "python3").symlink_to(sys.executable)
    proc = gradeflow("grade", str(course), "ps1", env={"PATH": str(empty_path)})
    assert proc.returncode == 2
    assert "bubblewrap sandbox is not available" in proc.stderr and "apt-get install bubblewrap" in proc.stderr
    assert not (course / "autograded").exists()


def test_grade_with_the_store_on_s3(course: Path) -> None:
    boto3 = pytest.importorskip("boto3", reason="boto3 is part of the dev extra: pip install -e '.[dev]'")
    with moto_s3() as env:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="grading")
        proc = gradeflow("grade", str(course), "ps1", "--store", "s3://grading/fall", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout)
        run = results["run_id"]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="grading", Prefix=f"fall/{run}/")["Contents"]}
        for expected in (
            "manifest.json",
            "snapshot.json",
            "submissions/good/squares.ipynb",
            "restored/good/restore.json",
            "executed/good/squares.ipynb",
            "executed/good/execute.log",
            "scored/good/score.json",
            "results/results.json",
            "results/grades.csv",
        ):
            assert f"fall/{run}/{expected}" in keys, expected
        assert (course / "gradeflow_runs" / run / "results" / "summary.txt").is_file()  # a local copy for the teacher
        assert {s["student"]: s["score"] for s in results["students"]}["good"] == 2.0
