"""The WorkflowTemplate's container templates, each made from the step contract.

Every step's template runs `python -m steps.<name> --workspace /gradeflow ...` (its arguments:
pipelines/argo/params.py) in the grader image, and its S3 artifacts are the step's declared
inputs and outputs at `/gradeflow/<artifact path>`, stored under `<store-prefix>/<run-id>/<artifact
path>`. Besides them: execute's memoized and `execute-again` variants, `copy-memoized` and
`network-check`. Pod-level settings (hardening, resources, deadlines, retries) are in pods.py.
"""

from __future__ import annotations

from pathlib import Path

from hera.workflows import (
    Artifact,
    Container,
    Env,
    NoneArchiveStrategy,
    Parameter,
    RawArtifact,
    S3Artifact,
)
from hera.workflows.models import Cache, ExecutorConfig, LocalObjectReference, Memoize, ValueFrom

from steps.contract import STEPS, Step
from steps.contract import Artifact as StepArtifact
from steps.workspace import RECORD

from . import pods
from .params import CACHE_INPUTS as CACHE_INPUTS
from .params import STUDENT, WORKDIR, defaults, step_arguments, wf_expr, wf_param

__all__ = [
    "TEMPLATE_NAME",
    "artifact_key",
    "step_container",
    "execute_container",
    "copy_memoized_container",
    "network_check_container",
]

TEMPLATE_NAME = "gradeflow-autograde"
WORKFLOW_SERVICE_ACCOUNT = "gradeflow-workflow"  # the pods' own account: no permissions, token never mounted
EXECUTOR_SERVICE_ACCOUNT = "gradeflow-executor"  # Argo's init/wait containers: workflowtaskresults only
# execute is memoized in one ConfigMap per course, assignment, shard and image, and per run for
# an image not pinned by digest (a ConfigMap holds at most 1 MiB, about 1,700 entries, and a
# full one makes every later save fail, which errors the pod's node: one cache for everything,
# or one that every unpinned run adds a class to, fills up). The controller creates it on the
# first save (workflow/controller/cache/configmap_cache.go); its cache GC deletes it once empty.
EXECUTE_CACHE_PREFIX = "gradeflow-cache-"
EXECUTE_CACHE_MAX_AGE = "2160h"  # a semester: a regrade of an unchanged submission reuses its run

LABEL_STEP = "gradeflow.io/step"
# Pods with this label run student code; argo/install/networkpolicy.yaml selects them.
LABEL_UNTRUSTED = "gradeflow.io/runs-student-code"

RUN_PREFIX = f"{wf_param('store-prefix')}/{wf_param('run-id')}"


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


def _pod(**settings) -> dict:
    """What every container template gets: hardening, scratch space, resources, deadline, retries."""
    scratch = {k: settings.pop(k) for k in ("workspace_mib", "tmp_in_memory_mib") if k in settings}
    return dict(
        image=wf_param("image"),
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


def step_container(step: Step, **extra) -> Container:
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
    return f"sprig.ternary('', {wf_expr('run-id')}, sprig.contains('@sha256:', {wf_expr('image')}))"


def _memo_key() -> str:
    """execute's cache key: what the result depends on, hashed to a valid key.

    The image counts by DIGEST only: a tag such as :dev can point at another image tomorrow,
    so with an image that is not pinned (`name@sha256:...`) the key also holds the run id,
    and no run reuses another run's results.
    """
    unpinned = _unpinned_run()
    parts = (
        ["inputs.parameters.student", "inputs.parameters['work-hash']"]
        + [wf_expr(n) for n in CACHE_INPUTS]
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
        wf_expr("image"),
        _unpinned_run(),
    ]
    return EXECUTE_CACHE_PREFIX + "{{=sprig.trunc(16, sprig.sha256sum(" + " + '/' + ".join(parts) + "))}}"


def execute_container(name: str = "execute", memoized: bool = True) -> Container:
    step = STEPS["execute"]
    memo = Memoize(
        key=_memo_key(), max_age=EXECUTE_CACHE_MAX_AGE, cache=Cache(config_map=LocalObjectReference(name=_cache_name()))
    )
    return step_container(
        step,
        name=name,
        description=step.description + ("" if memoized else " (again: its memoized result's files are gone)"),
        input_parameters=[Parameter(name="student"), Parameter(name="work-hash")],
        # the student's code gets no Kubernetes token; Argo's own containers use their account
        automount_service_account_token=False,
        executor=ExecutorConfig(service_account_name=EXECUTOR_SERVICE_ACCOUNT),
        active_deadline_seconds=pods.EXECUTE_DEADLINE,
        timeout=pods.EXECUTE_TIMEOUT,
        resources=pods.execute_resources(defaults()),
        pod_spec_patch=pods.execute_pod_spec_patch(),
        tmp_in_memory_mib=pods.EXECUTE_TMP_MIB,
        memoize=memo if memoized else None,
        output_parameters=[
            # Which run produced these outputs. A memoized result keeps the producing run's
            # artifact keys, so a cache hit from another run is copied into this one. A plain
            # value, never a file: the executor reports `we.Template.Outputs` as substituted
            # (workflow/executor/executor.go ReportOutputs) and reads only valueFrom.path
            # parameters from the pod, so student code cannot steer it.
            Parameter(name="ran-in", value=wf_param("run-id")),
        ],
    )


COPY_RESULT = f"{WORKDIR}/.copy-result"


def copy_memoized_container() -> Container:
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
            f'if [ -e "$1/{RECORD.format(step="execute")}" ]; then echo copied; else echo missing; fi > "$2"',
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


def network_check_container() -> Container:
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
            "gradeflow.io/description": "can execute pods upload? If this fails, the NetworkPolicy blocks "
            "the object store, the API server or DNS: docs/argo.md section 3"
        },
        **_pod(resources=pods.copy_resources(), timeout=pods.COPY_TIMEOUT),
    )
