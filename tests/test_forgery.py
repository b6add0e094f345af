"""The forgery corpus (tests/corpus/forgery/): student code that makes failing tests look passed.

Scenario: a class of the `stats` notebook (four test cells, 8 points) where every forger submits
the same wrong `mean` (honest score 0) plus one way of tampering with the kernel: IPython input
and AST transformers, replaced `showtraceback`/`run_cell`/`do_execute`, a custom exception
handler, event hooks, rebound or shadowed builtins, patched `math.isclose` and
`numpy.testing`, a substituted module, an import hook, a rebound module alias, an object equal to
everything. Graded in ONE run per sandbox with an honest right and an honest wrong student.

Checked per technique: the notebook is TAMPERED with a reason that names the trick and the cell
it came from, the submission scores its honest 0, the withheld test cells need a manual grade in
the course's gradebook and carry the reason in the autograded notebook (what Formgrader shows),
and the summary, report and results.json say so. nbgrader's own score for each technique is
recorded in its file; `test_nbgrader_scores_are_as_recorded` re-measures it with `nbgrader
autograde`. The benign corpus (legitimate IPython use) is graded exactly as nbgrader grades it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import FAST_LIMITS, require_sandbox
from parity import compare, run_nbgrader
from pipelines.local import RUNS_DIR, GradeOptions, grade
from steps.records import OK, TAMPERED
from steps.sandbox import Limits

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).parent / "corpus" / "forgery"
sys.path.insert(0, str(CORPUS))
import forgery_course as cc  # noqa: E402
from forgery_measure import HONEST, nbgrader_scores  # noqa: E402

TECHNIQUES = cc.load(CORPUS)
BENIGN = cc.load(CORPUS / "benign")
LIMITS = Limits(**{**FAST_LIMITS, "memory_mb": 512, "pids": 128})  # numpy's threads


def _grade(course: Path, sandbox: str) -> dict[str, Any]:
    return grade(course, "ps1", GradeOptions(jobs=2, sandbox=sandbox, limits=LIMITS))


def _kernel_lacks(sandbox: str, modules: set[str]) -> set[str]:
    """The modules a kernel in this sandbox cannot import (the podman image has its own Python)."""
    if sandbox != "podman":
        return {m for m in modules if importlib.util.find_spec(m) is None}
    from steps.sandbox.podman import DEFAULT_IMAGE, PODMAN

    probe = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    out = subprocess.run(
        [
            *PODMAN,
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit=nproc=4096:4096",
            "--ulimit=nofile=256:256",
            DEFAULT_IMAGE,
            "python",
            "-c",
            probe,
            *sorted(modules),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(out.stdout.split())


@pytest.fixture(scope="module", params=["bubblewrap", "podman"])
def forgery_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], set[str]]:
    require_sandbox(request.param)
    students = {**HONEST, **{s: src for s, (_, src) in TECHNIQUES.items()}}
    course = cc.make_course(tmp_path_factory.mktemp(f"forgery-{request.param}") / "course", students)
    lacks = _kernel_lacks(request.param, {m for h, _ in TECHNIQUES.values() for m in h.get("requires", "").split()})
    return course, _grade(course, request.param), lacks


def _student(results: dict[str, Any], student: str) -> dict[str, Any]:
    return next(s for s in results["students"] if s["student"] == student)


def test_corpus_has_at_least_twelve_techniques_with_measured_nbgrader_scores() -> None:
    assert len(TECHNIQUES) >= 12
    for name, (header, _) in TECHNIQUES.items():
        assert {"name", "technique", "nbgrader", "caught"} <= set(header), name
        assert re.fullmatch(r"\d+(\.\d+)? of 8 \(measured: nbgrader [\d.]+ autograde\)", header["nbgrader"]), (
            name,
            header["nbgrader"],
        )


def test_honest_students_get_exactly_their_scores(forgery_run: tuple[Path, dict[str, Any], set[str]]) -> None:
    _, results, lacks = forgery_run
    # without numpy in the kernel the setup cell fails and so does test_mean_numpy, as in nbgrader
    for student, expected in (("honest-correct", cc.MAX_SCORE - 2 * ("numpy" in lacks)), ("honest-wrong", 0.0)):
        s = _student(results, student)
        assert s["status"] == OK, s["notebooks"][0]["reason"]
        assert s["score"] == expected and not s["needs_manual_grade"]


def test_probes_leave_no_trace_in_the_executed_notebook(forgery_run: tuple[Path, dict[str, Any], set[str]]) -> None:
    """Execution counts run 1, 2, 3... as without probes; no probe output; the probes did run."""
    course, results, _ = forgery_run
    run = course / RUNS_DIR / results["run_id"]
    for student in HONEST:
        nb = nbformat.read(str(run / "executed" / student / f"{cc.NOTEBOOK}.ipynb"), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
        # file paths in tracebacks (numpy's, under /opt/gradeflow in the image or a checkout named
        # gradeflow) are where the Python lives, not a probe's trace: left out before looking
        text = re.sub(r"(/[\w.+-]+)+", "/PATH", json.dumps([c.get("outputs", []) for c in code]))
        assert "gradeflow" not in text and "SyntaxError" not in text and "assert 0 == 1" not in text
        integrity = json.loads((run / "executed" / student / "execute.json").read_text())["notebooks"][0]["detail"][
            "integrity"
        ]
        assert integrity["probes"] == 1 + len(cc.TESTS) and integrity["findings"] == [] and "error" not in integrity


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_forgery_is_tampered_and_never_credited(
    forgery_run: tuple[Path, dict[str, Any], set[str]], technique: str
) -> None:
    course, results, lacks = forgery_run
    header = TECHNIQUES[technique][0]
    missing = set(header.get("requires", "").split()) & lacks
    if missing:
        pytest.skip(f"TECHNIQUE NOT TESTED IN THIS SANDBOX: its kernel cannot import {', '.join(sorted(missing))}")
    s = _student(results, technique)
    nb = s["notebooks"][0]
    assert nb["status"] == TAMPERED, f"{header['technique']}: {nb['status']} {nb['reason']!r} score {s['score']}"
    assert header["caught"] in nb["reason"], nb["reason"]
    assert s["score"] == 0.0, f"{header['technique']} forged {s['score']} points"
    withheld = [c for c in nb["cells"] if c["needs_manual_grade"]]
    assert withheld and all(c["auto_score"] == 0 for c in withheld)
    # what Formgrader reads: the course's gradebook and the autograded notebook
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = {g.name: g for g in gb.find_submission_notebook(cc.NOTEBOOK, "ps1", technique).grades}
        assert all(grades[c["cell"]].needs_manual_grade and grades[c["cell"]].score == 0 for c in withheld)
    autograded = nbformat.read(str(course / "autograded" / technique / "ps1" / f"{cc.NOTEBOOK}.ipynb"), as_version=4)
    errors = [o for c in autograded.cells for o in c.get("outputs", []) if o.get("ename") == "GradeflowIntegrityError"]
    assert len(errors) == len(withheld) and header["caught"] in errors[0]["evalue"]


def test_summary_report_and_results_list_tampered_submissions(
    forgery_run: tuple[Path, dict[str, Any], set[str]],
) -> None:
    course, results, lacks = forgery_run
    run = course / RUNS_DIR / results["run_id"] / "results"
    summary = (run / "summary.txt").read_text()
    report = (run / "report.html").read_text()
    saved = json.loads((run / "results.json").read_text())
    testable = [t for t, (h, _) in TECHNIQUES.items() if not set(h.get("requires", "").split()) & lacks]
    assert saved["counts"][TAMPERED] >= len(testable)
    for technique in testable:
        reason = _student(saved, technique)["notebooks"][0]["reason"]
        assert f"TAMPERED {technique} / {cc.NOTEBOOK}.ipynb: {reason}" in summary
        assert f'data-student="{technique}"' in report and "badge tampered" in report


def test_nbgrader_scores_are_as_recorded(tmp_path: Path) -> None:
    """Real `nbgrader autograde` on the corpus: each technique's score is the one in its file."""
    measured = nbgrader_scores(tmp_path / "course")
    assert measured["honest-correct"] == cc.MAX_SCORE and measured["honest-wrong"] == 0.0
    for technique, (header, _) in TECHNIQUES.items():
        assert measured[technique] == float(header["nbgrader"].split()[0]), (technique, measured[technique])
    assert max(measured[t] for t in TECHNIQUES) == cc.MAX_SCORE  # nbgrader is fooled completely by some


def _benign_students() -> tuple[dict[str, str], dict[str, dict[str, str]], list[str]]:
    students, files, missing = {}, {}, []
    helper = (CORPUS / "benign" / "helpers.txt").read_text()
    for name, (header, src) in BENIGN.items():
        needs = [m for m in header.get("requires", "").split() if importlib.util.find_spec(m) is None]
        if needs:
            missing.append(f"{name} (needs {', '.join(needs)})")
            continue
        students[name] = src
        if "files" in header:
            files[name] = {f: helper for f in header["files"].split()}
    return students, files, missing


@pytest.mark.parametrize(
    "setup",
    [
        "import numpy as np",
        "%load_ext autoreload\n%autoreload 2\nimport warnings\nwarnings.filterwarnings('ignore')\nimport numpy as np",
    ],
    ids=["plain-setup", "setup-loads-extension"],
)
def test_benign_corpus_is_graded_exactly_as_nbgrader(tmp_path: Path, setup: str) -> None:
    require_sandbox("bubblewrap")
    students, files, _ = _benign_students()
    ours = cc.make_course(tmp_path / "gradeflow", students, files, setup=setup)
    theirs = cc.make_course(tmp_path / "nbgrader", students, files, setup=setup)
    results = _grade(ours, "bubblewrap")
    run_nbgrader(theirs, "autograde", "ps1", "--force")
    parity = compare(theirs, ours, results)
    assert parity.different == [] and parity.skipped_not_above == [] and len(parity.identical) == 4 * len(students), (
        parity.line()
    )
    for s in results["students"]:
        assert s["status"] == OK, (s["student"], s["notebooks"][0]["reason"])
    assert _student(results, "honest-wrong")["score"] == 0.0
    assert all(s["score"] == cc.MAX_SCORE for s in results["students"] if s["student"] != "honest-wrong")


def test_every_benign_case_could_run() -> None:
    """The benign cases above leave out those whose modules are missing here: say which, loudly."""
    missing = _benign_students()[2]
    if missing:
        pytest.skip(f"BENIGN CASES NOT RUN, their modules are not installed here: {'; '.join(missing)}")
