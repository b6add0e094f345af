"""Progress output of `gradeflow grade`: plain lines in a pipe, JSON for programs, a live bar on a terminal.

Scenario: a teacher grades ps1 (one correct, one malformed and one kernel-killing submission)
from a cron job, whose output is a log file, not a terminal: they get one plain line per
step and per submission, with no escape codes, and the summary on stdout. A script asks for
`--json`: stdout is exactly results.json and stderr carries one JSON progress event per line.
`--quiet` prints nothing but the summary. On a terminal the same events drive a rich bar with
done/total, graded/failed/skipped counts and an ETA.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import processes  # noqa: E402

import coursekit as ck  # noqa: E402
from pipelines.local import Event  # noqa: E402
from pipelines.progress import BarPrinter, choose_mode, progress_printer  # noqa: E402
from steps.contract import DAG  # noqa: E402


@pytest.fixture(scope="module")
def course(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = ck.copy_course(squares_built, tmp_path_factory.mktemp("progress") / "course")
    return ck.submit_kinds(course, ["good", "crash", "broken"])


def gradeflow(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a cron job or a script runs it: stdout and stderr are pipes, not a terminal."""
    return processes.gradeflow(*args, drop=("FORCE_COLOR", "TERM"), timeout=300)


def test_not_on_a_terminal_progress_is_plain_lines_and_the_summary_goes_to_stdout(course: Path) -> None:
    run = gradeflow("grade", str(course), "ps1", "--jobs", "2", "--cell-timeout", "10")
    assert run.returncode == 0, run.stderr
    assert "\x1b[" not in run.stderr and "━" not in run.stderr, "no escape codes or bar glyphs in a log file"
    lines = run.stderr.splitlines()
    assert lines[0] == "[collect] done: 3 submission(s) to grade", run.stderr
    assert lines[-1] == "[merge] done", run.stderr
    assert "[execute] done" in lines, run.stderr
    per_submission = [line for line in lines if line.startswith("[execute] ") and "/3 " in line]
    assert len(per_submission) == 3, run.stderr
    assert any("crash: failed" in line for line in per_submission)
    assert any("broken: skipped" in line for line in per_submission)
    assert per_submission[-1].startswith("[execute] 3/3 ") and "graded 1 · failed 1 · skipped 1" in per_submission[-1]
    # the summary is on stdout, where a cron mail or a pipe picks it up
    assert "3 submission(s), 1 graded" in run.stdout
    assert "FAILED   crash / squares.ipynb: the kernel died" in run.stdout
    assert "report.html" in run.stdout


def test_json_prints_results_on_stdout_and_progress_events_as_json_lines_on_stderr(course: Path) -> None:
    run = gradeflow("grade", str(course), "ps1", "--json", "--force", "--jobs", "2", "--cell-timeout", "10")
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)  # nothing but results.json on stdout
    assert results["format"] == "gradeflow.results/1"
    assert {s["student"]: s["status"] for s in results["students"]} == {
        "good": "ok",
        "crash": "failed",
        "broken": "skipped",
    }

    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith('{"event"')]
    steps = [(e["step"], e["kind"]) for e in events]
    assert steps[0] == ("collect", "start") and steps[-1] == ("merge", "done")
    assert {step for step, _ in steps} <= set(DAG), "events name the DAG's steps"
    first, last = steps.index(("execute", "start")), steps.index(("execute", "done"))
    assert [i for i, (_, kind) in enumerate(steps) if kind == "submission"] == list(range(first + 1, last)), (
        "submissions finish while execute runs"
    )
    finished = [e for e in events if e["kind"] == "submission"]
    assert sorted(e["student"] for e in finished) == ["broken", "crash", "good"]
    assert [e["done"] for e in finished] == [1, 2, 3]
    assert all(e["total"] == 3 and isinstance(e["seconds"], float) for e in finished)
    assert finished[-1]["counts"] == {"ok": 1, "repaired": 0, "missing": 0, "skipped": 1, "failed": 1, "ungraded": 0}
    assert finished[0]["eta_seconds"] is not None and finished[-1]["eta_seconds"] == 0
    assert not [line for line in run.stderr.splitlines() if line.startswith("[")], "no plain progress lines with --json"


def test_quiet_prints_only_the_summary(course: Path) -> None:
    run = gradeflow("grade", str(course), "ps1", "--quiet", "--student", "good")  # unchanged since it was graded
    assert run.returncode == 0, run.stderr
    assert "[collect]" not in run.stderr and "[execute]" not in run.stderr and '{"event"' not in run.stderr
    assert "0 submission(s), 0 graded" in run.stdout
    assert "1 submission(s) unchanged since they were last graded" in run.stdout


def test_on_a_terminal_a_bar_shows_done_failed_skipped_and_an_eta() -> None:
    from rich.console import Console

    out = io.StringIO()
    bar = BarPrinter(console=Console(file=out, force_terminal=True, width=120, color_system=None))
    bar(Event("collect", "done", total=3))
    bar(Event("execute", "start", total=3))
    bar(Event("execute", "submission", total=3, student="good", status="ok", seconds=1.5))
    bar(Event("execute", "submission", total=3, student="crash", status="failed", seconds=2.0))
    bar.bar.refresh()
    live = out.getvalue()
    bar(Event("execute", "submission", total=3, student="broken", status="skipped", seconds=0.1))
    bar(Event("execute", "done", total=3))
    text = out.getvalue()
    assert "2/3" in live and "graded 1 · failed 1 · skipped 0" in live and "ETA" in live
    assert "crash: failed (2.0 s)" in text, "failed and skipped submissions are named above the bar"
    assert "good: ok" not in text, "ok ones are only counted"
    assert "3/3" in text and "graded 1 · failed 1 · skipped 1" in text
    assert bar.bar is None, "the bar stops when execute is done"


def test_the_printer_is_chosen_by_where_output_goes() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert choose_mode(stream=Tty()) == "bar"
    assert choose_mode(stream=io.StringIO()) == "lines"
    assert choose_mode(json_output=True, stream=Tty()) == "json"
    assert choose_mode(quiet=True, json_output=True) == "quiet"
    with pytest.raises(ValueError, match="choose one of: bar, lines, json, quiet"):
        progress_printer("fancy")
