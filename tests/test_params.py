"""Every step parameter is declared once (steps/params.py), and what is generated from it fits
together: the step CLIs, the Argo pods' arguments and the template's parameters, and the flags of
`gradeflow grade` and `gradeflow submit`.

Scenario: a maintainer adds a parameter in one place. The pod the cluster starts must be able to
parse the arguments the template gives it, `gradeflow grade` must hand the teacher's value to the
local runner under a name it knows, and `gradeflow submit` must name a parameter the template has.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from pipelines import cli
from pipelines.argo.workflow import PARAMETERS, step_arguments
from pipelines.local import GradeOptions
from steps.cli import step_parser
from steps.contract import DAG, STEPS
from steps.params import PARAMS, OnArgo, grade_params, submit_params

DEFAULTS = {p.name: p.default for p in PARAMETERS}


def _in_a_pod(arg: str) -> str:
    """An argument as the pod sees it: the template's defaults filled in, a student for the fan-out."""
    arg = arg.replace("{{inputs.parameters.student}}", "alice")
    return re.sub(r"\{\{workflow\.parameters\.([a-z-]+)\}\}", lambda m: DEFAULTS[m.group(1)] or "", arg)


@pytest.mark.parametrize("name", DAG)
def test_the_pods_arguments_parse_with_the_steps_own_cli(name: str) -> None:
    step = STEPS[name]
    parsed = vars(step_parser(step).parse_args([_in_a_pod(a) for a in step_arguments(step)]))
    assert str(parsed.pop("workspace")) == "/gradeflow"
    assert set(parsed) == {p.dest for p in step.params}
    if name == "restore":  # booleans and numbers arrive as strings and parse to what the step function takes
        assert parsed["strict"] is False and parsed["class_size"] == int(DEFAULTS["class-size"])
    if name == "collect":
        assert parsed["shard"] == (0, 1) and parsed["assignment"] == ""


def test_every_template_parameter_is_declared_once() -> None:
    names = [p.teacher_flag for p in PARAMS.values() if isinstance(p.argo, OnArgo) and p.argo.parameter]
    assert [p.name for p in PARAMETERS] == names and len(set(names)) == len(names)
    assert {p.teacher_flag for p in submit_params()} <= set(DEFAULTS)


def test_grade_hands_every_step_parameter_to_the_local_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {f.name for f in dataclasses.fields(GradeOptions)}
    assert {p.teacher_dest for p in grade_params() if not p.field} <= fields
    seen: dict[str, Any] = {}

    def grade(course: Any, assignment: str, options: GradeOptions, progress: Any = None) -> dict:
        seen.update(vars(options))
        raise SystemExit(0)

    monkeypatch.setattr("pipelines.local.grade", grade)
    args = ["grade", "C", "ps1", "--strict", "--feedback", "--feedback-hidden-tests", "show"]
    with pytest.raises(SystemExit):
        cli.main([*args, "--max-submission-mb", "5", "--memory", "512"])
    assert (seen["strict"], seen["feedback"], seen["feedback_hidden_tests"]) == (True, True, "show")
    assert seen["max_submission_mb"] == 5 and seen["limits"].memory_mb == 512


def test_the_jupyter_page_passes_its_other_step_parameters_to_argo(tmp_path: Any) -> None:
    from pipelines.argo.workflow import build_workflow
    from pipelines.jupyter.jobs import JobManager

    args = ["--jobs", "2", "--strict", "--feedback-hidden-tests", "show", "--memory", "512", "--max-submission-mb", "9"]
    parameters = JobManager(tmp_path, args).argo_parameters()
    assert parameters == {
        "strict": "true",
        "feedback-hidden-tests": "show",
    }  # memory: a limit; max-submission-mb: local
    assert JobManager(tmp_path, ["--jobs", "2"]).argo_parameters() == {}
    wf = build_workflow("ps1", "ps1-x", parameters=parameters).to_dict()
    sent = {p["name"]: p.get("value") for p in wf["spec"]["arguments"]["parameters"]}
    assert (sent["strict"], sent["feedback-hidden-tests"]) == ("true", "show")
    with pytest.raises(ValueError, match="unknown"):
        build_workflow("ps1", "ps1-x", parameters={"no-such": "1"})


def test_step_parameters_travel_by_name_with_their_declared_defaults(tmp_path: Any) -> None:
    from steps.restore import restore
    from steps.workspace import SubmissionOptions

    teacher = {p.name for p in grade_params() if not p.field}
    assert set(GradeOptions().params) == teacher  # every teacher-set step parameter, limits apart
    options = GradeOptions(strict=True, feedback_hidden_tests="show")
    assert options.params["strict"] is True and options.params["hidden-tests"] == "show"
    assert options.params["feedback"] is False and options.params["max-submission-mb"] == 200
    opts = SubmissionOptions(scratch=tmp_path, params=options.params)
    assert opts.param("strict") is True and opts.param("hidden-tests") == "show"
    bare = SubmissionOptions(scratch=tmp_path)  # a parameter the run did not set: its declared default
    assert bare.param("strict") is False and bare.param("hidden-tests") == "redact"
    with pytest.raises(TypeError, match="restore takes no parameter hidden_tests"):
        restore(tmp_path, hidden_tests="show")  # feedback's parameter, not restore's
