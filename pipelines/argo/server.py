"""The `server` backend: the Argo Server's REST API through Hera's WorkflowsService."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable

from steps.errors import NotFound, TeacherError

from .backends import Backend, decode_nodes, pod_name

if TYPE_CHECKING:
    from .settings import ArgoSettings

__all__ = ["ArgoServerBackend"]


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
                "for a self-signed certificate set ARGO_INSECURE_SKIP_VERIFY=true; for a plain-http server set "
                "ARGO_SECURE=false",
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
