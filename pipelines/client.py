"""Submit, watch, retry and sync gradeflow runs on Argo Workflows, from Python or the CLI.

Argo is reached one of two ways, registered by name in `BACKENDS`:

* `server`: the Argo Server's REST API through Hera's `WorkflowsService`, configured like
  the argo CLI: ARGO_SERVER (host:port), ARGO_TOKEN, ARGO_NAMESPACE, ARGO_SECURE (https,
  default true), ARGO_INSECURE_SKIP_VERIFY, ARGO_HTTP1 and ARGO_BASE_HREF;
* `kubernetes`: the Workflow custom resources (workflows.argoproj.io/v1alpha1) through the
  Kubernetes API, with your kubeconfig (KUBECONFIG) or the in-cluster account, for a cluster
  whose Argo Server is not exposed. Retry and memoized resubmit need the Argo Server.

The library reads no environment variable: `ArgoSettings.from_env(os.environ)` turns them into
settings (the CLI and the Jupyter page do that), and `connect(settings)` picks `server` when an
Argo Server is configured and `kubernetes` otherwise. The Python API is `build_workflow`
(re-exported from pipelines.argo.shards), `submit`, `submit_class`, `wait`, `run_status`, `retry`,
`resubmit`, `logs` and `sync`, and for a class graded as several runs `group_status`,
`wait_group`, `retry_group` and `sync_group`; `add_argo_commands` adds the same as `gradeflow`
subcommands. `sync` downloads a run's prefix from the store and calls
`steps.merge.merge(workspace, course_dir)`: the merge the local runner uses.

This module is the one place to import them from; the code lives in `pipelines/argo/`:
`settings` (how to connect), `backends` (what every backend shares), `server` and `kube` (the
two backends), `status` (reading a run), `versions` (which Argo releases), `runs` (the
operations), `groups` (a class's shard runs as one), `sync`, and `commands` (the argparse side).
"""

from __future__ import annotations

from steps.course import new_run_id

from .argo import backends, groups, kube, runs, server, settings, status
from .argo.backends import *  # noqa: F403 - this module is the argo package's Python API, in one place
from .argo.backends import _fnv1a_32  # noqa: F401 - tests check pod names against it
from .argo.commands import add_argo_commands
from .argo.groups import *  # noqa: F403
from .argo.kube import *  # noqa: F403
from .argo.runs import *  # noqa: F403
from .argo.server import *  # noqa: F403
from .argo.settings import *  # noqa: F403
from .argo.shards import build_workflow
from .argo.status import *  # noqa: F403
from .argo.sync import sync

__all__ = [
    *settings.__all__,
    *backends.__all__,
    *server.__all__,
    *kube.__all__,
    *status.__all__,
    *runs.__all__,
    *groups.__all__,
    "sync",
    "add_argo_commands",
    "build_workflow",
    "new_run_id",
]
