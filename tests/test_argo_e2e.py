"""End to end through a real S3 API: the steps as Argo would run them (feedback too), then
`gradeflow sync` into the gradebook.

Scenario: the store is an S3 bucket on a real S3 API server (moto, on 127.0.0.1), reached
only through s3fs/fsspec, as a MinIO artifact repository would be. The rendered template
runs pod by pod (tests/argo_emulator.py): each pod downloads its declared artifacts by key
and uploads its outputs, so after the run the bucket holds `gradeflow/<run-id>/` laid out
like a local workspace. A teacher then runs `gradeflow sync`, which downloads that prefix
and merges it into the course with the same steps.merge the local runner uses: grades in
gradebook.db, graded notebooks in autograded/, results next to the course.

A second run regrades the same submissions: bob's unchanged result comes from the execute
cache (memoized in the first run) and is copied into the new run; alice's cache entry is
gone and her execute pod breaks (its restore.json vanishes: an infrastructure failure, exit
75), so it is retried three times, and the run fails, yet score and merge still run from the
exit handler and the summary names her; merge, having written the rest, exits 75 too. That is
the run `gradeflow retry` would fix.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from processes import moto_s3

import coursekit as ck
from argo_emulator import Emulator
from pipelines.argo.workflow import build_template, build_workflow
from pipelines.client import ArgoSettings, Backend, sync
from steps.contract import EXIT_INFRA
from steps.errors import TeacherError

BUCKET = "grading"
# memoization reuses results across runs only for an image pinned by digest (a tag can move)
PINNED = {"image": "registry.example.edu/gradeflow-grader@sha256:" + "5" * 64}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("moto.server", reason="moto[server] is needed for a real S3 API on 127.0.0.1")
    import boto3
    import s3fs

    with moto_s3() as env, pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(Bucket=BUCKET)
        s3fs.S3FileSystem.clear_instance_cache()
        yield s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def course(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ck.alice_and_bob(ck.copy_course(squares_built, tmp_path_factory.mktemp("argo-e2e") / "course"))


@pytest.fixture(scope="module")
def first(s3, course: Path) -> dict:
    template = build_template().to_dict()
    cache: dict = {}
    run = Emulator(
        template,
        {"assignment": "ps1", "run-id": "e2e-1", "feedback": "true", **PINNED},
        f"s3://{BUCKET}",
        course,
        cache=cache,
    ).run()
    return {"run": run, "cache": cache, "template": template}


def keys(s3, prefix: str) -> set[str]:
    return {k[len(f"{BUCKET}/{prefix}/") :] for k in s3.find(f"{BUCKET}/{prefix}")}


def test_the_bucket_holds_the_run_as_a_workspace(s3, first: dict) -> None:
    assert first["run"].phase == "Succeeded", [p.log[-1500:] for p in first["run"].pods if p.exit_code]
    k = keys(s3, "gradeflow/e2e-1")
    for expected in (
        "manifest.json",
        "snapshot.json",
        "submissions/alice/squares.ipynb",
        "restored/bob/restore.json",
        "restored/bob/work/squares.ipynb",
        "executed/alice/execute.json",
        "executed/bob/squares.ipynb",
        "scored/alice/score.json",
        "feedback/alice/squares.html",
        "feedback/bob/feedback.json",
        "results/results.json",
        "results/summary.txt",
    ):
        assert expected in k, f"{expected} missing from s3://{BUCKET}/gradeflow/e2e-1/"


def test_sync_merges_the_run_into_the_gradebook(s3, first: dict, course: Path) -> None:
    from nbgrader.api import Gradebook

    results = sync(f"s3://{BUCKET}/gradeflow/e2e-1", course)
    assert results["counts"]["submissions"] == 2
    by_student = {s["student"]: s for s in results["students"]}
    assert by_student["alice"]["score"] == 2.0 and by_student["bob"]["score"] == 0.0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission("ps1", "alice").score == 2.0
        assert gb.find_submission("ps1", "bob").score == 0.0
    assert (course / "autograded" / "alice" / "ps1" / "squares.ipynb").is_file()
    page = (course / "feedback" / "bob" / "ps1" / "squares.html").read_text()
    text = "".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())
    assert "notdoneyet" in text and "assertsquares(3)==[1,4,9]" in text, (
        "bob's feedback shows his error and the visible test"
    )
    assert "assertsquares(1)==[1]" not in text, "and not the hidden test"
    assert (course / "feedback" / "alice" / "ps1" / "timestamp.txt").is_file()
    assert (
        json.loads((course / "gradeflow_runs" / "e2e-1" / "results" / "results.json").read_text())["run_id"] == "e2e-1"
    )


class OneRun(Backend):
    """A backend that knows one submitted run, as the Argo Server would return it."""

    name = "test"

    def __init__(self, workflow: dict) -> None:
        super().__init__(ArgoSettings())
        self.workflow = workflow

    def get_workflow(self, name: str) -> dict:
        return self.workflow


def test_sync_by_run_name_finds_the_prefix_and_is_idempotent(s3, first: dict, course: Path) -> None:
    from nbgrader.api import Gradebook

    wf = build_workflow("ps1", "e2e-1", course="test-course").to_dict()
    results = sync("e2e-1", course, backend=OneRun(wf), store=f"s3://{BUCKET}")
    assert results["run_dir"] == f"s3://{BUCKET}/gradeflow/e2e-1"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert len(gb.find_assignment("ps1").submissions) == 2  # merged twice, recorded once


class GoneRun(Backend):
    """Argo after its retention policy deleted the run: 404 for the name, nothing by label, no archive."""

    name = "test"

    def __init__(self) -> None:
        super().__init__(ArgoSettings())

    def get_workflow(self, name: str) -> dict:
        raise self.explain(404, "not found", "read the run", f"run {name!r}")

    def list_workflows(self, label_selector: str) -> list[dict]:
        return []


def test_a_run_argo_deleted_syncs_from_the_store_alone(
    s3, first: dict, course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    results = sync("e2e-1", course, backend=GoneRun(), store=f"s3://{BUCKET}")
    assert results["run_dir"] == f"s3://{BUCKET}/gradeflow/e2e-1" and results["counts"]["submissions"] == 2
    # the CLI with no Argo at all (no ARGO_SERVER, no kubeconfig): the store is enough
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(course / "no-such-kubeconfig"))
    assert main(["sync", "e2e-1", str(course), "--store", f"s3://{BUCKET}"]) == 0
    assert "gradebook:" in capsys.readouterr().out
    with pytest.raises(TeacherError, match="e2e-1-x7k2p/ does not exist") as e:  # a name the store never had
        sync("e2e-1-x7k2p", course, backend=GoneRun(), store=f"s3://{BUCKET}")
    assert "check the run id" in e.value.todo


def test_a_regrade_reuses_the_cache_and_still_reports_a_broken_pod(s3, first: dict, course: Path) -> None:
    run1 = first["run"]
    (alice1,) = [p for p in run1.by_template("execute") if p.parameters["student"] == "alice"]
    cache = {k: v for k, v in first["cache"].items() if k != alice1.memo_key}

    def break_alice(template: str, params: dict, root: Path) -> None:
        if template == "execute" and params.get("student") == "alice":
            (root / "gradeflow" / "restored" / "alice" / "restore.json").unlink()

    run = Emulator(
        first["template"],
        {"assignment": "ps1", "run-id": "e2e-2", **PINNED},
        f"s3://{BUCKET}",
        course,
        cache=cache,
        before_pod=break_alice,
    ).run()
    by = {p.parameters.get("student"): p for p in run.by_template("execute")}
    # bob: served by the cache, then copied from run e2e-1 into e2e-2
    assert by["bob"].memoized and by["bob"].outputs["executed-submission"] == "gradeflow/e2e-1/executed/bob"
    (copy,) = run.by_template("copy-memoized")
    assert copy.parameters["student"] == "bob" and copy.outputs["executed-submission"] == "gradeflow/e2e-2/executed/bob"
    # alice: our own crash (exit 75) is retried three times, then the run fails
    assert by["alice"].exit_code == EXIT_INFRA and by["alice"].attempts == 4
    assert run.phase == "Failed"
    # ... and score and merge ran anyway, from the exit handler, naming what failed
    assert [p.template for p in run.pods[-2:]] == ["score", "merge"]
    (score,), (merge,) = run.by_template("score"), run.by_template("merge")
    summary = merge.output_parameters["summary"]
    # our own crash is never a grade (issue 11): alice is UNGRADED, nothing written for her
    assert "UNGRADED alice / squares.ipynb:" in summary and "NOT GRADED: 1 notebook(s)" in summary, summary
    # merge wrote what it could, then exited 75 (the run is Failed even if execute had not said
    # so, for `gradeflow retry`); its pod is not retried: the same inputs would end the same way
    assert score.exit_code == 0 and merge.exit_code == EXIT_INFRA and merge.attempts == 1, merge.log[-1500:]
    assert "1 submission(s) not graded" in merge.log and "gradeflow retry" in merge.log
    results = json.loads(s3.cat(f"{BUCKET}/gradeflow/e2e-2/results/results.json"))
    assert results["counts"]["ungraded_submissions"] == 1 and results["counts"]["graded"] == 1
    assert "executed/bob/execute.json" in keys(s3, "gradeflow/e2e-2")


def test_syncing_a_run_with_an_ungraded_submission_exits_75_and_keeps_her_grades(
    s3, first: dict, course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbgrader.api import Gradebook

    from pipelines.cli import main

    if not keys(s3, "gradeflow/e2e-2"):
        pytest.skip("needs the broken regrade e2e-2 (test_a_regrade_reuses_the_cache_and_still_reports_a_broken_pod)")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        before = [(g.name, g.auto_score) for g in gb.find_submission_notebook("squares", "ps1", "alice").grades]
    for var in ("ARGO_SERVER", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(course / "no-such-kubeconfig"))
    assert main(["sync", "e2e-2", str(course), "--store", f"s3://{BUCKET}"]) == EXIT_INFRA
    out, err = capsys.readouterr()
    assert "UNGRADED alice / squares.ipynb" in out and "gradeflow retry e2e-2" in err
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert [(g.name, g.auto_score) for g in gb.find_submission_notebook("squares", "ps1", "alice").grades] == before
        assert gb.find_submission("ps1", "alice").score == 2.0  # e2e-1's grade, untouched
