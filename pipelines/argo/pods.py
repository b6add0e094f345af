"""What every pod of the gradeflow WorkflowTemplate gets: hardening, sizes, deadlines and retries.

workflow.py draws the DAG; this module holds the pod-level settings it applies to
each template, each one checked against the rule that really decides it:

* Resources. `container.resources` holds only static quantities: Kubernetes decodes a
  `resource.Quantity` before Argo substitutes anything, so `{{...}}` there is rejected
  (Argo 4.x: by the full CRD's openAPIV3Schema at `kubectl apply`; 3.x: the controller logs
  "quantities must match the regular expression"). Argo's docs/fields.md, `podSpecPatch`:
  "Allows parameterization of container fields which are not strings (e.g. resource
  limits)", so the parameterised CPU, memory and scratch sizes go into a podSpecPatch
  (examples/pod-spec-patch.yaml: `{"containers":[{"name":"main", "resources":...}]}`),
  whose static defaults equal the patch at the parameters' defaults.
* Deadlines. Every template has a `timeout`, which Argo counts "from the node's start time
  ... also includes time in which the node spends in Pending state" (docs/fields.md), so a
  bad image or a missing Secret cannot hang a run.
* Retries. See RETRY_EXPRESSION and retry_strategy().
"""

from __future__ import annotations

import json

from hera.workflows import EmptyDirVolume, RetryPolicy, RetryStrategy
from hera.workflows.models import (
    Backoff,
    Capabilities,
    PodSecurityContext,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
)

from steps.contract import EXIT_INFRA

from .params import wf_expr as _expr_p
from .params import wf_param as _p

__all__ = [
    "UID",
    "MAIN_CONTAINER",
    "RETRY_EXPRESSION",
    "RETRY_LIMIT",
    "RETRY_EXPRESSION_POD_ONLY",
    "INFRASTRUCTURE_MESSAGES",
    "SCRATCH_PER_SUBMISSION_MIB",
    "EXECUTE_TMP_MIB",
    "container_security",
    "pod_security",
    "scratch_volumes",
    "retry_strategy",
    "trusted_resources",
    "execute_resources",
    "execute_pod_spec_patch",
    "class_scratch_pod_spec_patch",
    "class_scratch_resources",
    "copy_resources",
    "TRUSTED_TIMEOUT",
    "COPY_TIMEOUT",
    "EXECUTE_DEADLINE",
    "EXECUTE_TIMEOUT",
]

UID = 1000  # the grader image's user (images/grader/Containerfile)
MAIN_CONTAINER = "main"  # Argo names a container template's container "main"; podSpecPatch merges by name

WORKSPACE_MIB = 4096  # /gradeflow of collect, restore and execute
TMP_MIB = 1024  # /tmp (HOME) of every pod
LOGS_MIB = 256  # container logs and the writable layer's leftovers (the root fs is read-only)
# score and merge hold the whole class: snapshot, restored, executed and scored copies of every
# submission. 32 MiB covers a few notebooks per submission at execute's output cap (2 MiB each).
SCRATCH_BASE_MIB = 512
SCRATCH_PER_SUBMISSION_MIB = 32


# --- hardening ---------------------------------------------------------------------------------


def container_security() -> SecurityContext:
    return SecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=Capabilities(drop=["ALL"]),
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )


def pod_security() -> PodSecurityContext:
    return PodSecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )


def scratch_volumes(workspace_mib: int = WORKSPACE_MIB, tmp_in_memory_mib: int | None = None) -> list[EmptyDirVolume]:
    """The only writable places in a pod: the step workspace and /tmp (HOME).

    execute's /tmp is the only place student code may write, so it is memory-backed: a tmpfs
    whose size is its sizeLimit, where a disk filler gets ENOSPC at the disk limit, as in
    bubblewrap, instead of the kubelet evicting the pod. Its pages count towards the pod's
    memory, which execute_pod_spec_patch adds."""
    tmp = EmptyDirVolume(name="tmp", mount_path="/tmp", size_limit=f"{TMP_MIB}Mi")
    if tmp_in_memory_mib:
        tmp = EmptyDirVolume(name="tmp", mount_path="/tmp", medium="Memory", size_limit=f"{tmp_in_memory_mib}Mi")
    return [EmptyDirVolume(name="workspace", mount_path="/gradeflow", size_limit=f"{workspace_mib}Mi"), tmp]


# --- resources ----------------------------------------------------------------------------------


def _ephemeral(workspace_mib: int, tmp_mib: int = TMP_MIB) -> tuple[str, str]:
    """(request, limit) of ephemeral-storage: disk-backed emptyDirs count towards the pod's limit."""
    return "512Mi", f"{workspace_mib + tmp_mib + LOGS_MIB}Mi"


def trusted_resources(workspace_mib: int = WORKSPACE_MIB) -> ResourceRequirements:
    request, limit = _ephemeral(workspace_mib)
    return ResourceRequirements(
        requests={"cpu": "250m", "memory": "512Mi", "ephemeral-storage": request},
        limits={"cpu": "2", "memory": "2Gi", "ephemeral-storage": limit},
    )


def copy_resources() -> ResourceRequirements:
    _, limit = _ephemeral(WORKSPACE_MIB)
    return ResourceRequirements(
        requests={"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
        limits={"cpu": "500m", "memory": "256Mi", "ephemeral-storage": limit},
    )


# execute's pod: the notebooks' own limit (--memory) plus papermill's share and its tmpfs /tmp
PAPERMILL_MIB = 512
EXECUTE_TMP_MIB = 256  # all student code may write: the disk limit (steps.sandbox.Limits.disk_mb)
EXECUTE_EXTRA_MIB = PAPERMILL_MIB + EXECUTE_TMP_MIB


def execute_resources(defaults: dict[str, str]) -> ResourceRequirements:
    """Static quantities: what the podSpecPatch makes of the parameters' defaults."""
    memory = f"{int(defaults['memory']) + EXECUTE_EXTRA_MIB}Mi"
    request, limit = _ephemeral(WORKSPACE_MIB, tmp_mib=0)  # /tmp is in memory
    return ResourceRequirements(
        requests={"cpu": "250m", "memory": memory, "ephemeral-storage": request},
        limits={"cpu": defaults["cpu"], "memory": memory, "ephemeral-storage": limit},
    )


def _patch(resources: dict[str, dict[str, str]], volumes: list[dict] | None = None) -> str:
    """A podSpecPatch: a strategic merge patch of the pod spec (containers and volumes merge by name)."""
    body: dict = {"containers": [{"name": MAIN_CONTAINER, "resources": resources}]}
    if volumes:
        body["volumes"] = volumes
    return json.dumps(body, separators=(",", ":"))


def execute_pod_spec_patch() -> str:
    """The parameterised part of execute's resources: its memory and CPU."""
    memory = "{{=asInt(" + _expr_p("memory") + f") + {EXECUTE_EXTRA_MIB}" + "}}Mi"
    return _patch({"limits": {"cpu": _p("cpu"), "memory": memory}, "requests": {"memory": memory}})


def _class_scratch_mib(class_size: str) -> str:
    return "{{=" + f"{SCRATCH_BASE_MIB} + asInt({class_size}) * {SCRATCH_PER_SUBMISSION_MIB}" + "}}"


def class_scratch_resources(defaults: dict[str, str]) -> tuple[ResourceRequirements, int]:
    """score's and merge's static resources and workspace MiB at the default class size."""
    mib = SCRATCH_BASE_MIB + int(defaults["class-size"]) * SCRATCH_PER_SUBMISSION_MIB
    return trusted_resources(mib), mib


def class_scratch_pod_spec_patch() -> str:
    """score and merge hold every submission: their workspace grows with the class size."""
    workspace = _class_scratch_mib(_expr_p("class-size"))
    limit = (
        "{{="
        + f"{SCRATCH_BASE_MIB + TMP_MIB + LOGS_MIB} + asInt({_expr_p('class-size')}) * {SCRATCH_PER_SUBMISSION_MIB}"
        + "}}Mi"
    )
    return _patch(
        {"limits": {"ephemeral-storage": limit}},
        volumes=[{"name": "workspace", "emptyDir": {"sizeLimit": workspace + "Mi"}}],
    )


# --- deadlines ----------------------------------------------------------------------------------

TRUSTED_TIMEOUT = "2h"  # collect, restore, score, merge: minutes for a class, hours means stuck
COPY_TIMEOUT = "20m"  # copy-memoized moves one submission's files
# execute: the step's own wall time, then 300 s for papermill to write up and Argo to upload
EXECUTE_DEADLINE = "{{=asInt(" + _expr_p("wall-time") + ") + 300}}"
# ... and the node's timeout adds 600 s for Pending (image pull, scheduling) and the init container
EXECUTE_TIMEOUT = "{{=asInt(" + _expr_p("wall-time") + ") + 900}}s"


# --- retries ------------------------------------------------------------------------------------

# What the kubelet and Argo write when the infrastructure, not the student, ended a pod. Argo's
# inferFailedReason (workflow/controller/operator.go) makes the node's message the pod's
# status.message when there is one ("Pod has a nice error message. Use that."), with phase
# Failed, so an evicted pod is Failed with the kubelet's message, not Error:
#   pkg/kubelet/eviction/helpers.go:  nodeLowMessageFmt = "The node was low on resource: %v. "
#                                     nodeConditionMessageFmt = "The node had condition: %v. "
#   pkg/kubelet/nodeshutdown:         "Pod was terminated in response to imminent node shutdown."
#   pkg/kubelet/preemption:           "Preempted in order to admit critical pod"
# A student filling their own emptyDir or ephemeral storage is evicted by the same kubelet
# with other messages, which must NOT be retried (it would only fill it again):
#   emptyDirMessageFmt = "Usage of EmptyDir volume %q exceeds the limit %q. "
#   containerEphemeralStorageMessageFmt = "Container %s exceeded its local ephemeral storage limit %q. "
#   podEphemeralStorageMessageFmt = "Pod ephemeral local storage usage exceeds the total limit of containers %s. "
INFRASTRUCTURE_MESSAGES = (
    "The node was low on resource: ",
    "The node had condition: ",
    "Pod was terminated in response to imminent node shutdown",
    "Preempted in order to admit critical pod",
)

# Retry what a retry can fix: our own crash (the step CLIs exit EXIT_INFRA), a pod Argo marks
# Error (its init or wait container failed to move artifacts, "pod deleted" by a drain or node
# loss: markNodeError(..., "pod deleted")), or a pod the kubelet ended for the node's sake
# (above). A student's exception exits 0; their memory, deadline or disk blow-up is Failed with
# another message: never retried.
# merge's exit 75 says that some submission is not graded (its execute failed): a pod retry
# reads the same inputs and ends the same way, so merge retries only when its pod broke
# (RETRY_EXPRESSION_POD_ONLY). `gradeflow retry` is the fix: Argo's retry resets the failed
# nodes and deletes every node of the exit handler (FormulateRetryWorkflow, workflow/util/util.go:
# `strings.HasPrefix(n.Name, onExitNodeName)`), so score and merge run again after them.
RETRY_EXPRESSION_POD_ONLY = (
    "lastRetry.status == 'Error'"
    " || lastRetry.message matches '^(" + "|".join(m.rstrip() for m in INFRASTRUCTURE_MESSAGES) + ")'"
)
RETRY_EXPRESSION = f"asInt(lastRetry.exitCode) == {EXIT_INFRA} || " + RETRY_EXPRESSION_POD_ONLY
RETRY_LIMIT = 3


def retry_strategy(own_exit: bool = True) -> RetryStrategy:
    """Up to RETRY_LIMIT retries after 15 s, 30 s, 60 s; `own_exit=False`: not for the step's
    own EXIT_INFRA, only when the pod broke (RETRY_EXPRESSION_POD_ONLY, merge).

    No backoff.maxDuration: processNodeRetries (workflow/controller/operator.go) measures it
    from the FIRST attempt's start (`maxDurationDeadline = firstChildNode.StartedAt.Add(maxDuration)`),
    refuses any retry after it ("Max duration limit exceeded") and hands it to the retried pod
    as its execution deadline (`opts.executionDeadline = maxDurationDeadline`, ARGO_DEADLINE),
    so a crash late in a 15-minute execute would never be retried, or be cut short on retry.
    The limit and the per-template `timeout` bound a run instead.
    """
    return RetryStrategy(
        limit=str(RETRY_LIMIT),  # IntOrString: Argo's schema and examples spell it as a string
        retry_policy=RetryPolicy.always,  # the expression alone decides
        expression=RETRY_EXPRESSION if own_exit else RETRY_EXPRESSION_POD_ONLY,
        backoff=Backoff(duration="15s", factor="2"),
    )
