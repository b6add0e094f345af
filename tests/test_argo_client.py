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
from pipelines.argo.workflow import build_template
from pipelines.client import ArgoServerBackend, ArgoSettings, KubernetesBackend, connect, pod_name, run_status
from steps.errors import NotFound, TeacherError, Unreachable

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
                req = {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(raw) if raw else None,
                }
                fake.requests.append(req)
                status, body = fake.routes.get(
                    (self.command, url.path), (404, {"code": 5, "message": f"{url.path} not found"})
                )
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
        wf["status"]["outputs"] = {
            "parameters": [
                {"name": "students", "value": json.dumps([{"student": s, "work-hash": "h"} for s in students])}
            ]
        }
    return wf


def node(
    wf_name: str,
    suffix: str,
    template: str,
    phase: str,
    type_: str = "Pod",
    student: str | None = None,
    children: list[str] | None = None,
    **extra: Any,
) -> dict:
    n = {
        "id": f"{wf_name}-{abs(hash(suffix)) % 10**9}",
        "name": f"{wf_name}.{suffix}",
        "displayName": suffix.split(".")[-1],
        "type": type_,
        "templateName": template,
        "phase": phase,
        "children": children or [],
    }
    if student:
        n["inputs"] = {"parameters": [{"name": "student", "value": student}, {"name": "work-hash", "value": "h"}]}
    n.update(extra)
    return n


def test_settings_follow_the_argo_cli_environment() -> None:
    s = ArgoSettings.from_env(
        {
            "ARGO_SERVER": "argo.example.edu:443",
            "ARGO_TOKEN": "Bearer abc",
            "ARGO_NAMESPACE": "course-a",
            "ARGO_INSECURE_SKIP_VERIFY": "true",
            "ARGO_HTTP1": "true",
            "ARGO_BASE_HREF": "/argo/",
        }
    )
    assert (s.url, s.token, s.namespace, s.insecure_skip_verify, s.http1) == (
        "https://argo.example.edu:443/argo/",
        "Bearer abc",
        "course-a",
        True,
        True,
    )
    assert (
        ArgoSettings.from_env({"ARGO_SERVER": "localhost:2746", "ARGO_SECURE": "false"}).url == "http://localhost:2746/"
    )
    assert ArgoSettings.from_env({}, namespace="x").namespace == "x"  # a flag wins over the environment
    assert ArgoSettings.from_env({}).namespace == "gradeflow" and ArgoSettings.from_env({}).server is None


def test_submit_posts_a_valid_workflow_with_the_token(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
    argo.routes[("POST", f"/api/v1/workflows/{NS}")] = (
        200,
        lambda req: {**req["body"]["workflow"], "status": {"phase": "Pending"}},
    )
    version_route(argo, "v4.1.2")
    created = client.submit(
        server_backend(argo),
        "/courses/intro",
        "ps1",
        run_id="ps1-20261122-101500",
        limits={"memory": 512},
        parallelism=3,
    )
    version, get, post = argo.requests
    assert (version["method"], version["path"]) == ("GET", "/api/v1/version")
    assert (get["method"], get["path"]) == ("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")
    assert (post["method"], post["path"]) == ("POST", f"/api/v1/workflows/{NS}")
    assert get["headers"]["authorization"] == post["headers"]["authorization"] == "Bearer s3cr3t"
    body = post["body"]
    assert body["namespace"] == NS
    wf = body["workflow"]
    assert schema_errors(wf, "Workflow") == []
    assert wf["metadata"]["name"] == "ps1-20261122-101500" and wf["metadata"]["namespace"] == NS
    assert wf["metadata"]["labels"] == {
        "gradeflow.io/course": "intro",
        "gradeflow.io/assignment": "ps1",
        "gradeflow.io/run-id": "ps1-20261122-101500",
    }
    assert wf["spec"]["workflowTemplateRef"] == {"name": "gradeflow-autograde"} and wf["spec"]["parallelism"] == 3
    assert {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]} == {
        "assignment": "ps1",
        "run-id": "ps1-20261122-101500",
        "course": "intro",
        "memory": "512",
    }
    assert created["metadata"]["name"] == "ps1-20261122-101500"


def test_a_missing_template_says_how_to_install_it(argo: FakeArgo) -> None:
    with pytest.raises(TeacherError) as e:
        client.submit(server_backend(argo), "intro", "ps1")
    assert (
        "gradeflow-autograde is not installed" in str(e.value)
        and "kubectl apply" in str(e.value)
        and "argo/" in str(e.value)
    )
    assert [r["path"] for r in argo.requests] == [
        "/api/v1/version",
        f"/api/v1/workflow-templates/{NS}/gradeflow-autograde",
    ]  # nothing was submitted


def test_a_rejected_token_says_to_set_argo_token(argo: FakeArgo) -> None:
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (
        401,
        {"code": 16, "message": "token not valid"},
    )
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
    argo.routes[("GET", f"/api/v1/workflows/{NS}/r1")] = (
        403,
        {"code": 7, "message": 'workflows.argoproj.io "r1" is forbidden'},
    )
    with pytest.raises(TeacherError, match="gradeflow-submitter"):
        client.find_run(server_backend(argo), "r1")
    dead = ArgoServerBackend(ArgoSettings(server="127.0.0.1:9", secure=False, namespace=NS))
    with pytest.raises(TeacherError, match="port-forward"):
        client.find_run(dead, "r1")


def test_missing_and_unreachable_are_told_apart_by_type_not_by_message(argo: FakeArgo) -> None:
    """Callers branch on NotFound / Unreachable (a deleted run is looked for in the store), so
    rewording a message can never change what the client does."""
    argo.routes[("GET", f"/api/v1/workflows/{NS}")] = (200, {"metadata": {}, "items": None})
    argo.routes[("GET", "/api/v1/archived-workflows")] = (200, {"metadata": {}, "items": None})
    with pytest.raises(NotFound, match="Argo has no run 'gone'"):
        client.find_run(server_backend(argo), "gone")
    with pytest.raises(NotFound, match="is not installed"):
        client.submit(server_backend(argo), "intro", "ps1")
    dead = ArgoServerBackend(ArgoSettings(server="127.0.0.1:9", secure=False, namespace=NS))
    with pytest.raises(Unreachable):
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
    assert (put["method"], put["path"], put["body"]) == (
        "PUT",
        f"/api/v1/workflows/{NS}/ps1-a/resubmit",
        {"name": "ps1-a", "namespace": NS, "memoized": True},
    )


def failed_run() -> dict:
    name = "ps1-b"
    retry_alice = node(
        name, "execute(0:student:alice,work-hash:h)", "execute-submission", "Failed", type_="DAG", student="alice"
    )
    att = [
        node(
            name,
            f"execute(0:student:alice,work-hash:h).execute({i})",
            "execute",
            "Failed",
            student="alice",
            message="Error (exit code 75)",
            startedAt=f"2026-11-22T10:0{i}:00Z",
        )
        for i in range(4)
    ]
    r_alice = node(
        name,
        "execute(0:student:alice,work-hash:h).execute",
        "execute",
        "Failed",
        type_="Retry",
        student="alice",
        children=[a["id"] for a in att],
        message="Error (exit code 75)",
    )
    r_bob = node(
        name,
        "execute(1:student:bob,work-hash:h).execute",
        "execute",
        "Succeeded",
        type_="Retry",
        student="bob",
        memoizationStatus={"hit": True, "key": "k", "cacheName": "c"},
    )
    steps_ = [node(name, s, s, "Succeeded", type_="Retry") for s in ("collect", "restore")]
    score = node(name + ".onExit", "score", "score", "Succeeded", type_="Retry")
    merge = node(
        name + ".onExit",
        "merge",
        "merge",
        "Succeeded",
        type_="Retry",
        outputs={
            "parameters": [
                {
                    "name": "summary",
                    "value": "ps1 run ps1-b: 2 submission(s), 1 graded\n  FAILED   alice / squares.ipynb: not executed",
                }
            ]
        },
    )
    nodes = {n["id"]: n for n in [retry_alice, r_alice, r_bob, *att, *steps_, score, merge]}
    return a_workflow(name, "Failed", nodes, students=["alice", "bob"])


def test_status_counts_each_step_and_names_the_failed_submission() -> None:
    st = run_status(failed_run())
    ex = st.steps["execute"]
    assert (ex.total, ex.done, ex.failed, ex.running, ex.cached) == (2, 1, 1, 0, 1)
    assert (st.steps["collect"].done, st.steps["merge"].done) == (1, 1)
    assert [(f.step, f.student) for f in st.failed] == [("execute", "alice")]
    text = "\n".join(st.lines())
    assert (
        "execute: 1/2 done, 1 failed, 1 cached" in text
        and "FAILED execute alice" in text
        and "gradeflow logs ps1-b --student alice" in text
    )
    assert "FAILED   alice / squares.ipynb: not executed" in text


def test_status_shows_the_summary_of_a_merge_that_exited_75() -> None:
    """merge exits 75 when a submission is UNGRADED, after writing its summary. Argo before 3.6
    copies a Retry node's outputs from its last attempt only on success: read the attempt."""
    wf = failed_run()
    nodes = wf["status"]["nodes"]
    (merge,) = [n for n in nodes.values() if n["templateName"] == "merge"]
    summary = merge.pop("outputs")["parameters"][0]["value"].replace("FAILED  ", "UNGRADED")
    attempt = node(
        "ps1-b.onExit",
        "merge(0)",
        "merge",
        "Failed",
        message="Error (exit code 75)",
        outputs={"parameters": [{"name": "summary", "value": summary}]},
    )
    merge.update(phase="Failed", message="Error (exit code 75)", children=[attempt["id"]])
    nodes[attempt["id"]] = attempt
    st = run_status(wf)
    assert st.summary == summary and "UNGRADED alice / squares.ipynb" in "\n".join(st.lines())
    assert ("merge", None) in [(f.step, f.student) for f in st.failed]
    merge["outputs"] = attempt["outputs"]  # Argo 3.6+: the Retry node has them too
    del nodes[attempt["id"]]
    assert run_status(wf).summary == summary


def test_pods_that_cannot_start_are_explained() -> None:
    name = "ps1-c"
    pull = 'ImagePullBackOff: Back-off pulling image "registry.example.edu/grader:v9"'
    stuck = [
        node(name, f"execute({i}:student:{s},work-hash:h).execute(0)", "execute", "Pending", student=s, message=pull)
        for i, s in enumerate(["amy", "ben", "cat", "dan"])
    ]
    wait_room = node(
        name, "restore(0)", "restore", "Pending", message="Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    )
    starting = node(name, "collect(0)", "collect", "Pending")  # no message: just not started yet
    nodes = {n["id"]: n for n in [*stuck, wait_room, starting]}
    st = run_status(a_workflow(name, "Running", nodes, students=["amy", "ben", "cat", "dan"]))
    assert [(w.step, w.reason, sorted(w.students)) for w in st.waiting] == [
        ("execute", "ImagePullBackOff", ["amy", "ben", "cat", "dan"]),
        ("restore", "Unschedulable", []),
    ]
    text = "\n".join(st.lines())
    assert "WAITING execute (4 pods: " in text and "registry.example.edu/grader:v9" in text
    assert "cannot pull the grader image" in text and "--image" in text
    assert "WAITING restore: Unschedulable" in text and "lower --parallelism" in text
    assert "WAITING collect" not in text


def test_watch_polls_until_the_run_finishes(argo: FakeArgo) -> None:
    answers = iter([a_workflow("ps1-b", "Running"), a_workflow("ps1-b", "Running"), failed_run()])
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b")] = (200, lambda req: next(answers))
    seen: list[str] = []
    st = client.wait(
        server_backend(argo), "ps1-b", poll=0, progress=lambda s: seen.append(s.phase), sleep=lambda s: None
    )
    assert st.phase == "Failed" and seen == ["Running", "Failed"]  # reported on change only
    assert len(argo.requests) == 3


def test_logs_of_the_failed_pod(argo: FakeArgo) -> None:
    wf = failed_run()
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-b")] = (200, wf)
    stream = b"".join(
        json.dumps({"result": {"content": line, "podName": "p"}}).encode() + b"\n"
        for line in ("gradeflow.execute ERROR execute failed:", "FileNotFoundError: restore.json")
    )
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
    assert (
        pod_name(wf, {"id": "wf-1", "name": "wf.collect", "templateName": "collect"})
        == f"wf-collect-{client._fnv1a_32(b'wf.collect')}"
    )
    assert (
        pod_name(
            {"metadata": {"name": "wf", "annotations": {"workflows.argoproj.io/pod-name-format": "v1"}}},
            {"id": "wf-1", "name": "wf.x"},
        )
        == "wf-1"
    )


def test_the_kubernetes_api_is_used_without_an_argo_server(argo: FakeArgo) -> None:
    from kubernetes import client as k8s

    argo.routes[("GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflowtemplates/gradeflow-autograde")] = (
        200,
        INSTALLED,
    )
    argo.routes[("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows")] = (201, lambda req: req["body"])
    cfg = k8s.Configuration(
        host=f"http://{argo.address}",
        api_key={"authorization": "kube-token"},
        api_key_prefix={"authorization": "Bearer"},
    )
    b = KubernetesBackend(ArgoSettings(namespace=NS), api_client=k8s.ApiClient(cfg))
    client.submit(b, "intro", "ps1", run_id="ps1-k8s")
    post = argo.requests[-1]
    assert (post["method"], post["path"]) == ("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows")
    assert post["headers"]["authorization"] == "Bearer kube-token"
    assert schema_errors(post["body"], "Workflow") == [] and post["body"]["metadata"]["namespace"] == NS
    with pytest.raises(TeacherError, match="needs the Argo Server"):
        b.retry_workflow("ps1-k8s")


def test_gradeflow_cli_commands(
    argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from pipelines.cli import main

    for k, v in {
        "ARGO_SERVER": argo.address,
        "ARGO_SECURE": "false",
        "ARGO_TOKEN": "s3cr3t",
        "ARGO_NAMESPACE": NS,
    }.items():
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


# --- versions (issue 10, item 5) -------------------------------------------------------------------


def version_route(argo: FakeArgo, version: str) -> None:
    # the body of Argo's GET /api/v1/version (pkg/apis/workflow/v1alpha1/version_types.go)
    argo.routes[("GET", "/api/v1/version")] = (
        200,
        {
            "version": version,
            "buildDate": "2025-09-10T00:00:00Z",
            "gitCommit": "0a05502f97",
            "gitTag": version,
            "gitTreeState": "clean",
            "goVersion": "go1.24",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
    )


@pytest.mark.parametrize(
    ("version", "action", "refused", "warned"),
    [
        ("v3.4.17", "submit", "older than", None),
        ("v3.5.4", "submit", None, "#10426"),  # memoize + retryStrategy never caches
        ("v3.5.5", "submit", None, None),
        ("v3.6.5", "retry", None, None),
        ("v3.6.6", "retry", "#14796", None),  # the broken resetPath came to 3.6 with the retry rewrite
        ("v3.6.19", "retry", "#14796", None),
        ("v3.7.0", "retry", "#14796", None),
        ("v3.7.1", "submit", None, "#14796"),
        ("v3.7.2", "retry", None, None),
        ("v4.1.2", "retry", None, None),
        ("v0.0.0+abc1234.dirty", "submit", None, "cannot tell"),
    ],
)
def test_the_argo_version_is_judged_by_what_each_release_gets_wrong(
    version: str, action: str, refused: str | None, warned: str | None
) -> None:
    from pipelines.argo.versions import judge_version

    v = judge_version(version, action)
    assert (v.refuse is None) == (refused is None) and (refused is None or refused in v.refuse)
    assert (warned is None and v.warnings == []) or (warned is not None and any(warned in w for w in v.warnings))


def test_submit_reads_the_server_version_first(argo: FakeArgo) -> None:
    version_route(argo, "v3.5.4")
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
    argo.routes[("POST", f"/api/v1/workflows/{NS}")] = (200, lambda req: req["body"]["workflow"])
    warned: list[str] = []
    client.submit(server_backend(argo), "intro", "ps1", run_id="ps1-v", warn=warned.append)
    assert [r["path"] for r in argo.requests][0] == "/api/v1/version"
    assert (
        len(warned) == 1
        and "never saves execute results to the memoization cache" in warned[0]
        and "v3.5.5" in warned[0]
    )


def test_retry_is_refused_where_argo_would_rerun_succeeded_submissions(argo: FakeArgo) -> None:
    version_route(argo, "v3.7.1")
    argo.routes[("GET", f"/api/v1/workflows/{NS}/ps1-a")] = (200, a_workflow("ps1-a", "Failed"))
    with pytest.raises(TeacherError, match="14796") as e:
        client.retry(server_backend(argo), "ps1-a")
    assert "v3.7.2" in str(e.value) and "resubmit --memoized" in str(e.value)
    assert all(r["method"] == "GET" for r in argo.requests)  # nothing was retried
    version_route(argo, "v3.7.2")
    argo.routes[("PUT", f"/api/v1/workflows/{NS}/ps1-a/retry")] = (200, a_workflow("ps1-a", "Running"))
    client.retry(server_backend(argo), "ps1-a")
    assert argo.requests[-1]["method"] == "PUT"


def test_without_an_argo_server_the_version_cannot_be_read_and_says_so() -> None:
    from pipelines.argo.backends import Backend

    warned: list[str] = []
    assert client.check_version(Backend(ArgoSettings()), "submit", warned.append) is None
    assert "cannot read the Argo Workflows version" in warned[0] and "argo version" in warned[0]


# --- retention (item 6) ---------------------------------------------------------------------------


def test_a_run_argo_deleted_is_found_in_the_archive_and_retried_from_it(argo: FakeArgo) -> None:
    version_route(argo, "v3.7.2")
    wf = a_workflow("ps1-old", "Failed")
    wf["metadata"]["uid"] = "5f1c-uid"
    argo.routes[("GET", f"/api/v1/workflows/{NS}")] = (200, {"metadata": {}, "items": None})  # deleted from the cluster
    argo.routes[("GET", "/api/v1/archived-workflows")] = (
        200,
        {
            "metadata": {},
            "items": [
                {
                    "metadata": {
                        "name": "ps1-old",
                        "namespace": NS,
                        "uid": "5f1c-uid",
                        "creationTimestamp": "2026-11-01T10:00:00Z",
                    }
                }
            ],
        },
    )
    argo.routes[("GET", "/api/v1/archived-workflows/5f1c-uid")] = (200, wf)
    argo.routes[("PUT", "/api/v1/archived-workflows/5f1c-uid/retry")] = (200, a_workflow("ps1-old", "Running"))
    b = server_backend(argo)
    st = run_status(client.find_run(b, "ps1-old"))
    assert st.phase == "Failed"
    lst = next(r for r in argo.requests if r["path"] == "/api/v1/archived-workflows")
    assert lst["query"]["listOptions.labelSelector"] == ["gradeflow.io/run-id=ps1-old"] and lst["query"][
        "namespace"
    ] == [NS]
    client.retry(b, "ps1-old")
    put = argo.requests[-1]
    assert (put["method"], put["path"]) == ("PUT", "/api/v1/archived-workflows/5f1c-uid/retry")
    assert put["body"] == {"uid": "5f1c-uid", "namespace": NS, "restartSuccessful": False}


def test_a_run_argo_deleted_without_an_archive_says_where_its_results_are(
    argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    argo.routes[("GET", f"/api/v1/workflows/{NS}")] = (200, {"metadata": {}, "items": None})
    argo.routes[("GET", "/api/v1/archived-workflows")] = (200, {"metadata": {}, "items": None})  # no persistence: empty
    for k, v in {
        "ARGO_SERVER": argo.address,
        "ARGO_SECURE": "false",
        "ARGO_TOKEN": "s3cr3t",
        "ARGO_NAMESPACE": NS,
    }.items():
        monkeypatch.setenv(k, v)
    for cmd in (["status", "ps1-gone"], ["retry", "ps1-gone"], ["logs", "ps1-gone"]):
        assert main(cmd) != 0
        err = capsys.readouterr().err
        assert (
            "Argo has no run 'ps1-gone'" in err
            and "retentionPolicy" in err
            and "gradeflow sync ps1-gone COURSE_DIR --store s3://BUCKET" in err
        ), err


# --- node status as Argo stores it (item 10) ----------------------------------------------------


def compress_nodes(nodes: dict) -> str:
    """Argo's util/file CompressEncodeString: gzip, then base64 (StdEncoding)."""
    import base64
    import gzip

    return base64.b64encode(gzip.compress(json.dumps(nodes).encode())).decode()


def test_the_kubernetes_backend_decodes_compressed_nodes(argo: FakeArgo) -> None:
    from kubernetes import client as k8s

    wf = failed_run()
    nodes = wf["status"].pop("nodes")
    wf["status"]["compressedNodes"] = compress_nodes(nodes)  # what packer.compressWorkflow leaves
    argo.routes[("GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/ps1-b")] = (200, wf)
    b = KubernetesBackend(
        ArgoSettings(namespace=NS), api_client=k8s.ApiClient(k8s.Configuration(host=f"http://{argo.address}"))
    )
    st = run_status(client.find_run(b, "ps1-b"))
    assert (st.steps["execute"].done, st.steps["execute"].failed) == (1, 1) and [f.student for f in st.failed] == [
        "alice"
    ]
    del wf["status"]["compressedNodes"]
    wf["status"]["offloadNodeStatusVersion"] = "fnv:1234"  # too large even compressed: in Argo's database
    with pytest.raises(TeacherError, match="offloaded to Argo's database") as e:
        client.find_run(b, "ps1-b")
    assert "ARGO_SERVER" in e.value.todo and "gradeflow sync" in e.value.todo


def test_a_class_of_a_few_hundred_is_compressed_by_argo_and_still_read() -> None:
    from pipelines.argo.backends import decode_nodes

    name = "ps1-big"
    nodes = {}
    for i in range(400):
        n = node(
            name,
            f"execute({i}:student:s{i:03},work-hash:h).execute",
            "execute",
            "Succeeded",
            type_="Retry",
            student=f"s{i:03}",
        )
        n["outputs"] = {
            "artifacts": [{"name": "executed", "s3": {"key": f"gradeflow/{name}/executed/s{i:03}"}}],
            "exitCode": "0",
        }
        n["resourcesDuration"] = {"cpu": 31, "memory": 120}
        n["message"] = "x" * 2500  # Argo's node messages and statuses add up like this on a real run
        nodes[n["id"]] = n
    assert len(json.dumps(nodes)) > 1024 * 1024  # past MAX_WORKFLOW_SIZE: packer compresses
    wf = a_workflow(name, "Succeeded", {}, students=[f"s{i:03}" for i in range(400)])
    del wf["status"]["nodes"]
    wf["status"]["compressedNodes"] = compress_nodes(nodes)
    st = run_status(decode_nodes(wf))
    assert (st.steps["execute"].total, st.steps["execute"].done) == (400, 400)


def test_status_counts_skipped_omitted_and_errored_nodes_as_argo_writes_them() -> None:
    name = "ps1-d"
    ok = node(name, "execute(0:student:amy,work-hash:h).execute", "execute", "Succeeded", type_="Retry", student="amy")
    # dag.go: a `when` that is false, a task omitted by `depends`, a task Argo could not start
    when_false = node(
        name,
        "execute(0:student:amy,work-hash:h).copy-memoized",
        "copy-memoized",
        "Skipped",
        type_="Skipped",
        student="amy",
        message="when ''ps1-d' != 'ps1-d'' evaluated false",
    )
    omitted = node(
        name + ".onExit", "merge", "merge", "Omitted", type_="Skipped", message="omitted: depends condition not met"
    )
    errored = node(
        name,
        "execute(1:student:ben,work-hash:h).execute",
        "execute",
        "Error",
        type_="Skipped",
        student="ben",
        message="failed to resolve {{inputs.parameters.work-hash}}",
    )
    score_skipped = node(
        name + ".onExit", "score", "score", "Skipped", type_="Skipped", message="when 'false' evaluated false"
    )
    fanout_error = node(
        name,
        "execute",
        "execute-submission",
        "Error",
        type_="Skipped",
        message="withParam value could not be parsed as a JSON list: null",
    )
    nodes = {n["id"]: n for n in [ok, when_false, omitted, errored, score_skipped, fanout_error]}
    st = run_status(a_workflow(name, "Error", nodes))
    ex = st.steps["execute"]
    assert (ex.total, ex.done, ex.cached, ex.failed) == (3, 1, 0, 2)
    assert (st.steps["score"].total, st.steps["merge"].total) == (0, 0)  # never ran: not done, not cached
    assert sorted((f.student or "", f.message[:20]) for f in st.failed) == [
        ("", "withParam value coul"),
        ("ben", "failed to resolve {{"),
    ]


def test_a_memoized_resubmit_reuse_counts_as_cached() -> None:
    name = "ps1-e"
    # FormulateResubmitWorkflow: a succeeded Pod becomes type Skipped, message "original pod: <id>"
    reused = node(
        name,
        "execute(0:student:amy,work-hash:h).execute(0)",
        "execute",
        "Skipped",
        type_="Skipped",
        student="amy",
        message="original pod: ps1-d-123",
    )
    parent = node(
        name,
        "execute(0:student:amy,work-hash:h).execute",
        "execute",
        "Succeeded",
        type_="Retry",
        student="amy",
        children=[reused["id"]],
    )
    st = run_status(a_workflow(name, "Running", {n["id"]: n for n in (reused, parent)}))
    assert (st.steps["execute"].done, st.steps["execute"].cached) == (1, 1)


def test_a_failed_copy_of_a_memoized_result_is_a_failed_submission() -> None:
    name = "ps1-f"
    hit = node(
        name,
        "execute(0:student:amy,work-hash:h).execute",
        "execute",
        "Succeeded",
        type_="Retry",
        student="amy",
        memoizationStatus={"hit": True, "key": "k", "cacheName": "c"},
    )
    copy = node(
        name,
        "execute(0:student:amy,work-hash:h).copy-memoized",
        "copy-memoized",
        "Failed",
        type_="Retry",
        student="amy",
        message="failed to load artifacts: key gradeflow/ps1-a/executed/amy does not exist",
    )
    st = run_status(a_workflow(name, "Failed", {n["id"]: n for n in (hit, copy)}, students=["amy"]))
    ex = st.steps["execute"]
    assert (ex.total, ex.done, ex.cached, ex.failed) == (1, 0, 0, 1)
    [f] = st.failed
    assert f.student == "amy" and "copying the memoized result" in f.message and "does not exist" in f.message
    assert "FAILED execute amy" in "\n".join(st.lines())


# --- resubmit as Argo does it (item 10) -------------------------------------------------------------


def test_a_kubernetes_resubmit_drops_the_stop_and_the_terminated_deadline(argo: FakeArgo) -> None:
    from kubernetes import client as k8s

    old = a_workflow("ps1-g", "Failed")
    old["spec"]["shutdown"] = "Stop"  # `argo stop`
    old["spec"]["activeDeadlineSeconds"] = 0  # how older `argo terminate` ended a run
    old["metadata"]["annotations"]["course/note"] = "kept"
    argo.routes[("GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/ps1-g")] = (200, old)
    argo.routes[("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows")] = (201, lambda req: req["body"])
    b = KubernetesBackend(
        ArgoSettings(namespace=NS), api_client=k8s.ApiClient(k8s.Configuration(host=f"http://{argo.address}"))
    )
    client.resubmit(b, "ps1-g", warn=lambda w: None)
    body = argo.requests[-1]["body"]
    assert "shutdown" not in body["spec"] and "activeDeadlineSeconds" not in body["spec"]
    assert body["spec"]["arguments"] == old["spec"]["arguments"] and schema_errors(body, "Workflow") == []
    assert body["metadata"]["generateName"] == "ps1-g-" and body["metadata"]["annotations"]["course/note"] == "kept"
    assert body["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == "ps1-g"
    old["spec"]["activeDeadlineSeconds"] = 7200  # a real deadline is kept, as Argo keeps it
    client.resubmit(b, "ps1-g", warn=lambda w: None)
    assert argo.requests[-1]["body"]["spec"]["activeDeadlineSeconds"] == 7200


def test_the_hera_floor_is_a_release_the_tests_ran_with() -> None:
    """pyproject's lower bound for hera: tests/test_argo_*.py passed with hera 7.0.0 (and 7.1.0)
    and fail with 6.0.0 (Cache.config_map is a ConfigMapKeySelector there) and every 5.x
    (no `model_validate`; 5.16 also no WorkflowsService(session=))."""
    import inspect
    import re

    from hera.workflows import WorkflowsService
    from hera.workflows.models import Workflow as WorkflowModel
    from packaging.version import Version

    spec = re.search(r'"hera>=([\d.]+)', (ROOT / "pyproject.toml").read_text())
    assert spec and Version(spec.group(1)) >= Version("7.0"), (
        "raise hera's floor to a release the Argo tests passed with"
    )
    assert "session" in inspect.signature(WorkflowsService.__init__).parameters and hasattr(
        WorkflowModel, "model_validate"
    )


def test_a_class_too_big_for_one_run_is_submitted_as_shards(argo: FakeArgo) -> None:
    """issue 15: one Workflow object holds at most about SHARD_SIZE submissions (tests/test_argo_scale.py)."""
    argo.routes[("GET", f"/api/v1/workflow-templates/{NS}/gradeflow-autograde")] = (200, INSTALLED)
    argo.routes[("POST", f"/api/v1/workflows/{NS}")] = (200, lambda req: req["body"]["workflow"])
    version_route(argo, "v4.1.2")
    created = client.submit_class(
        server_backend(argo),
        "intro",
        "ps1",
        class_size=5000,
        run_id="ps1-final",
        image="r.example.edu/g@sha256:" + "a" * 64,
    )
    posts = [r["body"]["workflow"] for r in argo.requests if r["method"] == "POST"]
    assert (
        [w["metadata"]["name"] for w in created]
        == [w["metadata"]["name"] for w in posts]
        == [f"ps1-final-{i}of15" for i in range(1, 16)]
    )
    for i, wf in enumerate(posts):
        assert schema_errors(wf, "Workflow") == []
        params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
        assert (
            params["shard"] == f"{i}/15"
            and params["run-id"] == wf["metadata"]["name"]
            and int(params["class-size"]) < 500
        )
        assert wf["metadata"]["labels"]["gradeflow.io/run-group"] == "ps1-final"
    # up to SHARD_SIZE it is the one run `submit` makes, with the class size it was given
    argo.requests.clear()
    (one,) = client.submit_class(server_backend(argo), "intro", "ps1", class_size=150, run_id="ps1-small")
    assert (
        one["metadata"]["name"] == "ps1-small"
        and {p["name"]: p["value"] for p in one["spec"]["arguments"]["parameters"]}["class-size"] == "150"
    )
