"""The bundled example course, built and graded by the real nbgrader.

Scenario: an instructor has the example course ``examples/course`` (one assignment,
ps1, with problems.ipynb and data_analysis.ipynb). ``examples/make_course.py`` copies
it to a fresh directory, runs nbgrader's own ``generate_assignment ps1``, sets the
due date, and writes one submission per student variant (correct, partial, wrong,
raises-error, timeout, late, missing-notebook, locked-cell-edited, blank,
manual-answer). We check that the gradebook knows ps1, its two notebooks and their
grade cells; that every variant's submission is in nbgrader's layout with a
timestamp; that the malformed corpus (tests/corpus/malformed) is what its README
says; and finally we run the real ``nbgrader autograde ps1`` on a 3-student course
(correct, partial, missing-notebook) and check that nbgrader gives the scores the
notebooks were written to produce: correct = every autograded point, partial less,
missing-notebook only the problems.ipynb points.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    # same module names as the modules use for each other, so only one copy is loaded
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


mc = _load("gradeflow_example_make_course", REPO / "examples" / "make_course.py")
mal = _load("gradeflow_malformed_build", REPO / "tests" / "corpus" / "malformed" / "malformed_build.py")
build_source = _load("gradeflow_example_build_source", REPO / "examples" / "build_source.py")

GRADE_CELLS = {
    "problems": {
        "test_squares",
        "test_fibonacci",
        "test_fibonacci_negative",
        "test_word_counts",
        "fibonacci_complexity",
    },
    "data_analysis": {"test_load_measurements", "test_mean_by_station", "test_warmest_reading"},
}
TASK_CELLS = {"problems": {"task_most_common"}, "data_analysis": set()}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The default example course: one student per variant (made once, ~15 s)."""
    return mc.make_course(tmp_path_factory.mktemp("example") / "course")


def _gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=mc.COURSE_ID)


def test_committed_source_is_what_build_source_generates():
    for path, text in build_source.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python examples/build_source.py"


def test_source_notebooks_use_nbgrader_schema_v3():
    for name in mc.NOTEBOOKS:
        nb = nbformat.read(mc.COURSE_TEMPLATE / "source" / "ps1" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            assert meta["schema_version"] == 3
            assert {"grade", "grade_id", "locked", "solution", "task"} <= set(meta)
            if meta["grade"] or meta["task"]:
                assert 1 <= meta["points"] <= 3
            else:
                assert "points" not in meta
            if meta["solution"] and cell.cell_type == "code":
                assert "### BEGIN SOLUTION" in cell.source
            if meta["grade"] and cell.cell_type == "code":
                assert meta["locked"] and "assert" in cell.source.lower()


def test_gradebook_has_ps1_with_both_notebooks(course):
    with _gradebook(course) as gb:
        a = gb.find_assignment("ps1")
        assert a.duedate == mc.DUE_DATE
        notebooks = {nb.name: nb for nb in a.notebooks}
        assert set(notebooks) == set(mc.NOTEBOOKS)
        for name, nb in notebooks.items():
            assert {c.name for c in nb.grade_cells} == GRADE_CELLS[name]
            assert {c.name for c in nb.task_cells} == TASK_CELLS[name]
            assert nb.max_score == mc.MAX_SCORES[name]
            auto = sum(c.max_score for c in nb.grade_cells if c.cell_type == "code")
            assert auto == mc.MAX_AUTO_SCORES[name]
    release = course / "release" / "ps1"
    assert (release / "data" / "measurements.csv").is_file()
    for name in mc.NOTEBOOKS:
        text = (release / f"{name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text


def test_every_variant_has_a_submission_with_timestamp(course):
    from nbgrader.utils import parse_utc

    roster = json.loads((course / "roster.json").read_text())["students"]
    plan = mc.plan_students(None, 0, None)
    assert [v for _, v in plan] == list(mc.VARIANTS)
    assert sorted(roster) == sorted(sid for sid, _ in plan)
    release = course / "release" / "ps1"
    for sid, variant in plan:
        sub = course / "submitted" / sid / "ps1"
        ts = parse_utc((sub / "timestamp.txt").read_text())
        assert (ts > mc.DUE_DATE) == (variant == "late"), sid
        assert roster[sid]["variant"] == variant
        assert (sub / "data" / "measurements.csv").read_bytes() == (release / "data" / "measurements.csv").read_bytes()
        present = {p.stem for p in sub.glob("*.ipynb")}
        expected = {"problems"} if variant == "missing-notebook" else set(mc.NOTEBOOKS)
        assert present == expected, sid
        for name in present:
            nb = nbformat.read(sub / f"{name}.ipynb", as_version=4)
            rel = nbformat.read(release / f"{name}.ipynb", as_version=4)
            # same cells, same nbgrader metadata as the release: only sources differ
            assert [c.metadata for c in nb.cells] == [c.metadata for c in rel.cells]
            changed = {
                c.metadata.get("nbgrader", {}).get("grade_id", c.id)
                for c, r in zip(nb.cells, rel.cells)
                if c.source != r.source
            }
            if variant == "blank":
                assert not changed
            if variant == "locked-cell-edited" and name == "problems":
                assert "test_squares" in changed
            if variant == "manual-answer" and name == "problems":
                assert {"fibonacci_complexity", "task_work"} <= changed
    loops = [
        sid for sid, _ in plan if "while True" in (course / "submitted" / sid / "ps1" / "problems.ipynb").read_text()
    ]
    assert loops == ["s05-timeout"]


def test_n_students_cycle_cheap_variants_deterministically(course, tmp_path):
    plan = mc.plan_students(25, 7, None)
    assert [sid for sid, _ in plan][:2] == ["s001", "s002"] and plan[-1][0] == "s025"
    assert plan == mc.plan_students(25, 7, None)
    assert {v for _, v in plan} == set(mc.CHEAP_VARIANTS)  # all of them, and no timeout
    assert plan != mc.plan_students(25, 8, None)
    with pytest.raises(ValueError):
        mc.plan_students(None, 0, ["timeout", "timeout"])
    with pytest.raises(ValueError):
        mc.plan_students(None, 0, ["no-such-variant"])
    # the same variant + timestamp gives byte-identical files
    release = course / "release" / "ps1"
    a = mc.write_submission(release, tmp_path / "a", "partial", mc.DUE_DATE)
    b = mc.write_submission(release, tmp_path / "b", "partial", mc.DUE_DATE)
    for f in sorted(p for p in a.rglob("*") if p.is_file()):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()


def test_malformed_corpus(course, tmp_path):
    dirs = mal.build_malformed(course / "release" / "ps1", tmp_path / "submitted")
    assert {d.parent.name for d in dirs} == set(mal.CASES)
    readme = (REPO / "tests" / "corpus" / "malformed" / "README.md").read_text()
    for d in dirs:
        assert (d / "timestamp.txt").read_text().endswith(" UTC")
        assert f"`{d.parent.name}`" in readme, f"{d.parent.name} not described in README.md"

    def case(name):
        return tmp_path / "submitted" / name / "ps1"

    def cell(name, grade_id):
        raw = json.loads((case(name) / "problems.ipynb").read_text())
        return [c for c in raw["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]

    assert cell("deleted-test-cell", "test_word_counts") == []
    assert len(cell("duplicated-grade-id", "test_fibonacci")) == 2
    assert cell("renamed-grade-id", "test_squares") == [] and cell("renamed-grade-id", "test_squares_v2")
    assert cell("edited-points", "test_squares")[0]["metadata"]["nbgrader"]["points"] == 100
    assert cell("edited-nbgrader-metadata", "test_squares")[0]["metadata"]["nbgrader"]["solution"] is True
    assert cell("schema-version-too-new", "test_squares")[0]["metadata"]["nbgrader"]["schema_version"] == 4
    with pytest.raises(ValueError):
        json.loads((case("invalid-json") / "problems.ipynb").read_text())
    assert (case("empty-file") / "problems.ipynb").stat().st_size == 0
    majors = {p.stem: json.loads(p.read_text())["nbformat"] for p in case("wrong-nbformat").glob("*.ipynb")}
    assert majors == {"problems": 5, "data_analysis": 3}
    assert not (case("missing-notebook") / "data_analysis.ipynb").exists()
    assert (case("very-large-notebook") / "problems.ipynb").stat().st_size > 19 * 2**20


def test_real_nbgrader_autograde_scores(course, tmp_path):
    # a 3-student copy of the course: correct, partial, missing-notebook
    keep = {"s01-correct": "correct", "s02-partial": "partial", "s07-missing-notebook": "missing-notebook"}
    three = tmp_path / "course3"
    shutil.copytree(course, three)
    for d in (three / "submitted").iterdir():
        if d.name not in keep:
            shutil.rmtree(d)
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", "ps1", "--force"],
        cwd=three,
        capture_output=True,
        text=True,
        env=mc.nbgrader_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    max_auto = sum(mc.MAX_AUTO_SCORES.values())
    with _gradebook(three) as gb:
        scores = {}
        for sid, variant in keep.items():
            sub = gb.find_submission("ps1", sid)
            per_nb = {nb.notebook.name: nb.score for nb in sub.notebooks}
            assert per_nb == mc.EXPECTED_AUTO_SCORES[variant], sid
            scores[variant] = sub.score
            assert sub.max_score == sum(mc.MAX_SCORES.values())
            assert sub.total_seconds_late == 0
            # only the task cell (never auto-scored) is left for a human: the blank
            # markdown answer is auto-scored 0 ("No response.")
            pending = {g.name for nb in sub.notebooks for g in nb.grades if g.needs_manual_grade}
            assert pending == {"task_most_common"}, (sid, pending)
    assert scores["correct"] == max_auto
    assert scores["partial"] < max_auto
    assert scores["missing-notebook"] == mc.MAX_AUTO_SCORES["problems"]
    for sid in keep:
        assert (three / "autograded" / sid / "ps1" / "problems.ipynb").is_file()
    assert (three / "autograded" / "s01-correct" / "ps1" / "data_analysis.ipynb").is_file()
    assert not (three / "autograded" / "s07-missing-notebook" / "ps1" / "data_analysis.ipynb").exists()
