"""The `kubernetes` backend: Workflow custom resources through the Kubernetes API, with a
kubeconfig or the in-cluster account, for a cluster whose Argo Server is not exposed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from steps.errors import TeacherError

from .backends import Backend, decode_nodes, pod_name, resubmitted

if TYPE_CHECKING:
    from .settings import ArgoSettings

__all__ = ["KubernetesBackend"]


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
            if settings.in_cluster:
                config.load_incluster_config()
                return client.ApiClient()
            return config.new_client_from_config(config_file=settings.kubeconfig, context=settings.kube_context)
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
            f"set ARGO_SERVER (kubectl -n argo port-forward svc/argo-server 2746:2746), or run `argo retry {name} "
            f"-n {self.namespace}`",
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
            "Argo deletes a run's pods when it is retried or deleted; the step's own log is in the store: "
            "`gradeflow sync` fetches it",
        )
