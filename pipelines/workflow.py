"""The grading DAG on Argo Workflows: a Hera WorkflowTemplate built from the step contract.

    autograde:        collect >> restore >> execute (one sandboxed pod per submission)
    onExit, always:   score >> merge

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

Render the checked-in YAML with `python -m pipelines.workflow render argo/`.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    EmptyDirVolume,
    Env,
    ExistingVolume,
    NoneArchiveStrategy,
    Parameter,
    RetryPolicy,
    RetryStrategy,
    S3Artifact,
    Workflow,
    WorkflowTemplate,
)
from hera.workflows.models import (
    ArtifactRepositoryRef,
    Backoff,
    Cache,
    Capabilities,
    ExecutorConfig,
    LabelValueFrom,
    LocalObjectReference,
    Memoize,
    PodGC,
    PodSecurityContext,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
    TTLStrategy,
    ValueFrom,
    VolumeMount,
    WorkflowMetadata,
    WorkflowTemplateRef,
)

from steps.contract import DAG as STEP_ORDER
from steps.contract import EXIT_INFRA, STEPS, Artifact as StepArtifact, Step

__all__ = [
    "TEMPLATE_NAME",
    "PARAMETERS",
    "WorkflowParameter",
    "build_template",
    "build_workflow",
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
EXECUTE_CACHE = "gradeflow-execute-cache"  # ConfigMap that memoizes execute
EXECUTE_CACHE_MAX_AGE = "2160h"  # a semester: a regrade of an unchanged submission reuses its run
DEFAULT_IMAGE = "localhost/gradeflow-grader:dev"  # what images/grader/build.sh tags
DEFAULT_PARALLELISM = 10
UID = 1000  # the grader image's user (images/grader/Containerfile)

LABEL_COURSE = "gradeflow.io/course"
LABEL_ASSIGNMENT = "gradeflow.io/assignment"
LABEL_RUN = "gradeflow.io/run-id"
LABEL_STEP = "gradeflow.io/step"
# Pods with this label run student code; argo/install/networkpolicy.yaml selects them.
LABEL_UNTRUSTED = "gradeflow.io/runs-student-code"

# Retry what a retry can fix: our own crash (the step CLIs exit EXIT_INFRA) or the pod itself
# breaking (Error: evicted, deleted, node gone, artifact upload failed). A student's exception
# exits 0; a memory or deadline kill of student code is Failed with another code: never retried.
RETRY_EXPRESSION = (
    f"asInt(lastRetry.exitCode) == {EXIT_INFRA} || lastRetry.status == 'Error'"
    " || lastRetry.message matches '(?i)evicted|node shutdown|pod deleted'"
)
RETRY_LIMIT = 3


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
    WorkflowParameter("run-id", None, "names this run: its artifacts go to <store-prefix>/<run-id>/ (a new one per run, e.g. ps1-1122a)"),
    WorkflowParameter("course", "", "the course id, for the gradeflow.io/course label"),
    WorkflowParameter("course-pvc", "gradeflow-course", "the PersistentVolumeClaim holding the nbgrader course (gradebook.db, source/, submitted/); mounted read-only"),
    WorkflowParameter("course-subpath", "", "the course directory inside that volume ('' = its root)"),
    WorkflowParameter("image", DEFAULT_IMAGE, "the grader image (images/grader/Containerfile)"),
    WorkflowParameter("store-prefix", "gradeflow", "prefix of every run in the artifact repository's bucket"),
    WorkflowParameter("cell-timeout", "", "seconds per cell ('' = the course's nbgrader Execute.timeout)"),
    WorkflowParameter("memory", "1024", "MiB for one submission's notebooks"),
    WorkflowParameter("cpu-time", "300", "CPU seconds per process"),
    WorkflowParameter("wall-time", "600", "seconds for one submission; its pod is stopped 300 s later"),
    WorkflowParameter("cpu", "1", "CPU limit of one execute pod"),
    WorkflowParameter("strict", "false", "true: no recovery of malformed notebooks (a deleted, copied or renamed grade cell skips the notebook, as nbgrader would)"),
)

# What a memoized execute result depends on besides the submission: a change of any of these
# runs the submission again.
CACHE_INPUTS = ("image", "cell-timeout", "memory", "cpu-time", "wall-time", "cpu")


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
}
BOUND_PER_STEP: dict[tuple[str, str], list[str]] = {
    ("collect", "course-dir"): ["--course-dir", COURSE_MOUNT],
}
UNBOUND: dict[tuple[str, str], str] = {
    ("collect", "students"): "a run grades every submission; `gradeflow retry` re-runs failed ones",
    ("restore", "students"): "every submission collect found",
    ("score", "students"): "every submission collect found",
    ("merge", "course-dir"): "the cluster never writes gradebook.db: `gradeflow sync` merges on the teacher's side",
}
# CLI flags the cluster needs beyond the contract's parameters.
EXTRA_ARGUMENTS: dict[str, list[str]] = {
    "collect": ["--run-id", _p("run-id")],
    "restore": ["--emit-students", STUDENTS_FILE],
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


def _artifact(a: StepArtifact, output: bool) -> S3Artifact:
    # Directories that hold one entry per submission may be empty (no submissions, every
    # execute failed), and an empty directory is no object in S3: the next step must still run
    # and report. Single files and one student's directory are required.
    directory = _is_directory(a) and not a.per_submission
    return S3Artifact(
        name=a.name,
        path=f"{WORKDIR}/{a.at(STUDENT) if a.per_submission else a.path}",
        key=artifact_key(a),
        archive=NoneArchiveStrategy() if output else None,  # plain objects: the run prefix is a workspace
        optional=True if directory else None,
    )


# --- pod hardening ------------------------------------------------------------------------------


def _container_security() -> SecurityContext:
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


def _pod_security() -> PodSecurityContext:
    return PodSecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )


def _scratch_volumes() -> list[EmptyDirVolume]:
    """The only writable places in a pod: the step workspace and /tmp (HOME)."""
    return [
        EmptyDirVolume(name="workspace", mount_path=WORKDIR, size_limit="4Gi"),
        EmptyDirVolume(name="tmp", mount_path="/tmp", size_limit="1Gi"),
    ]


def _retry() -> RetryStrategy:
    return RetryStrategy(
        limit=str(RETRY_LIMIT),  # IntOrString: Argo's schema and examples spell it as a string
        retry_policy=RetryPolicy.always,  # the expression alone decides
        expression=RETRY_EXPRESSION,
        backoff=Backoff(duration="15s", factor="2", max_duration="10m"),
    )


_ENV = [Env(name="HOME", value="/tmp"), Env(name="PYTHONDONTWRITEBYTECODE", value="1")]


def _trusted_resources() -> ResourceRequirements:
    return ResourceRequirements(requests={"cpu": "250m", "memory": "512Mi"}, limits={"cpu": "2", "memory": "2Gi"})


def _execute_resources() -> ResourceRequirements:
    # The step's own limits (--memory) bound the notebooks; the pod limit adds papermill's share.
    memory = "{{=asInt(workflow.parameters.memory) + 512}}Mi"
    return ResourceRequirements(requests={"cpu": "250m", "memory": memory}, limits={"cpu": _p("cpu"), "memory": memory})


# --- templates ----------------------------------------------------------------------------------


def _step_container(step: Step, **extra) -> Container:
    """A container template running `step`'s CLI, with the step's declared artifacts."""
    inputs: list = extra.pop("input_parameters", [Parameter(name="student")] if step.fan_out else [])
    inputs += [_artifact(a, output=False) for a in step.inputs]
    outputs: list = [_artifact(a, output=True) for a in step.outputs]
    outputs += extra.pop("output_parameters", [])
    labels = {LABEL_STEP: step.name}
    if step.runs_student_code:
        labels[LABEL_UNTRUSTED] = "true"
    return Container(
        name=step.name,
        image=_p("image"),
        image_pull_policy="IfNotPresent",
        command=["python", "-m", step.module],
        args=step_arguments(step),
        env=_ENV,
        inputs=inputs,
        outputs=outputs,
        volumes=_scratch_volumes(),
        volume_mounts=extra.pop("volume_mounts", None),
        security_context=_container_security(),
        pod_security_context=_pod_security(),
        resources=extra.pop("resources", _trusted_resources()),
        retry_strategy=_retry(),
        labels=labels,
        annotations={"gradeflow.io/description": step.description},
        **extra,
    )


def _memo_key() -> str:
    """execute's cache key: the student, the restored work dir's content hash, image and limits."""
    parts = ["inputs.parameters.student", "inputs.parameters['work-hash']"] + [_expr_p(n) for n in CACHE_INPUTS]
    return "execute-{{=sprig.sha256sum(" + " + '|' + ".join(parts) + ")}}"


def _execute_container() -> Container:
    step = STEPS["execute"]
    return _step_container(
        step,
        input_parameters=[Parameter(name="student"), Parameter(name="work-hash")],
        # the student's code gets no Kubernetes token; Argo's own containers use their account
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        active_deadline_seconds="{{=asInt(" + _expr_p("wall-time") + ") + 300}}",
        resources=_execute_resources(),
        memoize=Memoize(key=_memo_key(), max_age=EXECUTE_CACHE_MAX_AGE, cache=Cache(config_map=LocalObjectReference(name=EXECUTE_CACHE))),
        output_parameters=[
            # Which run produced these outputs. A memoized result keeps the producing run's
            # artifact keys, so a cache hit from another run is copied into this one.
            Parameter(name="ran-in", value_from=ValueFrom(path=f"{WORKDIR}/.never-written", default=_p("run-id"))),
        ],
    )


def _copy_memoized_container() -> Container:
    executed = STEPS["execute"].outputs[0]
    # no location: the task passes the memoized execute task's artifact (`from`)
    cached = Artifact(name=executed.name, path=f"{WORKDIR}/{executed.at(STUDENT)}")
    return Container(
        name="copy-memoized",
        image=_p("image"),
        image_pull_policy="IfNotPresent",
        # Argo moves the files: the init container downloads the cached result, the wait
        # container uploads it under this run. The container itself has nothing to do.
        command=["true"],
        env=_ENV,
        inputs=[Parameter(name="student"), cached],
        outputs=[_artifact(executed, output=True)],
        volumes=_scratch_volumes(),
        security_context=_container_security(),
        pod_security_context=_pod_security(),
        resources=ResourceRequirements(requests={"cpu": "50m", "memory": "64Mi"}, limits={"cpu": "500m", "memory": "256Mi"}),
        retry_strategy=_retry(),
        labels={LABEL_STEP: "execute"},
        annotations={"gradeflow.io/description": "copy a memoized execute result from the run that produced it into this run"},
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
            "workflows.argoproj.io/version": ">= 3.5.0",
        },
        labels={"app.kubernetes.io/name": "gradeflow"},
        entrypoint="autograde",
        on_exit="score-and-merge",
        arguments=[_template_parameter(p) for p in PARAMETERS],
        workflow_metadata=WorkflowMetadata(
            labels_from={
                LABEL_COURSE: LabelValueFrom(expression="workflow.parameters.course"),
                LABEL_ASSIGNMENT: LabelValueFrom(expression="workflow.parameters.assignment"),
                LABEL_RUN: LabelValueFrom(expression=_expr_p("run-id")),
            }
        ),
        artifact_repository_ref=ARTIFACT_REPOSITORY,
        parallelism=parallelism,
        service_account_name=WORKFLOW_SERVICE_ACCOUNT,
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        security_context=_pod_security(),
        pod_gc=PodGC(strategy="OnPodSuccess"),  # failed pods stay for `gradeflow logs`
        ttl_strategy=TTLStrategy(seconds_after_completion=30 * 24 * 3600),
        volumes=[ExistingVolume(name="course", claim_name=_p("course-pvc"), read_only=True)],
    ) as w:
        collect = _step_container(
            STEPS["collect"],
            volume_mounts=[VolumeMount(name="course", mount_path=COURSE_MOUNT, sub_path=_p("course-subpath"), read_only=True)],
        )
        restore = _step_container(
            STEPS["restore"],
            output_parameters=[Parameter(name="students", value_from=ValueFrom(path=STUDENTS_FILE), global_name="students")],
        )
        execute = _execute_container()
        copy_memoized = _copy_memoized_container()
        score = _step_container(STEPS["score"])
        merge = _step_container(STEPS["merge"], output_parameters=[Parameter(name="summary", value_from=ValueFrom(path=SUMMARY_FILE, default=""))])

        with DAG(name="execute-submission", inputs=[Parameter(name="student"), Parameter(name="work-hash")]) as execute_submission:
            run = execute(name="execute", arguments={"student": "{{inputs.parameters.student}}", "work-hash": "{{inputs.parameters.work-hash}}"})
            copy = copy_memoized(
                name="copy-memoized",
                when="'{{tasks.execute.outputs.parameters.ran-in}}' != '" + _p("run-id") + "'",
                arguments=[
                    Parameter(name="student", value="{{inputs.parameters.student}}"),
                    Artifact(name=STEPS["execute"].outputs[0].name, from_="{{tasks.execute.outputs.artifacts." + STEPS["execute"].outputs[0].name + "}}"),
                ],
            )
            run >> copy

        with DAG(name="autograde", fail_fast=False):
            c = collect(name="collect")
            r = restore(name="restore")
            e = execute_submission(
                name="execute",
                with_param="{{tasks.restore.outputs.parameters.students}}",
                arguments={"student": "{{item.student}}", "work-hash": "{{item.work-hash}}"},
            )
            c >> r >> e

        with DAG(name="score-and-merge"):
            # runs on exit however execute ended; skipped when restore never finished (no run to score)
            s = score(name="score", when="{{=(workflow.outputs?.parameters?.students ?? '') != ''}}")
            m = merge(name="merge")
            s.on_success(m)
    assert [STEPS[n] for n in STEP_ORDER] == [STEPS[t.name] for t in (collect, restore, execute, score, merge)]
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
) -> Workflow:
    """A Workflow that runs the installed `gradeflow-autograde` template for one assignment.

    Its name is the run id, so `gradeflow status RUN` and the store prefix use the same name.
    `limits` maps cell-timeout, memory, cpu-time, wall-time and cpu to values.
    """
    values: dict[str, str | None] = {
        "assignment": assignment,
        "run-id": run_id,
        "course": course,
        "course-pvc": course_pvc,
        "course-subpath": course_subpath,
        "image": image,
        "store-prefix": store_prefix,
    }
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-63 lowercase letters, digits and '-' (it names the workflow and a label)")
    known = {p.name for p in PARAMETERS}
    for k, v in (limits or {}).items():
        if k not in known:
            raise ValueError(f"unknown limit {k!r}; the limits are: {', '.join(CACHE_INPUTS[1:])}")
        values[k] = "" if v is None else str(v)
    return Workflow(
        name=run_id,
        namespace=namespace,
        labels={LABEL_COURSE: label_value(course), LABEL_ASSIGNMENT: label_value(assignment), LABEL_RUN: run_id},
        workflow_template_ref=WorkflowTemplateRef(name=TEMPLATE_NAME),
        arguments=[Parameter(name=k, value=v) for k, v in values.items() if v is not None],
        parallelism=parallelism,
    )


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
