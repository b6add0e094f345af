"""Feedback for students in the same run, and no hidden test in it.

Scenario: a course whose test cell has hidden tests (one with an assertion message, one with
a comment). `pass` passes everything, `hidden` passes the visible test and fails a hidden
one (so the traceback quotes the hidden line and its message), `wrong` fails the visible
test, `raises` raises. The teacher runs `gradeflow grade --feedback` and then nbgrader's own
`release_feedback`; the student runs nbgrader's own `fetch_feedback` and gets the page. No
hidden line's text is anywhere in any page, outputs included, unless the teacher asks for
nbgrader's behaviour (`--feedback-hidden-tests show`): then the page equals what
`nbgrader generate_feedback` writes for the same autograded course. A manual comment and score
entered in the gradebook appear in the next run's page. A screenshot goes to tests/artifacts/.
"""

from __future__ import annotations

import html as htmllib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).parent))
from processes import grade_json, gradeflow  # noqa: E402

import coursekit as ck  # noqa: E402
from conftest import ARTIFACTS, require_sandbox  # noqa: E402
from steps.redact import NOTICE, REDACTED, RedactHiddenTests  # noqa: E402

HIDDEN = [
    'assert squares(1) == [1], "squares must start at one, hidden-marker-4711"',
    "assert len(squares(7)) == 7  # hidden-marker-seven",
    "assert squares(5)[-1] == 25",
]
TESTS = "assert squares(3) == [1, 4, 9]\n### BEGIN HIDDEN TESTS\n" + "\n".join(HIDDEN) + "\n### END HIDDEN TESTS"
KINDS = {
    "pass": ck.CORRECT,
    "hidden": "def squares(n):\n    return [1, 4, 9]",  # right for the visible test only
    "wrong": ck.WRONG,
    "raises": ck.RAISES,
}


def feedback_notebook() -> nbformat.NotebookNode:
    nb = ck.squares_notebook()
    nb.cells[2].source = TESTS
    return nb


def page_text(page: str) -> str:
    """What a reader of the page can see or copy: tags removed, entities decoded, spaces folded."""
    body = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def squeeze(text: str) -> str:
    """Without any whitespace: highlighted code is split into one element per token."""
    return "".join(text.split())


def assert_no_hidden_text(page: str, who: str) -> None:
    text, raw = page_text(page), " ".join(page.split())
    squeezed = squeeze(text)
    for line in HIDDEN:
        flat = " ".join(line.split())
        assert flat not in text and flat not in raw, f"{who}: hidden line {line!r} is in the page"
        assert squeeze(flat) not in squeezed, f"{who}: hidden line {line!r} is in the page (tokens split by markup)"
    for marker in (
        "hidden-marker-4711",
        "hidden-marker-seven",
        "squares must start at one",
        "squares(7)",
        "squares(5)",
    ):
        assert marker not in text and marker not in page, f"{who}: {marker!r} from a hidden test is in the page"


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_sandbox("bubblewrap")
    root = tmp_path_factory.mktemp("feedback") / "course"
    ck.build_course(root, {"squares": feedback_notebook()})
    for student, source in KINDS.items():
        ck.submit(root, student, {"squares": source})
    return root


def grade(course: Path, *extra: str) -> dict:
    return grade_json(course, "--jobs", "2", "--feedback", *extra)


@pytest.fixture(scope="module")
def graded(course: Path) -> dict:
    return grade(course)


def page(course: Path, student: str) -> str:
    return (course / "feedback" / student / "ps1" / "squares.html").read_text()


# --- the preprocessor alone ----------------------------------------------------------------------


def test_redact_replaces_the_region_and_every_output_line_that_quotes_it() -> None:
    ansi_line = (
        "\x1b[0;32m----> 3\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m squares(\x1b[38;5;241m1\x1b[39m)"
        " \x1b[38;5;241m==\x1b[39m [\x1b[38;5;241m1\x1b[39m],"
        ' \x1b[38;5;124m"squares must start at one, hidden-marker-4711"\x1b[39m'
    )
    cell = new_code_cell(
        "    " + TESTS.replace("\n", "\n    "),
        metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1, "solution": False, "locked": True}},
        outputs=[
            nbformat.v4.new_output(
                "stream", name="stdout", text="checking\nsquares must start at one, hidden-marker-4711\n"
            ),
            nbformat.v4.new_output(
                "error",
                ename="AssertionError",
                evalue="squares must start at one, hidden-marker-4711",
                traceback=[
                    "Traceback",
                    "Cell In[2], line 3\n      1 assert squares(3) == [1, 4, 9]\n"
                    + ansi_line
                    + "\n      4 "
                    + HIDDEN[1],
                ],
            ),
            nbformat.v4.new_output(
                "display_data",
                data={"text/html": "<pre>assert len(squares(7)) == 7  # hidden-marker-seven</pre>", "text/plain": "ok"},
            ),
        ],
    )
    visible = new_code_cell(
        HIDDEN[2] + "  # the student's own check", metadata={}
    )  # students may write a hidden line too
    same = new_code_cell(
        "assert squares(5)[-1] == 25",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text="assert squares(5)[-1] == 25\n")],
    )
    nb = new_notebook(cells=[cell, visible, same])
    nb, resources = RedactHiddenTests().preprocess(nb, {})
    src = nb.cells[0].source
    assert NOTICE in src and "    " + NOTICE in src.split("\n"), "one notice, at the region's indent"
    assert "assert squares(3) == [1, 4, 9]" in src, "the visible test stays"
    assert resources["nbgrader"]["hidden_lines_redacted"] == 3
    stream, error, display = nb.cells[0].outputs
    assert stream.text == f"checking\n{REDACTED}\n"
    assert error.evalue == REDACTED
    tb = "\n".join(error.traceback)
    assert "squares(3)" in tb and "hidden-marker" not in tb and "squares(7)" not in tb and tb.count(REDACTED) == 2
    assert display.data == {"text/plain": "ok"}, "an HTML output quoting a hidden line is dropped"
    # a line the student can see anyway is no secret: the identical visible line's output stays
    assert nb.cells[2].outputs[0].text == "assert squares(5)[-1] == 25\n"


def test_redact_honours_the_courses_clearhiddentests_delimiters() -> None:
    """The snapshot carries the ClearHiddenTests section, so a course's own markers work."""
    from traitlets.config import Config

    nb = new_notebook(
        cells=[new_code_cell("assert f(1) == 1\n# BEGIN SECRET\nassert f(2) == 4  # secret-case\n# END SECRET")]
    )
    cfg = Config({"ClearHiddenTests": {"begin_test_delimeter": "BEGIN SECRET", "end_test_delimeter": "END SECRET"}})
    nb, _ = RedactHiddenTests(config=cfg).preprocess(nb, {})
    assert nb.cells[0].source == f"assert f(1) == 1\n{NOTICE}"


def test_redact_refuses_broken_markers_like_nbgrader() -> None:
    nb = new_notebook(cells=[new_code_cell("### BEGIN HIDDEN TESTS\nassert 1\n")])
    with pytest.raises(RuntimeError, match="No end hidden tests"):
        RedactHiddenTests().preprocess(nb, {})


@pytest.mark.parametrize(
    "html_output",
    [
        "<b>fine</b>",
        "<div>unclosed",
        "</div></div>stray closing tags",
        "<script>var x = 1;",
        "<style>p {}",
        "<pre>  spaced",
        "<textarea>open",
    ],
)
def test_the_feedback_exporter_writes_byte_for_byte_what_nbconverts_writes(html_output: str) -> None:
    """steps.feedback_html leaves code blocks out of BeautifulSoup's pass and remembers filters;
    the page must still be nbconvert's, whatever a student's HTML output does to the parse."""
    from nbconvert.exporters import HTMLExporter
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

    from steps.feedback_html import feedback_exporter

    ours = feedback_exporter()
    theirs = HTMLExporter(config=ours.config)
    theirs.register_preprocessor(CSSHTMLHeaderPreprocessor)
    code = "x = \"a\" & 'b' < 3  # <tag> &amp;\nif x:\n\n    pass"
    out = nbformat.v4.new_output("display_data", data={"text/html": html_output, "text/plain": "-"})
    err = nbformat.v4.new_output("error", ename="E", evalue="<e>", traceback=["\x1b[0;31mE\x1b[0m: <e> & more"])
    meta = {
        "nbgrader": {"grade": True, "solution": True, "grade_id": "a", "points": 1, "score": 0.5, "comment": "*ok*"}
    }
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Title\n\n`code` & <b>bold</b>"),
            new_code_cell(code, outputs=[err]),
            new_code_cell("print(1)", outputs=[out], metadata=meta),
            new_code_cell(code),
            new_code_cell(""),
        ],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )
    for _ in range(2):  # then again from what the exporter remembers
        resources = {"nbgrader": {"notebook": "n", "score": 0.5, "max_score": 1, "late_penalty": 0}}
        assert (
            ours.from_notebook_node(nb, resources=dict(resources))[0]
            == theirs.from_notebook_node(nb, resources=dict(resources))[0]
        )


# --- a whole run ---------------------------------------------------------------------------------


def test_grade_feedback_writes_one_page_per_graded_submission_where_nbgrader_does(course: Path, graded: dict) -> None:
    for student in KINDS:
        folder = course / "feedback" / student / "ps1"
        assert sorted(p.name for p in folder.iterdir()) == ["squares.html", "timestamp.txt"]
        assert (folder / "timestamp.txt").read_text() == (
            course / "submitted" / student / "ps1" / "timestamp.txt"
        ).read_text()
        assert oct((folder / "squares.html").stat().st_mode & 0o777) == oct(0o644), "GenerateFeedback's permissions"
    assert {s["student"]: s["feedback"] for s in graded["students"]} == {s: {"squares": "ok"} for s in KINDS}


@pytest.mark.parametrize("student", list(KINDS))
def test_no_hidden_test_text_anywhere_in_a_page(course: Path, graded: dict, student: str) -> None:
    assert_no_hidden_text(page(course, student), student)


def test_a_page_shows_scores_per_cell_and_in_total_and_the_test_outputs(course: Path, graded: dict) -> None:
    scores = {s["student"]: s for s in graded["students"]}
    expected_test = {"pass": 2.0, "hidden": 0.0, "wrong": 0.0, "raises": 0.0}
    for student, points in expected_test.items():
        text = page_text(page(course, student))
        total = scores[student]["score"]
        assert f"squares (Score: {total:.1f} / 3.0)" in text, f"{student}: total score in the heading"
        assert f"Grade cell: test_squares Score: {points:.1f} / 2.0" in text, f"{student}: the test cell's score"
        assert "Written response (Score: 0.0 / 1.0)" in text
        assert squeeze("assert squares(3) == [1, 4, 9]") in squeeze(text) and NOTICE in text, (
            "the visible test and the notice"
        )
    assert "AssertionError" in page_text(page(course, "hidden")) and REDACTED in page_text(page(course, "hidden")), (
        "the failing hidden test's traceback is shown, its lines redacted"
    )
    assert squeeze("RuntimeError: not done yet") in squeeze(page_text(page(course, "raises"))), (
        "the student's own error is shown"
    )
    wrong = page_text(page(course, "wrong"))
    assert squeeze("----> 1 assert squares(3) == [1, 4, 9]") in squeeze(wrong), (
        "a failing visible test is quoted as usual"
    )


def test_release_feedback_and_fetch_feedback_work_unchanged(squares_built: Path, tmp_path: Path) -> None:
    """The whole exchange with nbgrader's own commands: release, fetch, submit, collect, then
    gradeflow grade --feedback, release_feedback, and the student's fetch_feedback."""
    require_sandbox("bubblewrap")
    course = ck.copy_course(squares_built, tmp_path / "course")
    exchange, cache, home = tmp_path / "exchange", tmp_path / "cache", tmp_path / "student"
    for d in (exchange, cache, home):
        d.mkdir()
    os.chmod(exchange, 0o777)
    ex = [f"--Exchange.root={exchange}", f"--Exchange.cache={cache}"]

    def nbgrader(cwd: Path, *args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args, *ex], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"nbgrader {args[0]}:\n{run.stdout}\n{run.stderr}"
        return run.stdout + run.stderr

    nbgrader(course, "release_assignment", "ps1", "--course", "test-course")
    nbgrader(home, "fetch_assignment", "ps1", "--course", "test-course")
    nb_path = home / "ps1" / "squares.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "squares":
            cell.source = ck.CORRECT
    nbformat.write(nb, str(nb_path))
    nbgrader(home, "submit", "ps1", "--course", "test-course")
    nbgrader(course, "collect", "ps1", "--course", "test-course")
    (student,) = [p.name for p in (course / "submitted").iterdir()]
    assert (course / "submitted" / student / "ps1" / "submission_secret.txt").is_file()

    run = gradeflow("grade", str(course), "ps1", "--jobs", "1", "--feedback", timeout=300)
    assert run.returncode == 0, run.stderr
    ours = course / "feedback" / student / "ps1"
    assert (ours / "submission_secret.txt").read_text() == (
        course / "submitted" / student / "ps1" / "submission_secret.txt"
    ).read_text()

    log = nbgrader(course, "release_feedback", "ps1", "--course", "test-course")
    assert "Releasing feedback for student" in log
    log = nbgrader(home, "fetch_feedback", "ps1", "--course", "test-course")
    fetched = list((home / "ps1" / "feedback").glob("*/squares.html"))
    assert len(fetched) == 1, log
    assert fetched[0].read_bytes() == (ours / "squares.html").read_bytes()
    assert fetched[0].parent.name == (course / "submitted" / student / "ps1" / "timestamp.txt").read_text().strip()
    assert squeeze("squares(1) == [1]") not in squeeze(page_text(fetched[0].read_text())), (
        "what the student fetched has no hidden test"
    )


def test_show_hidden_tests_gives_nbgraders_own_feedback(course: Path, graded: dict, tmp_path: Path) -> None:
    """--feedback-hidden-tests show: the same bytes `nbgrader generate_feedback` writes for the
    course gradeflow autograded (so the conversion is nbgrader's, not a copy of it)."""
    shown = ck.copy_course(course, tmp_path / "shown")
    shutil.rmtree(shown / "feedback")
    grade(shown, "--force", "--feedback-hidden-tests", "show")
    ours = {s: page(shown, s) for s in KINDS}
    assert "hidden-marker-4711" in page_text(ours["hidden"]) and squeeze(HIDDEN[1]) in squeeze(
        page_text(ours["pass"])
    ), "show means shown"
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_feedback", "ps1", "--force"],
        cwd=shown,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for student in KINDS:
        assert page(shown, student) == ours[student], (
            f"{student}: gradeflow's page differs from nbgrader generate_feedback's"
        )


def test_manual_comments_and_scores_appear_in_the_next_runs_page(course: Path, graded: dict, tmp_path: Path) -> None:
    from nbgrader.api import Gradebook

    marked = ck.copy_course(course, tmp_path / "marked")
    with Gradebook(f"sqlite:///{marked / 'gradebook.db'}") as gb:
        gb.find_comment(
            "explain", "squares", "ps1", "pass"
        ).manual_comment = "Nice *explanation*, see me about edge cases."
        gb.find_grade("explain", "squares", "ps1", "pass").manual_score = 0.5
        gb.db.commit()
    results = grade(marked, "--force")
    text = page_text(page(marked, "pass"))
    assert "Nice explanation , see me about edge cases." in text or "Nice explanation, see me about edge cases." in text
    assert "Written response (Score: 0.5 / 1.0)" in text
    total = next(s for s in results["students"] if s["student"] == "pass")
    assert "squares (Score: 2.5 / 3.0)" in text and total["score"] == 2.0, (
        "the page adds the manual score as nbgrader does; results.json stays autograde's"
    )


def test_regrading_only_changed_submissions_rewrites_only_their_feedback(
    course: Path, graded: dict, tmp_path: Path
) -> None:
    again = ck.copy_course(course, tmp_path / "again")
    before = {s: (again / "feedback" / s / "ps1" / "squares.html").stat().st_mtime_ns for s in KINDS}
    ck.submit(again, "wrong", {"squares": ck.CORRECT}, timestamp="2026-11-21 09:00:00.000000 UTC")
    results = grade(again)
    assert [s["student"] for s in results["students"]] == ["wrong"] and sorted(results["unchanged"]) == sorted(
        set(KINDS) - {"wrong"}
    )
    after = {s: (again / "feedback" / s / "ps1" / "squares.html").stat().st_mtime_ns for s in KINDS}
    assert [s for s in KINDS if after[s] != before[s]] == ["wrong"]
    assert "Grade cell: test_squares Score: 2.0 / 2.0" in page_text(page(again, "wrong"))
    assert (again / "feedback" / "wrong" / "ps1" / "timestamp.txt").read_text().startswith("2026-11-21")


def test_screenshot_of_a_feedback_page(course: Path, graded: dict) -> None:
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("SCREENSHOT NEEDS CHROMIUM: apt-get install chromium (.ci/setup does)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "feedback-hidden.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1500",
            f"--screenshot={shot}",
            (course / "feedback" / "hidden" / "ps1" / "squares.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


def feedback_hrefs(report: Path) -> dict[str, list[str]]:
    """student -> the hrefs of the feedback links in the report's "Every submission" table."""
    rows = re.findall(r'<tr data-student="([^"]+)">(.*?)</tr>', report.read_text(), flags=re.S)
    return {
        student: re.findall(r'href="([^"]+)"', re.search(r'<td class="feedback">(.*?)</td>', row, flags=re.S).group(1))
        for student, row in rows
    }


def test_the_run_report_links_each_students_feedback_page(course: Path, graded: dict, tmp_path: Path) -> None:
    """From the run folder in the course the links open the run's own pages (the bytes merge put
    where release_feedback looks); from a run folder that keeps only results/ (synced from Argo)
    they open the course's pages; from a copy of the whole run folder, the copy's."""
    from urllib.parse import unquote

    from pipelines.report import render_report

    run_dir = course / "gradeflow_runs" / graded["run_id"]
    links = feedback_hrefs(run_dir / "results" / "report.html")
    assert sorted(links) == sorted(KINDS)
    for student, hrefs in links.items():
        assert hrefs == [f"../feedback/{student}/squares.html"], student
        target = (run_dir / "results" / unquote(hrefs[0])).resolve()
        assert target.read_bytes() == (course / "feedback" / student / "ps1" / "squares.html").read_bytes()

    synced = ck.copy_course(course, tmp_path / "synced")
    synced_run = synced / "gradeflow_runs" / graded["run_id"]
    for d in synced_run.iterdir():
        if d.name != "results":
            shutil.rmtree(d) if d.is_dir() else d.unlink()
    for student, hrefs in feedback_hrefs(render_report(synced_run)).items():
        assert hrefs == [f"../../../feedback/{student}/ps1/squares.html"], student
        assert (synced_run / "results" / unquote(hrefs[0])).resolve() == (
            synced / "feedback" / student / "ps1" / "squares.html"
        ).resolve()

    artifact = shutil.copytree(run_dir, tmp_path / "artifact" / run_dir.name)
    for student, hrefs in feedback_hrefs(render_report(artifact)).items():
        assert (
            artifact in (artifact / "results" / unquote(hrefs[0])).resolve().parents
            and (artifact / "results" / unquote(hrefs[0])).is_file()
        ), student
