"""The Argo WorkflowTemplate as objects: valid for Argo, shaped like the drawing, made from the contract.

Scenario: an administrator applies argo/workflowtemplate.yaml and a teacher submits a
Workflow that references it. Both objects must pass Argo's own JSON schema (v4.1.2), the
checked-in YAML must be exactly what pipelines/argo/workflow.py renders (regenerate with
GRADEFLOW_REGEN=1), and the templates must be the step contract's: one container template
per step running `python -m steps.<name>`, with the step's artifacts at /gradeflow/<path> and
keys under <store-prefix>/<run-id>/, chained collect >> restore >> execute (fanned out per
submission) and, on exit, score >> merge.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipelines.argo.workflow import (
    ARTIFACT_REPOSITORY,
    BOUND,
    BOUND_PER_STEP,
    PARAMETERS,
    TEMPLATE_NAME,
    UNBOUND,
    build_template,
    build_workflow,
    render_yaml,
)
from steps.contract import DAG, STEPS
from steps.records import StepRecord
from steps.restore import fan_out_items

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "argo-schema-v4.1.2.json").read_text())
RENDERED = ROOT / "argo" / "workflowtemplate.yaml"


def validate(obj: dict, kind: str) -> list[str]:
    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": SCHEMA["definitions"]}
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)
    ]


@pytest.fixture(scope="module")
def wt() -> dict:
    return build_template().to_dict()


def by_name(wt: dict) -> dict[str, dict]:
    return {t["name"]: t for t in wt["spec"]["templates"]}


def test_workflow_template_passes_argos_schema(wt: dict) -> None:
    assert validate(wt, "WorkflowTemplate") == []


def test_a_workflow_submitted_from_it_passes_argos_schema() -> None:
    wf = build_workflow(
        "ps1",
        "ps1-20261122-101500",
        course="intro",
        course_pvc="intro-course",
        limits={"memory": 512, "cell-timeout": ""},
        parallelism=4,
        namespace="gradeflow",
    ).to_dict()
    assert validate(wf, "Workflow") == []
    assert wf["spec"]["workflowTemplateRef"] == {"name": TEMPLATE_NAME}
    assert wf["metadata"]["name"] == "ps1-20261122-101500" and wf["spec"]["parallelism"] == 4
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert params == {
        "assignment": "ps1",
        "run-id": "ps1-20261122-101500",
        "course": "intro",
        "course-pvc": "intro-course",
        "memory": "512",
        "cell-timeout": "",
    }


def test_the_schema_check_can_fail(wt: dict) -> None:
    """Control: a broken object is rejected, so the two tests above mean something."""
    bad = copy.deepcopy(wt)
    bad["spec"]["templates"][0]["retryStrategy"]["limit"] = {"not": "a limit"}
    bad["spec"]["parallelism"] = "ten"
    assert len(validate(bad, "WorkflowTemplate")) == 2


def test_checked_in_yaml_is_what_pipelines_render() -> None:
    """argo/workflowtemplate.yaml is generated; GRADEFLOW_REGEN=1 rewrites it (as Hera's tests do)."""
    rendered = render_yaml()
    if os.environ.get("GRADEFLOW_REGEN") == "1" or not RENDERED.exists():
        RENDERED.write_text(rendered)
    assert RENDERED.read_text() == rendered, (
        "argo/workflowtemplate.yaml is stale: run `python -m pipelines.argo.workflow render argo/`"
    )
    assert RENDERED.read_text().startswith("# gradeflow's autograde WorkflowTemplate")
    assert yaml.safe_load(rendered) == build_template().to_dict()


def test_dag_reads_like_the_drawing(wt: dict) -> None:
    t = by_name(wt)
    main = {task["name"]: task for task in t["autograde"]["dag"]["tasks"]}
    assert list(main) == ["collect", "network-check", "restore", "execute"]
    assert main["restore"]["depends"] == "collect" and main["execute"]["depends"] == "restore && network-check"
    # one pod per submission, named per student in the UI (execute(0:student:alice,...))
    assert main["execute"]["withParam"] == "{{tasks.restore.outputs.parameters.students}}"
    assert {p["name"]: p["value"] for p in main["execute"]["arguments"]["parameters"]} == {
        "student": "{{item.student}}",
        "work-hash": "{{item.work-hash}}",
    }
    # the other submissions keep running when one fails
    assert t["autograde"]["dag"]["failFast"] is False
    # score and merge run on exit, whatever happened to execute
    assert wt["spec"]["onExit"] == "score-and-merge"
    exit_tasks = {task["name"]: task for task in t["score-and-merge"]["dag"]["tasks"]}
    assert list(exit_tasks) == ["score", "feedback", "merge"] and exit_tasks["feedback"]["depends"] == "score.Succeeded"
    # feedback only when the run asks for it; merge runs after it, or without it when it is skipped
    assert exit_tasks["feedback"]["when"] == "{{=workflow.parameters['feedback'] == 'true'}}"
    assert exit_tasks["merge"]["depends"] == "score.Succeeded && (feedback.Succeeded || feedback.Skipped)"
    inner = {task["name"]: task for task in t["execute-submission"]["dag"]["tasks"]}
    assert inner["execute"]["template"] == "execute" and inner["copy-memoized"]["depends"] == "execute"
    # a cache entry whose files are gone: execute the submission again
    assert (
        inner["execute-again"]["template"] == "execute-again"
        and inner["execute-again"]["depends"] == "copy-memoized.Succeeded"
    )
    order = ["collect", "restore", "execute"] + ["score", "feedback", "merge"]
    assert order == list(DAG)


def test_fan_out_items_carry_what_the_loop_reads(wt: dict) -> None:
    """restore --emit-students writes exactly the fields {{item.*}} reads."""
    rec = StepRecord("restore", "alice", detail={"work_hash": "ab" * 32})
    (item,) = fan_out_items([rec])
    main = {task["name"]: task for task in by_name(wt)["autograde"]["dag"]["tasks"]}
    read = {p["value"][len("{{item.") : -2] for p in main["execute"]["arguments"]["parameters"]}
    assert read == set(item) == {"student", "work-hash"}


@pytest.mark.parametrize("name", list(DAG))
def test_each_step_template_is_its_contract(wt: dict, name: str) -> None:
    step, t = STEPS[name], by_name(wt)[name]
    assert t["container"]["command"] == ["python", "-m", f"steps.{name}"]
    assert t["container"]["args"][:2] == ["--workspace", "/gradeflow"]
    assert t["container"]["image"] == "{{workflow.parameters.image}}"
    ins = {a["name"]: a for a in t.get("inputs", {}).get("artifacts", [])}
    outs = {a["name"]: a for a in t["outputs"]["artifacts"]}
    assert list(ins) == [a.name for a in step.inputs] and list(outs) == [a.name for a in step.outputs]
    for a in step.inputs + step.outputs:
        rel = a.at("{{inputs.parameters.student}}") if a.per_submission else a.path
        for decl in [d for d in (ins.get(a.name), outs.get(a.name)) if d]:
            assert decl["path"] == f"/gradeflow/{rel}"
            assert decl["s3"] == {
                "key": f"{{{{workflow.parameters.store-prefix}}}}/{{{{workflow.parameters.run-id}}}}/{rel}"
            }
    for a in outs.values():  # plain objects, so the run's prefix is a workspace sync can read
        assert a["archive"] == {"none": {}}


def test_every_contract_parameter_is_bound_or_explained() -> None:
    for step in STEPS.values():
        for p in step.parameters:
            assert (step.name, p) in UNBOUND or (step.name, p) in BOUND_PER_STEP or p in BOUND, (
                f"{step.name}: contract parameter {p} is neither given to the pod nor explained"
            )


def test_workflow_settings(wt: dict) -> None:
    spec = wt["spec"]
    assert (
        spec["artifactRepositoryRef"]
        == {"configMap": ARTIFACT_REPOSITORY.config_map, "key": "gradeflow"}
        == {"configMap": "artifact-repositories", "key": "gradeflow"}
    )
    assert spec["parallelism"] == 10
    assert "workflowMetadata" not in spec  # labels come from build_workflow, cleaned (test_argo_cluster_rules.py)
    params = {p["name"]: p for p in spec["arguments"]["parameters"]}
    assert [p.name for p in PARAMETERS] == list(params)
    assert "value" not in params["assignment"] and "value" not in params["run-id"]  # the submit form asks for them
    assert all(p.get("description") for p in params.values())
    # the course comes from a PVC, read-only, and only collect mounts it
    (vol,) = spec["volumes"]
    assert vol["persistentVolumeClaim"] == {"claimName": "{{workflow.parameters.course-pvc}}", "readOnly": True}
    mounts = {
        t["name"]: [m for m in t.get("container", {}).get("volumeMounts", []) if m["name"] == "course"]
        for t in spec["templates"]
    }
    assert mounts.pop("collect") == [
        {
            "name": "course",
            "mountPath": "/course",
            "readOnly": True,
            "subPath": "{{workflow.parameters.course-subpath}}",
        }
    ]
    assert all(m == [] for m in mounts.values())


def test_retry_and_memoize_are_declared(wt: dict) -> None:
    t = by_name(wt)
    for name in DAG:
        rs = t[name]["retryStrategy"]
        assert rs["retryPolicy"] == "Always" and rs["limit"] == "3" and rs["backoff"]["duration"]
        # merge's 75 (a submission UNGRADED) would end the same on a retry: only a broken pod retries it
        assert ("asInt(lastRetry.exitCode) == 75" in rs["expression"]) is (
            name != "merge"
        ) and "lastRetry.status == 'Error'" in rs["expression"]
    memo = t["execute"]["memoize"]
    assert memo["cache"]["configMap"]["name"].startswith("gradeflow-cache-") and memo["maxAge"]
    for part in (
        "inputs.parameters.student",
        "inputs.parameters['work-hash']",
        "workflow.parameters['image']",
        "workflow.parameters['memory']",
        "workflow.parameters['wall-time']",
        "workflow.parameters['cell-timeout']",
    ):
        assert part in memo["key"]
