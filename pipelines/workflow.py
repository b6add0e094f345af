"""The grading DAG on Argo Workflows: a Hera WorkflowTemplate built from the step contract.

    autograde:        collect >> restore >> execute (one sandboxed pod per submission)
                      network-check >> execute    (can execute pods reach the store? before any runs)
    execute, each:    execute (memoized) >> copy-memoized (a hit from another run)
                                         >> execute-again (that hit's files are gone)
    onExit, always:   score >> feedback (when asked) >> merge

Pod-level settings (hardening, resources and podSpecPatch, timeouts, retries) are in
pipelines/argo_pods.py, each with the Argo or Kubernetes rule it follows.

Every container template is made from `steps.contract.STEPS`: it runs
`python -m steps.<name> --workspace /gradeflow ...` in the grader image, and its S3 artifacts
are the step's declared inputs and outputs at `/gradeflow/<artifact path>`, stored under
`<store-prefix>/<run-id>/<artifact path>` in the bucket of the `gradeflow` artifact
repository (ConfigMap `artifact-repositories`). So a run's prefix in the store is laid out
exactly like a local workspace, and `gradeflow sync` merges it with the same `steps.merge`.

Why score and merge run in the exit handler rather than after execute in the DAG: a task
that runs after a failed node makes Argo's retry skip that node (it only resets failed nodes
without succeeded descendants), and a DAG whose last task succeeded reports Succeeded, which
Argo refuses to retry. In `onExit`, score and merge run however execute ended, the run stays
Failed while a submission failed, and `argo retry` (`gradeflow retry`) re-runs exactly the
failed execute pods and then the exit handler again. `continueOn` is not used for the same
reason; `failFast: false` keeps the other submissions running when one fails.

A class bigger than SHARD_SIZE is graded as one run per shard (`build_shards`): Argo keeps a
run in one object of at most 1 MiB, which 850 to 900 submissions fill (tests/argo_scale_model.py).

Render the checked-in YAML with `python -m pipelines.workflow render argo/`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    Env,
    ExistingVolume,
    NoneArchiveStrategy,
    Parameter,
    RawArtifact,
    S3Artifact,
    Workflow,
    WorkflowTemplate,
)
from hera.workflows.models import (
    ArtifactRepositoryRef,
    Cache,
    ExecutorConfig,
    LocalObjectReference,
    Memoize,
    PodGC,
    TTLStrategy,
    ValueFrom,
    VolumeMount,
    WorkflowTemplateRef,
)

from steps.contract import DAG as STEP_ORDER
from steps.contract import STEPS, Step
from steps.contract import Artifact as StepArtifact

from . import argo_pods as pods
from .argo_pods import RETRY_EXPRESSION, RETRY_LIMIT, UID  # noqa: F401 - re-exported

__all__ = [
    "TEMPLATE_NAME",
    "PARAMETERS",
    "WorkflowParameter",
    "build_template",
    "build_workflow",
    "build_shards",
    "shard_plan",
    "SHARD_SIZE",
    "render",
    "render_yaml",
    "artifact_key",
    "label_value",
    "step_arguments",
    "main",
]

TEMPLATE_NAME = "gradeflow-autograde"
WORKDIR = "/gradeflow"  # the step workspace inside every pod (an emptyDir)
COURSE_MOUNT = "/course"  # the course PVC, read-only, in the collect pod only
STUDENTS_FILE = f"{WORKDIR}/students.json"  # restore --emit-students writes the fan-out list here
SUMMARY_FILE = f"{WORKDIR}/results/summary.txt"

ARTIFACT_REPOSITORY = ArtifactRepositoryRef(config_map="artifact-repositories", key="gradeflow")
WORKFLOW_SERVICE_ACCOUNT = "gradeflow-workflow"  # the pods' own account: no permissions, token never mounted
EXECUTOR_SERVICE_ACCOUNT = "gradeflow-executor"  # Argo's init/wait containers: workflowtaskresults only
# execute is memoized in one ConfigMap per course, assignment, shard and image, and per run for
# an image not pinned by digest (a ConfigMap holds at most 1 MiB, about 1,700 entries, and a
# full one makes every later save fail, which errors the pod's node: one cache for everything,
# or one that every unpinned run adds a class to, fills up). The controller creates it on the
# first save (workflow/controller/cache/configmap_cache.go); its cache GC deletes it once empty.
EXECUTE_CACHE_PREFIX = "gradeflow-cache-"
EXECUTE_CACHE_MAX_AGE = "2160h"  # a semester: a regrade of an unchanged submission reuses its run
DEFAULT_IMAGE = "localhost/gradeflow-grader:dev"  # what images/grader/build.sh tags
DEFAULT_PARALLELISM = 10
DEFAULT_CLASS_SIZE = 200
# The most submissions one Workflow grades. Argo keeps a run in ONE object of at most 1 MiB
# (workflow/packer/packer.go, MAX_WORKFLOW_SIZE) with its node statuses gzip-compressed, about
# 1.1 KB per submission (measured: tests/argo_scale_model.py, docs/performance.md "Argo at
# scale"), and without a database there is nothing past that. A bigger class is graded as
# several runs of this many on average (build_shards; a hash of the id picks the shard, so one
# may be a few dozen bigger, which its class-size allows), each under half of every limit.
SHARD_SIZE = 350
SUPPORTED_ARGO = ">= 3.5.0"  # runs there; which releases run it RIGHT: docs/argo.md "Argo versions"

LABEL_COURSE = "gradeflow.io/course"
LABEL_ASSIGNMENT = "gradeflow.io/assignment"
LABEL_RUN = "gradeflow.io/run-id"
LABEL_STEP = "gradeflow.io/step"
LABEL_RUN_GROUP = "gradeflow.io/run-group"  # the run id every shard of one class's run shares
# Pods with this label run student code; argo/install/networkpolicy.yaml selects them.
LABEL_UNTRUSTED = "gradeflow.io/runs-student-code"


def _p(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


def _expr_p(name: str) -> str:
    """A workflow parameter inside an `{{=...}}` expression (hyphens need the index form)."""
    return f"workflow.parameters['{name}']"


STUDENT = "{{inputs.parameters.student}}"
RUN_PREFIX = f"{_p('store-prefix')}/{_p('run-id')}"


@dataclass(frozen=True)
class WorkflowParameter:
    """A parameter of the WorkflowTemplate, as the Argo UI's submit form shows it."""

    name: str
    default: str | None  # None: required, no default
    description: str


PARAMETERS: tuple[WorkflowParameter, ...] = (
    WorkflowParameter("assignment", None, "the nbgrader assignment id, e.g. ps1"),
    WorkflowParameter(
        "run-id",
        None,
        "names this run: its artifacts go to <store-prefix>/<run-id>/ (a new one per run, e.g. ps1-1122a)",
    ),
    WorkflowParameter("course", "", "the course id, for the gradeflow.io/course label"),
    WorkflowParameter(
        "course-pvc",
        "gradeflow-course",
        "the PersistentVolumeClaim holding the nbgrader course (nbgrader_config.py, gradebook.db unless db_url names a database server, source/, submitted/); mounted read-only",
    ),
    WorkflowParameter("course-subpath", "", "the course directory inside that volume ('' = its root)"),
    WorkflowParameter("image", DEFAULT_IMAGE, "the grader image (images/grader/Containerfile)"),
    WorkflowParameter("store-prefix", "gradeflow", "prefix of every run in the artifact repository's bucket"),
    WorkflowParameter("cell-timeout", "", "seconds per cell ('' = the course's nbgrader Execute.timeout)"),
    WorkflowParameter("memory", "1024", "MiB for one submission's notebooks"),
    WorkflowParameter("cpu-time", "300", "CPU seconds per process"),
    WorkflowParameter("wall-time", "600", "seconds for one submission; its pod is stopped 300 s later"),
    WorkflowParameter("cpu", "1", "CPU limit of one execute pod"),
    WorkflowParameter(
        "strict",
        "false",
        "true: no recovery of malformed notebooks (a deleted, copied or renamed grade cell skips the notebook, as nbgrader would)",
    ),
    WorkflowParameter(
        "class-size",
        str(DEFAULT_CLASS_SIZE),
        "the most submissions a run grades: sizes score's and merge's scratch space",
    ),
    WorkflowParameter(
        "shard",
        "0/1",
        "i/S: grade only shard i of S of the class (chosen by a hash of the student id); a class too big for one run is graded as S runs (docs/argo.md, 'Big classes')",
    ),
    WorkflowParameter(
        "feedback",
        "false",
        "true: also write each student's feedback HTML (feedback/ in the run; `gradeflow sync` puts it in the course)",
    ),
    WorkflowParameter(
        "feedback-hidden-tests", "redact", "hidden tests in feedback: redact, or show (nbgrader's behaviour)"
    ),
)

# What a memoized execute result depends on besides the submission (its restored work dir and
# the course's execute configuration: the item's work-hash): a change of any of these runs the
# submission again. The image counts only when pinned by digest (see _memo_key).
CACHE_INPUTS = ("image", "cell-timeout", "memory", "cpu-time", "wall-time", "cpu")
# The limits build_workflow(limits=...) accepts.
LIMITS = ("cell-timeout", "memory", "cpu-time", "wall-time", "cpu")


# --- binding the contract's parameters ----------------------------------------------------------

# How each contract parameter is given to a step's CLI in the cluster. A contract parameter
# that is not bound here is listed in UNBOUND with the reason (tests check both stay complete).
BOUND: dict[str, list[str]] = {
    "assignment": ["--assignment", _p("assignment")],
    "student": ["--student", STUDENT],
    "sandbox": ["--sandbox", "pod"],  # the pod is the sandbox: see the execute template's securityContext
    "cell-timeout": ["--cell-timeout", _p("cell-timeout")],
    "memory": ["--memory", _p("memory")],
    "cpu-time": ["--cpu-time", _p("cpu-time")],
    "wall-time": ["--wall-time", _p("wall-time")],
    "strict": ["--strict", _p("strict")],
    "hidden-tests": ["--hidden-tests", _p("feedback-hidden-tests")],
}
BOUND_PER_STEP: dict[tuple[str, str], list[str]] = {
    ("collect", "course-dir"): ["--course-dir", COURSE_MOUNT],
}
UNBOUND: dict[tuple[str, str], str] = {
    ("collect", "students"): "a run grades every submission; `gradeflow retry` re-runs failed ones",
    ("restore", "students"): "every submission collect found",
    ("score", "students"): "every submission collect found",
    ("feedback", "students"): "every submission score graded",
    ("merge", "course-dir"): "the cluster never writes gradebook.db: `gradeflow sync` merges on the teacher's side",
}
# CLI flags the cluster needs beyond the contract's parameters.
EXTRA_ARGUMENTS: dict[str, list[str]] = {
    "collect": ["--run-id", _p("run-id"), "--shard", _p("shard")],
    "restore": ["--emit-students", STUDENTS_FILE, "--class-size", _p("class-size")],
}


def step_arguments(step: Step) -> list[str]:
    """The CLI arguments of `step` in its pod, from the contract's parameters."""
    args = ["--workspace", WORKDIR]
    for name in step.parameters:
        if (step.name, name) in UNBOUND:
            continue
        args += BOUND_PER_STEP.get((step.name, name)) or BOUND[name]
    return args + EXTRA_ARGUMENTS.get(step.name, [])


# --- artifacts ----------------------------------------------------------------------------------


def _is_directory(a: StepArtifact) -> bool:
    return "." not in Path(a.path).name


def artifact_key(a: StepArtifact) -> str:
    """The artifact's key in the bucket: <store-prefix>/<run-id>/<path>, per student where needed."""
    return f"{RUN_PREFIX}/{a.at(STUDENT) if a.per_submission else a.path}"


def _artifact(a: StepArtifact, output: bool, optional: bool = False) -> S3Artifact:
    # Directories that hold one entry per submission may be empty (no submissions, every
    # execute failed), and an empty directory is no object in S3: the next step must still run
    # and report. Single files and one student's directory are required, unless `optional`.
    directory = optional or (_is_directory(a) and not a.per_submission)
    return S3Artifact(
        name=a.name,
        path=f"{WORKDIR}/{a.at(STUDENT) if a.per_submission else a.path}",
        key=artifact_key(a),
        archive=NoneArchiveStrategy() if output else None,  # plain objects: the run prefix is a workspace
        optional=True if directory else None,
    )


# --- templates ----------------------------------------------------------------------------------

_ENV = [Env(name="HOME", value="/tmp"), Env(name="PYTHONDONTWRITEBYTECODE", value="1")]
_DEFAULTS = {p.name: p.default for p in PARAMETERS if p.default is not None}


def _pod(**settings) -> dict:
    """What every container template gets: hardening, scratch space, resources, deadline, retries."""
    scratch = {k: settings.pop(k) for k in ("workspace_mib", "tmp_in_memory_mib") if k in settings}
    return dict(
        image=_p("image"),
        image_pull_policy="IfNotPresent",
        env=_ENV,
        volumes=pods.scratch_volumes(**scratch),
        security_context=pods.container_security(),
        pod_security_context=pods.pod_security(),
        resources=settings.pop("resources", pods.trusted_resources()),
        timeout=settings.pop("timeout", pods.TRUSTED_TIMEOUT),
        retry_strategy=settings.pop("retry_strategy", pods.retry_strategy()),
        **settings,
    )


def _step_container(step: Step, **extra) -> Container:
    """A container template running `step`'s CLI, with the step's declared artifacts."""
    inputs: list = extra.pop("input_parameters", [Parameter(name="student")] if step.fan_out else [])
    optional_inputs: bool = extra.pop("optional_inputs", False)
    inputs += [_artifact(a, output=False, optional=optional_inputs) for a in step.inputs]
    outputs: list = [_artifact(a, output=True) for a in step.outputs]
    outputs += extra.pop("output_parameters", [])
    labels = {LABEL_STEP: step.name}
    if step.runs_student_code:
        labels[LABEL_UNTRUSTED] = "true"
    return Container(
        name=extra.pop("name", step.name),
        command=["python", "-m", step.module],
        args=step_arguments(step),
        inputs=inputs,
        outputs=outputs,
        volume_mounts=extra.pop("volume_mounts", None),
        labels=labels,
        annotations={"gradeflow.io/description": extra.pop("description", step.description)},
        **_pod(**extra),
    )


def _unpinned_run() -> str:
    """The run id when the image is not pinned by digest, '' when it is (an expression)."""
    return f"sprig.ternary('', {_expr_p('run-id')}, sprig.contains('@sha256:', {_expr_p('image')}))"


def _memo_key() -> str:
    """execute's cache key: what the result depends on, hashed to a valid key.

    The image counts by DIGEST only: a tag such as :dev can point at another image tomorrow,
    so with an image that is not pinned (`name@sha256:...`) the key also holds the run id,
    and no run reuses another run's results.
    """
    unpinned = _unpinned_run()
    parts = (
        ["inputs.parameters.student", "inputs.parameters['work-hash']"]
        + [_expr_p(n) for n in CACHE_INPUTS]
        + [unpinned]
    )
    return "execute-{{=sprig.sha256sum(" + " + '|' + ".join(parts) + ")}}"


def _cache_name() -> str:
    """One cache ConfigMap per course, assignment, shard and image (and run, for an unpinned
    image, whose entries no other run can hit): a valid name whatever the ids are.

    So one cache holds at most a shard's submissions per image, and a new image or an unpinned
    run starts an empty one instead of filling an old one up (the GC deletes the old once empty).
    """
    parts = [
        "workflow.parameters.course",
        "workflow.parameters.assignment",
        "workflow.parameters.shard",
        _expr_p("image"),
        _unpinned_run(),
    ]
    return EXECUTE_CACHE_PREFIX + "{{=sprig.trunc(16, sprig.sha256sum(" + " + '/' + ".join(parts) + "))}}"


def _execute_container(name: str = "execute", memoized: bool = True) -> Container:
    step = STEPS["execute"]
    memo = Memoize(
        key=_memo_key(), max_age=EXECUTE_CACHE_MAX_AGE, cache=Cache(config_map=LocalObjectReference(name=_cache_name()))
    )
    return _step_container(
        step,
        name=name,
        description=step.description + ("" if memoized else " (again: its memoized result's files are gone)"),
        input_parameters=[Parameter(name="student"), Parameter(name="work-hash")],
        # the student's code gets no Kubernetes token; Argo's own containers use their account
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        active_deadline_seconds=pods.EXECUTE_DEADLINE,
        timeout=pods.EXECUTE_TIMEOUT,
        resources=pods.execute_resources(_DEFAULTS),
        pod_spec_patch=pods.execute_pod_spec_patch(),
        tmp_in_memory_mib=pods.EXECUTE_TMP_MIB,
        memoize=memo if memoized else None,
        output_parameters=[
            # Which run produced these outputs. A memoized result keeps the producing run's
            # artifact keys, so a cache hit from another run is copied into this one. A plain
            # value, never a file: the executor reports `we.Template.Outputs` as substituted
            # (workflow/executor/executor.go ReportOutputs) and reads only valueFrom.path
            # parameters from the pod, so student code cannot steer it.
            Parameter(name="ran-in", value=_p("run-id")),
        ],
    )


COPY_RESULT = f"{WORKDIR}/.copy-result"


def _copy_memoized_container() -> Container:
    executed = STEPS["execute"].outputs[0]
    # no location: the task passes the memoized execute task's artifact (`from`). Optional: when
    # a lifecycle rule or GC removed the files behind a cache entry, the init container skips
    # it ("Skipping optional input artifact that was not found", workflow/executor/executor.go)
    # and this pod reports `missing`, so the DAG executes the submission again.
    cached = Artifact(name=executed.name, path=f"{WORKDIR}/{executed.at(STUDENT)}", optional=True)
    out = _artifact(executed, output=True)
    out.optional = True
    return Container(
        name="copy-memoized",
        # Argo moves the files: the init container downloads the cached result, the wait
        # container uploads it under this run. The container only says whether it got them.
        command=[
            "sh",
            "-c",
            'if [ -e "$1/execute.json" ]; then echo copied; else echo missing; fi > "$2"',
            "copy-memoized",
        ],
        args=[f"{WORKDIR}/{executed.at(STUDENT)}", COPY_RESULT],
        inputs=[Parameter(name="student"), cached],
        outputs=[out, Parameter(name="result", value_from=ValueFrom(path=COPY_RESULT))],
        labels={LABEL_STEP: "execute"},
        annotations={
            "gradeflow.io/description": "copy a memoized execute result from the run that produced it into this run"
        },
        **_pod(resources=pods.copy_resources(), timeout=pods.COPY_TIMEOUT),
    )


NETWORK_CHECK_FILE = f"{WORKDIR}/network-check.txt"


def _network_check_container() -> Container:
    """A pod like execute's (same label: the same NetworkPolicy) that only uploads one small file.

    Argo's wait container needs DNS, the object store and the API server to finish it, as in
    every execute pod. When the NetworkPolicy blocks any of them this pod errors (Argo retries
    it, then fails the run) before a single submission runs, instead of every execute pod
    failing after running the student's notebook.
    """
    return Container(
        name="network-check",
        command=["true"],  # the init container writes the file, the wait container uploads it
        inputs=[
            RawArtifact(name="probe", path=NETWORK_CHECK_FILE, data="gradeflow: execute pods can reach the store\n")
        ],
        outputs=[
            S3Artifact(
                name="probe",
                path=NETWORK_CHECK_FILE,
                key=f"{RUN_PREFIX}/network-check.txt",
                archive=NoneArchiveStrategy(),
            )
        ],
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        labels={LABEL_STEP: "execute", LABEL_UNTRUSTED: "true"},
        annotations={
            "gradeflow.io/description": "can execute pods upload? If this fails, the NetworkPolicy blocks the object store, the API server or DNS: docs/argo.md section 3"
        },
        **_pod(resources=pods.copy_resources(), timeout=pods.COPY_TIMEOUT),
    )


def _template_parameter(p: WorkflowParameter) -> Parameter:
    # a parameter without a value is one the submitter must give (the UI form asks for it)
    if p.default is None:
        return Parameter(name=p.name, description=p.description)
    return Parameter(name=p.name, value=p.default, description=p.description)


def build_template(parallelism: int = DEFAULT_PARALLELISM) -> WorkflowTemplate:
    """The `gradeflow-autograde` WorkflowTemplate."""
    with WorkflowTemplate(
        name=TEMPLATE_NAME,
        annotations={
            "workflows.argoproj.io/description": "Autograde an nbgrader assignment: collect, restore, execute (one sandboxed pod per submission), score, merge.",
            "workflows.argoproj.io/version": SUPPORTED_ARGO,
        },
        labels={"app.kubernetes.io/name": "gradeflow"},
        entrypoint="autograde",
        on_exit="score-and-merge",
        arguments=[_template_parameter(p) for p in PARAMETERS],
        # No workflowMetadata.labelsFrom: a raw parameter that is no valid label value (a space,
        # more than 63 characters) errors the whole run. build_workflow sets cleaned labels.
        artifact_repository_ref=ARTIFACT_REPOSITORY,
        parallelism=parallelism,
        service_account_name=WORKFLOW_SERVICE_ACCOUNT,
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        security_context=pods.pod_security(),
        pod_gc=PodGC(strategy="OnPodSuccess"),  # failed pods stay for `gradeflow logs`
        ttl_strategy=TTLStrategy(seconds_after_completion=30 * 24 * 3600),
        volumes=[ExistingVolume(name="course", claim_name=_p("course-pvc"), read_only=True)],
    ) as w:
        collect = _step_container(
            STEPS["collect"],
            volume_mounts=[
                VolumeMount(name="course", mount_path=COURSE_MOUNT, sub_path=_p("course-subpath"), read_only=True)
            ],
        )
        restore = _step_container(
            STEPS["restore"],
            output_parameters=[
                Parameter(name="students", value_from=ValueFrom(path=STUDENTS_FILE), global_name="students")
            ],
        )
        execute = _execute_container()
        execute_again = _execute_container("execute-again", memoized=False)
        copy_memoized = _copy_memoized_container()
        network_check = _network_check_container()
        class_resources, class_mib = pods.class_scratch_resources(_DEFAULTS)
        class_scratch = dict(
            resources=class_resources, workspace_mib=class_mib, pod_spec_patch=pods.class_scratch_pod_spec_patch()
        )
        # score runs in the exit handler however the run ended, so its inputs may be missing
        # (collect failed): then it says so and exits EXIT_USAGE, which is never retried.
        score = _step_container(STEPS["score"], optional_inputs=True, **class_scratch)
        # merge exits 75 when a submission is UNGRADED (the run shows Failed, `gradeflow retry`
        # fixes it); retrying its pod alone would end the same way
        merge = _step_container(
            STEPS["merge"],
            output_parameters=[Parameter(name="summary", value_from=ValueFrom(path=SUMMARY_FILE, default=""))],
            retry_strategy=pods.retry_strategy(own_exit=False),
            **class_scratch,
        )
        feedback = _step_container(STEPS["feedback"], **class_scratch)

        student = {"student": "{{inputs.parameters.student}}", "work-hash": "{{inputs.parameters.work-hash}}"}
        with DAG(
            name="execute-submission", inputs=[Parameter(name="student"), Parameter(name="work-hash")]
        ) as execute_submission:
            run = execute(name="execute", arguments=student)
            # Expression tags compare the values as data: nothing a pod wrote is pasted into them.
            copy = copy_memoized(
                name="copy-memoized",
                when="{{=tasks.execute.outputs.parameters['ran-in'] != " + _expr_p("run-id") + "}}",
                arguments=[
                    Parameter(name="student", value="{{inputs.parameters.student}}"),
                    Artifact(
                        name=STEPS["execute"].outputs[0].name,
                        from_="{{tasks.execute.outputs.artifacts." + STEPS["execute"].outputs[0].name + "}}",
                    ),
                ],
            )
            again = execute_again(
                name="execute-again",
                arguments=student,
                when="{{=tasks['copy-memoized'].outputs.parameters.result == 'missing'}}",
            )
            run >> copy
            copy.on_success(again)  # not when copy was skipped: its output would not exist

        with DAG(name="autograde", fail_fast=False):
            c = collect(name="collect")
            n = network_check(name="network-check")
            r = restore(name="restore")
            e = execute_submission(
                name="execute",
                with_param="{{tasks.restore.outputs.parameters.students}}",
                arguments={"student": "{{item.student}}", "work-hash": "{{item.work-hash}}"},
            )
            c >> r >> e
            n >> e  # no student code runs before the policy has been seen to let uploads through

        with DAG(name="score-and-merge"):
            # runs on exit however execute ended, gated on nothing global: `argo resubmit
            # --memoized` does not copy global outputs, and a skipped score would leave the
            # previous run's results for `sync` to merge
            s = score(name="score")
            # feedback only when asked; merge follows it either way (merge reads feedback/ if any)
            f = feedback(name="feedback", when="{{=" + _expr_p("feedback") + " == 'true'}}")
            merge(name="merge", depends="score.Succeeded && (feedback.Succeeded || feedback.Skipped)")
            s.on_success(f)
    assert [STEPS[n] for n in STEP_ORDER] == [
        STEPS[t.name] for t in (collect, restore, execute, score, feedback, merge)
    ]
    return w


_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
RUN_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def label_value(text: str) -> str:
    """`text` as a Kubernetes label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_VALUE.sub("-", text)[:63].strip("-_.")


def build_workflow(
    assignment: str,
    run_id: str,
    *,
    course: str = "",
    course_pvc: str | None = None,
    course_subpath: str | None = None,
    image: str | None = None,
    store_prefix: str | None = None,
    limits: dict[str, str | int] | None = None,
    parallelism: int | None = None,
    namespace: str | None = None,
    feedback: bool = False,
    feedback_hidden_tests: str | None = None,
    shard: tuple[int, int] | None = None,
    run_group: str | None = None,
) -> Workflow:
    """A Workflow that runs the installed `gradeflow-autograde` template for one assignment.

    Its name is the run id, so `gradeflow status RUN` and the store prefix use the same name.
    `limits` maps cell-timeout, memory, cpu-time, wall-time and cpu to values. `shard` (i, S)
    grades only shard i of S (build_shards makes all of them).
    """
    values: dict[str, str | None] = {
        "assignment": assignment,
        "run-id": run_id,
        "course": course,
        "course-pvc": course_pvc,
        "course-subpath": course_subpath,
        "image": image,
        "store-prefix": store_prefix,
        "feedback": "true" if feedback else None,
        "feedback-hidden-tests": feedback_hidden_tests,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
    }
    if not RUN_ID.match(run_id):
        raise ValueError(
            f"run id {run_id!r} must be 1-63 lowercase letters, digits and '-' (it names the workflow and a label)"
        )
    known = {p.name for p in PARAMETERS}
    for k, v in (limits or {}).items():
        if k not in known:
            raise ValueError(f"unknown limit {k!r}; the limits are: {', '.join(LIMITS)}")
        values[k] = "" if v is None else str(v)
    labels = {LABEL_COURSE: label_value(course), LABEL_ASSIGNMENT: label_value(assignment), LABEL_RUN: run_id}
    if run_group:
        labels[LABEL_RUN_GROUP] = run_group
    return Workflow(
        name=run_id,
        namespace=namespace,
        labels=labels,
        workflow_template_ref=WorkflowTemplateRef(name=TEMPLATE_NAME),
        arguments=[Parameter(name=k, value=v) for k, v in values.items() if v is not None],
        parallelism=parallelism,
    )


def shard_plan(class_size: int, shard_size: int = SHARD_SIZE) -> tuple[int, int]:
    """(runs, class-size of each) for a class of `class_size`: at most `shard_size` per run.

    Shards are drawn by a hash of the student id (steps.collect.shard_of), so their sizes vary
    like a binomial draw; each run's class-size allows four standard deviations over the mean
    (restore refuses a shard above it, exit 2, before any notebook runs: about 1 in 30,000)."""
    shards = max(1, math.ceil(class_size / shard_size))
    if shards == 1:
        return 1, class_size
    mean = class_size / shards
    return shards, math.ceil(mean + 4 * math.sqrt(mean * (1 - 1 / shards))) + 1


def shard_run_ids(run_id: str, shards: int) -> list[str]:
    """The run id of each shard: `<run-id>-2of5`, cut to stay a valid 63-character name."""
    if shards == 1:
        return [run_id]
    out = []
    for i in range(shards):
        suffix = f"-{i + 1}of{shards}"
        out.append(run_id[: 63 - len(suffix)].rstrip("-") + suffix)
    return out


def build_shards(
    assignment: str, run_id: str, *, class_size: int, shard_size: int = SHARD_SIZE, **options
) -> list[Workflow]:
    """The Workflows that grade a class of `class_size`: one, or one per shard when it is too big.

    One run stays exactly `build_workflow(assignment, run_id, ...)`. Each shard is a complete
    run (collect, restore, execute, score, merge) of its students, named by shard_run_ids and
    labelled gradeflow.io/run-group=<run-id>; `gradeflow sync` each into the gradebook.
    """
    shards, per_run = shard_plan(class_size, shard_size)
    limits = {**(options.pop("limits", None) or {}), "class-size": per_run}
    if shards == 1:
        return [build_workflow(assignment, run_id, limits=limits, **options)]
    return [
        build_workflow(assignment, rid, limits=limits, shard=(i, shards), run_group=run_id, **options)
        for i, rid in enumerate(shard_run_ids(run_id, shards))
    ]


# --- rendering ----------------------------------------------------------------------------------

HEADER = """\
# gradeflow's autograde WorkflowTemplate: collect, restore, execute (one sandboxed pod per
# submission), then score and merge on exit. GENERATED from pipelines/workflow.py; do not edit:
# regenerate with `python -m pipelines.workflow render argo/` (or `gradeflow render argo/`).
# Install: kubectl apply -n gradeflow -f argo/install/ -f argo/   (see docs/argo.md)
"""


def render_yaml(template: WorkflowTemplate | None = None) -> str:
    """The template as YAML; refuses one with a {{reference}} that would not resolve in Argo."""
    from .argo_lint import lint

    template = template or build_template()
    problems = lint(template.to_dict())
    if problems:
        raise ValueError("the WorkflowTemplate has unresolved references:\n  " + "\n  ".join(problems))
    return HEADER + template.to_yaml()


def render(directory: str | Path = "argo") -> Path:
    """Write <directory>/workflowtemplate.yaml and return its path."""
    path = Path(directory) / "workflowtemplate.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_yaml())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.workflow", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the WorkflowTemplate as YAML")
    r.add_argument("directory", nargs="?", default="argo", help="where to write workflowtemplate.yaml (default argo/)")
    a = p.parse_args(argv)
    print(render(a.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
