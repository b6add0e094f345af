"""Every parameter of a grading run, declared once: flag, type, default, help, and how each backend takes it.

Generated from `PARAMS` (no other file spells these facts again):
- each step's CLI (`steps.cli.step_main`: `python -m steps.<name>`, what the local runner and the
  Argo pods run), from the parameters its `steps.contract.Step` lists;
- the Argo WorkflowTemplate's parameters, each step pod's arguments and execute's cache key
  (`pipelines.argo.params`), from `OnArgo`; a parameter the cluster does not take says why
  (`NotOnArgo`), and tests check that every step parameter is one or the other;
- the flags of `gradeflow grade` (`grade=True`) and `gradeflow submit --argo` (`OnArgo.submit`),
  and the Jupyter page's config help.

The resource limits come from `steps.limits.FLAGS` (their one declaration): `limit_param` turns
each into a Param here. The order of `PARAMS` is the order of the Argo UI's submit form, and of
execute's cache key (changing it would make every cached result miss once).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .limits import ARGO_FLAGS, FLAGS, NOT_ON_ARGO, LimitFlag
from .limits import type_of as limit_type

__all__ = [
    "Param",
    "OnArgo",
    "NotOnArgo",
    "SAME",
    "PARAMS",
    "LIMIT",
    "param",
    "limit_param",
    "parse_shard",
    "HIDDEN_TESTS",
    "add_argument",
    "add_arguments",
    "grade_params",
    "param_value",
    "by_name",
    "teacher_fields",
    "submit_params",
    "not_on_argo",
]

HIDDEN_TESTS = ("redact", "show")  # what feedback does with hidden tests: the CLI's and Argo's values
SAME = "<the CLI default>"  # an OnArgo default equal to the CLI's, as a string ('' for None)


@dataclass(frozen=True)
class OnArgo:
    """How a parameter reaches the cluster.

    `parameter` names the WorkflowTemplate parameter (None: there is none, the pod gets `value`),
    shown in the Argo UI's submit form with `default` (None: required) and `description`. A step
    pod's argument is `value` when set, else the workflow parameter; `value` may name the pod's
    `{student}`, `{course_mount}` or `{students_file}` (pipelines.argo.params fills them in).
    """

    parameter: str | None
    description: str = ""
    default: str | None = SAME
    value: str | None = None
    cache_input: bool = False  # a memoized execute result depends on it: a change runs the submission again
    submit: bool = False  # `gradeflow submit --<parameter>` sets it (unset: the template's default)


@dataclass(frozen=True)
class NotOnArgo:
    """A parameter the cluster does not take, and why (docs/argo.md says what stands in for it)."""

    reason: str


@dataclass(frozen=True)
class Param:
    """One parameter: `--<name>` of the step CLIs that list it, and what each backend does with it.

    `default` and `choices` may be zero-argument callables, resolved only when a parser is built
    (the sandbox names and the limits' defaults need the sandbox code, which the Argo client does
    not load). `type=bool` is `--x true|false` on a step CLI (an Argo parameter is a string) and
    a plain switch on `gradeflow grade`.
    """

    name: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    choices: Any = ()
    nargs: str | None = None
    metavar: str | None = None
    argo: OnArgo | NotOnArgo = NotOnArgo("a local setting")
    grade: bool = False  # also a flag of `gradeflow grade`
    limit: bool = False  # one of the limits build_workflow(limits=...) takes
    field: str = ""  # for a resource limit: the attribute of steps.sandbox.Limits

    @property
    def dest(self) -> str:
        """argparse's attribute for --name, and the step function's keyword."""
        return self.name.replace("-", "_")

    def resolved_default(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def resolved_choices(self) -> tuple:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    @property
    def teacher_dest(self) -> str:
        """argparse's attribute for the teacher's flag."""
        return self.teacher_flag.replace("-", "_")

    @property
    def teacher_flag(self) -> str:
        """The flag a teacher gives gradeflow grade/submit: the Argo parameter's name where there is one."""
        return self.argo.parameter if isinstance(self.argo, OnArgo) and self.argo.parameter else self.name

    def argo_default(self) -> str | None:
        """The WorkflowTemplate parameter's default, as a string."""
        assert isinstance(self.argo, OnArgo)
        if self.argo.default is not SAME:
            return self.argo.default
        value = self.resolved_default()
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    def but(self, **changes: Any) -> Param:
        """This parameter as one step takes it differently (e.g. optional there, or not on Argo)."""
        return replace(self, **changes)


def true_or_false(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def parse_shard(text: str) -> tuple[int, int]:
    """`i/S` (shard i of S, from 0) as a pair; refuses anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not int(m.group(2)) or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: give i/S with 0 <= i < S, e.g. 0/1 for the whole class")
    return int(m.group(1)), int(m.group(2))


def limit_param(f: LimitFlag) -> Param:
    """A resource limit (declared in steps.limits) as a parameter of execute and of `gradeflow grade`."""
    on_argo = OnArgo(f.flag, f.argo, cache_input=True, submit=True) if f.argo else NotOnArgo(NOT_ON_ARGO)

    def parse(value: str) -> int | None:  # its type needs the default, which needs the sandbox code: not at import
        return limit_type(f)(value)

    parse.__name__ = "int"  # argparse's "invalid int value: 'x'"
    return Param(f.flag, f.help, parse, lambda: f.default, argo=on_argo, grade=True, limit=bool(f.argo), field=f.field)


def _sandboxes() -> tuple[str, ...]:
    from .sandbox import SANDBOXES

    return tuple(sorted(SANDBOXES))


def _default_sandbox() -> str:
    from .sandbox import DEFAULT_SANDBOX

    return DEFAULT_SANDBOX


EVERY_SUBMISSION = "a run grades every submission; `gradeflow retry` re-runs the failed ones"
LIMIT = {f.flag: limit_param(f) for f in FLAGS}

# In the Argo UI's submit form's order (and execute's cache key's: see the module docstring).
PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "assignment",
            "the nbgrader assignment id",
            required=True,
            argo=OnArgo("assignment", "the nbgrader assignment id, e.g. ps1", default=None),
        ),
        Param(
            "run-id",
            "names this run (the manifest records it)",
            argo=OnArgo(
                "run-id",
                "names this run: its artifacts go to <store-prefix>/<run-id>/ (a new one per run, e.g. ps1-1122a)",
                default=None,
            ),
        ),
        Param("course", "the course id", argo=OnArgo("course", "the course id, for the gradeflow.io/course label", "")),
        Param(
            "course-pvc",
            "PersistentVolumeClaim with the course",
            argo=OnArgo(
                "course-pvc",
                "the PersistentVolumeClaim holding the nbgrader course (nbgrader_config.py, gradebook.db unless "
                "db_url names a database server, source/, submitted/); mounted read-only",
                "gradeflow-course",
                submit=True,
            ),
        ),
        Param(
            "course-subpath",
            "the course directory inside that volume",
            argo=OnArgo("course-subpath", "the course directory inside that volume ('' = its root)", "", submit=True),
        ),
        Param(
            "image",
            "grader image",
            argo=OnArgo(
                "image",
                "the grader image (images/grader/Containerfile)",
                "localhost/gradeflow-grader:dev",
                cache_input=True,
                submit=True,
            ),
        ),
        Param(
            "store-prefix",
            "prefix of the run in the bucket",
            argo=OnArgo(
                "store-prefix", "prefix of every run in the artifact repository's bucket", "gradeflow", submit=True
            ),
        ),
        *(LIMIT[f.flag] for f in ARGO_FLAGS),
        Param(
            "cpu",
            "CPU limit of an execute pod",
            limit=True,
            argo=OnArgo("cpu", "CPU limit of one execute pod", "1", cache_input=True, submit=True),
        ),
        Param(
            "strict",
            "no recovery of malformed notebooks: a deleted, copied, renamed or re-flagged grade cell skips the "
            "notebook (nbgrader's behaviour) instead of being repaired",
            bool,
            False,
            grade=True,
            argo=OnArgo(
                "strict",
                "true: no recovery of malformed notebooks (a deleted, copied or renamed grade cell skips the "
                "notebook, as nbgrader would)",
            ),
        ),
        Param(
            "class-size",
            "refuse more than N submissions: score and merge size their scratch space from N",
            int,
            metavar="N",
            argo=OnArgo(
                "class-size", "the most submissions a run grades: sizes score's and merge's scratch space", "200"
            ),
        ),
        Param(
            "shard",
            "collect only shard i of S (by a hash of the student id; default 0/1: everyone)",
            parse_shard,
            (0, 1),
            metavar="i/S",
            argo=OnArgo(
                "shard",
                "i/S: grade only shard i of S of the class (chosen by a hash of the student id); a class too big "
                "for one run is graded as S runs (docs/argo.md, 'Big classes')",
                "0/1",
            ),
        ),
        Param(
            "feedback",
            "also write each student's feedback (feedback/STUDENT/ASSIGNMENT/*.html, for `nbgrader release_feedback`)",
            bool,
            False,
            grade=True,
            argo=OnArgo(
                "feedback",
                "true: also write each student's feedback HTML (feedback/ in the run; `gradeflow sync` puts it in "
                "the course)",
                submit=True,
            ),
        ),
        Param(
            "hidden-tests",
            "hidden tests in feedback: redact them and the outputs quoting them, or show them (nbgrader's behaviour)",
            default="redact",
            choices=HIDDEN_TESTS,
            grade=True,
            argo=OnArgo(
                "feedback-hidden-tests", "hidden tests in feedback: redact, or show (nbgrader's behaviour)", submit=True
            ),
        ),
        # parameters of the steps that are not the template's: a fixed value in the pod, or local only
        Param(
            "course-dir",
            "the nbgrader course directory (holds nbgrader_config.py)",
            Path,
            required=True,
            argo=OnArgo(None, value="{course_mount}"),
        ),
        Param(
            "students", "only these students (default: every submission)", nargs="*", argo=NotOnArgo(EVERY_SUBMISSION)
        ),
        Param("student", "the student whose submission this is", required=True, argo=OnArgo(None, value="{student}")),
        Param(
            "sandbox",
            "where student code runs",
            default=_default_sandbox,
            choices=_sandboxes,
            argo=OnArgo(None, value="pod"),  # the pod is the sandbox: see the execute template's securityContext
        ),
        Param(
            "slot",
            "parallel slot (picks the sandbox uid when run as root)",
            int,
            0,
            argo=NotOnArgo("one pod per submission: every pod is its own slot"),
        ),
        *(LIMIT[f.flag] for f in FLAGS if not f.argo),
        Param(
            "max-submission-mb",
            "larger submissions are skipped and listed with their size",
            int,
            200,
            grade=True,
            argo=NotOnArgo("collect in the cluster skips submissions over the default, 200 MiB"),
        ),
        Param(
            "emit-students",
            "also write one JSON entry per student to PATH (the list Argo fans execute out over)",
            Path,
            metavar="PATH",
            argo=OnArgo(None, value="{students_file}"),
        ),
    )
}


def param(*names: str) -> tuple[Param, ...]:
    """The declared parameters `names`, in that order (a step's list)."""
    return tuple(PARAMS[n] for n in names)


def add_argument(p: Any, prm: Param, mode: str = "step", defaults: bool = True) -> None:
    """`prm` as an argparse option of a step CLI (`mode="step"`), of `gradeflow grade` ("grade":
    the teacher's flag, a switch for a bool) or of `gradeflow submit --argo` ("submit": a string,
    unset by default, so the template's default stands). `defaults=False` leaves it None when not given."""
    flag = "--" + (prm.name if mode == "step" else prm.teacher_flag)
    kwargs: dict[str, Any] = {"help": prm.help}
    if prm.type is bool and mode != "step":
        p.add_argument(flag, action="store_true", **kwargs)
        return
    default = prm.resolved_default() if mode != "submit" and defaults else None
    shown = prm.argo.default if mode == "submit" and isinstance(prm.argo, OnArgo) else default
    if isinstance(shown, (int, str)) and shown is not SAME and shown != "" and not isinstance(shown, bool):
        kwargs["help"] += f" (default {shown})"  # on submit: the template's, when it is not a limit's
    if prm.choices:
        kwargs["choices"] = prm.resolved_choices()
    if mode != "submit":
        kwargs["type"] = true_or_false if prm.type is bool else prm.type
    for key in ("nargs", "metavar"):
        if getattr(prm, key):
            kwargs[key] = getattr(prm, key)
    if prm.type is bool:
        kwargs["metavar"] = "true|false"
    p.add_argument(flag, default=default, required=prm.required and mode == "step", **kwargs)


def add_arguments(p: Any, params: Any, mode: str = "step", defaults: bool = True) -> None:
    for prm in params:
        add_argument(p, prm, mode, defaults)


def grade_params() -> tuple[Param, ...]:
    """The flags `gradeflow grade` takes for the steps (and the Jupyter page passes on)."""
    return tuple(p for p in PARAMS.values() if p.grade)


def param_value(params: Mapping[str, Any], name: str) -> Any:
    """The value of the parameter `name` in `params` (by Param name), else its declared default:
    a step reads its parameters this way (`SubmissionOptions.param`), so a run that does not set
    one gets the same default as the step's CLI."""
    return params[name] if name in params else PARAMS[name].resolved_default()


def by_name(params: Iterable[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` given by argparse attribute (`prm.dest`) as a dict by Param name, for those of
    `params` that are there."""
    return {prm.name: values[prm.dest] for prm in params if prm.dest in values}


def _teacher_params() -> tuple[Param, ...]:
    """The step parameters `gradeflow grade` takes besides the limits (which travel as one Limits)."""
    return tuple(p for p in grade_params() if not p.field)


def teacher_fields(cls: type) -> type:
    """Give a dataclass-to-be (`pipelines.local.GradeOptions`) one keyword field per step parameter
    `gradeflow grade` takes (`teacher_dest`, with the declared default), and a `params` property:
    their values by Param name, what the local runner hands each step. A new `grade=True` Param
    is a keyword of the Python API and reaches the steps with no edit here or in the runner."""
    for prm in _teacher_params():
        cls.__annotations__[prm.teacher_dest] = "Any"
        setattr(cls, prm.teacher_dest, prm.resolved_default())

    def params(self: Any) -> dict[str, Any]:
        return {prm.name: getattr(self, prm.teacher_dest) for prm in _teacher_params()}

    params.__doc__ = "The step parameters by Param name (steps/params.py), as each step reads them."
    cls.params = property(params)  # type: ignore[attr-defined]
    return cls


def not_on_argo(args: Any) -> list[str]:
    """Why each `gradeflow grade` flag among `args` that Argo does not take is left out there."""
    given = {t.split("=", 1)[0] for t in args if t.startswith("--")}
    return [
        f"--{p.teacher_flag} is not applied on Argo: {p.argo.reason}"
        for p in grade_params()
        if isinstance(p.argo, NotOnArgo) and f"--{p.teacher_flag}" in given
    ]


def submit_params() -> tuple[Param, ...]:
    """The flags `gradeflow submit --argo` takes for the steps: Argo parameters a teacher sets per run."""
    return tuple(p for p in PARAMS.values() if isinstance(p.argo, OnArgo) and p.argo.submit)
