"""Submit, watch, retry and sync gradeflow runs on Argo Workflows, from Python or the CLI.

Argo is reached one of two ways, registered by name in `BACKENDS`:

* `server`: the Argo Server's REST API through Hera's `WorkflowsService`, configured like
  the argo CLI: ARGO_SERVER (host:port), ARGO_TOKEN, ARGO_NAMESPACE, ARGO_SECURE (https,
  default true), ARGO_INSECURE_SKIP_VERIFY, ARGO_HTTP1 and ARGO_BASE_HREF;
* `kubernetes`: the Workflow custom resources (workflows.argoproj.io/v1alpha1) through the
  Kubernetes API, with your kubeconfig or the in-cluster account, for a cluster whose Argo
  Server is not exposed. Retry and memoized resubmit need the Argo Server.

`connect()` picks `server` when an Argo Server is configured and `kubernetes` otherwise. The
Python API is `build_workflow` (re-exported from pipelines.workflow), `submit`, `wait`,
`run_status`, `retry`, `resubmit`, `logs` and `sync`; `add_argo_commands` adds the same as
`gradeflow` subcommands. `sync` downloads a run's prefix from the store and calls
`steps.merge.merge(workspace, course_dir)`: the merge the local runner uses.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from steps.contract import DAG as STEP_ORDER
from steps.errors import TeacherError

from .workflow import (
    DEFAULT_PARALLELISM,
    LABEL_ASSIGNMENT,
    LABEL_RUN,
    RUN_ID,
    TEMPLATE_NAME,
    build_workflow,
    label_value,
    render,
)

__all__ = [
    "ArgoSettings",
    "Backend",
    "ArgoServerBackend",
    "KubernetesBackend",
    "BACKENDS",
    "connect",
    "build_workflow",
    "new_run_id",
    "submit",
    "find_run",
    "run_status",
    "RunStatus",
    "StepProgress",
    "wait",
    "retry",
    "resubmit",
    "logs",
    "sync",
    "pod_name",
    "add_argo_commands",
]

DEFAULT_NAMESPACE = "gradeflow"
INSTALL_HINT = "install it with `kubectl apply -n {ns} -f argo/install/ -f argo/` (see docs/argo.md)"
FINISHED = ("Succeeded", "Failed", "Error")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class ArgoSettings:
    """How to reach Argo: flags first, then the argo CLI's environment variables."""

    server: str | None = None  # host:port (as ARGO_SERVER) or a full URL
    token: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    secure: bool = True  # https to the Argo Server
    insecure_skip_verify: bool = False
    http1: bool = False  # accepted for the argo CLI's sake: this client always speaks HTTP/1 REST
    base_href: str = ""
    kube_context: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> "ArgoSettings":
        env = os.environ if env is None else env
        s = cls(
            server=env.get("ARGO_SERVER") or None,
            token=env.get("ARGO_TOKEN") or None,
            namespace=env.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE,
            secure=_truthy(env.get("ARGO_SECURE", "true")),
            insecure_skip_verify=_truthy(env.get("ARGO_INSECURE_SKIP_VERIFY")),
            http1=_truthy(env.get("ARGO_HTTP1")),
            base_href=env.get("ARGO_BASE_HREF", ""),
        )
        for k, v in flags.items():
            if v is not None:
                setattr(s, k, v)
        return s

    @property
    def url(self) -> str:
        """The Argo Server's base URL, ending with '/' (Hera joins API paths onto it)."""
        if not self.server:
            raise TeacherError("no Argo Server configured", "set ARGO_SERVER=host:port (e.g. localhost:2746) or pass --argo-server")
        base = self.server if "://" in self.server else f"{'https' if self.secure else 'http'}://{self.server}"
        href = self.base_href.strip("/")
        return base.rstrip("/") + "/" + (href + "/" if href else "")


# --- backends -----------------------------------------------------------------------------------


class Backend:
    """One way to talk to Argo. Subclasses implement the calls; the base class words the errors."""

    name: ClassVar[str] = ""

    def __init__(self, settings: ArgoSettings) -> None:
        self.settings = settings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def where(self) -> str:
        return f"namespace {self.namespace}"

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def get_workflow(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def list_workflows(self, label_selector: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def get_workflow_template(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def retry_workflow(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def resubmit_workflow(self, name: str, memoized: bool) -> dict[str, Any]:
        raise NotImplementedError

    def pod_logs(self, workflow: dict[str, Any], node: dict[str, Any], container: str = "main") -> str:
        raise NotImplementedError

    # the words a teacher reads, one place for every backend
    def explain(self, status: int | None, detail: str, action: str, what: str) -> TeacherError:
        ns = self.namespace
        if status == 401:
            return TeacherError(
                f"Argo rejected the token while trying to {action}",
                "set ARGO_TOKEN to a valid token, e.g. "
                f"ARGO_TOKEN=\"Bearer $(kubectl -n {ns} create token gradeflow-submitter)\" (see docs/argo.md, 'Access')",
            )
        if status == 403:
            return TeacherError(
                f"you may not {action} in {self.where()} ({detail.strip()[:200]})",
                f"bind your account or token to the gradeflow-submitter Role: kubectl apply -n {ns} -f argo/install/",
            )
        if status == 404:
            return TeacherError(f"{what} was not found in {self.where()}", "check the name with `gradeflow status` and the namespace with -n / ARGO_NAMESPACE")
        if status == 409:
            return TeacherError(f"{what} already exists in {self.where()}", "choose another run id (--run-id) or leave it out to get a fresh one")
        if status is None:
            return TeacherError(f"cannot reach Argo to {action}: {detail.strip()[:300]}", self.reach_hint())
        return TeacherError(f"Argo refused to {action} (HTTP {status}): {detail.strip()[:400]}", "see the Argo Server / workflow-controller logs for details")

    def reach_hint(self) -> str:
        return "check ARGO_SERVER, or port-forward the Argo Server: kubectl -n argo port-forward svc/argo-server 2746:2746"


class _UnreadableError(Exception):
    """An Argo Server error whose JSON body has no "message" (Hera would fail with KeyError)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


def _unreadable_errors(resp: Any, *args: Any, **kwargs: Any) -> None:
    """requests response hook: turn error bodies Hera cannot read into _UnreadableError."""
    if resp.ok:
        return
    try:
        body = resp.json()
    except ValueError:
        return  # not JSON: Hera reports the text itself
    if not isinstance(body, dict) or "message" not in body:
        raise _UnreadableError(resp.status_code, resp.text or resp.reason or "")


class ArgoServerBackend(Backend):
    """The Argo Server's REST API, through Hera's WorkflowsService."""

    name = "server"

    def __init__(self, settings: ArgoSettings, session: Any = None) -> None:
        super().__init__(settings)
        from hera.workflows import WorkflowsService

        self.service = WorkflowsService(
            host=settings.url,
            token=settings.token,
            namespace=settings.namespace,
            verify_ssl=not settings.insecure_skip_verify,
            session=session,
        )
        self.service.session.hooks["response"].append(_unreadable_errors)

    def where(self) -> str:
        return f"namespace {self.namespace} on {self.settings.url}"

    def _call(self, action: str, what: str, fn: Callable[[], Any]) -> Any:
        import requests
        from hera.exceptions import HeraException

        try:
            return fn()
        except _UnreadableError as e:
            raise self.explain(e.status, e.detail, action, what) from None
        except HeraException as e:
            status = getattr(e, "status_code", None) if type(e) is not HeraException else _status_in(str(e))
            raise self.explain(status, str(e), action, what) from None
        except requests.exceptions.SSLError as e:
            raise TeacherError(
                f"TLS to the Argo Server failed: {e}",
                "for a self-signed certificate set ARGO_INSECURE_SKIP_VERIFY=true; for a plain-http server set ARGO_SECURE=false",
            ) from None
        except requests.exceptions.ConnectionError as e:
            raise self.explain(None, str(e), action, what) from None

    @staticmethod
    def _dict(model: Any) -> dict[str, Any]:
        return model.model_dump(by_alias=True, exclude_none=True, mode="json")

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        from hera.workflows.models import Workflow as WorkflowModel, WorkflowCreateRequest

        req = WorkflowCreateRequest(workflow=WorkflowModel.model_validate(body), namespace=self.namespace)
        return self._dict(self._call("submit a workflow", f"workflow {body['metadata'].get('name')}", lambda: self.service.create_workflow(req)))

    def get_workflow(self, name: str) -> dict[str, Any]:
        return self._dict(self._call("read the run", f"run {name!r}", lambda: self.service.get_workflow(name)))

    def list_workflows(self, label_selector: str) -> list[dict[str, Any]]:
        res = self._call("list runs", "the run list", lambda: self.service.list_workflows(label_selector=label_selector))
        return [self._dict(w) for w in (res.items or [])]

    def get_workflow_template(self, name: str) -> dict[str, Any]:
        return self._dict(self._call("read the WorkflowTemplate", f"WorkflowTemplate {name}", lambda: self.service.get_workflow_template(name)))

    def retry_workflow(self, name: str) -> dict[str, Any]:
        from hera.workflows.models import WorkflowRetryRequest

        # restartSuccessful=false: only failed and errored nodes run again
        req = WorkflowRetryRequest(name=name, namespace=self.namespace, restart_successful=False)
        return self._dict(self._call("retry the run", f"run {name!r}", lambda: self.service.retry_workflow(name, req)))

    def resubmit_workflow(self, name: str, memoized: bool) -> dict[str, Any]:
        from hera.workflows.models import WorkflowResubmitRequest

        req = WorkflowResubmitRequest(name=name, namespace=self.namespace, memoized=memoized)
        return self._dict(self._call("resubmit the run", f"run {name!r}", lambda: self.service.resubmit_workflow(name, req)))

    def pod_logs(self, workflow: dict[str, Any], node: dict[str, Any], container: str = "main") -> str:
        # The log endpoint streams one JSON object per line, which Hera's generated method does
        # not parse; read it with the same session and headers.
        name = workflow["metadata"]["name"]
        svc = self.service
        url = f"{self.settings.url}api/v1/workflows/{self.namespace}/{name}/log"
        params = {"podName": pod_name(workflow, node), "logOptions.container": container}

        def get() -> str:
            import requests

            try:
                resp = svc.session.get(url, params=params, headers={"Authorization": svc.token} if svc.token else {}, verify=svc.verify_ssl)
            except requests.exceptions.ConnectionError as e:
                raise self.explain(None, str(e), "read logs", f"logs of {node.get('displayName')}") from None
            except _UnreadableError as e:
                raise self.explain(e.status, e.detail, "read logs", f"the pod of {node.get('displayName')}") from None
            if not resp.ok:
                raise self.explain(resp.status_code, resp.text, "read logs", f"the pod of {node.get('displayName')}")
            return resp.text

        lines = []
        for raw in get().splitlines():
            if raw.strip():
                entry = json.loads(raw).get("result", {})
                lines.append(entry.get("content", ""))
        return "\n".join(lines)


def _status_in(message: str) -> int | None:
    m = re.search(r"status code (\d{3})", message)
    return int(m.group(1)) if m else None


class KubernetesBackend(Backend):
    """Workflow custom resources through the Kubernetes API (kubeconfig or in-cluster)."""

    name = "kubernetes"
    group, version = "argoproj.io", "v1alpha1"

    def __init__(self, settings: ArgoSettings, api_client: Any = None) -> None:
        super().__init__(settings)
        from kubernetes import client

        if api_client is None:
            api_client = self._load(settings)
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    @staticmethod
    def _load(settings: ArgoSettings) -> Any:
        from kubernetes import client, config

        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                config.load_incluster_config()
                return client.ApiClient()
            return config.new_client_from_config(context=settings.kube_context)
        except Exception as e:  # noqa: BLE001 - kubernetes raises several types for a missing config
            raise TeacherError(
                f"no Argo Server configured and no usable kubeconfig ({e})",
                "set ARGO_SERVER=host:port (and ARGO_TOKEN), or point KUBECONFIG at the cluster",
            ) from None

    def reach_hint(self) -> str:
        return "check your kubeconfig (kubectl cluster-info), or use the Argo Server: set ARGO_SERVER=host:port"

    def _call(self, action: str, what: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except ApiException as e:
            raise self.explain(e.status, e.body or e.reason or "", action, what) from None
        except (HTTPError, OSError) as e:
            raise self.explain(None, str(e), action, what) from None

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "metadata": {**body["metadata"], "namespace": self.namespace}}
        return self._call(
            "submit a workflow",
            f"workflow {body['metadata'].get('name')}",
            lambda: self.custom.create_namespaced_custom_object(self.group, self.version, self.namespace, "workflows", body),
        )

    def get_workflow(self, name: str) -> dict[str, Any]:
        return self._call("read the run", f"run {name!r}", lambda: self.custom.get_namespaced_custom_object(self.group, self.version, self.namespace, "workflows", name))

    def list_workflows(self, label_selector: str) -> list[dict[str, Any]]:
        res = self._call("list runs", "the run list", lambda: self.custom.list_namespaced_custom_object(self.group, self.version, self.namespace, "workflows", label_selector=label_selector))
        return list(res.get("items", []))

    def get_workflow_template(self, name: str) -> dict[str, Any]:
        return self._call(
            "read the WorkflowTemplate",
            f"WorkflowTemplate {name}",
            lambda: self.custom.get_namespaced_custom_object(self.group, self.version, self.namespace, "workflowtemplates", name),
        )

    def retry_workflow(self, name: str) -> dict[str, Any]:
        raise TeacherError(
            "retrying only the failed nodes needs the Argo Server (it rewrites the run's node graph)",
            f"set ARGO_SERVER (kubectl -n argo port-forward svc/argo-server 2746:2746), or run `argo retry {name} -n {self.namespace}`",
        )

    def resubmit_workflow(self, name: str, memoized: bool) -> dict[str, Any]:
        if memoized:
            raise TeacherError(
                "a memoized resubmit needs the Argo Server",
                f"set ARGO_SERVER, or run `argo resubmit --memoized {name} -n {self.namespace}`",
            )
        old = self.get_workflow(name)
        # a plain resubmit is a new Workflow with the same spec: same parameters, same run id
        meta = {
            "generateName": f"{name}-",
            "labels": {k: v for k, v in (old["metadata"].get("labels") or {}).items() if not k.startswith("workflows.argoproj.io/")},
        }
        meta["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] = name
        return self.create_workflow({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": old["spec"]})

    def pod_logs(self, workflow: dict[str, Any], node: dict[str, Any], container: str = "main") -> str:
        name = workflow["metadata"]["name"]
        pods = self._call("list the run's pods", f"pods of {name}", lambda: self.core.list_namespaced_pod(self.namespace, label_selector=f"workflows.argoproj.io/workflow={name}"))
        wanted = {node.get("id"), pod_name(workflow, node)}
        for pod in pods.items:
            annotations = pod.metadata.annotations or {}
            if pod.metadata.name in wanted or annotations.get("workflows.argoproj.io/node-id") in wanted:
                return self._call("read logs", f"pod {pod.metadata.name}", lambda: self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace, container=container))
        raise TeacherError(
            f"the pod of {node.get('displayName')} is gone",
            "Argo deletes a run's pods when it is retried or deleted; the step's own log is in the store: `gradeflow sync` fetches it",
        )


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (ArgoServerBackend, KubernetesBackend)}


def connect(settings: ArgoSettings | None = None, backend: str | None = None) -> Backend:
    """A backend: the named one, else `server` when an Argo Server is configured, else `kubernetes`."""
    settings = settings or ArgoSettings.from_env()
    key = backend or ("server" if settings.server else "kubernetes")
    try:
        cls = BACKENDS[key]
    except KeyError:
        raise TeacherError(f"unknown Argo backend {key!r}", f"choose one of: {', '.join(sorted(BACKENDS))}") from None
    return cls(settings)


# --- runs ---------------------------------------------------------------------------------------

def new_run_id(assignment: str, now: dt.datetime | None = None) -> str:
    """A run id that is also a valid workflow name: `ps1-20261122-101500`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    base = re.sub(r"[^a-z0-9-]+", "-", assignment.lower()).strip("-")[:40] or "run"
    return f"{base}-{now.strftime('%Y%m%d-%H%M%S')}"


def submit(
    backend: Backend,
    course: str,
    assignment: str,
    *,
    run_id: str | None = None,
    check_template: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Submit a run of the installed WorkflowTemplate; return the created Workflow.

    `options` go to `build_workflow` (course_pvc, course_subpath, image, store_prefix,
    limits, parallelism).
    """
    if check_template:
        try:
            backend.get_workflow_template(TEMPLATE_NAME)
        except TeacherError as e:
            if "was not found" in e.what:
                raise TeacherError(
                    f"the WorkflowTemplate {TEMPLATE_NAME} is not installed in {backend.where()}",
                    INSTALL_HINT.format(ns=backend.namespace),
                ) from None
            raise
    run_id = run_id or new_run_id(assignment)
    if not RUN_ID.match(run_id):
        raise TeacherError(f"run id {run_id!r} is not a valid workflow name", "use 1-63 lowercase letters, digits and '-', e.g. ps1-final")
    course_label = label_value(Path(course).name if os.sep in course or Path(course).is_dir() else course)
    wf = build_workflow(assignment, run_id, course=course_label, namespace=backend.namespace, **options)
    return backend.create_workflow(wf.to_dict())


def find_run(backend: Backend, run: str) -> dict[str, Any]:
    """The Workflow named `run`, or the newest one whose run id is `run`."""
    try:
        return backend.get_workflow(run)
    except TeacherError as e:
        if "was not found" not in e.what:
            raise
    found = backend.list_workflows(f"{LABEL_RUN}={label_value(run)}")
    if not found:
        raise TeacherError(f"no run named {run!r} in {backend.where()}", "list the runs with `gradeflow status`")
    return max(found, key=lambda w: w["metadata"].get("creationTimestamp") or "")


def list_runs(backend: Backend, assignment: str | None = None) -> list[dict[str, Any]]:
    selector = LABEL_ASSIGNMENT + (f"={label_value(assignment)}" if assignment else "")
    return sorted(backend.list_workflows(selector), key=lambda w: w["metadata"].get("creationTimestamp") or "")


# --- status -------------------------------------------------------------------------------------


@dataclass
class StepProgress:
    step: str
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    cached: int = 0

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)

    def line(self) -> str:
        if not (self.total or self.done or self.failed or self.running):
            return f"{self.step}: pending"
        parts = [f"{self.done}/{self.total} done"]
        parts += [f"{n} {what}" for n, what in ((self.failed, "failed"), (self.running, "running"), (self.cached, "cached")) if n]
        return f"{self.step}: " + ", ".join(parts)


@dataclass
class FailedNode:
    step: str
    student: str | None
    display_name: str
    phase: str
    message: str
    node: dict[str, Any] = field(repr=False)


# Why a pod has not started (Argo puts the pod's waiting reason in the node's message), and
# what to do. The first word of the message is Kubernetes' reason.
_CANNOT_PULL = "the nodes cannot pull the grader image: check its name and tag (`gradeflow submit --image`, docs/argo.md §2), that the nodes reach the registry, and imagePullSecrets for a private one"
WAITING_HINTS = {
    "ImagePullBackOff": _CANNOT_PULL,
    "ErrImagePull": _CANNOT_PULL,
    "InvalidImageName": "the grader image name is not valid: check `gradeflow submit --image` (docs/argo.md §2)",
    "Unschedulable": "no node has room for the pod: lower --parallelism or the execute pod's CPU/memory requests, or add nodes",
    "CreateContainerConfigError": "a Secret or ConfigMap the pod needs is missing, e.g. the artifact store's credentials (docs/argo.md §3)",
}


@dataclass
class WaitingPods:
    """Pods of one step that cannot start, for the same reason."""

    step: str
    reason: str
    message: str
    students: list[str]

    @property
    def hint(self) -> str:
        return WAITING_HINTS.get(self.reason, "")


@dataclass
class RunStatus:
    name: str
    run_id: str
    phase: str
    message: str
    steps: dict[str, StepProgress]
    failed: list[FailedNode]
    summary: str
    waiting: list[WaitingPods] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def lines(self) -> list[str]:
        head = f"run {self.run_id} ({self.name}): {self.phase or 'Pending'}"
        out = [head + (f": {self.message}" if self.message and self.phase != "Succeeded" else "")]
        out += ["  " + self.steps[s].line() for s in STEP_ORDER]
        for f in self.failed:
            who = f" {f.student}" if f.student else ""
            out.append(f"  FAILED {f.step}{who}: {f.message or f.phase}  (gradeflow logs {self.name}{' --student ' + f.student if f.student else ' --step ' + f.step})")
        for w in self.waiting:
            who = f" ({len(w.students)} pods: {', '.join(w.students[:3])}{', ...' if len(w.students) > 3 else ''})" if w.students else ""
            out.append(f"  WAITING {w.step}{who}: {w.message[:300]}")
            if w.hint:
                out.append(f"    -> {w.hint}")
        if self.summary:
            out += ["", self.summary.rstrip()]
        return out


def _param(node_or_io: dict[str, Any] | None, name: str) -> str | None:
    for p in (node_or_io or {}).get("parameters", []) or []:
        if p.get("name") == name:
            return p.get("value")
    return None


def _units(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One node per attempt-group: a Retry node, or a Pod that is no retry's attempt."""
    attempts = {c for n in nodes.values() if n.get("type") == "Retry" for c in n.get("children", []) or []}
    return [n for n in nodes.values() if n.get("type") in ("Retry", "Pod", "Skipped") and n.get("id") not in attempts]


def run_status(workflow: dict[str, Any]) -> RunStatus:
    """Progress per step (done / failed / running / cached) and the failed nodes of a run."""
    status = workflow.get("status") or {}
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    params = {p["name"]: p.get("value") for p in (workflow.get("spec", {}).get("arguments", {}).get("parameters") or [])}
    steps = {s: StepProgress(s) for s in STEP_ORDER}
    failed: list[FailedNode] = []
    waiting: dict[tuple[str, str], WaitingPods] = {}
    summary = ""
    for n in nodes.values():  # pods that cannot start: the pod itself says why (retry nodes do not)
        if n.get("type") == "Pod" and n.get("phase") == "Pending" and n.get("message"):
            step = n.get("templateName") or (n.get("templateRef") or {}).get("template") or "?"
            reason = n["message"].split(":", 1)[0].strip()
            w = waiting.setdefault((step, reason), WaitingPods(step, reason, n["message"], []))
            student = _param(n.get("inputs"), "student")
            if student:
                w.students.append(student)
    for n in _units(nodes):
        step = n.get("templateName") or (n.get("templateRef") or {}).get("template")
        if step not in steps:
            continue
        p = steps[step]
        phase = n.get("phase", "")
        if phase in ("Skipped", "Omitted") and n.get("type") != "Skipped":
            continue  # not run (e.g. score when nothing was restored)
        p.total += 1
        if phase == "Succeeded" or n.get("type") == "Skipped":  # Skipped type: reused by a memoized resubmit
            p.done += 1
            if (n.get("memoizationStatus") or {}).get("hit") or n.get("type") == "Skipped":
                p.cached += 1
        elif phase in ("Failed", "Error"):
            p.failed += 1
            failed.append(FailedNode(step, _param(n.get("inputs"), "student"), n.get("displayName", ""), phase, n.get("message", ""), n))
        else:
            p.running += 1
        if step == "merge" and phase == "Succeeded":
            summary = _param(n.get("outputs"), "summary") or summary
    students = _param(status.get("outputs"), "students")
    if students:
        steps["execute"].total = max(steps["execute"].total, len(json.loads(students)))
    return RunStatus(
        name=workflow["metadata"]["name"],
        run_id=params.get("run-id") or workflow["metadata"]["name"],
        phase=status.get("phase", ""),
        message=status.get("message", ""),
        steps=steps,
        failed=sorted(failed, key=lambda f: (STEP_ORDER.index(f.step), f.student or "")),
        summary=summary,
        waiting=[waiting[k] for k in sorted(waiting)],
    )


def wait(
    backend: Backend,
    run: str,
    *,
    poll: float = 5.0,
    timeout: float | None = None,
    progress: Callable[[RunStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunStatus:
    """Poll a run until it finishes (or `timeout` seconds pass); report each change to `progress`."""
    start = time.monotonic()
    last: list[str] | None = None
    while True:
        st = run_status(find_run(backend, run))
        if progress and st.lines() != last:
            progress(st)
            last = st.lines()
        if st.finished:
            return st
        if timeout is not None and time.monotonic() - start > timeout:
            raise TeacherError(f"run {run} is still {st.phase or 'pending'} after {timeout:.0f} s", f"keep watching with `gradeflow watch {run}`")
        sleep(poll)


def retry(backend: Backend, run: str) -> dict[str, Any]:
    """Re-run only the failed nodes of a finished, failed run (then score and merge again)."""
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if phase == "Succeeded":
        raise TeacherError(f"run {run} succeeded: there is nothing to retry", f"to grade again, use `gradeflow resubmit {run}` or submit a new run")
    if phase not in ("Failed", "Error"):
        raise TeacherError(f"run {run} is still {phase or 'pending'}", f"wait for it to finish (`gradeflow watch {run}`), then retry")
    return backend.retry_workflow(wf["metadata"]["name"])


def resubmit(backend: Backend, run: str, memoized: bool = False) -> dict[str, Any]:
    """Run a finished run again under a new workflow name, with the same run id and parameters.

    With `memoized`, nodes that succeeded are reused and only the others run (Argo requires
    the run to have failed); without, everything runs again.
    """
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if memoized and phase not in ("Failed", "Error"):
        raise TeacherError(f"a memoized resubmit needs a failed run; {run} is {phase or 'pending'}", f"resubmit without --memoized, or use `gradeflow retry {run}`")
    return backend.resubmit_workflow(wf["metadata"]["name"], memoized)


def _fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def pod_name(workflow: dict[str, Any], node: dict[str, Any]) -> str:
    """The pod name Argo gives a node (pod name format v2, or v1 = the node id)."""
    fmt = (workflow["metadata"].get("annotations") or {}).get("workflows.argoproj.io/pod-name-format", "v2")
    if fmt == "v1":
        return node["id"]
    wf_name = workflow["metadata"]["name"]
    if node["name"] == wf_name:
        return wf_name
    template = node.get("templateName") or (node.get("templateRef") or {}).get("template") or ""
    prefix = f"{wf_name}-{template}" if template else wf_name
    prefix = prefix[: 253 - 10 - 1]
    return f"{prefix}-{_fnv1a_32(node['name'].encode())}"


def _last_attempt(nodes: dict[str, dict[str, Any]], node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "Retry" and node.get("children"):
        attempts = [nodes[c] for c in node["children"] if c in nodes]
        if attempts:
            return max(attempts, key=lambda a: a.get("startedAt") or "")
    return node


def logs(backend: Backend, run: str, *, student: str | None = None, step: str | None = None, tail: int | None = 60) -> list[tuple[str, str]]:
    """The main-container logs of a run's failed nodes (or of one student's / one step's)."""
    wf = find_run(backend, run)
    st = run_status(wf)
    nodes = (wf.get("status") or {}).get("nodes") or {}
    chosen = [f for f in st.failed if (student is None or f.student == student) and (step is None or f.step == step)]
    if not chosen and (student or step):
        chosen = [
            FailedNode(n["templateName"], _param(n.get("inputs"), "student"), n.get("displayName", ""), n.get("phase", ""), "", n)
            for n in _units(nodes)
            if n.get("templateName") in STEP_ORDER and (student is None or _param(n.get("inputs"), "student") == student) and (step is None or n.get("templateName") == step)
        ]
    if not chosen:
        raise TeacherError(f"run {run} has no failed node" + (f" for {student or step}" if student or step else ""), "pass --student ID or --step NAME to read another node's log")
    out = []
    for f in chosen:
        text = backend.pod_logs(wf, _last_attempt(nodes, f.node))
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        out.append((f.display_name or f.step, text))
    return out


# --- sync ---------------------------------------------------------------------------------------


def _run_location(backend: Backend | None, run: str, store: str | None) -> tuple[str, str]:
    """(store URL of the run's prefix, run id) for a run name, or for a full run URL."""
    if "://" in run:
        url = run.rstrip("/")
        base, _, run_id = url.rpartition("/")
        return base, run_id
    store = store or os.environ.get("GRADEFLOW_ARGO_STORE")
    if not store:
        raise TeacherError(
            "sync needs the bucket of the gradeflow artifact repository",
            "pass --store s3://BUCKET (the bucket in argo/install/artifact-repositories.yaml) or set GRADEFLOW_ARGO_STORE",
        )
    if backend is None:
        raise TeacherError("sync needs the run's workflow to find its prefix", "pass a full run URL such as s3://BUCKET/gradeflow/RUN_ID instead")
    wf = find_run(backend, run)
    params = {p["name"]: p.get("value") for p in (wf.get("spec", {}).get("arguments", {}).get("parameters") or [])}
    prefix = params.get("store-prefix") or "gradeflow"
    return f"{store.rstrip('/')}/{prefix.strip('/')}", params.get("run-id") or wf["metadata"]["name"]


def sync(run: str, course_dir: str | Path, *, backend: Backend | None = None, store: str | None = None) -> dict[str, Any]:
    """Merge a finished run from the object store into the course: gradebook.db and autograded/.

    Downloads `<store>/<prefix>/<run-id>/` into a temporary workspace and calls
    `steps.merge.merge(workspace, course_dir)`, the merge the local runner uses; the run's
    results/ are also kept in COURSE_DIR/gradeflow_runs/<run-id>/results/.
    """
    from steps.merge import merge

    from .local import RUNS_DIR
    from .store import open_store

    course_dir = Path(course_dir)
    if not (course_dir / "gradebook.db").is_file():
        raise TeacherError(f"{course_dir} has no gradebook.db", "give the nbgrader course directory the run graded")
    base, run_id = _run_location(backend, run, store)
    st = open_store(base)
    with st.workspace(run_id) as ws:
        st.pull(run_id, ws)
        if not (ws / "manifest.json").is_file():
            raise TeacherError(f"{st.run_url(run_id)} has no manifest.json", "the run stopped before collect finished: nothing to merge")
        results = merge(ws, course_dir)
        keep = course_dir / RUNS_DIR / run_id / "results"
        shutil.copytree(ws / "results", keep, dirs_exist_ok=True)
    results["run_dir"] = st.run_url(run_id)
    return results


# --- the gradeflow subcommands --------------------------------------------------------------------


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Argo connection (default: the argo CLI's environment variables)")
    g.add_argument("--argo-server", default=None, help="Argo Server host:port (ARGO_SERVER); without it the Kubernetes API is used")
    g.add_argument("--argo-token", default=None, help="bearer token (ARGO_TOKEN)")
    g.add_argument("-n", "--namespace", default=None, help=f"namespace of the runs (ARGO_NAMESPACE, default {DEFAULT_NAMESPACE})")
    g.add_argument("--insecure-skip-verify", action="store_true", default=None, help="do not verify the server's TLS certificate (ARGO_INSECURE_SKIP_VERIFY)")
    g.add_argument("--argo-plaintext", dest="secure", action="store_false", default=None, help="plain http to the Argo Server (ARGO_SECURE=false)")
    g.add_argument("--kubernetes", dest="backend", action="store_const", const="kubernetes", default=None, help="use the Kubernetes API even if ARGO_SERVER is set")
    g.add_argument("--kube-context", default=None, help="kubeconfig context for the Kubernetes API")


def _backend(a: argparse.Namespace) -> Backend:
    settings = ArgoSettings.from_env(
        server=a.argo_server,
        token=a.argo_token,
        namespace=a.namespace,
        insecure_skip_verify=a.insecure_skip_verify,
        secure=a.secure,
        kube_context=a.kube_context,
    )
    return connect(settings, a.backend)


def _print_status(st: RunStatus) -> None:
    print("\n".join(st.lines()), flush=True)


def _cmd_submit(a: argparse.Namespace) -> int:
    if a.runner != "argo":
        raise TeacherError("`gradeflow submit` sends a run to a cluster and needs --argo", f"to grade on this machine run `gradeflow grade {a.course} {a.assignment}`")
    b = _backend(a)
    limits = {k: getattr(a, k.replace("-", "_")) for k in ("cell-timeout", "memory", "cpu-time", "wall-time", "cpu")}
    wf = submit(
        b,
        a.course,
        a.assignment,
        run_id=a.run_id,
        course_pvc=a.course_pvc,
        course_subpath=a.course_subpath,
        image=a.image,
        store_prefix=a.store_prefix,
        limits={k: v for k, v in limits.items() if v is not None},
        parallelism=a.parallelism,
        feedback=a.feedback,
        feedback_hidden_tests=a.feedback_hidden_tests if a.feedback else None,
    )
    name = wf["metadata"]["name"]
    print(f"submitted run {name} in namespace {b.namespace}")
    print(f"  watch: gradeflow watch {name}   then: gradeflow sync {name} COURSE_DIR --store s3://BUCKET")
    if a.watch:
        return _finish(wait(b, name, progress=_print_status, poll=a.poll))
    return 0


def _finish(st: RunStatus) -> int:
    if st.phase != "Succeeded":
        print(f"run {st.name} {st.phase.lower() or 'stopped'}: `gradeflow logs {st.name}` shows why; `gradeflow retry {st.name}` re-runs only what failed", file=sys.stderr)
        return 1
    return 0


def _cmd_status(a: argparse.Namespace) -> int:
    b = _backend(a)
    if not a.run:
        runs = list_runs(b, a.assignment)
        if not runs:
            print(f"no gradeflow runs in {b.where()}")
        for w in runs:
            st = run_status(w)
            ex = st.steps["execute"]
            print(f"{st.name:40} {st.phase or 'Pending':10} execute {ex.done}/{ex.total}" + (f", {ex.failed} failed" if ex.failed else ""))
        return 0
    st = run_status(find_run(b, a.run))
    if a.json:
        print(json.dumps({"name": st.name, "run_id": st.run_id, "phase": st.phase, "message": st.message, "steps": {k: vars(v) for k, v in st.steps.items()}, "failed": [{"step": f.step, "student": f.student, "message": f.message} for f in st.failed], "waiting": [{**vars(w), "hint": w.hint} for w in st.waiting], "summary": st.summary}, indent=1))
    else:
        _print_status(st)
    return 0


def _cmd_watch(a: argparse.Namespace) -> int:
    return _finish(wait(_backend(a), a.run, poll=a.poll, timeout=a.timeout, progress=_print_status))


def _cmd_retry(a: argparse.Namespace) -> int:
    b = _backend(a)
    wf = retry(b, a.run)
    print(f"retrying the failed nodes of {wf['metadata']['name']}; score and merge run again when they finish (`gradeflow watch {a.run}`)")
    return 0


def _cmd_resubmit(a: argparse.Namespace) -> int:
    b = _backend(a)
    wf = resubmit(b, a.run, a.memoized)
    print(f"resubmitted {a.run} as {wf['metadata'].get('name') or wf['metadata'].get('generateName')}" + (" (reusing what succeeded)" if a.memoized else ""))
    return 0


def _cmd_sync(a: argparse.Namespace) -> int:
    from steps.merge import summary_lines

    b = None if "://" in a.run else _backend(a)
    results = sync(a.run, a.course_dir, backend=b, store=a.store)
    print("\n".join(summary_lines(results)))
    print(f"gradebook: {Path(a.course_dir) / 'gradebook.db'} updated; results: {Path(a.course_dir) / 'gradeflow_runs' / results['run_id'] / 'results'}")
    return 0


def _cmd_logs(a: argparse.Namespace) -> int:
    for title, text in logs(_backend(a), a.run, student=a.student, step=a.step, tail=None if a.all else a.tail):
        print(f"==> {title} <==\n{text}\n")
    return 0


def _cmd_render(a: argparse.Namespace) -> int:
    print(render(a.directory))
    return 0


def add_argo_commands(subparsers: Any) -> None:
    """Add submit, status, watch, retry, resubmit, sync, logs and render to `gradeflow`."""
    from .cli import add_feedback_arguments

    s = subparsers.add_parser("submit", help="submit an assignment's grading to Argo Workflows (--argo)")
    s.add_argument("course", help="the course id (or its local directory; the cluster reads the course from --course-pvc)")
    s.add_argument("assignment", help="the assignment id, e.g. ps1")
    s.add_argument("--argo", dest="runner", action="store_const", const="argo", default=None, help="run on Argo Workflows (the only remote runner)")
    s.add_argument("--run-id", default=None, help="name of the run and of its folder in the store (default ASSIGNMENT-DATE-TIME)")
    s.add_argument("--course-pvc", default=None, help="PersistentVolumeClaim with the course (default gradeflow-course)")
    s.add_argument("--course-subpath", default=None, help="the course directory inside that volume")
    s.add_argument("--image", default=None, help="grader image (default: the template's)")
    s.add_argument("--store-prefix", default=None, help="prefix of the run in the bucket (default gradeflow)")
    s.add_argument("--parallelism", type=int, default=None, help=f"pods at once (default {DEFAULT_PARALLELISM})")
    for flag, what in (("cell-timeout", "seconds per cell"), ("memory", "MiB per submission"), ("cpu-time", "CPU seconds per process"), ("wall-time", "seconds per submission"), ("cpu", "CPU limit of an execute pod")):
        s.add_argument(f"--{flag}", default=None, help=what)
    add_feedback_arguments(s)
    s.add_argument("--watch", action="store_true", help="follow the run until it finishes")
    s.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    _add_connection(s)
    s.set_defaults(func=_cmd_submit)

    st = subparsers.add_parser("status", help="a run's progress per step and its failed submissions (no RUN: list runs)")
    st.add_argument("run", nargs="?", help="run id or workflow name")
    st.add_argument("--assignment", default=None, help="list only this assignment's runs")
    st.add_argument("--json", action="store_true", help="machine-readable")
    _add_connection(st)
    st.set_defaults(func=_cmd_status)

    w = subparsers.add_parser("watch", help="follow a run until it finishes (done/failed/running per step)")
    w.add_argument("run")
    w.add_argument("--poll", type=float, default=5.0, help="seconds between polls")
    w.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    _add_connection(w)
    w.set_defaults(func=_cmd_watch)

    r = subparsers.add_parser("retry", help="re-run only the failed nodes of a failed run, then score and merge again")
    r.add_argument("run")
    _add_connection(r)
    r.set_defaults(func=_cmd_retry)

    rs = subparsers.add_parser("resubmit", help="run a finished run again (same run id and parameters)")
    rs.add_argument("run")
    rs.add_argument("--memoized", action="store_true", help="reuse what succeeded; only for a failed run")
    _add_connection(rs)
    rs.set_defaults(func=_cmd_resubmit)

    sy = subparsers.add_parser("sync", help="merge a finished run from the store into the course's gradebook.db")
    sy.add_argument("run", help="run id, workflow name, or the run's URL (s3://BUCKET/PREFIX/RUN_ID)")
    sy.add_argument("course_dir", type=Path, help="the nbgrader course directory (holds gradebook.db)")
    sy.add_argument("--store", default=None, help="the artifact repository's bucket, e.g. s3://gradeflow (GRADEFLOW_ARGO_STORE); credentials and endpoint from AWS_* variables")
    _add_connection(sy)
    sy.set_defaults(func=_cmd_sync)

    lg = subparsers.add_parser("logs", help="logs of a run's failed nodes (or of one student's or step's)")
    lg.add_argument("run")
    lg.add_argument("--student", default=None)
    lg.add_argument("--step", default=None, choices=STEP_ORDER)
    lg.add_argument("--tail", type=int, default=60, help="last N lines per node (default 60)")
    lg.add_argument("--all", action="store_true", help="whole logs")
    _add_connection(lg)
    lg.set_defaults(func=_cmd_logs)

    rd = subparsers.add_parser("render", help="write the WorkflowTemplate YAML (argo/workflowtemplate.yaml)")
    rd.add_argument("directory", nargs="?", default="argo")
    rd.set_defaults(func=_cmd_render)
