"""Every {{reference}} in the rendered WorkflowTemplate resolves before Argo ever runs it.

Scenario: Argo reports an unresolvable `{{inputs.parameters.x}}` only when the pod that uses
it is about to start, after collect and restore have already run for every submission. The
lint (pipelines/argo/lint.py, which `render` also runs) resolves each simple and expression
tag against what is declared: workflow parameters, global outputs and labels, the
template's own inputs, outputs of the tasks a task depends on, loop items and Argo's own
variables. The controls plant each kind of mistake and check the lint reports it.
"""

from __future__ import annotations

import copy
import json

import pytest

from pipelines.argo.lint import lint, references
from pipelines.argo.workflow import PARAMETERS, build_template, render_yaml


@pytest.fixture(scope="module")
def wt() -> dict:
    return build_template().to_dict()


def tmpl(wt: dict, name: str) -> dict:
    return next(t for t in wt["spec"]["templates"] if t["name"] == name)


def test_rendered_template_has_no_dangling_reference(wt: dict) -> None:
    assert lint(wt) == []


def test_every_workflow_parameter_is_used(wt: dict) -> None:
    text = json.dumps(wt)  # not the YAML: it doubles the quotes of ['name'] inside quoted strings
    for p in PARAMETERS:
        used = f"workflow.parameters.{p.name}" in text or f"workflow.parameters['{p.name}']" in text
        assert used, f"parameter {p.name} is declared but nothing reads it"


def test_expression_tags_are_read_for_their_variables() -> None:
    assert references("{{=asInt(workflow.parameters['wall-time']) + 300}}") == ["workflow.parameters.wall-time"]
    assert references("{{=(workflow.outputs?.parameters?.students ?? '') != ''}}") == [
        "workflow.outputs.parameters.students"
    ]
    assert references("a-{{inputs.parameters.student}}-{{=sprig.sha256sum(item.student + '|')}}") == [
        "inputs.parameters.student",
        "item.student",
    ]


@pytest.mark.parametrize(
    ("where", "plant", "expected"),
    [
        (
            "collect",
            lambda t: t["container"]["args"].append("{{workflow.parameters.nope}}"),
            "{{workflow.parameters.nope}}",
        ),
        (
            "execute",
            lambda t: t["container"]["args"].append("{{inputs.parameters.ghost}}"),
            "{{inputs.parameters.ghost}}",
        ),
        (
            "execute",
            lambda t: t["container"]["args"].append("{{=asInt(workflow.parameters['no-such'])}}"),
            "{{workflow.parameters.no-such}}",
        ),
        (
            "score",
            lambda t: t["container"]["args"].append("{{workflow.outputs.parameters.nothing}}"),
            "{{workflow.outputs.parameters.nothing}}",
        ),
        # collect does not depend on restore: it cannot read restore's output
        (
            "autograde",
            lambda t: t["dag"]["tasks"][0].setdefault("when", "{{tasks.restore.outputs.parameters.students}} != ''"),
            "{{tasks.restore.outputs.parameters.students}}",
        ),
        # a task may read only outputs its dependency's template declares
        (
            "execute-submission",
            lambda t: t["dag"]["tasks"][1]["arguments"]["parameters"].append(
                {"name": "x", "value": "{{tasks.execute.outputs.parameters.nothing}}"}
            ),
            "{{tasks.execute.outputs.parameters.nothing}}",
        ),
        # {{item}} only inside a loop
        (
            "score-and-merge",
            lambda t: t["dag"]["tasks"][0].setdefault(
                "arguments", {"parameters": [{"name": "s", "value": "{{item.student}}"}]}
            ),
            "{{item.student}}",
        ),
    ],
)
def test_each_kind_of_dangling_reference_is_caught(wt: dict, where: str, plant, expected: str) -> None:
    bad = copy.deepcopy(wt)
    plant(tmpl(bad, where))
    found = lint(bad)
    assert any(expected in p for p in found), found


def test_task_arguments_must_match_the_called_template(wt: dict) -> None:
    bad = copy.deepcopy(wt)
    (task,) = [t for t in tmpl(bad, "autograde")["dag"]["tasks"] if t["name"] == "execute"]
    task["arguments"]["parameters"] = [p for p in task["arguments"]["parameters"] if p["name"] != "work-hash"]
    assert any("needs ['work-hash']" in p for p in lint(bad))


def test_render_refuses_a_broken_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.argo import lint as argo_lint

    monkeypatch.setattr(argo_lint, "lint", lambda t: ["template x: {{y}} does not resolve"])
    with pytest.raises(ValueError, match="unresolved references"):
        render_yaml()
