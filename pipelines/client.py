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

The backends, the status reading and the version rules live in `pipelines/argo/`; their
names are re-exported here, so `from pipelines.client import ...` keeps working.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from steps.contract import DAG as STEP_ORDER
from steps.contract import EXIT_INFRA
from steps.errors import TeacherError

from .argo.backends import (
    BACKENDS,
    DEFAULT_NAMESPACE,
    ArgoServerBackend,
    ArgoSettings,
    Backend,
    KubernetesBackend,
    _fnv1a_32,
    connect,
    decode_nodes,
    pod_name,
)
from .argo.status import FINISHED, WAITING_HINTS, FailedNode, RunStatus, StepProgress, WaitingPods, run_status
from .argo.status import param as _param
from .argo.status import units as _units
from .argo.versions import SUPPORTED, judge_version
from .workflow import (
    DEFAULT_PARALLELISM,
    PARAMETERS,
    LABEL_ASSIGNMENT,
    LABEL_RUN,
    RUN_ID,
    TEMPLATE_NAME,
    build_workflow,
    label_value,
    render,
)

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

INSTALL_HINT = "install it with `kubectl apply -n {ns} -f argo/install/ -f argo/` (see docs/argo.md)"
# What deletes a finished run from the cluster: the template's ttlStrategy and the controller's
# retentionPolicy (the quick-start keeps 10 completed, 3 failed, 3 errored runs).
GONE_HINT = (
    "Argo deletes finished runs (the template's ttlStrategy, 30 days; the controller's retentionPolicy, e.g. the "
    "quick-start's `failed: 3`; docs/argo.md 'Keeping runs'). Its results stay in the store: "
    "`gradeflow sync {run} COURSE_DIR --store s3://BUCKET`; list the runs Argo still has with `gradeflow status`"
)


def _warn(message: str) -> None:
    print(f"gradeflow: warning: {message}", file=sys.stderr, flush=True)


def check_version(backend: Backend, action: str, warn: Callable[[str], None] = _warn) -> str | None:
    """Read the Argo Server's version; refuse `action` on a release that would do it wrong,
    warn on one that does it slowly or that cannot be told. Returns the version seen."""
    version = backend.server_version()
    if version is None:
        warn(f"cannot read the Argo Workflows version from {backend.where()} (an Argo Server tells it at /api/v1/version; the Kubernetes API does not): check `argo version` against the supported releases: {SUPPORTED}")
        return None
    verdict = judge_version(version, action)
    if verdict.refuse:
        raise TeacherError(verdict.refuse, f"upgrade Argo Workflows (docs/argo.md 'Supported versions'); supported: {SUPPORTED}")
    for w in verdict.warnings:
        warn(w)
    return version


# --- runs ---------------------------------------------------------------------------------------

def new_run_id(assignment: str, now: dt.datetime | None = None) -> str:
    """A run id that is also a valid workflow name: `ps1-20261122-101500`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    base = re.sub(r"[^a-z0-9-]+", "-", assignment.lower()).strip("-")[:40] or "run"
    return f"{base}-{now.strftime('%Y%m%d-%H%M%S')}"


def submit(
    backend: Backend,
    course: str,
    assignment: str,
    *,
    run_id: str | None = None,
    check_template: bool = True,
    warn: Callable[[str], None] = _warn,
    **options: Any,
) -> dict[str, Any]:
    """Submit a run of the installed WorkflowTemplate; return the created Workflow.

    `options` go to `build_workflow` (course_pvc, course_subpath, image, store_prefix,
    limits, parallelism).
    """
    check_version(backend, "submit", warn)
    if check_template:
        try:
            backend.get_workflow_template(TEMPLATE_NAME)
        except TeacherError as e:
            if "was not found" in e.what:
                raise TeacherError(
                    f"the WorkflowTemplate {TEMPLATE_NAME} is not installed in {backend.where()}",
                    INSTALL_HINT.format(ns=backend.namespace),
                ) from None
            raise
    run_id = run_id or new_run_id(assignment)
    if not RUN_ID.match(run_id):
        raise TeacherError(f"run id {run_id!r} is not a valid workflow name", "use 1-63 lowercase letters, digits and '-', e.g. ps1-final")
    course_label = label_value(Path(course).name if os.sep in course or Path(course).is_dir() else course)
    wf = build_workflow(assignment, run_id, course=course_label, namespace=backend.namespace, **options)
    return backend.create_workflow(wf.to_dict())


def find_run(backend: Backend, run: str) -> dict[str, Any]:
    """The Workflow named `run`, or the newest one whose run id is `run`."""
    try:
        return backend.get_workflow(run)
    except TeacherError as e:
        if "was not found" not in e.what:
            raise
    selector = f"{LABEL_RUN}={label_value(run)}"
    found = backend.list_workflows(selector)
    if found:
        newest = max(found, key=lambda w: w["metadata"].get("creationTimestamp") or "")
        return backend.get_workflow(newest["metadata"]["name"])  # a listing may hold no nodes
    archived = backend.find_archived(selector)
    if archived is not None:
        return archived
    raise TeacherError(f"Argo has no run {run!r} in {backend.where()} (never submitted there, or deleted)", GONE_HINT.format(run=run))


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
    start = time.monotonic()
    last: list[str] | None = None
    while True:
        st = run_status(find_run(backend, run))
        if progress and st.lines() != last:
            progress(st)
            last = st.lines()
        if st.finished:
            return st
        if timeout is not None and time.monotonic() - start > timeout:
            raise TeacherError(f"run {run} is still {st.phase or 'pending'} after {timeout:.0f} s", f"keep watching with `gradeflow watch {run}`")
        sleep(poll)


def retry(backend: Backend, run: str, warn: Callable[[str], None] = _warn) -> dict[str, Any]:
    """Re-run only the failed nodes of a finished, failed run (then score and merge again).

    A run Argo already deleted but archived is retried from the archive (Argo re-creates it)."""
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if phase == "Succeeded":
        raise TeacherError(f"run {run} succeeded: there is nothing to retry", f"to grade again, use `gradeflow resubmit {run}` or submit a new run")
    if phase not in ("Failed", "Error"):
        raise TeacherError(f"run {run} is still {phase or 'pending'}", f"wait for it to finish (`gradeflow watch {run}`), then retry")
    check_version(backend, "retry", warn)
    name = wf["metadata"]["name"]
    if name in backend.archived:
        return backend.retry_archived(backend.archived[name])
    return backend.retry_workflow(name)


def resubmit(backend: Backend, run: str, memoized: bool = False, warn: Callable[[str], None] = _warn) -> dict[str, Any]:
    """Run a finished run again under a new workflow name, with the same run id and parameters.

    With `memoized`, nodes that succeeded are reused and only the others run (Argo requires
    the run to have failed); without, everything runs again.
    """
    wf = find_run(backend, run)
    phase = (wf.get("status") or {}).get("phase")
    if memoized and phase not in ("Failed", "Error"):
        raise TeacherError(f"a memoized resubmit needs a failed run; {run} is {phase or 'pending'}", f"resubmit without --memoized, or use `gradeflow retry {run}`")
    if wf["metadata"]["name"] in backend.archived:
        raise TeacherError(f"Argo deleted run {run}; only its archived copy is left", f"`gradeflow retry {run}` re-creates a failed run from the archive; otherwise submit a new run (memoized execute results are reused)")
    check_version(backend, "resubmit", warn)
    return backend.resubmit_workflow(wf["metadata"]["name"], memoized)



def _last_attempt(nodes: dict[str, dict[str, Any]], node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "Retry" and node.get("children"):
        attempts = [nodes[c] for c in node["children"] if c in nodes]
        if attempts:
            return max(attempts, key=lambda a: a.get("startedAt") or "")
    return node


def logs(backend: Backend, run: str, *, student: str | None = None, step: str | None = None, tail: int | None = 60) -> list[tuple[str, str]]:
    """The main-container logs of a run's failed nodes (or of one student's / one step's)."""
    wf = find_run(backend, run)
    st = run_status(wf)
    nodes = (wf.get("status") or {}).get("nodes") or {}
    chosen = [f for f in st.failed if (student is None or f.student == student) and (step is None or f.step == step)]
    if not chosen and (student or step):
        chosen = [
            FailedNode(n["templateName"], _param(n.get("inputs"), "student"), n.get("displayName", ""), n.get("phase", ""), "", n)
            for n in _units(nodes)
            if n.get("templateName") in STEP_ORDER and (student is None or _param(n.get("inputs"), "student") == student) and (step is None or n.get("templateName") == step)
        ]
    if not chosen:
        raise TeacherError(f"run {run} has no failed node" + (f" for {student or step}" if student or step else ""), "pass --student ID or --step NAME to read another node's log")
    out = []
    for f in chosen:
        text = backend.pod_logs(wf, _last_attempt(nodes, f.node))
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        out.append((f.display_name or f.step, text))
    return out


# --- sync ---------------------------------------------------------------------------------------


def _run_location(backend: Backend | None, run: str, store: str | None, store_prefix: str | None = None) -> tuple[str, str]:
    """(store URL of the run's prefix, run id) for a run name, or for a full run URL.

    The workflow, when Argo still has it, gives the prefix and run id; without it (deleted by
    retention, or no Argo configured) the run is found in the store alone, at
    <store>/<store-prefix>/<run>."""
    if "://" in run:
        url = run.rstrip("/")
        base, _, run_id = url.rpartition("/")
        return base, run_id
    store = store or os.environ.get("GRADEFLOW_ARGO_STORE")
    if not store:
        raise TeacherError(
            "sync needs the bucket of the gradeflow artifact repository",
            "pass --store s3://BUCKET (the bucket in argo/install/artifact-repositories.yaml) or set GRADEFLOW_ARGO_STORE",
        )
    wf = None
    if backend is not None:
        try:
            wf = find_run(backend, run)
        except TeacherError as e:
            if "has no run" not in e.what and "cannot reach" not in e.what:
                raise
    if wf is None:
        prefix = store_prefix or next(p.default for p in PARAMETERS if p.name == "store-prefix") or ""
        return f"{store.rstrip('/')}/{prefix.strip('/')}", run
    params = {p["name"]: p.get("value") for p in (wf.get("spec", {}).get("arguments", {}).get("parameters") or [])}
    prefix = store_prefix or params.get("store-prefix") or "gradeflow"
    return f"{store.rstrip('/')}/{prefix.strip('/')}", params.get("run-id") or wf["metadata"]["name"]


def sync(run: str, course_dir: str | Path, *, backend: Backend | None = None, store: str | None = None, store_prefix: str | None = None) -> dict[str, Any]:
    """Merge a finished run from the object store into the course: its gradebook and autograded/.

    Downloads `<store>/<prefix>/<run-id>/` into a temporary workspace and calls
    `steps.merge.merge(workspace, course_dir)`, the merge the local runner uses; the run's
    results/ are also kept in COURSE_DIR/gradeflow_runs/<run-id>/results/.
    """
    from steps.collect import _course
    from steps.gradebook import open_course_gradebook, shown_url
    from steps.merge import merge

    from .local import RUNS_DIR
    from .store import open_store

    course_dir = Path(course_dir)
    if not course_dir.is_dir():
        raise TeacherError(f"course directory {course_dir} does not exist", "give the nbgrader course directory the run graded")
    _, coursedir = _course(course_dir)
    # the course's gradebook (a SQLite file or a database server) must be there before anything is downloaded
    open_course_gradebook(coursedir.db_url, coursedir.course_id, "give the nbgrader course directory the run graded").close()
    base, run_id = _run_location(backend, run, store, store_prefix)
    st = open_store(base)
    with st.workspace(run_id) as ws:
        st.pull(run_id, ws)
        if not (ws / "manifest.json").is_file():
            raise TeacherError(
                f"{st.run_url(run_id)} has no manifest.json",
                "the run stopped before collect finished (nothing to merge), or this is not its run id: "
                "a resubmitted workflow keeps the first run's id; check --store and --store-prefix",
            )
        results = merge(ws, course_dir)
        keep = course_dir / RUNS_DIR / run_id / "results"
        shutil.copytree(ws / "results", keep, dirs_exist_ok=True)
    results["run_dir"] = st.run_url(run_id)
    results["gradebook"] = shown_url(coursedir.db_url)
    return results


# --- the gradeflow subcommands --------------------------------------------------------------------


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Argo connection (default: the argo CLI's environment variables)")
    g.add_argument("--argo-server", default=None, help="Argo Server host:port (ARGO_SERVER); without it the Kubernetes API is used")
    g.add_argument("--argo-token", default=None, help="bearer token (ARGO_TOKEN)")
    g.add_argument("-n", "--namespace", default=None, help=f"namespace of the runs (ARGO_NAMESPACE, default {DEFAULT_NAMESPACE})")
    g.add_argument("--insecure-skip-verify", action="store_true", default=None, help="do not verify the server's TLS certificate (ARGO_INSECURE_SKIP_VERIFY)")
    g.add_argument("--argo-plaintext", dest="secure", action="store_false", default=None, help="plain http to the Argo Server (ARGO_SECURE=false)")
    g.add_argument("--kubernetes", dest="backend", action="store_const", const="kubernetes", default=None, help="use the Kubernetes API even if ARGO_SERVER is set")
    g.add_argument("--kube-context", default=None, help="kubeconfig context for the Kubernetes API")


def _backend(a: argparse.Namespace) -> Backend:
    settings = ArgoSettings.from_env(
        server=a.argo_server,
        token=a.argo_token,
        namespace=a.namespace,
        insecure_skip_verify=a.insecure_skip_verify,
        secure=a.secure,
        kube_context=a.kube_context,
    )
    return connect(settings, a.backend)


def _print_status(st: RunStatus) -> None:
    print("\n".join(st.lines()), flush=True)


def _cmd_submit(a: argparse.Namespace) -> int:
    if a.runner != "argo":
        raise TeacherError("`gradeflow submit` sends a run to a cluster and needs --argo", f"to grade on this machine run `gradeflow grade {a.course} {a.assignment}`")
    b = _backend(a)
    limits = {k: getattr(a, k.replace("-", "_")) for k in ("cell-timeout", "memory", "cpu-time", "wall-time", "cpu")}
    wf = submit(
        b,
        a.course,
        a.assignment,
        run_id=a.run_id,
        course_pvc=a.course_pvc,
        course_subpath=a.course_subpath,
        image=a.image,
        store_prefix=a.store_prefix,
        limits={k: v for k, v in limits.items() if v is not None},
        parallelism=a.parallelism,
        feedback=a.feedback,
        feedback_hidden_tests=a.feedback_hidden_tests if a.feedback else None,
    )
    name = wf["metadata"]["name"]
    print(f"submitted run {name} in namespace {b.namespace}")
    print(f"  watch: gradeflow watch {name}   then: gradeflow sync {name} COURSE_DIR --store s3://BUCKET")
    if a.watch:
        return _finish(wait(b, name, progress=_print_status, poll=a.poll))
    return 0


def _finish(st: RunStatus) -> int:
    if st.phase != "Succeeded":
        print(f"run {st.name} {st.phase.lower() or 'stopped'}: `gradeflow logs {st.name}` shows why; `gradeflow retry {st.name}` re-runs only what failed", file=sys.stderr)
        return 1
    return 0


def _cmd_status(a: argparse.Namespace) -> int:
    b = _backend(a)
    if not a.run:
        runs = list_runs(b, a.assignment)
        if not runs:
            print(f"no gradeflow runs in {b.where()}")
        for w in runs:
            st = run_status(w)
            ex = st.steps["execute"]
            print(f"{st.name:40} {st.phase or 'Pending':10} execute {ex.done}/{ex.total}" + (f", {ex.failed} failed" if ex.failed else ""))
        return 0
    st = run_status(find_run(b, a.run))
    if a.json:
        print(json.dumps({"name": st.name, "run_id": st.run_id, "phase": st.phase, "message": st.message, "steps": {k: vars(v) for k, v in st.steps.items()}, "failed": [{"step": f.step, "student": f.student, "message": f.message} for f in st.failed], "waiting": [{**vars(w), "hint": w.hint} for w in st.waiting], "summary": st.summary}, indent=1))
    else:
        _print_status(st)
    return 0


def _cmd_watch(a: argparse.Namespace) -> int:
    return _finish(wait(_backend(a), a.run, poll=a.poll, timeout=a.timeout, progress=_print_status))


def _cmd_retry(a: argparse.Namespace) -> int:
    b = _backend(a)
    wf = retry(b, a.run)
    print(f"retrying the failed nodes of {wf['metadata']['name']}; score and merge run again when they finish (`gradeflow watch {a.run}`)")
    return 0


def _cmd_resubmit(a: argparse.Namespace) -> int:
    b = _backend(a)
    wf = resubmit(b, a.run, a.memoized)
    print(f"resubmitted {a.run} as {wf['metadata'].get('name') or wf['metadata'].get('generateName')}" + (" (reusing what succeeded)" if a.memoized else ""))
    return 0


def _cmd_sync(a: argparse.Namespace) -> int:
    from steps.merge import summary_lines

    b = None
    if "://" not in a.run:
        try:
            b = _backend(a)
        except TeacherError:
            if not (a.store or os.environ.get("GRADEFLOW_ARGO_STORE")):
                raise
            # no Argo to ask (or no kubeconfig): the run is found in the store alone
    results = sync(a.run, a.course_dir, backend=b, store=a.store, store_prefix=a.store_prefix)
    print("\n".join(summary_lines(results)))
    print(f"gradebook: {results['gradebook']} updated; results: {Path(a.course_dir) / 'gradeflow_runs' / results['run_id'] / 'results'}")
    ungraded = results["counts"].get("ungraded_submissions", 0)
    if ungraded:  # as `gradeflow grade`: nothing was written for them, and the exit code says so
        print(f"gradeflow: {ungraded} submission(s) not graded because gradeflow or the sandbox failed (see the summary); their earlier grades are unchanged. "
              f"Exit code 75: `gradeflow retry {a.run}` re-runs them, then sync again.", file=sys.stderr)
        return EXIT_INFRA
    return 0


def _cmd_logs(a: argparse.Namespace) -> int:
    for title, text in logs(_backend(a), a.run, student=a.student, step=a.step, tail=None if a.all else a.tail):
        print(f"==> {title} <==\n{text}\n")
    return 0


def _cmd_render(a: argparse.Namespace) -> int:
    print(render(a.directory))
    return 0


def add_argo_commands(subparsers: Any) -> None:
    """Add submit, status, watch, retry, resubmit, sync, logs and render to `gradeflow`."""
    from .cli import add_feedback_arguments

    s = subparsers.add_parser("submit", help="submit an assignment's grading to Argo Workflows (--argo)")
    s.add_argument("course", help="the course id (or its local directory; the cluster reads the course from --course-pvc)")
    s.add_argument("assignment", help="the assignment id, e.g. ps1")
    s.add_argument("--argo", dest="runner", action="store_const", const="argo", default=None, help="run on Argo Workflows (the only remote runner)")
    s.add_argument("--run-id", default=None, help="name of the run and of its folder in the store (default ASSIGNMENT-DATE-TIME)")
    s.add_argument("--course-pvc", default=None, help="PersistentVolumeClaim with the course (default gradeflow-course)")
    s.add_argument("--course-subpath", default=None, help="the course directory inside that volume")
    s.add_argument("--image", default=None, help="grader image (default: the template's)")
    s.add_argument("--store-prefix", default=None, help="prefix of the run in the bucket (default gradeflow)")
    s.add_argument("--parallelism", type=int, default=None, help=f"pods at once (default {DEFAULT_PARALLELISM})")
    for flag, what in (("cell-timeout", "seconds per cell"), ("memory", "MiB per submission"), ("cpu-time", "CPU seconds per process"), ("wall-time", "seconds per submission"), ("cpu", "CPU limit of an execute pod")):
        s.add_argument(f"--{flag}", default=None, help=what)
    add_feedback_arguments(s)
    s.add_argument("--watch", action="store_true", help="follow the run until it finishes")
    s.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    _add_connection(s)
    s.set_defaults(func=_cmd_submit)

    st = subparsers.add_parser("status", help="a run's progress per step and its failed submissions (no RUN: list runs)")
    st.add_argument("run", nargs="?", help="run id or workflow name")
    st.add_argument("--assignment", default=None, help="list only this assignment's runs")
    st.add_argument("--json", action="store_true", help="machine-readable")
    _add_connection(st)
    st.set_defaults(func=_cmd_status)

    w = subparsers.add_parser("watch", help="follow a run until it finishes (done/failed/running per step)")
    w.add_argument("run")
    w.add_argument("--poll", type=float, default=5.0, help="seconds between polls")
    w.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    _add_connection(w)
    w.set_defaults(func=_cmd_watch)

    r = subparsers.add_parser("retry", help="re-run only the failed nodes of a failed run, then score and merge again")
    r.add_argument("run")
    _add_connection(r)
    r.set_defaults(func=_cmd_retry)

    rs = subparsers.add_parser("resubmit", help="run a finished run again (same run id and parameters)")
    rs.add_argument("run")
    rs.add_argument("--memoized", action="store_true", help="reuse what succeeded; only for a failed run")
    _add_connection(rs)
    rs.set_defaults(func=_cmd_resubmit)

    sy = subparsers.add_parser("sync", help="merge a finished run from the store into the course's gradebook")
    sy.add_argument("run", help="run id, workflow name, or the run's URL (s3://BUCKET/PREFIX/RUN_ID)")
    sy.add_argument("course_dir", type=Path, help="the nbgrader course directory (holds nbgrader_config.py)")
    sy.add_argument("--store", default=None, help="the artifact repository's bucket, e.g. s3://gradeflow (GRADEFLOW_ARGO_STORE); credentials and endpoint from AWS_* variables")
    sy.add_argument("--store-prefix", default=None, help="the run's prefix in the bucket (default: the run's own, else gradeflow); needed only when Argo no longer has the run")
    _add_connection(sy)
    sy.set_defaults(func=_cmd_sync)

    lg = subparsers.add_parser("logs", help="logs of a run's failed nodes (or of one student's or step's)")
    lg.add_argument("run")
    lg.add_argument("--student", default=None)
    lg.add_argument("--step", default=None, choices=STEP_ORDER)
    lg.add_argument("--tail", type=int, default=60, help="last N lines per node (default 60)")
    lg.add_argument("--all", action="store_true", help="whole logs")
    _add_connection(lg)
    lg.set_defaults(func=_cmd_logs)

    rd = subparsers.add_parser("render", help="write the WorkflowTemplate YAML (argo/workflowtemplate.yaml)")
    rd.add_argument("directory", nargs="?", default="argo")
    rd.set_defaults(func=_cmd_render)
