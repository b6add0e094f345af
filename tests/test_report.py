"""The run report, results/report.html, as a teacher opens it in a browser.

Scenario: a teacher grades ps1 (a correct, a wrong, a malformed and a kernel-killing
submission) with `gradeflow grade`, then opens the report the run wrote. Headless Chromium
shows the counts, the histogram, the pass rate per cell and every skipped or failed
submission with its reason; every link on the page opens a file of the run (the execute log
and the notebooks), also after the run folder is copied elsewhere, as an Argo output artifact
is. The page is self-contained (no script, no external asset) and escapes what students
control. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coursekit as ck  # noqa: E402
from conftest import full_page_screenshot  # noqa: E402
from pipelines.report import _histogram_bins, build_html, render_report  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("report") / "course")
    ck.submit_kinds(course, ["good", "wrong", "crash", "broken"])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "grade",
            str(course),
            "ps1",
            "--json",
            "--jobs",
            "2",
            "--cell-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return course / "gradeflow_runs" / json.loads(run.stdout)["run_id"]


def page_links(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]


def test_grade_writes_a_self_contained_report(run_dir: Path) -> None:
    report = run_dir / "results" / "report.html"
    assert report.is_file(), "gradeflow grade writes results/report.html"
    html = report.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external assets or links"
    assert "<link" not in html.lower()
    assert "<svg" in html and "<style>" in html


def test_the_report_in_chromium_shows_counts_reasons_histogram_and_working_links(run_dir: Path, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = run_dir / "results" / "report.html"
    browser.get(report.as_uri())
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "summary"))
    shot = full_page_screenshot(browser, "report.png")
    assert shot.stat().st_size > 10_000

    cards = {
        c.get_attribute("data-count"): c.find_element(By.CLASS_NAME, "n").text
        for c in browser.find_elements(By.CSS_SELECTOR, "#summary .card")
    }
    assert cards["submissions"] == "4" and cards["graded"] == "2" and cards["skipped"] == "1" and cards["failed"] == "1"

    problems = {
        r.get_attribute("data-student"): r for r in browser.find_elements(By.CSS_SELECTOR, "#problems tr.problem")
    }
    assert sorted(problems) == ["broken", "crash"]
    assert "the kernel died" in problems["crash"].find_element(By.CLASS_NAME, "reason").text
    assert "not valid JSON" in problems["broken"].find_element(By.CLASS_NAME, "reason").text
    crash_links = {a.text: a.get_attribute("href") for a in problems["crash"].find_elements(By.TAG_NAME, "a")}
    assert set(crash_links) >= {"execute log", "executed notebook"}
    assert crash_links["execute log"].endswith("/executed/crash/execute.log")
    assert "submitted notebook" in [a.text for a in problems["broken"].find_elements(By.TAG_NAME, "a")]

    bars = browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram rect.bar")
    assert bars, "the histogram is an inline SVG"
    assert sum(int(b.get_attribute("data-count")) for b in bars) == 2, "graded submissions only"
    assert {b.get_attribute("data-label"): int(b.get_attribute("data-count")) for b in bars} == {
        "0": 1,
        "1": 0,
        "2": 1,
        "3": 0,
    }

    cell = browser.find_element(By.CSS_SELECTOR, "#cells tr[data-cell=test_squares]")
    assert "1/2 (50%)" in cell.text and "autograded test" in cell.text
    assert "crash" in browser.find_element(By.ID, "slowest").text

    links = page_links(browser)
    assert links
    for href in links:
        url = urlparse(href)
        assert url.scheme == "file", f"{href}: only links into the run folder"
        assert Path(unquote(url.path)).is_file(), f"{href} does not resolve to a file of the run"

    browser.get(crash_links["execute log"])
    assert "[execute] squares: failed" in browser.find_element(By.TAG_NAME, "body").text


def test_the_report_works_from_a_copy_of_the_run_folder_like_an_argo_artifact(
    run_dir: Path, tmp_path: Path, browser
) -> None:
    artifact = shutil.copytree(run_dir, tmp_path / "downloaded-artifact" / run_dir.name)
    (artifact / "results" / "report.html").unlink()
    report = render_report(artifact)
    assert report == artifact / "results" / "report.html"
    browser.get(report.as_uri())
    for href in page_links(browser):
        path = Path(unquote(urlparse(href).path))
        assert path.is_file() and artifact in path.parents, href


def test_gradeflow_report_rewrites_it_and_explains_a_folder_that_is_not_a_run(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "results" / "report.html")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a gradeflow run folder" in err and "COURSE_DIR/gradeflow_runs/" in err


def test_a_report_that_cannot_be_written_never_fails_grading(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipelines.local import _write_report

    _write_report(tmp_path)  # not a run folder: logged, not raised
    assert "could not write results/report.html" in caplog.text


def test_student_controlled_text_is_escaped_and_nothing_can_run() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    results = {
        "run_id": "ps1-x",
        "assignment": "ps1",
        "counts": {"submissions": 1, "graded": 0, "ok": 0, "repaired": 0, "skipped": 1, "failed": 0, "missing": 0},
        "problems": [{"student": "s<b>1</b>", "reason": evil}],
        "unchanged": [],
        "students": [
            {
                "student": "s<b>1</b>",
                "status": "skipped",
                "score": 0,
                "max_score": 3,
                "notebooks": [{"notebook": "squares", "status": "skipped", "reason": evil, "changes": []}],
            }
        ],
    }
    html = build_html(results, Path("/nonexistent"))
    assert "<script>" not in html and "<img" not in html and "<b>1</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "default-src 'none'" in html, "a Content-Security-Policy forbids scripts even if escaping failed"


def test_histogram_bins_are_whole_points_up_to_twenty_then_tenths_of_the_maximum() -> None:
    assert _histogram_bins([0, 2.5, 3, 3], 3) == [("0", 1), ("1", 0), ("2", 1), ("3", 2)]
    bins = _histogram_bins([0, 49.9, 50, 100], 100)
    assert (
        len(bins) == 10 and bins[0] == ("0–10", 1) and bins[4][1] == 1 and bins[5][1] == 1 and bins[9] == ("90–100", 1)
    )
