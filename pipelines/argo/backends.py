"""How gradeflow reaches Argo: settings, the `server` and `kubernetes` backends, pod names.

Registered by name in `BACKENDS`; `connect()` picks `server` when an Argo Server is configured
and `kubernetes` otherwise. Every backend returns Workflows as plain dicts with their node
status decoded (`status.nodes`, also when Argo stored it as `compressedNodes`), and words
Argo's refusals for a teacher in one place (`Backend.explain`).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

from steps.errors import NotFound, TeacherError, Unreachable

__all__ = [
    "ArgoSettings",
    "Backend",
    "ArgoServerBackend",
    "KubernetesBackend",
    "BACKENDS",
    "connect",
    "pod_name",
    "decode_nodes",
    "resubmitted",
    "DEFAULT_NAMESPACE",
]

DEFAULT_NAMESPACE = "gradeflow"
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


def decode_nodes(workflow: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`workflow` with `status.nodes` filled in, as Argo's packer.DecompressWorkflow does.

    A Workflow larger than the controller's MAX_WORKFLOW_SIZE (1 MiB; a class of a few hundred)
    is stored with `status.compressedNodes`: base64 (StdEncoding) of the node map's JSON,
    compressed with gzip (util/file CompressEncodeString; Argo 4.1+ may be configured with
    WORKFLOW_COMPRESSION_ALGORITHM=zstd or brotli, detected by magic bytes as Argo does).
    Still too large, the controller offloads the nodes to its database
    (`status.offloadNodeStatusVersion`), which only the Argo Server reads back.
    """
    status = workflow.get("status") or {}
    if status.get("nodes") or not (status.get("compressedNodes") or status.get("offloadNodeStatusVersion")):
        return workflow
    name = (workflow.get("metadata") or {}).get("name", "?")
    if not status.get("compressedNodes"):
        raise TeacherError(
            f"the node status of run {name} is offloaded to Argo's database (the Workflow outgrew etcd's limit), which only the Argo Server reads",
            "use the Argo Server (set ARGO_SERVER, e.g. kubectl -n argo port-forward svc/argo-server 2746:2746); "
            f"`gradeflow sync {name} COURSE_DIR --store s3://BUCKET` needs neither",
        )
    raw = base64.b64decode(status["compressedNodes"])
    if raw.startswith(_GZIP):
        text = gzip.decompress(raw)
    else:
        algorithm, module = ("zstd", "zstandard") if raw.startswith(_ZSTD) else ("brotli", "brotli")
        try:
            lib = __import__(module)
        except ImportError:
            raise TeacherError(
                f"the node status of run {name} is compressed with {algorithm} (the controller's WORKFLOW_COMPRESSION_ALGORITHM)",
                f"pip install {module}, use the Argo Server (ARGO_SERVER), or leave the controller at the default gzip",
            ) from None
        text = lib.ZstdDecompressor().decompressobj().decompress(raw) if module == "zstandard" else lib.decompress(raw)
    nodes = json.loads(text)
    return {**workflow, "status": {**{k: v for k, v in status.items() if k != "compressedNodes"}, "nodes": nodes}}


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
            raise TeacherError(
                "no Argo Server configured", "set ARGO_SERVER=host:port (e.g. localhost:2746) or pass --argo-server"
            )
        base = self.server if "://" in self.server else f"{'https' if self.secure else 'http'}://{self.server}"
        href = self.base_href.strip("/")
        return base.rstrip("/") + "/" + (href + "/" if href else "")


# --- backends -----------------------------------------------------------------------------------


class Backend:
    """One way to talk to Argo. Subclasses implement the calls; the base class words the errors."""

    name: ClassVar[str] = ""

    def __init__(self, settings: ArgoSettings) -> None:
        self.settings = settings
        self.archived: dict[str, str] = {}  # run name -> uid of runs read from the archive

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

    def server_version(self) -> str | None:
        """The Argo Server's version ("v3.7.2"); None when this backend cannot tell."""
        return None

    def find_archived(self, label_selector: str) -> dict[str, Any] | None:
        """The newest run with these labels in Argo's workflow archive (after the cluster deleted
        it), or None: no archive, or not there. Sets `archived[name] = uid`."""
        return None

    def retry_archived(self, uid: str) -> dict[str, Any]:
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
            return NotFound(
                f"{what} was not found in {self.where()}",
                "check the name with `gradeflow status` and the namespace with -n / ARGO_NAMESPACE",
            )
        if status == 409:
            return TeacherError(
                f"{what} already exists in {self.where()}",
                "choose another run id (--run-id) or leave it out to get a fresh one",
            )
        if status is None:
            return Unreachable(f"cannot reach Argo to {action}: {detail.strip()[:300]}", self.reach_hint())
        return TeacherError(
            f"Argo refused to {action} (HTTP {status}): {detail.strip()[:400]}",
            "see the Argo Server / workflow-controller logs for details",
        )

    def reach_hint(self) -> str:
        return (
            "check ARGO_SERVER, or port-forward the Argo Server: kubectl -n argo port-forward svc/argo-server 2746:2746"
        )


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
        from hera.workflows.models import Workflow as WorkflowModel
        from hera.workflows.models import WorkflowCreateRequest

        req = WorkflowCreateRequest(workflow=WorkflowModel.model_validate(body), namespace=self.namespace)
        return self._dict(
            self._call(
                "submit a workflow",
                f"workflow {body['metadata'].get('name')}",
                lambda: self.service.create_workflow(req),
            )
        )

    def get_workflow(self, name: str) -> dict[str, Any]:
        return decode_nodes(
            self._dict(self._call("read the run", f"run {name!r}", lambda: self.service.get_workflow(name)))
        )

    def list_workflows(self, label_selector: str) -> list[dict[str, Any]]:
        res = self._call(
            "list runs", "the run list", lambda: self.service.list_workflows(label_selector=label_selector)
        )
        return [self._dict(w) for w in (res.items or [])]

    def _get_json(self, path: str, params: dict[str, str], action: str, what: str) -> Any:
        """GET an API path and return its JSON as is (for answers Hera's models would reject)."""
        import requests

        svc = self.service
        try:
            resp = svc.session.get(
                f"{self.settings.url}{path}",
                params=params,
                headers={"Authorization": svc.token} if svc.token else {},
                verify=svc.verify_ssl,
            )
        except requests.exceptions.ConnectionError as e:
            raise self.explain(None, str(e), action, what) from None
        except _UnreadableError as e:
            raise self.explain(e.status, e.detail, action, what) from None
        if not resp.ok:
            raise self.explain(resp.status_code, resp.text, action, what)
        return resp.json()

    def server_version(self) -> str | None:
        try:
            return self._get_json("api/v1/version", {}, "read the Argo Server's version", "the version endpoint").get(
                "version"
            )
        except NotFound:
            return None

    def find_archived(self, label_selector: str) -> dict[str, Any] | None:
        # Without persistence the server answers with an empty list (or an error on old releases).
        # Read raw: the archive's list holds only metadata, status and spec.arguments
        # (persist/sqldb/workflow_archive.go ListWorkflows), less than Hera's Workflow model requires.
        try:
            listing = self._get_json(
                "api/v1/archived-workflows",
                {"listOptions.labelSelector": label_selector, "namespace": self.namespace},
                "list archived runs",
                "the archive",
            )
        except TeacherError:
            return None  # no archive to ask is the same as not archived
        items = (listing or {}).get("items") or []
        if not items:
            return None
        newest = max(items, key=lambda w: w["metadata"].get("creationTimestamp") or "")
        uid = newest["metadata"]["uid"]
        wf = decode_nodes(
            self._dict(
                self._call(
                    "read the archived run",
                    f"archived run {newest['metadata']['name']!r}",
                    lambda: self.service.get_archived_workflow(uid, namespace=self.namespace),
                )
            )
        )
        self.archived[wf["metadata"]["name"]] = uid
        return wf

    def retry_archived(self, uid: str) -> dict[str, Any]:
        from hera.workflows.models import RetryArchivedWorkflowRequest

        req = RetryArchivedWorkflowRequest(uid=uid, namespace=self.namespace, restart_successful=False)
        return self._dict(
            self._call(
                "retry the archived run", f"archived run {uid}", lambda: self.service.retry_archived_workflow(uid, req)
            )
        )

    def get_workflow_template(self, name: str) -> dict[str, Any]:
        return self._dict(
            self._call(
                "read the WorkflowTemplate",
                f"WorkflowTemplate {name}",
                lambda: self.service.get_workflow_template(name),
            )
        )

    def retry_workflow(self, name: str) -> dict[str, Any]:
        from hera.workflows.models import WorkflowRetryRequest

        # restartSuccessful=false: only failed and errored nodes run again
        req = WorkflowRetryRequest(name=name, namespace=self.namespace, restart_successful=False)
        return self._dict(self._call("retry the run", f"run {name!r}", lambda: self.service.retry_workflow(name, req)))

    def resubmit_workflow(self, name: str, memoized: bool) -> dict[str, Any]:
        from hera.workflows.models import WorkflowResubmitRequest

        req = WorkflowResubmitRequest(name=name, namespace=self.namespace, memoized=memoized)
        return self._dict(
            self._call("resubmit the run", f"run {name!r}", lambda: self.service.resubmit_workflow(name, req))
        )

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
                resp = svc.session.get(
                    url, params=params, headers={"Authorization": svc.token} if svc.token else {}, verify=svc.verify_ssl
                )
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
            lambda: self.custom.create_namespaced_custom_object(
                self.group, self.version, self.namespace, "workflows", body
            ),
        )

    def get_workflow(self, name: str) -> dict[str, Any]:
        wf = self._call(
            "read the run",
            f"run {name!r}",
            lambda: self.custom.get_namespaced_custom_object(
                self.group, self.version, self.namespace, "workflows", name
            ),
        )
        return decode_nodes(wf)

    def list_workflows(self, label_selector: str) -> list[dict[str, Any]]:
        res = self._call(
            "list runs",
            "the run list",
            lambda: self.custom.list_namespaced_custom_object(
                self.group, self.version, self.namespace, "workflows", label_selector=label_selector
            ),
        )
        out = []
        for wf in res.get("items", []):
            try:
                out.append(decode_nodes(wf))
            except TeacherError:  # offloaded: listed without nodes; reading the run itself says what to do
                out.append(wf)
        return out

    def get_workflow_template(self, name: str) -> dict[str, Any]:
        return self._call(
            "read the WorkflowTemplate",
            f"WorkflowTemplate {name}",
            lambda: self.custom.get_namespaced_custom_object(
                self.group, self.version, self.namespace, "workflowtemplates", name
            ),
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
        return self.create_workflow(resubmitted(self.get_workflow(name)))

    def pod_logs(self, workflow: dict[str, Any], node: dict[str, Any], container: str = "main") -> str:
        name = workflow["metadata"]["name"]
        pods = self._call(
            "list the run's pods",
            f"pods of {name}",
            lambda: self.core.list_namespaced_pod(
                self.namespace, label_selector=f"workflows.argoproj.io/workflow={name}"
            ),
        )
        wanted = {node.get("id"), pod_name(workflow, node)}
        for pod in pods.items:
            annotations = pod.metadata.annotations or {}
            if pod.metadata.name in wanted or annotations.get("workflows.argoproj.io/node-id") in wanted:
                return self._call(
                    "read logs",
                    f"pod {pod.metadata.name}",
                    lambda: self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace, container=container),
                )
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


def resubmitted(old: dict[str, Any]) -> dict[str, Any]:
    """The Workflow a plain resubmit creates, as Argo's FormulateResubmitWorkflow
    (workflow/util/util.go) builds it: the same spec, parameters and run id, without
    `spec.shutdown` (a stopped run would stop at once) and without an `activeDeadlineSeconds`
    of 0 (how `argo terminate` ended it); user labels and annotations carried over."""
    meta = old["metadata"]
    spec = {k: v for k, v in old["spec"].items() if k != "shutdown"}
    if spec.get("activeDeadlineSeconds") in (0, "0"):
        del spec["activeDeadlineSeconds"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("workflows.argoproj.io/")}
    labels["workflows.argoproj.io/resubmitted-from-workflow"] = meta["name"]
    new_meta: dict[str, Any] = {"generateName": meta.get("generateName") or f"{meta['name']}-", "labels": labels}
    if meta.get("annotations"):
        new_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": new_meta, "spec": spec}


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
