"""Runs of the installed WorkflowTemplate: one Workflow per run, or one per shard of a big class.

A class bigger than SHARD_SIZE is graded as one run per shard (`build_shards`): Argo keeps a
run in one object of at most 1 MiB, which 850 to 900 submissions fill (tests/argo_scale_model.py).
"""

from __future__ import annotations

import math
import re

from hera.workflows import Parameter, Workflow
from hera.workflows.models import WorkflowTemplateRef

from .params import LIMITS, TEMPLATE_PARAMETERS
from .templates import TEMPLATE_NAME

__all__ = ["build_workflow", "build_shards", "shard_plan", "shard_run_ids", "label_value", "RUN_ID", "SHARD_SIZE"]

# The most submissions one Workflow grades. Argo keeps a run in ONE object of at most 1 MiB
# (workflow/packer/packer.go, MAX_WORKFLOW_SIZE) with its node statuses gzip-compressed, about
# 1.1 KB per submission (measured: tests/argo_scale_model.py, docs/performance.md "Argo at
# scale"), and without a database there is nothing past that. A bigger class is graded as
# several runs of this many on average (build_shards; a hash of the id picks the shard, so one
# may be a few dozen bigger, which its class-size allows), each under half of every limit.
SHARD_SIZE = 350

LABEL_COURSE = "gradeflow.io/course"
LABEL_ASSIGNMENT = "gradeflow.io/assignment"
LABEL_RUN = "gradeflow.io/run-id"
LABEL_RUN_GROUP = "gradeflow.io/run-group"  # the run id every shard of one class's run shares


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
    parameters: dict[str, str] | None = None,
    parallelism: int | None = None,
    namespace: str | None = None,
    feedback: bool = False,
    feedback_hidden_tests: str | None = None,
    shard: tuple[int, int] | None = None,
    run_group: str | None = None,
) -> Workflow:
    """A Workflow that runs the installed `gradeflow-autograde` template for one assignment.

    Its name is the run id, so `gradeflow status RUN` and the store prefix use the same name.
    `limits` maps the limits (LIMITS, from steps/params.py) to values, `parameters` any other
    template parameter (e.g. `gradeflow submit`'s strict or feedback-hidden-tests). `shard` (i, S)
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
    known = set(TEMPLATE_PARAMETERS)
    for k, v in {**(parameters or {}), **(limits or {})}.items():
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
