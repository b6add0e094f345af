"""The grading DAG on Argo Workflows: a Hera WorkflowTemplate built from the step contract.

    autograde:        collect >> restore >> execute (one sandboxed pod per submission)
                      network-check >> execute    (can execute pods reach the store? before any runs)
    execute, each:    execute (memoized) >> copy-memoized (a hit from another run)
                                         >> execute-again (that hit's files are gone)
    onExit, always:   score >> feedback (when asked) >> merge

Pod-level settings (hardening, resources and podSpecPatch, timeouts, retries) are in
pods.py, each with the Argo or Kubernetes rule it follows.

Every container template (templates.py) is made from `steps.contract.STEPS`: it runs
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

A class bigger than SHARD_SIZE is graded as one run per shard (`build_shards`, shards.py): Argo keeps a
run in one object of at most 1 MiB, which 850 to 900 submissions fill (tests/argo_scale_model.py).

Render the checked-in YAML with `python -m pipelines.argo.workflow render argo/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from hera.workflows import DAG, Artifact, ExistingVolume, Parameter, WorkflowTemplate
from hera.workflows.models import ArtifactRepositoryRef, ExecutorConfig, PodGC, TTLStrategy, ValueFrom, VolumeMount

from steps.contract import DAG as STEP_ORDER
from steps.contract import RESULTS, STEPS
from steps.workspace import SUMMARY_TXT

from . import params, pods
from .params import (  # noqa: F401 - the builder's API, in one place
    BOUND,
    BOUND_PER_STEP,
    CACHE_INPUTS,
    COURSE_MOUNT,
    DEFAULT_CLASS_SIZE,
    DEFAULT_IMAGE,
    LIMITS,
    STUDENTS_FILE,
    UNBOUND,
    WORKDIR,
    WorkflowParameter,
    step_arguments,
)
from .params import wf_expr as _expr_p
from .params import wf_param as _p
from .pods import RETRY_EXPRESSION, RETRY_LIMIT, UID  # noqa: F401 - re-exported
from .shards import (  # noqa: F401
    LABEL_ASSIGNMENT,
    LABEL_COURSE,
    LABEL_RUN,
    LABEL_RUN_GROUP,
    RUN_ID,
    SHARD_SIZE,
    build_shards,
    build_workflow,
    label_value,
    shard_plan,
    shard_run_ids,
)
from .templates import (  # noqa: F401
    EXECUTE_CACHE_MAX_AGE,
    EXECUTE_CACHE_PREFIX,
    EXECUTOR_SERVICE_ACCOUNT,
    LABEL_STEP,
    LABEL_UNTRUSTED,
    TEMPLATE_NAME,
    WORKFLOW_SERVICE_ACCOUNT,
    artifact_key,
    copy_memoized_container,
    execute_container,
    network_check_container,
    step_container,
)

__all__ = [
    "TEMPLATE_NAME",
    "PARAMETERS",  # noqa: F822 - module __getattr__ (computed on first use)
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

SUMMARY_FILE = f"{WORKDIR}/{RESULTS.at()}/{SUMMARY_TXT}"
ARTIFACT_REPOSITORY = ArtifactRepositoryRef(config_map="artifact-repositories", key="gradeflow")
DEFAULT_PARALLELISM = 10
SUPPORTED_ARGO = ">= 3.5.0"  # runs there; which releases run it RIGHT: docs/argo.md "Argo versions"


def __getattr__(name: str) -> Any:  # PARAMETERS: computed on first use (params.py says why)
    if name == "PARAMETERS":
        return params.PARAMETERS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
            "workflows.argoproj.io/description": "Autograde an nbgrader assignment: collect, restore, "
            "execute (one sandboxed pod per submission), score, merge.",
            "workflows.argoproj.io/version": SUPPORTED_ARGO,
        },
        labels={"app.kubernetes.io/name": "gradeflow"},
        entrypoint="autograde",
        on_exit="score-and-merge",
        arguments=[_template_parameter(p) for p in params.PARAMETERS],
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
        collect = step_container(
            STEPS["collect"],
            volume_mounts=[
                VolumeMount(name="course", mount_path=COURSE_MOUNT, sub_path=_p("course-subpath"), read_only=True)
            ],
        )
        restore = step_container(
            STEPS["restore"],
            output_parameters=[
                Parameter(name="students", value_from=ValueFrom(path=STUDENTS_FILE), global_name="students")
            ],
        )
        execute = execute_container()
        execute_again = execute_container("execute-again", memoized=False)
        copy_memoized = copy_memoized_container()
        network_check = network_check_container()
        class_resources, class_mib = pods.class_scratch_resources(params.defaults())
        class_scratch = dict(
            resources=class_resources, workspace_mib=class_mib, pod_spec_patch=pods.class_scratch_pod_spec_patch()
        )
        # score runs in the exit handler however the run ended, so its inputs may be missing
        # (collect failed): then it says so and exits EXIT_USAGE, which is never retried.
        score = step_container(STEPS["score"], optional_inputs=True, **class_scratch)
        # merge exits 75 when a submission is UNGRADED (the run shows Failed, `gradeflow retry`
        # fixes it); retrying its pod alone would end the same way
        merge = step_container(
            STEPS["merge"],
            output_parameters=[Parameter(name="summary", value_from=ValueFrom(path=SUMMARY_FILE, default=""))],
            retry_strategy=pods.retry_strategy(own_exit=False),
            **class_scratch,
        )
        feedback = step_container(STEPS["feedback"], **class_scratch)

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


# --- rendering ----------------------------------------------------------------------------------

HEADER = """\
# gradeflow's autograde WorkflowTemplate: collect, restore, execute (one sandboxed pod per
# submission), then score and merge on exit. GENERATED from pipelines/argo/workflow.py; do not edit:
# regenerate with `python -m pipelines.argo.workflow render argo/` (or `gradeflow render argo/`).
# Install: kubectl apply -n gradeflow -f argo/install/ -f argo/   (see docs/argo.md)
"""


def render_yaml(template: WorkflowTemplate | None = None) -> str:
    """The template as YAML; refuses one with a {{reference}} that would not resolve in Argo."""
    from .lint import lint

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
    p = argparse.ArgumentParser(prog="python -m pipelines.argo.workflow", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the WorkflowTemplate as YAML")
    r.add_argument("directory", nargs="?", default="argo", help="where to write workflowtemplate.yaml (default argo/)")
    a = p.parse_args(argv)
    print(render(a.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
