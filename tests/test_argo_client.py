"""Contract test of the Argo client: the exact requests it sends, and what a teacher reads when Argo says no.

Scenario: a fake Argo Server (stdlib http.server in a thread on 127.0.0.1) records every
request and answers like Argo Server v4 does. `gradeflow submit --argo` must first read the
WorkflowTemplate, then POST /api/v1/workflows/{namespace} with `Authorization: Bearer ...`
and a body whose workflow passes Argo's JSON schema; `retry` must PUT .../{name}/retry with
restartSuccessful=false; `resubmit --memoized` PUT .../{name}/resubmit with memoized=true;
`logs` reads the log stream of the failed pod. The same fake also stands in for the
Kubernetes API server, which the client uses (CustomObjectsApi on
workflows.argoproj.io/v1alpha1) when no Argo Server is configured. A 401, a missing
template or an unreachable server become messages that say what to do.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

from pipelines import client
from pipelines.client import ArgoSettings, ArgoServerBackend, KubernetesBackend, connect, pod_name, run_status
from pipelines.workflow import build_template
from steps.errors import TeacherError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "argo-schema-v4.1.2.json").read_text())
NS = "grading"
INSTALLED = build_template().to_dict()  # what `kubectl apply -f argo/` installed


def schema_errors(obj: dict, kind: str) -> list[str]:
    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": SCHEMA["definitions"]}
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]


class FakeArgo:
    """Records requests; `routes` maps (method, path) to (status, body or callable)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = {"method": self.command, "path": url.path, "query": parse_qs(url.query), "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(raw) if raw else None}
                fake.requests.append(req)
                status, body = fake.routes.get((self.command, url.path), (404, {"code": 5, "message": f"{url.path} not found"}))
                if callable(body):
                    body = body(req)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def argo():
    fake = FakeArgo()
    yield fake
    fake.close()


def server_backend(fake: FakeArgo, token: str = "s3cr3t") -> ArgoServerBackend:
    env = {"ARGO_SERVER": fake.address, "ARGO_SECURE": "false", "ARGO_TOKEN": token, "ARGO_NAMESPACE": NS}
    b = connect(ArgoSettings.from_env(env))
    assert isinstance(b, ArgoServerBackend)
    return b


def a_workflow(name: str, phase: str, nodes: dict | None = None, students: list[str] | None = None) -> dict:
    wf = client.build_workflow("ps1", name, course="intro", namespace=NS).to_dict()
    wf["metadata"]["annotations"] = {"workflows.argoproj.io/pod-name-format": "v2"}
    wf["status"] = {"phase": phase, "nodes": nodes or {}}
    if students is not None:
        wf["status"]["outputs"] = {"parameters": [{"name": "students", "value": json.dumps([{"student": s, "work-hash": "h"} for s in students])}]}
    return wf


def node(wf_name: str, suffix: str, template: str, phase: str, type_: str = "Pod", student: str | None = None, children: list[str] | None = None, **extra: Any) -> dict:
    n = {"id": f"{wf_name}-{abs(hash(suffix)) % 10**9}", "name": f"{wf_name}.{suffix}", "displayName": suffix.split(".")[-1], "type": type_, "templateName": template, "phase": phase, "children": children or []}
    if student:
        n["inputs"] = {"parameters": [{"name": "student", "value": student}, {"name": "work-hash", "value": "h"}]}
    n.update(extra)
    return n


def test_settings_follow_the_argo_cli_environment() -> None:
    s = ArgoSettings.from_env({"ARGO_SERVER": "argo.example.edu:443", "ARGO_TOKEN": "Bearer abc", "ARGO_NAMESPACE": "course-a", "ARGO_INSECURE_SKIP_VERIFY": "true", "ARGO_HTTP1": "true", "ARGO_BASE_HREF": "/argo/"})
    assert (s.url, s.token, s.namespace, s.insecure_skip_verify, s.http1) == ("https://argo.example.edu:443/argo/", "Bearer abc", "course-a", True, True)
    assert ArgoSettings.from_env({"ARGO_SERVER": "localhost:2746", "ARGO_SECURE": "false"}).url == "http://localhost:2746/"
    assert ArgoSettings.from_env({}, namespace="x").namespace == "x"  # a flag wins over the environment
    assert ArgoSettings.from_env({}).namespace == "gradeflow" and ArgoSettings.from_env({}).server is None


def test_submit_posts_a_valid_workflow_with_the_token(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
    argo.routes[("POST", f"/api/v1/workflows/{NS}")] = (200, lambda req: {**req["body"]["workflow"], "status": {"phase": "Pending"}})
    created = client.submit(server_backend(argo), "/courses/intro", "ps1", run_id="ps1-20261122-101500", limits={"memory": 512}, parallelism=3)
    get, post = argo.requests
    assert (get["method"], get["path"]) == ("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")
    assert (post["method"], post["path"]) == ("POST", f"/api/v1/workflows/{NS}")
    assert get["headers"]["authorization"] == post["headers"]["authorization"] == "Bearer s3cr3t"
    body = post["body"]
    assert body["namespace"] == NS
    wf = body["workflow"]
    assert schema_errors(wf, "Workflow") == []
    assert wf["metadata"]["name"] == "ps1-20261122-101500" and wf["metadata"]["namespace"] == NS
    assert wf["metadata"]["labels"] == {"gradeflow.io/course": "intro", "gradeflow.io/assignment": "ps1", "gradeflow.io/run-id": "ps1-20261122-101500"}
    assert wf["spec"]["workflowTemplateRef"] == {"name": "gradeflow-autograde"} and wf["spec"]["parallelism"] == 3
    assert {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]} == {"assignment": "ps1", "run-id": "ps1-20261122-101500", "course": "intro", "memory": "512"}
    assert created["metadata"]["name"] == "ps1-20261122-101500"


def test_a_missing_template_says_how_to_install_it(argo: FakeArgo) -> None:
    with pytest.raises(TeacherError) as e:
        client.submit(server_backend(argo), "intro", "ps1")
    assert "gradeflow-autograde is not installed" in str(e.value) and "kubectl apply" in str(e.value) and "argo/" in str(e.value)
    assert [r["method"] for r in argo.requests] == ["GET"]  # nothing was submitted


def test_a_rejected_token_says_to_set_argo_token(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (401, {"code": 16, "message": "token not valid"})
    with pytest.raises(TeacherError) as e:
        client.submit(server_backend(argo, token="expired"), "intro", "ps1")
    assert "Argo rejected the token" in str(e.value) and "ARGO_TOKEN" in str(e.value)


@pytest.mark.parametrize("body", [{}, {"code": 16}, b"Unauthorized"])
def test_a_rejected_token_is_explained_whatever_the_body(argo: FakeArgo, body: Any) -> None:
    # Hera reads an error's "message"; a proxy or an older server may send none
    argo.routes[("GET", f"/api/v1/workflows/{NS}/r1")] = (401, body)
    with pytest.raises(TeacherError, match="ARGO_TOKEN"):
        client.find_run(server_backend(argo), "r1")


def test_a_server_error_without_a_message_keeps_its_text(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflows/{NS}/r1")] = (500, {"error": "etcd is down"})
    with pytest.raises(TeacherError, match=r"HTTP 500.*etcd is down"):
        client.find_run(server_backend(argo), "r1")


def test_forbidden_and_unreachable_are_explained(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflows/{NS}/r1")] = (403, {"code": 7, "message": 'workflows.argoproj.io "r1" is forbidden'})
    with pytest.raises(TeacherError, match="gradeflow-submitter"):
        client.find_run(server_backend(argo), "r1")
    dead = ArgoServerBackend(ArgoSettings(server="127.0.0.1:9", secure=False, namespace=NS))
    with pytest.raises(TeacherError, match="port-forward"):
        client.find_run(dead, "r1")


def test_retry_asks_argo_to_rerun_only_failed_nodes(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-a")] = (200, a_workflow("ps1-a", "Failed"))
    argo.routes[("PUT", f"/api/v1/workflows/{NS}/ps1-a/retry")] = (200, a_workflow("ps1-a", "Running"))
    client.retry(server_backend(argo), "ps1-a")
    put = argo.requests[-1]
    assert put["method"] == "PUT" and put["path"] == f"/api/v1/workflows/{NS}/ps1-a/retry"
    assert put["body"] == {"name": "ps1-a", "namespace": NS, "restartSuccessful": False}
    assert put["headers"]["authorization"] == "Bearer s3cr3t"


def test_retry_refuses_a_run_that_needs_none(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ok")] = (200, a_workflow("ok", "Succeeded"))
    with pytest.raises(TeacherError, match="nothing to retry"):
        client.retry(server_backend(argo), "ok")
    assert all(r["method"] == "GET" for r in argo.requests)


def test_memoized_resubmit(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-a")] = (200, a_workflow("ps1-a", "Failed"))
    argo.routes[("PUT", f"/api/v1/workflows/{NS}/ps1-a/resubmit")] = (200, a_workflow("ps1-a-x7k2p", "Pending"))
    client.resubmit(server_backend(argo), "ps1-a", memoized=True)
    put = argo.requests[-1]
    assert (put["method"], put["path"], put["body"]) == ("PUT", f"/api/v1/workflows/{NS}/ps1-a/resubmit", {"name": "ps1-a", "namespace": NS, "memoized": True})


def failed_run() -> dict:
    name = "ps1-b"
    retry_alice = node(name, "execute(0:student:alice,work-hash:h)", "execute-submission", "Failed", type_="DAG", student="alice")
    att = [node(name, f"execute(0:student:alice,work-hash:h).execute({i})", "execute", "Failed", student="alice", message="Error (exit code 75)", startedAt=f"2026-11-22T10:0{i}:00Z") for i in range(4)]
    r_alice = node(name, "execute(0:student:alice,work-hash:h).execute", "execute", "Failed", type_="Retry", student="alice", children=[a["id"] for a in att], message="Error (exit code 75)")
    r_bob = node(name, "execute(1:student:bob,work-hash:h).execute", "execute", "Succeeded", type_="Retry", student="bob", memoizationStatus={"hit": True, "key": "k", "cacheName": "c"})
    steps_ = [node(name, s, s, "Succeeded", type_="Retry") for s in ("collect", "restore")]
    score = node(name + ".onExit", "score", "score", "Succeeded", type_="Retry")
    merge = node(name + ".onExit", "merge", "merge", "Succeeded", type_="Retry", outputs={"parameters": [{"name": "summary", "value": "ps1 run ps1-b: 2 submission(s), 1 graded\n  FAILED   alice / squares.ipynb: not executed"}]})
    nodes = {n["id"]: n for n in [retry_alice, r_alice, r_bob, *att, *steps_, score, merge]}
    return a_workflow(name, "Failed", nodes, students=["alice", "bob"])


def test_status_counts_each_step_and_names_the_failed_submission() -> None:
    st = run_status(failed_run())
    ex = st.steps["execute"]
    assert (ex.total, ex.done, ex.failed, ex.running, ex.cached) == (2, 1, 1, 0, 1)
    assert (st.steps["collect"].done, st.steps["merge"].done) == (1, 1)
    assert [(f.step, f.student) for f in st.failed] == [("execute", "alice")]
    text = "\n".join(st.lines())
    assert "execute: 1/2 done, 1 failed, 1 cached" in text and "FAILED execute alice" in text and "gradeflow logs ps1-b --student alice" in text
    assert "FAILED   alice / squares.ipynb: not executed" in text


def test_pods_that_cannot_start_are_explained() -> None:
    name = "ps1-c"
    pull = 'ImagePullBackOff: Back-off pulling image "registry.example.edu/grader:v9"'
    stuck = [
        node(name, f"execute({i}:student:{s},work-hash:h).execute(0)", "execute", "Pending", student=s, message=pull)
        for i, s in enumerate(["amy", "ben", "cat", "dan"])
    ]
    wait_room = node(name, "restore(0)", "restore", "Pending", message="Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.")
    starting = node(name, "collect(0)", "collect", "Pending")  # no message: just not started yet
    nodes = {n["id"]: n for n in [*stuck, wait_room, starting]}
    st = run_status(a_workflow(name, "Running", nodes, students=["amy", "ben", "cat", "dan"]))
    assert [(w.step, w.reason, sorted(w.students)) for w in st.waiting] == [("execute", "ImagePullBackOff", ["amy", "ben", "cat", "dan"]), ("restore", "Unschedulable", [])]
    text = "\n".join(st.lines())
    assert "WAITING execute (4 pods: " in text and "registry.example.edu/grader:v9" in text
    assert "cannot pull the grader image" in text and "--image" in text
    assert "WAITING restore: Unschedulable" in text and "lower --parallelism" in text
    assert "WAITING collect" not in text


def test_watch_polls_until_the_run_finishes(argo: FakeArgo) -> None:
    answers = iter([a_workflow("ps1-b", "Running"), a_workflow("ps1-b", "Running"), failed_run()])
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b")] = (200, lambda req: next(answers))
    seen: list[str] = []
    st = client.wait(server_backend(argo), "ps1-b", poll=0, progress=lambda s: seen.append(s.phase), sleep=lambda s: None)
    assert st.phase == "Failed" and seen == ["Running", "Failed"]  # reported on change only
    assert len(argo.requests) == 3


def test_logs_of_the_failed_pod(argo: FakeArgo) -> None:
    wf = failed_run()
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b")] = (200, wf)
    stream = b"".join(json.dumps({"result": {"content": line, "podName": "p"}}).encode() + b"\n" for line in ("gradeflow.execute ERROR execute failed:", "FileNotFoundError: restore.json"))
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b/log")] = (200, stream)
    [(title, text)] = client.logs(server_backend(argo), "ps1-b")
    assert "FileNotFoundError: restore.json" in text
    last = max((n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"), key=lambda n: n["startedAt"])
    q = argo.requests[-1]["query"]
    assert q["podName"] == [pod_name(wf, last)] and q["logOptions.container"] == ["main"]
    assert q["podName"][0].startswith("ps1-b-execute-")


def test_pod_names_follow_argo_v2() -> None:
    assert client._fnv1a_32(b"") == 0x811C9DC5 and client._fnv1a_32(b"a") == 0xE40C292C  # FNV-1a test vectors
    wf = {"metadata": {"name": "wf"}}
    assert pod_name(wf, {"id": "wf-1", "name": "wf.collect", "templateName": "collect"}) == f"wf-collect-{client._fnv1a_32(b'wf.collect')}"
    assert pod_name({"metadata": {"name": "wf", "annotations": {"workflows.argoproj.io/pod-name-format": "v1"}}}, {"id": "wf-1", "name": "wf.x"}) == "wf-1"


def test_the_kubernetes_api_is_used_without_an_argo_server(argo: FakeArgo) -> None:
    from kubernetes import client as k8s

    argo.routes[("GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflowtemplates/gradeflow-autograde")] = (200, INSTALLED)
    argo.routes[("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows")] = (201, lambda req: req["body"])
    cfg = k8s.Configuration(host=f"http://{argo.address}", api_key={"authorization": "kube-token"}, api_key_prefix={"authorization": "Bearer"})
    b = KubernetesBackend(ArgoSettings(namespace=NS), api_client=k8s.ApiClient(cfg))
    client.submit(b, "intro", "ps1", run_id="ps1-k8s")
    post = argo.requests[-1]
    assert (post["method"], post["path"]) == ("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows")
    assert post["headers"]["authorization"] == "Bearer kube-token"
    assert schema_errors(post["body"], "Workflow") == [] and post["body"]["metadata"]["namespace"] == NS
    with pytest.raises(TeacherError, match="needs the Argo Server"):
        b.retry_workflow("ps1-k8s")


def test_gradeflow_cli_commands(argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from pipelines.cli import main

    for k, v in {"ARGO_SERVER": argo.address, "ARGO_SECURE": "false", "ARGO_TOKEN": "s3cr3t", "ARGO_NAMESPACE": NS}.items():
        monkeypatch.setenv(k, v)
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b")] = (200, failed_run())
    assert main(["status", "ps1-b"]) == 0
    out = capsys.readouterr().out
    assert "run ps1-b (ps1-b): Failed" in out and "execute: 1/2 done, 1 failed" in out
    assert main(["submit", "intro", "ps1"]) == 2  # without --argo: says to use `gradeflow grade`
    assert "gradeflow grade intro ps1" in capsys.readouterr().err
    assert main(["watch", "ps1-b", "--poll", "0"]) == 1  # a failed run: non-zero, with what to do
    assert "gradeflow retry ps1-b" in capsys.readouterr().err
    assert main(["render", str(tmp_path)]) == 0  # the same YAML as the checked-in one
    assert (tmp_path / "workflowtemplate.yaml").read_text() == (ROOT / "argo" / "workflowtemplate.yaml").read_text()


def test_add_argo_commands_registers_every_subcommand() -> None:
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    client.add_argo_commands(sub)
    assert set(sub.choices) == {"submit", "status", "watch", "retry", "resubmit", "sync", "logs", "render"}
    a = p.parse_args(["submit", "intro", "ps1", "--argo", "--memory", "512", "-n", "x", "--argo-server", "h:1"])
    assert (a.runner, a.memory, a.namespace, a.argo_server) == ("argo", "512", "x", "h:1")


def test_a_bad_run_id_is_refused_before_anything_is_sent(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
    with pytest.raises(TeacherError, match="lowercase letters, digits"):
        client.submit(server_backend(argo), "intro", "ps1", run_id="PS1 final")
    assert all(r["method"] == "GET" for r in argo.requests)
    assert client.new_run_id("PS 1!").startswith("ps-1-")
