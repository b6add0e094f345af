"""The `gradeflow` subcommands for Argo: submit, status, watch, retry, resubmit, sync, logs, render.

Argument parsing and printing only; every command is one call into pipelines/argo/runs.py or
sync.py, which are also gradeflow's Python API (`pipelines.client`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from steps.contract import DAG as STEP_ORDER
from steps.contract import EXIT_INFRA
from steps.errors import TeacherError
from steps.params import add_arguments, submit_params

from .backends import Backend
from .groups import (
    GroupStatus,
    find_run_or_group,
    group_logs,
    group_status,
    group_sync_lines,
    group_to_sync,
    retry_group,
    sync_group,
    wait_group,
)
from .runs import list_runs, logs, resubmit, retry, submit, submit_class, wait
from .settings import DEFAULT_NAMESPACE, ArgoSettings, connect
from .status import RunStatus, run_status
from .sync import sync
from .workflow import DEFAULT_CLASS_SIZE, DEFAULT_PARALLELISM, LABEL_RUN_GROUP, SHARD_SIZE, render

__all__ = ["add_argo_commands"]


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Argo connection (default: the argo CLI's environment variables)")
    g.add_argument(
        "--argo-server", default=None, help="Argo Server host:port (ARGO_SERVER); without it the Kubernetes API is used"
    )
    g.add_argument("--argo-token", default=None, help="bearer token (ARGO_TOKEN)")
    g.add_argument(
        "-n", "--namespace", default=None, help=f"namespace of the runs (ARGO_NAMESPACE, default {DEFAULT_NAMESPACE})"
    )
    g.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        default=None,
        help="do not verify the server's TLS certificate (ARGO_INSECURE_SKIP_VERIFY)",
    )
    g.add_argument(
        "--argo-plaintext",
        dest="secure",
        action="store_false",
        default=None,
        help="plain http to the Argo Server (ARGO_SECURE=false)",
    )
    g.add_argument(
        "--kubernetes",
        dest="backend",
        action="store_const",
        const="kubernetes",
        default=None,
        help="use the Kubernetes API even if ARGO_SERVER is set",
    )
    g.add_argument("--kube-context", default=None, help="kubeconfig context for the Kubernetes API")


def _backend(a: argparse.Namespace) -> Backend:
    settings = ArgoSettings.from_env(
        os.environ,
        server=a.argo_server,
        token=a.argo_token,
        namespace=a.namespace,
        insecure_skip_verify=a.insecure_skip_verify,
        secure=a.secure,
        kube_context=a.kube_context,
    )
    return connect(settings, a.backend)


def _print_status(st: RunStatus | GroupStatus) -> None:
    print("\n".join(st.lines()), flush=True)


def _cmd_submit(a: argparse.Namespace) -> int:
    if a.runner != "argo":
        raise TeacherError(
            "`gradeflow submit` sends a run to a cluster and needs --argo",
            f"to grade on this machine run `gradeflow grade {a.course} {a.assignment}`",
        )
    b = _backend(a)
    given = {p: getattr(a, p.teacher_dest) for p in submit_params()}  # the steps' parameters (steps/params.py)
    given = {p: ("true" if v else None) if p.type is bool else v for p, v in given.items()}
    options: dict[str, Any] = {
        "run_id": a.run_id,
        "limits": {p.teacher_flag: v for p, v in given.items() if v is not None and p.limit},
        "parameters": {p.teacher_flag: v for p, v in given.items() if v is not None and not p.limit},
        "parallelism": a.parallelism,
    }
    if a.class_size is None:
        wfs = [submit(b, a.course, a.assignment, **options)]
    else:
        wfs = submit_class(b, a.course, a.assignment, class_size=a.class_size, **options)
    names = [wf["metadata"]["name"] for wf in wfs]
    group = (wfs[0]["metadata"].get("labels") or {}).get(LABEL_RUN_GROUP)
    if group:
        print(f"a class of up to {a.class_size} is graded as {len(names)} runs (docs/argo.md, 'Big classes'):")
    for name in names:
        print(f"submitted run {name} in namespace {b.namespace}")
    watched = group or names[0]
    print(f"  watch: gradeflow watch {watched}   then: gradeflow sync {watched} COURSE_DIR --store s3://BUCKET")
    if a.watch:
        if group:
            return _finish(wait_group(b, group, progress=_print_status, poll=a.poll))
        return _finish(wait(b, watched, progress=_print_status, poll=a.poll))
    return 0


def _finish(st: RunStatus | GroupStatus) -> int:
    if isinstance(st, GroupStatus) and st.phase != "Succeeded":
        failed = [s.name for s in st.failed_shards]
        print(
            f"run group {st.name} {st.phase.lower()}: {len(failed)} of its {len(st.shards)} runs failed "
            f"({', '.join(failed)}); `gradeflow logs {st.name}` shows why; `gradeflow retry {st.name}` re-runs only "
            "what failed",
            file=sys.stderr,
        )
        return 1
    if st.phase != "Succeeded":
        print(
            f"run {st.name} {st.phase.lower() or 'stopped'}: `gradeflow logs {st.name}` shows why; `gradeflow retry "
            f"{st.name}` re-runs only what failed",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_status(a: argparse.Namespace) -> int:
    b = _backend(a)
    if not a.run:
        runs = list_runs(b, a.assignment)
        if not runs:
            print(f"no gradeflow runs in {b.where()}")
        for w in runs:
            print(run_status(w).brief())
        return 0
    wf, shards = find_run_or_group(b, a.run)
    if shards:  # a class graded as several runs: one line per run and a total
        gs = group_status(a.run, shards)
        print(json.dumps(gs.as_dict(), indent=1) if a.json else "\n".join(gs.lines()))
        return 0
    st = run_status(wf)
    if a.json:
        print(
            json.dumps(
                {
                    "name": st.name,
                    "run_id": st.run_id,
                    "phase": st.phase,
                    "message": st.message,
                    "steps": {k: vars(v) for k, v in st.steps.items()},
                    "failed": [{"step": f.step, "student": f.student, "message": f.message} for f in st.failed],
                    "waiting": [{**vars(w), "hint": w.hint} for w in st.waiting],
                    "summary": st.summary,
                },
                indent=1,
            )
        )
    else:
        _print_status(st)
    return 0


def _cmd_watch(a: argparse.Namespace) -> int:
    b = _backend(a)
    _, shards = find_run_or_group(b, a.run)
    follow = wait_group if shards else wait
    return _finish(follow(b, a.run, poll=a.poll, timeout=a.timeout, progress=_print_status))


def _cmd_retry(a: argparse.Namespace) -> int:
    b = _backend(a)
    _, shards = find_run_or_group(b, a.run)
    if shards:
        names = [wf["metadata"]["name"] for wf in retry_group(b, a.run)]
        print(
            f"retrying the failed runs of {a.run} ({', '.join(names)}), each only its failed nodes; the others "
            f"are left as they are (`gradeflow watch {a.run}`)"
        )
        return 0
    wf = retry(b, a.run)
    print(
        f"retrying the failed nodes of {wf['metadata']['name']}; score and merge run again when they finish "
        f"(`gradeflow watch {a.run}`)"
    )
    return 0


def _cmd_resubmit(a: argparse.Namespace) -> int:
    b = _backend(a)
    wf = resubmit(b, a.run, a.memoized)
    print(
        f"resubmitted {a.run} as {wf['metadata'].get('name') or wf['metadata'].get('generateName')}"
        + (" (reusing what succeeded)" if a.memoized else "")
    )
    return 0


def _cmd_sync(a: argparse.Namespace) -> int:
    from steps.merge import summary_lines

    from ..store import RUNS_DIR

    store = a.store or os.environ.get("GRADEFLOW_ARGO_STORE") or None
    b = None
    if "://" not in a.run:
        try:
            b = _backend(a)
        except TeacherError:
            if not store:
                raise
            # no Argo to ask (or no kubeconfig): the run is found in the store alone
    shards = group_to_sync(a.run, b, store, a.store_prefix)
    if shards is not None:
        return _sync_group(a, b, store, shards)
    results = sync(a.run, a.course_dir, backend=b, store=store, store_prefix=a.store_prefix)
    print("\n".join(summary_lines(results)))
    print(
        f"gradebook: {results['gradebook']} updated; results: "
        f"{Path(a.course_dir) / RUNS_DIR / results['run_id'] / 'results'}"
    )
    ungraded = results["counts"].get("ungraded_submissions", 0)
    if ungraded:  # as `gradeflow grade`: nothing was written for them, and the exit code says so
        print(
            f"gradeflow: {ungraded} submission(s) not graded because gradeflow or the sandbox failed (see the "
            "summary); their earlier grades are unchanged. "
            f"Exit code 75: `gradeflow retry {a.run}` re-runs them, then sync again.",
            file=sys.stderr,
        )
        return EXIT_INFRA
    return 0


def _sync_group(a: argparse.Namespace, b: Backend | None, store: str | None, shards: list[dict[str, Any]]) -> int:
    merged, not_merged = sync_group(
        a.run, a.course_dir, store=store, backend=b, store_prefix=a.store_prefix, workflows=shards or None
    )
    print("\n".join(group_sync_lines(a.run, merged, not_merged)))
    ungraded = sum(r["counts"].get("ungraded_submissions", 0) for r in merged)
    if ungraded or not_merged:  # as for one run: what is not graded is said, and exit 75 says so
        print(
            f"gradeflow: {ungraded} submission(s) not graded and {len(not_merged)} run(s) not merged; earlier grades "
            f"of those students are unchanged. Exit code 75: `gradeflow retry {a.run}` re-runs the failed runs, "
            "then sync again.",
            file=sys.stderr,
        )
        return EXIT_INFRA
    return 0


def _cmd_logs(a: argparse.Namespace) -> int:
    b = _backend(a)
    _, shards = find_run_or_group(b, a.run)
    read = group_logs if shards else logs
    for title, text in read(b, a.run, student=a.student, step=a.step, tail=None if a.all else a.tail):
        print(f"==> {title} <==\n{text}\n")
    return 0


def _cmd_render(a: argparse.Namespace) -> int:
    print(render(a.directory))
    return 0


def add_argo_commands(subparsers: Any) -> None:
    """Add submit, status, watch, retry, resubmit, sync, logs and render to `gradeflow`."""
    s = subparsers.add_parser("submit", help="submit an assignment's grading to Argo Workflows (--argo)")
    s.add_argument(
        "course", help="the course id (or its local directory; the cluster reads the course from --course-pvc)"
    )
    s.add_argument("assignment", help="the assignment id, e.g. ps1")
    s.add_argument(
        "--argo",
        dest="runner",
        action="store_const",
        const="argo",
        default=None,
        help="run on Argo Workflows (the only remote runner)",
    )
    s.add_argument(
        "--run-id", default=None, help="name of the run and of its folder in the store (default ASSIGNMENT-DATE-TIME)"
    )
    s.add_argument("--parallelism", type=int, default=None, help=f"pods at once (default {DEFAULT_PARALLELISM})")
    s.add_argument(
        "--class-size",
        type=int,
        default=None,
        metavar="N",
        help=(
            f"the most submissions to grade (default: the template's {DEFAULT_CLASS_SIZE}); above {SHARD_SIZE} the "
            f"class is graded as several runs of at most {SHARD_SIZE}"
        ),
    )
    add_arguments(s, submit_params(), "submit")  # as strings; unset ones keep the template's default
    s.add_argument("--watch", action="store_true", help="follow the run until it finishes")
    s.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    _add_connection(s)
    s.set_defaults(func=_cmd_submit)

    st = subparsers.add_parser(
        "status", help="a run's progress per step and its failed submissions (no RUN: list runs)"
    )
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
    sy.add_argument(
        "--store",
        default=None,
        help=(
            "the artifact repository's bucket, e.g. s3://gradeflow (GRADEFLOW_ARGO_STORE); credentials and "
            "endpoint from AWS_* variables"
        ),
    )
    sy.add_argument(
        "--store-prefix",
        default=None,
        help=(
            "the run's prefix in the bucket (default: the run's own, else gradeflow); needed only when Argo no "
            "longer has the run"
        ),
    )
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
