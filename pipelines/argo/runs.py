"""Run operations on Argo Workflows: submit, find, list, wait, retry, resubmit and logs.

Each takes a connected `Backend` (pipelines/argo/backends.py) and speaks to the teacher in
TeacherErrors; `pipelines.client` re-exports them as gradeflow's Python API and
pipelines/argo/commands.py turns them into `gradeflow` subcommands.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from steps.contract import DAG as STEP_ORDER
from steps.course import new_run_id
from steps.errors import NotFound, TeacherError

from .backends import Backend
from .shards import LABEL_ASSIGNMENT, LABEL_RUN, RUN_ID, build_shards, build_workflow, label_value
from .status import FailedNode, RunStatus, run_status
from .status import param as _param
from .status import units as _units
from .templates import TEMPLATE_NAME
from .versions import SUPPORTED, judge_version

__all__ = [
    "check_version",
    "submit",
    "submit_class",
    "find_run",
    "list_runs",
    "wait",
    "retry",
    "resubmit",
    "logs",
    "poll_until_finished",
    "GONE_HINT",
]

INSTALL_HINT = "install it with `kubectl apply -n {ns} -f argo/install/ -f argo/` (see docs/argo.md)"
# What deletes a finished run from the cluster: the template's ttlStrategy and the controller's
# retentionPolicy (the quick-start keeps 10 completed, 3 failed, 3 errored runs).
GONE_HINT = (
    "Argo deletes finished runs (the template's ttlStrategy, 30 days; the controller's retentionPolicy, e.g. the "
    "quick-start's `failed: 3`; docs/argo.md 'Keeping runs'). Its results stay in the store: "
    "`gradeflow sync {run} COURSE_DIR --store s3://BUCKET`; list the runs Argo still has with `gradeflow status`"
)


def warn_stderr(message: str) -> None:
    print(f"gradeflow: warning: {message}", file=sys.stderr, flush=True)


def check_version(backend: Backend, action: str, warn: Callable[[str], None] = warn_stderr) -> str | None:
    """Read the Argo Server's version; refuse `action` on a release that would do it wrong,
    warn on one that does it slowly or that cannot be told. Returns the version seen."""
    version = backend.server_version()
    if version is None:
        warn(
            f"cannot read the Argo Workflows version from {backend.where()} (an Argo Server tells it at "
            "/api/v1/version; the Kubernetes API does not): check `argo version` against the supported releases: "
            f"{SUPPORTED}"
        )
        return None
    verdict = judge_version(version, action)
    if verdict.refuse:
        raise TeacherError(
            verdict.refuse, f"upgrade Argo Workflows (docs/argo.md 'Supported versions'); supported: {SUPPORTED}"
        )
    for w in verdict.warnings:
        warn(w)
    return version


def submit(
    backend: Backend,
    course: str,
    assignment: str,
    *,
    run_id: str | None = None,
    check_template: bool = True,
    warn: Callable[[str], None] = warn_stderr,
    **options: Any,
) -> dict[str, Any]:
    """Submit a run of the installed WorkflowTemplate; return the created Workflow.

    `options` go to `build_workflow` (course_pvc, course_subpath, image, store_prefix,
    limits, parallelism).
    """
    run_id, course_label = _prepare(backend, course, assignment, run_id, check_template, warn)
    wf = build_workflow(assignment, run_id, course=course_label, namespace=backend.namespace, **options)
    return backend.create_workflow(wf.to_dict())


def submit_class(
    backend: Backend,
    course: str,
    assignment: str,
    *,
    class_size: int,
    run_id: str | None = None,
    check_template: bool = True,
    warn: Callable[[str], None] = warn_stderr,
    **options: Any,
) -> list[dict[str, Any]]:
    """Submit a class of up to `class_size` submissions; return the created Workflows.

    Up to SHARD_SIZE that is one run, exactly as `submit`; a bigger class is graded as one run
    per shard (pipelines.argo.shards.build_shards), because one Workflow object cannot hold more
    (docs/argo.md, "Big classes"). Each shard is a complete run: sync each into the gradebook.
    """
    run_id, course_label = _prepare(backend, course, assignment, run_id, check_template, warn)
    wfs = build_shards(
        assignment, run_id, class_size=class_size, course=course_label, namespace=backend.namespace, **options
    )
    return [backend.create_workflow(wf.to_dict()) for wf in wfs]


def _prepare(
    backend: Backend,
    course: str,
    assignment: str,
    run_id: str | None,
    check_template: bool,
    warn: Callable[[str], None],
) -> tuple[str, str]:
    """The checks before a submit (version, template installed, run id); the run id and course label."""
    check_version(backend, "submit", warn)
    if check_template:
        try:
            backend.get_workflow_template(TEMPLATE_NAME)
        except NotFound:
            raise NotFound(
                f"the WorkflowTemplate {TEMPLATE_NAME} is not installed in {backend.where()}",
                INSTALL_HINT.format(ns=backend.namespace),
            ) from None
    run_id = run_id or new_run_id(assignment)
    if not RUN_ID.match(run_id):
        raise TeacherError(
            f"run id {run_id!r} is not a valid workflow name",
            "use 1-63 lowercase letters, digits and '-', e.g. ps1-final",
        )
    return run_id, label_value(Path(course).name if os.sep in course or Path(course).is_dir() else course)


def find_run(backend: Backend, run: str) -> dict[str, Any]:
    """The Workflow named `run`, or the newest one whose run id is `run`."""
    try:
        return backend.get_workflow(run)
    except NotFound:
        pass
    selector = f"{LABEL_RUN}={label_value(run)}"
    found = backend.list_workflows(selector)
    if found:
        newest = max(found, key=lambda w: w["metadata"].get("creationTimestamp") or "")
        return backend.get_workflow(newest["metadata"]["name"])  # a listing may hold no nodes
    archived = backend.find_archived(selector)
    if archived is not None:
        return archived
    raise NotFound(
        f"Argo has no run {run!r} in {backend.where()} (never submitted there, or deleted)", GONE_HINT.format(run=run)
    )


def list_runs(backend: Backend, assignment: str | None = None) -> list[dict[str, Any]]:
    selector = LABEL_ASSIGNMENT + (f"={label_value(assignment)}" if assignment else "")
    return sorted(backend.list_workflows(selector), key=lambda w: w["metadata"].get("creationTimestamp") or "")


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
    return poll_until_finished(lambda: run_status(find_run(backend, run)), run, poll, timeout, progress, sleep)


def poll_until_finished(
    read: Callable[[], Any],
    run: str,
    poll: float,
    timeout: float | None,
    progress: Callable[[Any], None] | None,
    sleep: Callable[[float], None],
) -> Any:
    """`read()` (a status with .lines(), .finished, .phase) every `poll` seconds until it is finished."""
    start = time.monotonic()
    last: list[str] | None = None
    while True:
        st = read()
        if progress and st.lines() != last:
            progress(st)
            last = st.lines()
        if st.finished:
            return st
        if timeout is not None and time.monotonic() - start > timeout:
            raise TeacherError(
                f"run {run} is still {st.phase or 'pending'} after {timeout:.0f} s",
                f"keep watching with `gradeflow watch {run}`",
            )
        sleep(poll)


def retry(backend: Backend, run: str, warn: Callable[[str], None] = warn_stderr) -> dict[str, Any]:
    """Re-run only the failed nodes of a finished, failed run (then score and merge again).

    A run Argo already deleted but archived is retried from the archive (Argo re-creates it)."""
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if phase == "Succeeded":
        raise TeacherError(
            f"run {run} succeeded: there is nothing to retry",
            f"to grade again, use `gradeflow resubmit {run}` or submit a new run",
        )
    if phase not in ("Failed", "Error"):
        raise TeacherError(
            f"run {run} is still {phase or 'pending'}", f"wait for it to finish (`gradeflow watch {run}`), then retry"
        )
    check_version(backend, "retry", warn)
    name = wf["metadata"]["name"]
    if name in backend.archived:
        return backend.retry_archived(backend.archived[name])
    return backend.retry_workflow(name)


def resubmit(
    backend: Backend, run: str, memoized: bool = False, warn: Callable[[str], None] = warn_stderr
) -> dict[str, Any]:
    """Run a finished run again under a new workflow name, with the same run id and parameters.

    With `memoized`, nodes that succeeded are reused and only the others run (Argo requires
    the run to have failed); without, everything runs again.
    """
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if memoized and phase not in ("Failed", "Error"):
        raise TeacherError(
            f"a memoized resubmit needs a failed run; {run} is {phase or 'pending'}",
            f"resubmit without --memoized, or use `gradeflow retry {run}`",
        )
    if wf["metadata"]["name"] in backend.archived:
        raise TeacherError(
            f"Argo deleted run {run}; only its archived copy is left",
            f"`gradeflow retry {run}` re-creates a failed run from the archive; otherwise submit a new run "
            "(memoized execute results are reused)",
        )
    check_version(backend, "resubmit", warn)
    return backend.resubmit_workflow(wf["metadata"]["name"], memoized)


def _last_attempt(nodes: dict[str, dict[str, Any]], node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "Retry" and node.get("children"):
        attempts = [nodes[c] for c in node["children"] if c in nodes]
        if attempts:
            return max(attempts, key=lambda a: a.get("startedAt") or "")
    return node


def logs(
    backend: Backend, run: str, *, student: str | None = None, step: str | None = None, tail: int | None = 60
) -> list[tuple[str, str]]:
    """The main-container logs of a run's failed nodes (or of one student's / one step's)."""
    wf = find_run(backend, run)
    st = run_status(wf)
    nodes = (wf.get("status") or {}).get("nodes") or {}
    chosen = [f for f in st.failed if (student is None or f.student == student) and (step is None or f.step == step)]
    if not chosen and (student or step):
        chosen = [
            FailedNode(
                n["templateName"],
                _param(n.get("inputs"), "student"),
                n.get("displayName", ""),
                n.get("phase", ""),
                "",
                n,
            )
            for n in _units(nodes)
            if n.get("templateName") in STEP_ORDER
            and (student is None or _param(n.get("inputs"), "student") == student)
            and (step is None or n.get("templateName") == step)
        ]
    if not chosen:
        raise TeacherError(
            f"run {run} has no failed node" + (f" for {student or step}" if student or step else ""),
            "pass --student ID or --step NAME to read another node's log",
        )
    out = []
    for f in chosen:
        text = backend.pod_logs(wf, _last_attempt(nodes, f.node))
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        out.append((f.display_name or f.step, text))
    return out
