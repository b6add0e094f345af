"""The step contract: the one declaration of gradeflow's steps (five, and feedback when asked).

Every backend reads this module and nothing else to learn what a step needs and makes:
the local runner (`pipelines.local`), the Argo templates (`pipelines.argo.templates`) and the
step CLIs (`steps.cli.step_main`). A step's parameters are declared in `steps.params` (flag,
type, default, help, and how each backend takes them); a step lists the ones it takes.

A step reads its inputs from, and writes its outputs to, a *workspace*: a directory whose layout
is the same as the run's prefix in the object store. So `restored/s01/work/` in a workspace is
`<run>/restored/s01/work/` in the store, and `/gradeflow/restored/s01/work/` in an Argo pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .params import LIMIT, PARAMS, NotOnArgo, Param, param

__all__ = ["Artifact", "Param", "Step", "STEPS", "DAG", "OPTIONAL", "step", "EXIT_OK", "EXIT_USAGE", "EXIT_INFRA"]

# Exit codes of every step CLI. Argo retries only EXIT_INFRA (see pipelines.argo.pods):
# a student's failing code is a graded result and never makes a step exit non-zero.
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or a teacher-side problem (missing gradebook, unknown assignment)
EXIT_INFRA = 75  # EX_TEMPFAIL: our own crash or a broken sandbox; a retry may help


@dataclass(frozen=True)
class Artifact:
    """A file or directory a step reads or writes, at `path` relative to the workspace.

    `{student}` in a path marks a per-submission artifact: one copy per student.
    """

    name: str
    path: str
    description: str

    @property
    def per_submission(self) -> bool:
        return "{student}" in self.path

    def at(self, student: str | None = None) -> str:
        """The workspace-relative path, with the student filled in where there is one."""
        if self.per_submission:
            if not student:
                raise ValueError(f"artifact {self.name!r} is per submission: a student id is required")
            return self.path.format(student=student)
        return self.path


@dataclass(frozen=True)
class Step:
    """One node of the grading DAG."""

    name: str
    description: str
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    params: tuple[Param, ...] = ()
    runs_student_code: bool = False
    fan_out: bool = False  # one task per submission (execute) instead of one per run
    needs_course: bool = False  # reads the nbgrader course directory (trusted side only)
    module: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "module", f"steps.{self.name}")

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names (flags) of the step's parameters, in its CLI's and its pod's order."""
        return tuple(p.name for p in self.params)


MANIFEST = Artifact("manifest", "manifest.json", "the run manifest: one entry per submission")
SNAPSHOT = Artifact("snapshot", "snapshot.json", "this assignment's source cells from the gradebook")
SUBMISSIONS = Artifact("submissions", "submissions", "each submission's files, under <student>/")
RESTORED = Artifact("restored", "restored", "restored notebooks and work dirs, under <student>/")
RESTORED_ONE = Artifact("restored-submission", "restored/{student}", "one student's restored work dir")
EXECUTED = Artifact("executed", "executed", "executed notebooks and logs, under <student>/")
EXECUTED_ONE = Artifact("executed-submission", "executed/{student}", "one student's executed notebooks")
SCORED = Artifact("scored", "scored", "autograded notebooks and scores, under <student>/")
MANUAL = Artifact("manual", "manual.json", "the teacher's manual scores and comments on this assignment, for feedback")
FEEDBACK = Artifact("feedback", "feedback", "feedback HTML per graded notebook, under <student>/")
RESULTS = Artifact("results", "results", "results.json, grades.csv and summary.txt of the run")

STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        Step(
            "collect",
            "find the submissions and export the gradebook snapshot",
            inputs=(),
            outputs=(MANIFEST, SNAPSHOT, SUBMISSIONS, MANUAL),
            params=param("course-dir", "assignment", "students", "run-id", "max-submission-mb", "shard"),
            needs_course=True,
        ),
        Step(
            "restore",
            "validate each notebook and restore its locked and test cells from the snapshot",
            inputs=(MANIFEST, SNAPSHOT, SUBMISSIONS),
            outputs=(RESTORED,),
            params=param("students", "strict", "emit-students", "class-size"),
        ),
        Step(
            "execute",
            "run one submission's restored notebooks in a sandbox with papermill",
            inputs=(SNAPSHOT, RESTORED_ONE),
            outputs=(EXECUTED_ONE,),
            params=param("student", "sandbox", "slot", *LIMIT),  # and every limit (steps/limits.py)
            runs_student_code=True,
            fan_out=True,
        ),
        Step(
            "score",
            "grade every cell with nbgrader's rules",
            inputs=(MANIFEST, SNAPSHOT, RESTORED, EXECUTED),
            outputs=(SCORED,),
            params=param("students"),
        ),
        Step(
            "feedback",
            "render each graded notebook as nbgrader's feedback HTML, hidden tests redacted",
            inputs=(MANIFEST, SNAPSHOT, MANUAL, SCORED),
            outputs=(FEEDBACK,),
            params=param("students", "hidden-tests"),
        ),
        Step(
            "merge",
            "write the run's results; with a course dir, into gradebook.db, autograded/ and feedback/",
            inputs=(MANIFEST, SNAPSHOT, RESTORED, EXECUTED, SCORED, FEEDBACK),
            outputs=(RESULTS,),
            params=(
                PARAMS["course-dir"].but(
                    help="also write the gradebook and autograded/ of this course",
                    required=False,
                    argo=NotOnArgo(
                        "the cluster never writes gradebook.db: `gradeflow sync` merges on the teacher's side"
                    ),
                ),
            ),
        ),
    )
}

# The DAG, in order: every step depends on the one before it. feedback runs only when the
# teacher asks for it (`--feedback`); without it, merge follows score.
DAG: tuple[str, ...] = ("collect", "restore", "execute", "score", "feedback", "merge")
OPTIONAL: frozenset[str] = frozenset({"feedback"})


def step(name: str) -> Step:
    """Look a step up by name; an unknown name lists the known ones."""
    try:
        return STEPS[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}; the steps are: {', '.join(DAG)}") from None
