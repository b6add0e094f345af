"""The resource limits are declared once (steps/limits.py, defaults in steps.sandbox.Limits), and
every backend and entry point agrees with that declaration.

Scenario: a teacher who never sets a limit gets the same limits on this machine and on Argo; a
teacher who sets one gets it on Argo whether the run starts from `gradeflow submit --argo`,
from Python (`pipelines.client.submit(..., limits=...)`) or from the Jupyter page.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import cli
from pipelines.argo import commands
from pipelines.argo.workflow import BOUND, CACHE_INPUTS, LIMITS, PARAMETERS, build_workflow
from pipelines.jupyter.jobs import JobManager
from steps.contract import STEPS
from steps.limits import (
    ARGO_FLAGS,
    FIXED,
    FLAGS,
    add_limit_arguments,
    argo_parameters,
    limit_arguments,
    limits_from_args,
)
from steps.sandbox import Limits

ROOT = Path(__file__).resolve().parents[1]
ARGO = [f.flag for f in ARGO_FLAGS]


def test_every_field_of_limits_is_declared_once() -> None:
    assert sorted([f.field for f in FLAGS] + list(FIXED)) == sorted(Limits.__dataclass_fields__)
    assert len({f.flag for f in FLAGS}) == len(FLAGS)


def test_the_argo_templates_defaults_are_the_local_defaults() -> None:
    template = {p.name: p.default for p in PARAMETERS}
    assert (
        {k: template[k] for k in ARGO}
        == argo_parameters(Limits())
        == {"cell-timeout": "", "wall-time": "600", "memory": "1024", "cpu-time": "300"}
    )
    rendered = yaml.safe_load((ROOT / "argo" / "workflowtemplate.yaml").read_text())
    installed = {p["name"]: p.get("value") for p in rendered["spec"]["arguments"]["parameters"]}
    assert {k: installed[k] for k in ARGO} == argo_parameters(Limits())


def test_every_argo_limit_reaches_the_execute_pod_and_its_cache_key() -> None:
    assert set(ARGO) <= set(STEPS["execute"].parameters)
    assert all(BOUND[k][0] == f"--{k}" for k in ARGO)
    assert set(ARGO) <= set(CACHE_INPUTS) and set(LIMITS) == set(ARGO) | {"cpu"}


def test_the_local_and_step_command_lines_default_to_limits() -> None:
    grade = cli.build_parser(argo=False).parse_args(["grade", "COURSE", "ps1"])
    assert cli.limits_from_args(grade) == Limits()
    p = argparse.ArgumentParser()
    add_limit_arguments(p)  # what `python -m steps.execute` (the execute pod) parses
    assert limits_from_args(p.parse_args([])) == Limits()
    assert limits_from_args(p.parse_args(["--memory", "512", "--cell-timeout", "20"])) == Limits(
        memory_mb=512, cell_timeout=20
    )


@pytest.mark.parametrize(
    "limits",
    [Limits(), Limits(cell_timeout=7, memory_mb=300, cpu_time=11, wall_time=90, pids=40, disk_mb=20, output_kb=64)],
)
def test_a_hand_built_step_command_line_carries_every_limit(limits: Limits) -> None:
    # the emulated execute pod builds `python -m steps.execute ...` itself: what it passes must
    # parse back, in the step's own parser, to the same limits (a new limit included)
    p = argparse.ArgumentParser()
    add_limit_arguments(p)
    assert limits_from_args(p.parse_args(limit_arguments(limits))) == limits
    assert len(limit_arguments(limits)) == 2 * len(FLAGS)


def test_submit_from_the_command_line_passes_the_teachers_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict[str, Any] = {}

    class Backend:
        namespace = "grading"

    monkeypatch.setattr(commands, "_backend", lambda a: Backend())
    monkeypatch.setattr(
        commands, "submit", lambda b, course, assignment, **kw: sent.update(kw) or {"metadata": {"name": "ps1-x"}}
    )
    assert cli.main(["submit", "intro", "ps1", "--argo", "--memory", "512", "--cell-timeout", "20", "--cpu", "2"]) == 0
    assert sent["limits"] == {"memory": "512", "cell-timeout": "20", "cpu": "2"}  # the rest: the template's defaults


def test_submit_from_python_puts_the_limits_on_the_workflow() -> None:
    wf = build_workflow("ps1", "ps1-x", limits={"memory": 512, "cell-timeout": 20}).to_dict()
    arguments = {p["name"]: p.get("value") for p in wf["spec"]["arguments"]["parameters"]}
    assert arguments["memory"] == "512" and arguments["cell-timeout"] == "20"


def test_the_jupyter_page_passes_its_grade_args_limits_to_argo(tmp_path: Path) -> None:
    manager = JobManager(tmp_path, ["--jobs", "2", "--memory", "2048", "--cell-timeout", "45", "--pids", "64"])
    limits, ignored = manager.argo_limits()
    assert limits == {**argo_parameters(Limits()), "memory": "2048", "cell-timeout": "45"}
    assert len(ignored) == 1 and ignored[0].startswith("--pids is not applied on Argo")


def test_a_limit_flag_is_generated_with_its_default_in_the_help() -> None:
    p = argparse.ArgumentParser()
    add_limit_arguments(p)
    helps = {a.option_strings[0]: a.help for a in p._actions if a.option_strings and a.option_strings[0] != "-h"}
    assert helps["--memory"] == "MiB per submission (default 1024)" and "--cell-timeout" in helps
