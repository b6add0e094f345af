"""The step contract's parameters on Argo: the WorkflowTemplate's parameters, each step pod's
arguments, and what a memoized execute result depends on. All GENERATED from
`steps.params.PARAMS` (its `OnArgo` / `NotOnArgo` declarations); nothing here names a parameter.

`PARAMETERS` is computed on first use: the limits' defaults come from `steps.sandbox.Limits`,
whose import the Argo client (status, sync, ...) has no need of.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from steps.contract import STEPS, Step
from steps.params import PARAMS, NotOnArgo, OnArgo, Param
from steps.workspace import STUDENTS_JSON

__all__ = [
    "WorkflowParameter",
    "PARAMETERS",  # noqa: F822 - module __getattr__ (computed on first use)
    "BOUND",
    "BOUND_PER_STEP",
    "UNBOUND",
    "CACHE_INPUTS",
    "LIMITS",
    "DEFAULT_IMAGE",
    "DEFAULT_CLASS_SIZE",
    "argo_default",
    "defaults",
    "step_arguments",
    "wf_param",
    "wf_expr",
]

WORKDIR = "/gradeflow"  # the step workspace inside every pod (an emptyDir)
COURSE_MOUNT = "/course"  # the course PVC, read-only, in the collect pod only
STUDENTS_FILE = f"{WORKDIR}/{STUDENTS_JSON}"  # restore --emit-students writes the fan-out list here
STUDENT = "{{inputs.parameters.student}}"


def wf_param(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


def wf_expr(name: str) -> str:
    """A workflow parameter inside an `{{=...}}` expression (hyphens need the index form)."""
    return f"workflow.parameters['{name}']"


# What an OnArgo `value` may name: where the pod has it.
POD_VALUES = {"student": STUDENT, "course_mount": COURSE_MOUNT, "students_file": STUDENTS_FILE}


@dataclass(frozen=True)
class WorkflowParameter:
    """A parameter of the WorkflowTemplate, as the Argo UI's submit form shows it."""

    name: str
    default: str | None  # None: required, no default
    description: str


def _template_params() -> list[Param]:
    """The parameters that are the template's, in the submit form's order."""
    return [p for p in PARAMS.values() if isinstance(p.argo, OnArgo) and p.argo.parameter]


@functools.cache
def _parameters() -> tuple[WorkflowParameter, ...]:
    return tuple(WorkflowParameter(p.teacher_flag, p.argo_default(), p.argo.description) for p in _template_params())


def __getattr__(name: str) -> Any:  # PEP 562: PARAMETERS only when asked for
    if name == "PARAMETERS":
        return _parameters()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def argo_default(name: str) -> str | None:
    """The template's default of the workflow parameter `name` (without loading the sandbox code
    unless it is a limit's)."""
    (p,) = [p for p in _template_params() if p.teacher_flag == name]
    return p.argo_default()


def defaults() -> dict[str, str]:
    """Every workflow parameter that has a default, with it."""
    return {p.name: p.default for p in _parameters() if p.default is not None}


# execute's cache key: besides the submission (its restored work dir and the course's execute
# configuration: the item's work-hash), a change of any of these runs the submission again. The
# image counts only when pinned by digest (see templates._memo_key).
CACHE_INPUTS: tuple[str, ...] = tuple(p.teacher_flag for p in _template_params() if p.argo.cache_input)
# The limits a teacher sets per run (build_workflow(limits=...) takes any parameter by name).
LIMITS: tuple[str, ...] = tuple(p.teacher_flag for p in _template_params() if p.limit)
TEMPLATE_PARAMETERS: tuple[str, ...] = tuple(p.teacher_flag for p in _template_params())
DEFAULT_IMAGE: str = argo_default("image") or ""
DEFAULT_CLASS_SIZE = int(argo_default("class-size") or 0)


def _binding(p: Param) -> list[str] | str:
    """`p`'s arguments in a step pod, or why the cluster does not give it."""
    if isinstance(p.argo, NotOnArgo):
        return p.argo.reason
    value = p.argo.value.format(**POD_VALUES) if p.argo.value is not None else wf_param(p.teacher_flag)
    return [f"--{p.name}", value]


# How each contract parameter is given to a step's CLI in the cluster (BOUND by name; a step
# that takes one differently in BOUND_PER_STEP), and each one that is not, with the reason.
_TAKEN = {p.name for s in STEPS.values() for p in s.params}  # the others are the template's alone (image, cpu, ...)
BOUND: dict[str, list[str]] = {n: b for n, p in PARAMS.items() if n in _TAKEN and isinstance(b := _binding(p), list)}
BOUND_PER_STEP: dict[tuple[str, str], list[str]] = {
    (s.name, p.name): b
    for s in STEPS.values()
    for p in s.params
    if isinstance(b := _binding(p), list) and b != BOUND.get(p.name)
}
UNBOUND: dict[tuple[str, str], str] = {
    (s.name, p.name): b for s in STEPS.values() for p in s.params if isinstance(b := _binding(p), str)
}


def step_arguments(step: Step) -> list[str]:
    """The CLI arguments of `step` in its pod, in the order the step lists its parameters."""
    args = ["--workspace", WORKDIR]
    for p in step.params:
        binding = _binding(p)
        if isinstance(binding, list):
            args += binding
    return args
