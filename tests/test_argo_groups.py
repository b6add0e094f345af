"""A class graded as several shard runs is one thing for the teacher: status, watch, sync and retry by its run id.

Scenario: 7 students and a shard size of 3 (SHARD_SIZE is 350; patched here so a small class
shards). `gradeflow submit intro ps1 --argo --class-size 7 --run-id big` creates three
Workflows on a fake Argo Server (big-1of3 .. big-3of3, labelled gradeflow.io/run-group=big).
Each is run pod by pod by the Argo emulator (tests/argo_emulator.py) against a real S3 API
(moto); sam's execute pod breaks (his restore.json vanishes: our own failure, exit 75), so
big-3of3 fails and its merge marks him UNGRADED. The fake server then reports each Workflow
with node statuses built from the emulated pods. Given only `big`, the teacher gets:
- `status`: one line per shard, its failed submission, and a total; `logs`: the failed pods';
- `watch`: follows all three until they finish, exits 1 and says to `gradeflow retry big`;
- `sync`: merges every shard into the gradebook (6 students) and exits 75 for sam;
- `retry`: asks Argo to retry big-3of3 only; once it has run again, `sync` exits 0 with all 7;
- with Argo gone (retention), `sync big` finds the three shards in the store alone.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from test_argo_client import INSTALLED, NS, FakeArgo, version_route
from test_argo_e2e import BUCKET, s3  # noqa: F401 - the moto S3 server fixture

import coursekit as ck
from argo_emulator import EmulatedRun, Emulator
from pipelines import client
from pipelines.argo.workflow import build_shards, build_template
from steps.collect import shard_of
from steps.contract import EXIT_INFRA
from steps.errors import TeacherError

# the hash of the id puts each student in a shard: 3 + 2 + 2
SHARDS = {"quin": 0, "rae": 0, "tia": 0, "mia": 1, "ola": 1, "ned": 2, "sam": 2}
RAISES = {"rae", "ola"}  # their solution raises: graded 0 (a grade, not a failure)
BROKEN = "sam"  # his execute pod breaks in the first run of big-3of3


def reported(wf: dict, run: EmulatedRun) -> dict:
    """`wf` as the Argo Server reports it after the emulated run: phase, one node per pod, globals."""
    name = wf["metadata"]["name"]
    nodes = {}
    for i, pod in enumerate(run.pods):
        n = {
            "id": f"{name}-{i}",
            "name": f"{name}.{pod.node}",
            "displayName": pod.node.rsplit(".", 1)[-1],
            "type": "Pod",
            "templateName": pod.template,
            "phase": pod.phase,
            "inputs": {"parameters": [{"name": k, "value": v} for k, v in pod.parameters.items()]},
            "outputs": {"parameters": [{"name": k, "value": v} for k, v in pod.output_parameters.items()]},
        }
        if pod.exit_code:
            n["message"] = f"Error (exit code {pod.exit_code})"
        nodes[n["id"]] = n
    outputs = [{"name": k, "value": v} for k, v in run.global_outputs.items()]
    return {**wf, "status": {"phase": run.phase, "nodes": nodes, "outputs": {"parameters": outputs}}}


def emulate(wf: dict, course: Path, break_student: str | None = None) -> EmulatedRun:
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}

    def break_pod(template: str, p: dict, root: Path) -> None:
        if template == "execute" and p.get("student") == break_student:
            (root / "gradeflow" / "restored" / break_student / "restore.json").unlink()

    return Emulator(build_template().to_dict(), params, f"s3://{BUCKET}", course, before_pod=break_pod).run()


class Cluster:
    """The fake Argo Server's routes for the shard Workflows it holds (`live`: name -> Workflow)."""

    def __init__(self, argo: FakeArgo) -> None:
        self.argo, self.live = argo, {}
        version_route(argo, "v4.1.2")
        argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
        argo.routes[("POST", f"/api/v1/workflows/{NS}")] = (200, self.create)
        argo.routes[("GET", f"/api/v1/workflows/{NS}")] = (200, self.list)

    def create(self, req: dict) -> dict:
        wf = req["body"]["workflow"]
        wf["metadata"]["creationTimestamp"] = "2026-12-01T10:00:00Z"
        self.put(wf)
        return wf

    def put(self, wf: dict) -> None:
        name = wf["metadata"]["name"]
        self.live[name] = wf
        self.argo.routes[("GET", f"/api/v1/workflows/{NS}/{name}")] = (200, lambda req: self.live[name])
        self.argo.routes[("PUT", f"/api/v1/workflows/{NS}/{name}/retry")] = (200, lambda req: self.live[name])
        log = json.dumps({"result": {"content": f"the log of a pod of {name}"}}).encode() + b"\n"
        self.argo.routes[("GET", f"/api/v1/workflows/{NS}/{name}/log")] = (200, log)

    def list(self, req: dict) -> dict:
        key, _, value = req["query"]["listOptions.labelSelector"][0].partition("=")
        labels = [(w, w["metadata"]["labels"]) for w in self.live.values()]
        return {"metadata": {}, "items": [w for w, lb in labels if key in lb and (not value or lb[key] == value)]}


@pytest.fixture(scope="module")
def course(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = ck.copy_course(squares_built, tmp_path_factory.mktemp("argo-groups") / "course")
    for student in SHARDS:
        ck.submit(c, student, {"squares": ck.RAISES if student in RAISES else ck.CORRECT})
    return c


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    from pipelines.cli import main

    argo = FakeArgo()
    for k, v in {"ARGO_SERVER": argo.address, "ARGO_SECURE": "false", "ARGO_TOKEN": "t", "ARGO_NAMESPACE": NS}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("pipelines.argo.runs.build_shards", functools.partial(build_shards, shard_size=3))
    yield main, Cluster(argo)
    argo.close()


def scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook, MissingEntry

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in SHARDS:
            try:
                out[student] = gb.find_submission("ps1", student).score
            except MissingEntry:
                pass
    return out


def test_a_sharded_class_is_one_run_for_status_watch_sync_and_retry(
    s3,  # noqa: F811
    course: Path,
    cli,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main, cluster = cli
    assert {s: shard_of(s, 3) for s in SHARDS} == SHARDS
    assert main(["submit", "intro", "ps1", "--argo", "--class-size", "7", "--run-id", "big"]) == 0
    out = capsys.readouterr().out
    assert "a class of up to 7 is graded as 3 runs" in out and "gradeflow watch big " in out
    names = ["big-1of3", "big-2of3", "big-3of3"]
    assert list(cluster.live) == names
    assert all(w["metadata"]["labels"]["gradeflow.io/run-group"] == "big" for w in cluster.live.values())

    # watch: every shard is followed until all have finished
    runs = {name: emulate(cluster.live[name], course, BROKEN) for name in names}
    assert [runs[n].phase for n in names] == ["Succeeded", "Succeeded", "Failed"]
    done = {name: reported(cluster.live[name], runs[name]) for name in names}
    for name in names:
        cluster.put({**cluster.live[name], "status": {"phase": "Running"}})
    seen: list[str] = []
    b = client.connect(client.ArgoSettings(server=cluster.argo.address, secure=False, namespace=NS))
    final = client.wait_group(
        b,
        "big",
        poll=0,
        progress=lambda st: seen.append(st.phase),
        sleep=lambda _: [cluster.put(w) for w in done.values()],
    )
    assert seen == ["Running", "Failed"] and [s.phase for s in final.shards] == ["Succeeded", "Succeeded", "Failed"]
    assert main(["watch", "big", "--poll", "0"]) == 1
    err = capsys.readouterr().err
    assert "1 of its 3 runs failed (big-3of3)" in err and "gradeflow retry big" in err and "logs big" in err

    # status: a line per shard, sam's failure with the shard's own logs command, and a total
    assert main(["status", "big"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run group big (3 runs, one per shard of the class): Failed"
    by_shard = {line.split()[0]: line for line in lines[1:] if line.split()[0] in names}
    assert by_shard["big-1of3"].split()[1:] == ["Succeeded", "execute", "3/3"]
    assert by_shard["big-3of3"].split()[1:] == ["Failed", "execute", "1/2,", "1", "failed"]
    failed = [line for line in lines if "FAILED" in line]  # sam's execute, and the merge that exited 75
    assert failed and all("gradeflow logs big-3of3" in line for line in failed), failed
    assert any("execute sam" in line and "gradeflow logs big-3of3 --student sam" in line for line in failed)
    assert lines[-1] == "  total: execute: 6/7 done, 1 failed; runs: 2 succeeded, 1 failed"
    # logs: the failed pods of the failed shard; a student's, from the shard that grades them
    assert main(["logs", "big"]) == 0
    out = capsys.readouterr().out
    assert "==> big-3of3: " in out and "the log of a pod of big-3of3" in out and "big-1of3" not in out
    assert main(["logs", "big", "--student", "mia"]) == 0
    out = capsys.readouterr().out
    assert "the log of a pod of big-2of3" in out and "big-3of3" not in out and "big-1of3" not in out
    assert main(["status", "big", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in doc["shards"]] == names and doc["phase"] == "Failed"
    assert (doc["total"]["execute"]["done"], doc["total"]["execute"]["failed"]) == (6, 1)

    # sync: every shard into the gradebook; sam is not graded, and the exit code says so
    store = f"s3://{BUCKET}"
    assert main(["sync", "big", str(course), "--store", store]) == EXIT_INFRA
    out, err = capsys.readouterr()
    assert "run group big: 3 of 3 runs merged; 7 submission(s), 6 graded, 1 not graded" in out
    assert "UNGRADED sam / squares.ipynb" in out and "gradeflow retry big" in err
    expected = {s: 0.0 if s in RAISES else 2.0 for s in SHARDS}
    assert scores(course) == {s: v for s, v in expected.items() if s != BROKEN}

    # retry: only the failed shard; once it has run again, sync merges sam too
    cluster.argo.requests.clear()
    assert main(["retry", "big"]) == 0
    assert "big-3of3" in capsys.readouterr().out
    puts = [r["path"] for r in cluster.argo.requests if r["method"] == "PUT"]
    assert puts == [f"/api/v1/workflows/{NS}/big-3of3/retry"]
    again = emulate(cluster.live["big-3of3"], course)
    assert again.phase == "Succeeded"
    cluster.put(reported(cluster.live["big-3of3"], again))
    assert main(["sync", "big", str(course), "--store", store]) == 0
    assert "run group big: 3 of 3 runs merged; 7 submission(s), 7 graded, 0 not graded" in capsys.readouterr().out
    assert scores(course) == expected
    with pytest.raises(TeacherError, match="nothing to retry"):
        client.retry_group(b, "big")

    # Argo deleted the runs: the store alone has the group's shards
    assert client.shards_in_store("big", store) == names
    for var in ("ARGO_SERVER", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(course / "no-such-kubeconfig"))
    assert main(["sync", "big", str(course), "--store", store]) == 0
    assert "run group big: 3 of 3 runs merged; 7 submission(s), 7 graded" in capsys.readouterr().out
    assert scores(course) == expected
