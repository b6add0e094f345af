"""Submit, watch, retry and sync gradeflow runs on Argo Workflows, from Python or the CLI.

Argo is reached one of two ways, registered by name in `BACKENDS`:

* `server`: the Argo Server's REST API through Hera's `WorkflowsService`, configured like
  the argo CLI: ARGO_SERVER (host:port), ARGO_TOKEN, ARGO_NAMESPACE, ARGO_SECURE (https,
  default true), ARGO_INSECURE_SKIP_VERIFY, ARGO_HTTP1 and ARGO_BASE_HREF;
* `kubernetes`: the Workflow custom resources (workflows.argoproj.io/v1alpha1) through the
  Kubernetes API, with your kubeconfig or the in-cluster account, for a cluster whose Argo
  Server is not exposed. Retry and memoized resubmit need the Argo Server.

`connect()` picks `server` when an Argo Server is configured and `kubernetes` otherwise. The
Python API is `build_workflow` (re-exported from pipelines.argo.shards), `submit`, `wait`,
`run_status`, `retry`, `resubmit`, `logs` and `sync`; `add_argo_commands` adds the same as
`gradeflow` subcommands. `sync` downloads a run's prefix from the store and calls
`steps.merge.merge(workspace, course_dir)`: the merge the local runner uses.

This module is the one place to import them from; the code lives in `pipelines/argo/`:
`backends` (connections), `status` (reading a run), `versions` (which Argo releases),
`runs` (the operations), `sync`, and `commands` (the argparse side).
"""

from __future__ import annotations

from steps.course import new_run_id

from .argo import backends, runs, status
from .argo.backends import *  # noqa: F403 - this module is the argo package's Python API, in one place
from .argo.backends import _fnv1a_32  # noqa: F401 - tests check pod names against it
from .argo.commands import add_argo_commands
from .argo.runs import *  # noqa: F403
from .argo.shards import build_workflow
from .argo.status import *  # noqa: F403
from .argo.sync import sync

__all__ = [
    *backends.__all__,
    *status.__all__,
    *runs.__all__,
    "sync",
    "add_argo_commands",
    "build_workflow",
    "new_run_id",
]
