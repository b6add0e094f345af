"""How big a run of N submissions makes Argo's objects, measured on a model of the controller.

Argo keeps a whole run in ONE Kubernetes object, and its memoization cache in ConfigMaps; both
have hard size limits that a big class reaches long before the cluster runs out of nodes. No
cluster is needed to see where: this module walks the rendered WorkflowTemplate (the dict
`build_template().to_dict()` gives, or argo/workflowtemplate.yaml) the way the controller
does for a run in which every pod succeeds, builds the node statuses, the memoization entries
and the artifact transfers it would write, and measures them against the real limits:

=====================  ==========  ================================================================
limit                  value       where it is decided
=====================  ==========  ================================================================
workflow object        1 MiB       argoproj/argo-workflows workflow/packer/packer.go:
                                   ``getMaxWorkflowSize``: env MAX_WORKFLOW_SIZE, default
                                   ``1024 * 1024``, against ``len(json.Marshal(wf))`` (the WHOLE
                                   object). ``CompressWorkflowIfNeeded`` then moves status.nodes
                                   into status.compressedNodes (gzip + base64,
                                   util/file ``CompressEncodeString``); still too large, the
                                   hydrator (workflow/hydrator/hydrator.go ``Dehydrate``) offloads
                                   to the persistence DB, and without one
                                   (persist/sqldb/explosive_offload_node_status_repo.go) the run
                                   errors: "offload node status is not supported".
                                   ``ALWAYS_OFFLOAD_NODE_STATUS`` skips compression (DB only).
etcd request           1.5 MiB     etcd server/embed/config.go ``DefaultMaxRequestBytes = 1.5 *
                                   1024 * 1024``: any one object (a WorkflowTaskResult, a
                                   ConfigMap with its keys) in a cluster that keeps the default.
memoization ConfigMap  1 MiB       kubernetes pkg/apis/core/validation/validation.go
                                   ``ValidateConfigMap``: the sum of ``len(value)`` over data and
                                   binaryData must not exceed ``core.MaxSecretSize``
                                   (pkg/apis/core/types.go ``MaxSecretSize = 1 * 1024 * 1024``);
                                   Argo docs/memoization.md FAQ quotes the error. A failed save
                                   turns the pod's node into an Error
                                   (workflow/controller/operator.go, "Failed to save node outputs
                                   to cache").
withParam output       256 KiB     the strictest bound on the fan-out list that applies to a
                                   supported Argo: an output parameter read from a file
                                   (``valueFrom.path``, executor.go ``SaveParameters``) has no size
                                   check of its own in v3.5+; it travels in a WorkflowTaskResult
                                   (executor/taskresult.go, etcd's 1.5 MiB), then sits in the
                                   restore node's outputs and, with ``globalName``, again in
                                   status.outputs (the 1 MiB above). On v3.5, an executor that may
                                   not write task results falls back to the pod annotation
                                   ``workflows.argoproj.io/outputs`` (executor.go ``reportResult``),
                                   which Kubernetes caps with all annotations at
                                   ``TotalAnnotationSizeLimitB int = 256 * (1 << 10)``
                                   (k8s.io/apimachinery pkg/api/validation/objectmeta.go); the
                                   executor's own cap on ``outputs.result`` is the same 256 kB
                                   (executor.go ``maxAnnotationSize``).
=====================  ==========  ================================================================

What the model fills in, per node, is what NodeStatus holds
(pkg/apis/workflow/v1alpha1/workflow_types.go) and the controller sets: ``initializeNode``
(id = ``Workflow.NodeID``: the name's FNV-32a, name, displayName, type, templateName,
templateScope, phase, boundaryID, startedAt, finishedAt, message), a Retry node over each pod of
a template with a retryStrategy (``executeTemplate``), a TaskGroup over a ``withParam`` fan-out
with one node per item named ``task(i:key:value,...)`` (dag.go ``expandTask``, operator.go
``processItem``/``generateNodeName``), Skipped nodes for a false ``when`` and Omitted ones for an
unmet ``depends`` (dag.go ``executeDAGTask``), memoizationStatus and cache-hit nodes
(operator.go, ``initializeCacheHitNode``), and on pods the outputs the executor reports (every
artifact with the artifact repository's location, output parameters, exitCode), the
inputs, hostNodeName, resourcesDuration, progress and taskResultSynced. Workflow-level status:
storedWorkflowTemplateSpec (the template, stored whole by a workflowTemplateRef), outputs
(global parameters), conditions, artifactRepositoryRef, and for Argo 3.x the
taskResultsCompletionStatus map (one entry per pod, outside the compressed nodes).

What it leaves out: managedFields (the controller's informer strips them,
util/informer/transform.go, so the packer never counts them; etcd does, inside its 0.5 MiB of
extra room), retries and failures (each retry adds one pod node), and events.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from argo_emulator import depends_satisfied, evaluate, substitute

__all__ = [
    "LIMITS",
    "FILES_PER_SUBMISSION",
    "Measurement",
    "simulate",
    "compress_nodes",
    "fnv32a",
    "students",
]

KiB = 1024
MiB = 1024 * KiB
LIMITS = {
    "workflow": 1 * MiB,  # packer.go getMaxWorkflowSize default, json.Marshal(wf)
    "etcd": int(1.5 * MiB),  # etcd DefaultMaxRequestBytes
    "configmap": 1 * MiB,  # core.MaxSecretSize, ValidateConfigMap: sum of len(value)
    "withparam": 256 * KiB,  # TotalAnnotationSizeLimitB (v3.5 fallback), executor maxAnnotationSize
}
# The margin a design must keep under each limit: a run with retries adds a pod node per retry,
# students' ids may be longer than the model's, and the cluster may set lower limits.
MARGIN = 0.5

# Objects per submission under each per-student artifact directory, and per run for the rest,
# as the example course leaves them (bench/argo_scale.py measures them again on a real run and
# records them next to its results; 2026-12-01: these): submissions/<s>/ holds the two
# notebooks, a data file and timestamp.txt,
# restored/<s>/ restore.json and work/ (notebooks, data), executed/<s>/ execute.json, the log
# and the executed notebooks, scored/<s>/ score.json and the graded notebooks.
FILES_PER_SUBMISSION = {"submissions": 4, "restored": 5, "executed": 4, "scored": 3, "feedback": 3}
FILES_PER_RUN = {"results": 5}  # results.json, grades.csv, cells.csv, summary.txt, report.html

T0 = datetime(2026, 12, 1, 10, 15, tzinfo=timezone.utc)


def fnv32a(text: str) -> int:
    """Go's hash/fnv New32a, which Workflow.NodeID uses."""
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compress_nodes(nodes: Mapping[str, Any]) -> str:
    """status.compressedNodes as Argo writes it: base64(gzip(json.Marshal(nodes)))."""
    raw = json.dumps(nodes, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode()


def _size(obj: Any) -> int:
    # Go's json.Marshal: no spaces; map keys sorted (the sizes are the same either way)
    return len(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


def students(n: int, seed: int = 15, length: int = 8) -> list[dict[str, str]]:
    """n fan-out items as restore emits them: a student id and a sha256 of the work dir.

    Ids are `length` characters of [a-z0-9], 8 by default (a campus login such as `jd4821ab`).
    Longer ids make every node name longer: at 405 submissions, 24-character ids add 11 % to the
    compressed status (497 to 552 KB), well inside the margin."""
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    out, seen = [], set()
    while len(out) < n:
        sid = "".join(rnd.choice(alphabet) for _ in range(length))
        if sid in seen:
            continue
        seen.add(sid)
        out.append({"student": sid, "work-hash": hashlib.sha256(sid.encode()).hexdigest()})
    return sorted(out, key=lambda d: d["student"])


@dataclass
class Measurement:
    """What one simulated run writes, and its sizes against each limit."""

    submissions: int
    scenario: str
    argo: str
    nodes: int = 0
    pods: int = 0
    pods_by_template: dict[str, int] = field(default_factory=dict)
    workflow_plain: int = 0  # len(json.Marshal(wf)) with status.nodes
    workflow_compressed: int = 0  # the same with status.compressedNodes instead
    nodes_plain: int = 0
    nodes_compressed: int = 0
    withparam: dict[str, int] = field(default_factory=dict)  # task -> bytes of its largest withParam list
    task_result_max: int = 0  # the largest WorkflowTaskResult one pod writes
    shards: int = 0  # Workflows the class is graded in
    largest_shard: int = 0  # submissions in the biggest of them
    configmaps: dict[str, int] = field(default_factory=dict)  # cache name -> sum of len(value)
    configmap_run: dict[str, int] = field(default_factory=dict)  # of which written by the measured run
    configmap_entries: dict[str, int] = field(default_factory=dict)
    configmap_etcd: dict[str, int] = field(default_factory=dict)  # with keys and metadata
    s3: dict[str, int] = field(default_factory=dict)  # GET, HEAD, LIST, PUT
    s3_by_template: dict[str, int] = field(default_factory=dict)
    s3_per_pod: dict[str, int] = field(
        default_factory=dict
    )  # template -> requests of its busiest pod (Argo's init and wait containers move objects one by one)

    @property
    def s3_total(self) -> int:
        return sum(self.s3.values())

    @property
    def configmap_max(self) -> int:
        return max(self.configmaps.values(), default=0)

    @property
    def withparam_max(self) -> int:
        return max(self.withparam.values(), default=0)

    def checks(self, margin: float = MARGIN) -> dict[str, tuple[int, int, bool]]:
        """Each measured size, its limit, and whether it stays under limit × (1 - margin)."""
        rows = {
            "workflow object (compressed nodes)": (self.workflow_compressed, LIMITS["workflow"]),
            "withParam list": (self.withparam_max, LIMITS["withparam"]),
            "memoization ConfigMap": (self.configmap_max, LIMITS["configmap"]),
            "largest WorkflowTaskResult": (self.task_result_max, LIMITS["etcd"]),
            "memoization ConfigMap in etcd": (max(self.configmap_etcd.values(), default=0), LIMITS["etcd"]),
        }
        return {k: (v, lim, v <= lim * (1 - margin)) for k, (v, lim) in rows.items()}

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["s3_total"] = self.s3_total
        d["checks"] = {
            k: {"bytes": v, "limit": lim, "fits_with_margin": ok} for k, (v, lim, ok) in self.checks().items()
        }
        return d


# --- the controller model -----------------------------------------------------------------------

# Seconds per submission of the class steps and of a pod's own overhead: they only shape the
# startedAt/finishedAt stamps the nodes carry (bench/argo_scale.py measures the steps' times).
_STEP_SECONDS = {"collect": 20.0, "restore": 0.14, "score": 0.14, "feedback": 1.2, "merge": 0.05}
_POD_OVERHEAD = 8.0
_HOSTS = [f"ip-10-0-{i // 8}-{17 + 13 * i}.ec2.internal" for i in range(24)]


class _Run:
    """One run of the template in the controller, with every pod succeeding."""

    def __init__(
        self,
        template: Mapping[str, Any],
        workflow: Mapping[str, Any],
        items: Sequence[Mapping[str, str]],
        *,
        scenario: str,
        argo: str,
        cache: dict[str, dict[str, str]] | None,
        files: Mapping[str, int],
        store: set[str] | None = None,
    ) -> None:
        self.template = template
        self.spec = template["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.workflow = workflow
        self.name = workflow["metadata"]["name"]
        declared = {p["name"]: p.get("value") for p in self.spec["arguments"]["parameters"]}
        given = {p["name"]: p.get("value") for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
        self.params = {**declared, **given}
        self.scope: dict[str, Any] = {f"workflow.parameters.{k}": v for k, v in self.params.items()}
        self.scope["workflow.name"] = self.name
        self.items = list(items)
        self.scenario = scenario
        self.argo = argo
        self.cache = cache if cache is not None else {}
        self.files = files
        self.store = store if store is not None else set()  # keys uploaded so far, and their parent prefixes
        self.nodes: dict[str, dict[str, Any]] = {}
        self.clock = T0
        self.pods: dict[str, int] = {}
        self.s3 = {"GET": 0, "HEAD": 0, "LIST": 0, "PUT": 0}
        self.s3_by_template: dict[str, int] = {}
        self.s3_per_pod: dict[str, int] = {}
        self.withparam: dict[str, int] = {}
        self.task_result_max = 0
        self.global_outputs: list[dict[str, Any]] = []
        self.pod_ids: list[str] = []
        self.pods_in: dict[str, int] = {}  # boundary (DAG) id -> pods in it
        self.rnd = random.Random(self.name)
        self.repo = {
            "endpoint": "minio.argo.svc.cluster.local:9000",
            "bucket": "gradeflow",
            "insecure": True,
            "accessKeySecret": {"name": "gradeflow-s3-credentials", "key": "accesskey"},
            "secretKeySecret": {"name": "gradeflow-s3-credentials", "key": "secretkey"},
        }

    # -- nodes ----------------------------------------------------------------------------------
    def node_id(self, name: str) -> str:
        return self.name if name == self.name else f"{self.name}-{fnv32a(name)}"

    def _ts(self, t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def add(
        self,
        name: str,
        type_: str,
        template: str | None,
        boundary: str | None,
        phase: str,
        message: str = "",
        **extra: Any,
    ) -> dict[str, Any]:
        nid = self.node_id(name)
        boundary_node = self.nodes.get(boundary or "")
        display = name[len(boundary_node["name"]) :] if boundary_node else name
        display = re.sub(r"^[.\[\]0-9]+", "", display) if boundary_node else display
        n: dict[str, Any] = {
            "id": nid,
            "name": name,
            "displayName": display,
            "type": type_,
            "phase": phase,
            "startedAt": self._ts(self.clock),
        }
        if template:
            n["templateName"] = template
            n["templateScope"] = f"namespaced/{self.workflow['spec']['workflowTemplateRef']['name']}"
        if boundary:
            n["boundaryID"] = boundary
        if message:
            n["message"] = message
        if phase in ("Skipped", "Omitted"):
            n["finishedAt"] = n["startedAt"]
        if self.scenario == "regrade" and type_ in ("Pod", "Retry", "DAG", "TaskGroup"):
            n["estimatedDuration"] = self.rnd.randint(8, 400)  # from the previous run (estimateNodeDuration)
        n.update(extra)
        self.nodes[nid] = n
        return n

    def child(self, parent: dict[str, Any], kid: dict[str, Any]) -> None:
        parent.setdefault("children", [])
        if kid["id"] not in parent["children"]:
            parent["children"].append(kid["id"])

    def finish(
        self, n: dict[str, Any], seconds: float, outputs: dict[str, Any] | None = None, phase: str = "Succeeded"
    ) -> None:
        start = datetime.strptime(n["startedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        n["finishedAt"] = self._ts(start + timedelta(seconds=seconds))
        n["phase"] = phase
        if outputs:
            n["outputs"] = outputs

    # -- S3 -------------------------------------------------------------------------------------
    def _objects(self, key: str) -> int:
        """How many objects a key holds: one for a file, the directory's files otherwise."""
        base = key.rstrip("/").rsplit("/", 1)[-1]
        parts = key.rstrip("/").split("/")
        for d, per in self.files.items():
            if d in parts:
                idx = parts.index(d)
                return per if idx < len(parts) - 1 else per * len(self.items)
        if base in FILES_PER_RUN:
            return FILES_PER_RUN[base]
        return 1

    def _count(self, template: str, verb: str, k: int = 1) -> None:
        self.s3[verb] += k
        self.s3_by_template[template] = self.s3_by_template.get(template, 0) + k

    def download(self, template: str, art: Mapping[str, Any], key: str) -> None:
        """The S3 driver's loadS3Artifact: FGetObject (a HEAD then a GET); on NoSuchKey, IsDirectory
        (one LIST), then ListDirectory (a LIST per 1,000 keys) and an FGetObject per object."""
        if "raw" in art:
            return
        parts = key.split("/")
        if key not in self.store and not any(
            "/".join(parts[:i]) + "\0" in self.store for i in range(1, len(parts) + 1)
        ):
            self._count(template, "HEAD")  # an optional input that no pod wrote: NoSuchKey,
            self._count(template, "LIST")  # then IsDirectory finds nothing
            return
        n = self._objects(key)
        is_dir = "." not in key.rsplit("/", 1)[-1]
        if not is_dir:
            self._count(template, "HEAD")
            self._count(template, "GET")
            return
        self._count(template, "HEAD")  # FGetObject's stat: NoSuchKey
        self._count(template, "LIST")  # IsDirectory
        self._count(template, "LIST", max(1, math.ceil(n / 1000)))
        self._count(template, "HEAD", n)
        self._count(template, "GET", n)

    def upload(self, template: str, key: str) -> None:
        """saveS3Artifact: PutFile, or PutDirectory with one PutFile per file (one PUT each under
        the multipart threshold)."""
        self._count(template, "PUT", self._objects(key))
        parts = key.split("/")
        self.store.add(key + "\0")  # an uploaded key: everything under it exists
        self.store.update("/".join(parts[:i]) for i in range(1, len(parts)))  # its parents hold something

    # -- templates ------------------------------------------------------------------------------
    def run_template(
        self,
        name: str,
        node_name: str,
        boundary: str | None,
        params: Mapping[str, str],
        arts_from: Mapping[str, dict[str, Any]],
    ) -> dict[str, Any]:
        t = self.templates[name]
        if "dag" in t:
            return self.run_dag(t, node_name, boundary, params)
        return self.run_container(t, node_name, boundary, params, arts_from)

    def _outputs(self, t: Mapping[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
        outs = t.get("outputs") or {}
        out: dict[str, Any] = {}
        arts = []
        for a in outs.get("artifacts", []) or []:
            a = json.loads(substitute(json.dumps(a), scope))
            if "s3" in a:
                a["s3"] = {**self.repo, **a["s3"]}  # the executor reports the full location
            arts.append(a)
        params = []
        for p in outs.get("parameters", []) or []:
            p = json.loads(substitute(json.dumps(p), scope))
            if "valueFrom" in p:
                p["value"] = self.file_value(t["name"], p)
            params.append(p)
            if p.get("globalName"):
                self.global_outputs = [g for g in self.global_outputs if g["name"] != p["globalName"]] + [
                    {"name": p["globalName"], "value": p["value"]}
                ]
        if params:
            out["parameters"] = params
        if arts:
            out["artifacts"] = arts
        out["exitCode"] = "0"
        return out

    def file_value(self, template: str, p: Mapping[str, Any]) -> str:
        """What a pod writes to an output parameter's file."""
        path = p["valueFrom"]["path"]
        if path.endswith("students.json"):
            return json.dumps(self.items, indent=1)  # steps.records.write_json
        if path.endswith("summary.txt"):
            return f"{len(self.items)} submissions: {len(self.items)} graded, 0 failed, 0 skipped\nmean score 7.5 / 10"
        if path.endswith(".copy-result"):
            return "copied"
        raise ValueError(f"{template}: the model does not know what {path} holds")

    def run_container(
        self,
        t: Mapping[str, Any],
        node_name: str,
        boundary: str | None,
        params: Mapping[str, str],
        arts_from: Mapping[str, dict[str, Any]],
    ) -> dict[str, Any]:
        scope = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in params.items()}}
        name = t["name"]
        # initializeExecutableNode: every executable node (pod, retry parent, cache node) keeps the
        # processed template's inputs
        inputs: dict[str, Any] = {}
        declared = {p["name"] for p in (t.get("inputs") or {}).get("parameters", []) or []}
        in_params = [{"name": k, "value": v} for k, v in params.items() if k in declared]
        if in_params:
            inputs["parameters"] = in_params
        in_arts = []
        for a in (t.get("inputs") or {}).get("artifacts", []) or []:
            a = json.loads(substitute(json.dumps(a), scope))
            if a["name"] in arts_from and "s3" not in a:
                a = {**a, "s3": arts_from[a["name"]]["s3"]}
            in_arts.append(a)
        if in_arts:
            inputs["artifacts"] = in_arts
        base: dict[str, Any] = {"inputs": inputs} if inputs else {}
        synced = {"taskResultSynced": True} if self.argo == "v4" else {}
        memo = None
        if "memoize" in t:
            memo = {
                "key": substitute(t["memoize"]["key"], scope),
                "cacheName": substitute(t["memoize"]["cache"]["configMap"]["name"], scope),
            }
        if memo and self.scenario == "regrade":
            entry = self.cache.get(memo["cacheName"], {}).get(memo["key"])
            if entry:  # initializeCacheHitNode: one Succeeded node with the cached outputs, no pod
                n = self.add(
                    node_name,
                    "Pod",
                    name,
                    boundary,
                    "Succeeded",
                    memoizationStatus={"hit": True, **memo},
                    **base,
                    **synced,
                )
                n["outputs"] = json.loads(entry)["outputs"]
                n["finishedAt"] = n["startedAt"]
                return n
        parent = None
        if "retryStrategy" in t:
            # a memoized template's cache node (initializeCacheNode: the template's node type, Pod)
            # becomes the retry parent; otherwise executeTemplate injects a Retry node
            if memo:
                parent = self.add(
                    node_name,
                    "Pod",
                    name,
                    boundary,
                    "Pending",
                    memoizationStatus={"hit": False, **memo},
                    **base,
                    **synced,
                )
            else:
                parent = self.add(node_name, "Retry", name, boundary, "Running", **base)
        before = sum(self.s3.values())
        for a in in_arts:
            key = (a.get("s3") or {}).get("key")
            if key:
                self.download(name, a, key)
        seconds = _POD_OVERHEAD + (
            _STEP_SECONDS["collect"] if name == "collect" else _STEP_SECONDS.get(name, 0.0) * len(self.items)
        )
        extra: dict[str, Any] = {"hostNodeName": self.rnd.choice(_HOSTS), "progress": "1/1", **base, **synced}
        if parent is not None:
            extra["nodeFlag"] = {"retried": True}  # executeTemplate: opts.nodeFlag.Retried for the retry's children
        if memo:
            extra["memoizationStatus"] = {"hit": False, **memo}
        pod = self.add(
            f"{node_name}(0)" if parent is not None else node_name, "Pod", name, boundary, "Pending", **extra
        )
        self.pods_in[boundary or ""] = self.pods_in.get(boundary or "", 0) + 1
        self.pods[name] = self.pods.get(name, 0) + 1
        self.pod_ids.append(pod["id"])
        self.clock += timedelta(milliseconds=self.rnd.randint(50, 900))
        outputs = self._outputs(t, scope)
        for a in outputs.get("artifacts", []):
            self.upload(name, a["s3"]["key"])
        self.s3_per_pod[name] = max(self.s3_per_pod.get(name, 0), sum(self.s3.values()) - before)
        self.task_result_max = max(
            self.task_result_max,
            _size(
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "WorkflowTaskResult",
                    "metadata": {
                        "name": pod["id"],
                        "namespace": "gradeflow",
                        "labels": {
                            "workflows.argoproj.io/workflow": self.name,
                            "workflows.argoproj.io/report-outputs-completed": "true",
                        },
                    },
                    "outputs": outputs,
                    "progress": "1/1",
                }
            ),
        )
        self.finish(pod, seconds, outputs)
        cpu = max(1, round(seconds * 0.6))
        pod["resourcesDuration"] = {"cpu": cpu, "memory": cpu * 7}
        if memo:  # the controller saves a succeeded pod's outputs (operator.go podReconciliation)
            entry = {
                "nodeID": pod["id"],
                "outputs": outputs,
                "creationTimestamp": pod["finishedAt"],
                "lastHitTimestamp": pod["finishedAt"],
            }
            self.cache.setdefault(memo["cacheName"], {})[memo["key"]] = json.dumps(entry, separators=(",", ":"))
        if parent is None:
            return pod
        self.child(parent, pod)
        self.finish(parent, seconds, outputs)  # the retry node takes its last child's outputs
        parent["resourcesDuration"] = dict(pod["resourcesDuration"])
        parent["progress"] = "1/1"
        return parent

    def outbound(self, n: dict[str, Any]) -> list[str]:
        """getOutboundNodes: a pod itself, a retry's last child, a group's or DAG's outbound nodes."""
        if n["type"] in ("Skipped", "Suspend") or (n["type"] == "Pod" and not n.get("children")):
            return [n["id"]]
        if n["type"] in ("Retry", "Pod"):  # a pod-typed node with children is a memoized retry parent
            return [n["children"][-1]] if n.get("children") else [n["id"]]
        if n["type"] == "TaskGroup":
            return [o for c in n.get("children", []) for o in self.outbound(self.nodes[c])] or [n["id"]]
        return n.get("outboundNodes") or [n["id"]]

    def run_dag(
        self, t: Mapping[str, Any], node_name: str, boundary: str | None, params: Mapping[str, str]
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if params:
            extra["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in params.items()]}
        dag = self.add(node_name, "DAG", t["name"], boundary, "Running", **extra)
        base = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in params.items()}}
        results: dict[str, dict[str, Any]] = {}
        tasks = {task["name"]: task for task in t["dag"]["tasks"]}
        pending = list(tasks)
        leaves = set(tasks)
        for task in tasks.values():
            for d in _deps(task):
                leaves.discard(d)
        while pending:
            ready = [n for n in pending if all(d in results for d in _deps(tasks[n]))]
            for tn in ready:
                pending.remove(tn)
                results[tn] = self.run_task(tasks[tn], dag, base, results)
        dag["outboundNodes"] = [o for leaf in sorted(leaves) for o in self.outbound(results[leaf])]
        failed = any(r["phase"] in ("Failed", "Error") for r in results.values())
        self.finish(dag, 1.0, phase="Failed" if failed else "Succeeded")
        pods = self.pods_in.get(dag["id"], 0)
        dag["progress"] = f"{pods}/{pods}"
        return dag

    def _task_scope(self, base: Mapping[str, Any], results: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        scope = dict(base)
        for name, r in results.items():
            scope[f"tasks.{name}.status"] = r["phase"]
            for p in (r.get("outputs") or {}).get("parameters", []) or []:
                scope[f"tasks.{name}.outputs.parameters.{p['name']}"] = p["value"]
            for a in (r.get("outputs") or {}).get("artifacts", []) or []:
                scope[f"tasks.{name}.outputs.artifacts.{a['name']}"] = json.dumps(a)
        return scope

    def run_task(
        self,
        task: Mapping[str, Any],
        dag: dict[str, Any],
        base: Mapping[str, Any],
        results: Mapping[str, dict[str, Any]],
    ) -> dict[str, Any]:
        name = f"{dag['name']}.{task['name']}"
        deps = _deps(task)
        parents = [self.nodes[o] for d in deps for o in self.outbound(results[d])] or [dag]

        def connect(n: dict[str, Any]) -> None:
            for p in parents:
                self.child(p, n)

        if task.get("depends") and not depends_satisfied(task["depends"], results):
            n = self.add(name, "Skipped", task["template"], dag["id"], "Omitted", "omitted: depends condition not met")
            connect(n)
            return n
        scope = self._task_scope(base, results)
        if "withParam" in task:
            raw = substitute(task["withParam"], scope)
            self.withparam[task["name"]] = max(self.withparam.get(task["name"], 0), len(raw.encode()))
            items = json.loads(raw)
            if not items:
                n = self.add(name, "Skipped", task["template"], dag["id"], "Skipped", "Skipped, empty params")
                connect(n)
                return n
            group = self.add(name, "TaskGroup", task["template"], dag["id"], "Running")
            connect(group)
            for i, item in enumerate(items):
                desc = ",".join(sorted(f"{k}:{v}" for k, v in item.items())) if isinstance(item, dict) else str(item)
                desc = desc.replace("(", "").replace(")", "")
                s = dict(scope)
                s.update({f"item.{k}": v for k, v in item.items()} if isinstance(item, dict) else {"item": item})
                n = self.one(task, f"{name}({i}:{desc})", dag, s)
                self.child(group, n)
                self.clock += timedelta(milliseconds=self.rnd.randint(10, 200))
            self.finish(group, 1.0)
            return group
        n = self.one(task, name, dag, scope, connect)
        return n

    def one(
        self, task: Mapping[str, Any], name: str, dag: dict[str, Any], scope: Mapping[str, Any], connect: Any = None
    ) -> dict[str, Any]:
        if "when" in task:
            cond = substitute(task["when"], scope)
            go = cond == "true" if cond in ("true", "false") else bool(evaluate(cond, {}))
            if not go:
                n = self.add(name, "Skipped", task["template"], dag["id"], "Skipped", f"when '{cond}' evaluated false")
                if connect:
                    connect(n)
                return n
        args = task.get("arguments") or {}
        params = {p["name"]: substitute(p["value"], scope) for p in args.get("parameters", []) or []}
        arts = {
            a["name"]: json.loads(substitute(a["from"], scope)) for a in args.get("artifacts", []) or [] if "from" in a
        }
        n = self.run_template(task["template"], name, dag["id"], params, arts)
        if connect:
            connect(n)
        return n

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        entry = self.run_template(self.spec["entrypoint"], self.name, None, {}, {})
        if self.spec.get("onExit"):
            self.scope["workflow.status"] = entry["phase"]
            self.run_template(self.spec["onExit"], f"{self.name}.onExit", None, {}, {})
        return self.workflow_object()

    def workflow_object(self) -> dict[str, Any]:
        wf = copy.deepcopy(self.workflow)
        meta = wf["metadata"]
        meta.update(
            {
                "namespace": "gradeflow",
                "uid": "9b1c2f4e-5d6a-4b7c-8d9e-0f1a2b3c4d5e",
                "resourceVersion": "48213907",
                "generation": 2417,
                "creationTimestamp": self._ts(T0),
            }
        )
        meta.setdefault("labels", {}).update(
            {
                "workflows.argoproj.io/completed": "true",
                "workflows.argoproj.io/phase": "Succeeded",
                "workflows.argoproj.io/workflow-template": self.workflow["spec"]["workflowTemplateRef"]["name"],
            }
        )
        meta.setdefault("annotations", {})["workflows.argoproj.io/pod-name-format"] = "v2"
        stored = copy.deepcopy(self.spec)  # setStoredWfSpec: the template's spec with the run's arguments
        stored["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in self.params.items()]}
        pods = sum(self.pods.values())
        status: dict[str, Any] = {
            "phase": "Succeeded",
            "startedAt": self._ts(T0),
            "finishedAt": self._ts(self.clock),
            "progress": f"{pods}/{pods}",
            "nodes": self.nodes,
            "storedWorkflowTemplateSpec": stored,
            "conditions": [{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}],
            "artifactRepositoryRef": {
                "configMap": "artifact-repositories",
                "key": "gradeflow",
                "namespace": "gradeflow",
                "artifactRepository": {"s3": self.repo},
            },
            "resourcesDuration": {
                "cpu": sum(
                    n.get("resourcesDuration", {}).get("cpu", 0) for n in self.nodes.values() if n["type"] == "Pod"
                ),
                "memory": sum(
                    n.get("resourcesDuration", {}).get("memory", 0) for n in self.nodes.values() if n["type"] == "Pod"
                ),
            },
        }
        if self.global_outputs:
            status["outputs"] = {"parameters": self.global_outputs}
        if self.argo == "v3":  # 3.5 to 3.7: one entry per pod, outside the compressed nodes
            status["taskResultsCompletionStatus"] = {pid: True for pid in self.pod_ids}
        wf["status"] = status
        return wf


def _deps(task: Mapping[str, Any]) -> list[str]:
    if "dependencies" in task:
        return list(task["dependencies"])
    return sorted(
        {
            m.split(".")[0]
            for m in re.findall(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?", task.get("depends", ""))
            if m not in ("and", "or")
        }
    )


def _run_id(when: str, shard: int, shards: int) -> str:
    from pipelines.argo.workflow import shard_run_ids

    return shard_run_ids(f"ps1-{when}", shards)[shard]


def simulate(
    n: int,
    template: Mapping[str, Any] | None = None,
    *,
    scenario: str = "first-run",
    argo: str = "v4",
    shard_size: int | None = None,
    files: Mapping[str, int] | None = None,
    id_length: int = 8,
) -> Measurement:
    """Measure a run of `n` submissions, as `build_shards` splits it (`shard_size` per run;
    None: the template's SHARD_SIZE). Sizes are the largest of any one run; pods, nodes and S3
    requests are summed over the runs.

    scenario: "first-run" (every submission executes) or "regrade" (the same submissions again
    with a pinned image: every execute is a cache hit, then copy-memoized runs). argo: "v4" (task
    results synced in each node) or "v3" (3.5 to 3.7: also status.taskResultsCompletionStatus).
    """
    from pipelines.argo.workflow import SHARD_SIZE, build_shards, build_template
    from steps.collect import shard_of

    template = template or build_template().to_dict()
    pinned = "registry.example.edu/gradeflow-grader@sha256:" + "5" * 64
    items = students(n, length=id_length)
    cache: dict[str, dict[str, str]] = {}
    store: set[str] = set()
    files = dict(files or FILES_PER_SUBMISSION)
    m = Measurement(n, scenario, argo)

    def runs(when: str) -> list[tuple[dict[str, Any], list[dict[str, str]]]]:
        wfs = [
            w.to_dict()
            for w in build_shards(
                "ps1",
                f"ps1-{when}",
                class_size=max(n, 1),
                shard_size=shard_size or SHARD_SIZE,
                course="data100",
                image=pinned,
            )
        ]
        shards = len(wfs)
        return [
            (wf, [it for it in items if shards == 1 or shard_of(it["student"], shards) == i])
            for i, wf in enumerate(wfs)
        ]

    if scenario == "regrade":
        for wf, part in runs("20261124-090000"):
            _Run(template, wf, part, scenario="first-run", argo=argo, cache=cache, files=files, store=store).run()
    before = {name: dict(entries) for name, entries in cache.items()}
    for wf, part in runs("20261201-101500"):
        r = _Run(template, wf, part, scenario=scenario, argo=argo, cache=cache, files=files, store=store)
        obj = r.run()
        m.shards += 1
        m.largest_shard = max(m.largest_shard, len(part))
        m.nodes += len(r.nodes)
        for k, v in r.pods.items():
            m.pods_by_template[k] = m.pods_by_template.get(k, 0) + v
        m.workflow_plain = max(m.workflow_plain, _size(obj))
        m.nodes_plain = max(m.nodes_plain, _size(obj["status"]["nodes"]))
        compressed = compress_nodes(obj["status"]["nodes"])
        m.nodes_compressed = max(m.nodes_compressed, len(compressed))
        packed = {
            **obj,
            "status": {**{k: v for k, v in obj["status"].items() if k != "nodes"}, "compressedNodes": compressed},
        }
        m.workflow_compressed = max(m.workflow_compressed, _size(packed))
        for k, v in r.withparam.items():
            m.withparam[k] = max(m.withparam.get(k, 0), v)
        m.task_result_max = max(m.task_result_max, r.task_result_max)
        for k, v in r.s3.items():
            m.s3[k] = m.s3.get(k, 0) + v
        for k, v in r.s3_by_template.items():
            m.s3_by_template[k] = m.s3_by_template.get(k, 0) + v
        for k, v in r.s3_per_pod.items():
            m.s3_per_pod[k] = max(m.s3_per_pod.get(k, 0), v)
    m.pods = sum(m.pods_by_template.values())
    for name, entries in cache.items():
        m.configmaps[name] = sum(len(v.encode()) for v in entries.values())
        m.configmap_entries[name] = len(entries)
        m.configmap_run[name] = sum(len(v.encode()) for k, v in entries.items() if before.get(name, {}).get(k) != v)
        m.configmap_etcd[name] = _size(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": "gradeflow",
                    "labels": {"workflows.argoproj.io/configmap-type": "Cache"},
                },
                "data": entries,
            }
        )
    return m
