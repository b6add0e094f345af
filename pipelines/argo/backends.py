"""What every way of reaching Argo shares: the `Backend` base class, and the Workflow helpers
its backends use (decoding compressed node status, pod names, a resubmitted Workflow).

The backends themselves are `server.ArgoServerBackend` and `kube.KubernetesBackend`; which one
a teacher gets is `settings.connect()`'s choice. Every backend returns Workflows as plain dicts
with their node status decoded (`status.nodes`, also when Argo stored it as
`compressedNodes`), and words Argo's refusals for a teacher in one place (`Backend.explain`).
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import TYPE_CHECKING, Any, ClassVar

from steps.errors import NotFound, TeacherError, Unreachable

if TYPE_CHECKING:
    from .settings import ArgoSettings

__all__ = ["Backend", "pod_name", "decode_nodes", "resubmitted"]

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
            f"the node status of run {name} is offloaded to Argo's database (the Workflow outgrew etcd's limit), "
            "which only the Argo Server reads",
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
                f"the node status of run {name} is compressed with {algorithm} (the controller's "
                "WORKFLOW_COMPRESSION_ALGORITHM)",
                f"pip install {module}, use the Argo Server (ARGO_SERVER), or leave the controller at the default gzip",
            ) from None
        text = lib.ZstdDecompressor().decompressobj().decompress(raw) if module == "zstandard" else lib.decompress(raw)
    nodes = json.loads(text)
    return {**workflow, "status": {**{k: v for k, v in status.items() if k != "compressedNodes"}, "nodes": nodes}}


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
                f'ARGO_TOKEN="Bearer $(kubectl -n {ns} create token gradeflow-submitter)" (see docs/argo.md, '
                "'Access')",
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
