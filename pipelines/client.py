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

This module is the one place to import them from; the code lives in `pipelines/argo/`:
`backends` (connections), `status` (reading a run), `versions` (which Argo releases),
`runs` (the operations), `sync`, and `commands` (the argparse side).
"""
from __future__ import annotations

from steps.course import new_run_id

from .argo.backends import (
    BACKENDS,
    ArgoServerBackend,
    ArgoSettings,
    Backend,
    KubernetesBackend,
    _fnv1a_32,  # noqa: F401 - tests check pod names against it
    connect,
    decode_nodes,
    pod_name,
)
from .argo.commands import add_argo_commands
from .argo.runs import check_version, find_run, list_runs, logs, resubmit, retry, submit, wait
from .argo.status import FINISHED, WAITING_HINTS, FailedNode, RunStatus, StepProgress, WaitingPods, run_status
from .argo.sync import sync
from .workflow import build_workflow

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
    "list_runs",
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
    "check_version",
    "decode_nodes",
    "FailedNode",
    "WaitingPods",
    "WAITING_HINTS",
    "FINISHED",
]
