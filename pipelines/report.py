"""The run report: one self-contained HTML page a teacher opens after grading.

`render_report(run_dir)` reads only the run's workspace layout (results/results.json, with
snapshot.json and the executed/, submissions/ folders for links), so it works on a local run
folder, on a copy of an S3 run prefix and on an Argo output artifact alike. It writes
`results/report.html`: summary counts, a histogram of total scores (inline SVG), the pass
rate of every graded cell, the slowest notebooks, and every skipped or failed submission with
its reason and relative links to its execute log and notebooks, and, for a run with
`--feedback`, to each student's feedback pages. No scripts, no external assets, and a
Content-Security-Policy that forbids both: the page shows student-controlled text (reasons,
ids), which is escaped, and nothing on it can run. The sections are in `report_sections.py`,
the style sheet in `report.css`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from steps.errors import TeacherError
from steps.records import read_json
from steps.workspace import REPORT_HTML, RESULTS_FILES, RESULTS_JSON, Workspace

from . import report_sections as sections

__all__ = ["render_report", "build_html", "REPORT_NAME"]

REPORT_NAME = REPORT_HTML  # kept for importers: steps.workspace names it
_histogram_bins = sections.histogram_bins  # the name tests/test_report.py imports


def render_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/results/report.html from the run's results and return its path."""
    run_dir = Path(run_dir)
    ws = Workspace(run_dir)
    results_json = ws.result(RESULTS_JSON)
    if not results_json.is_file():
        if ws.manifest.is_file():
            what = f"{run_dir} has no results/results.json: the run stopped before merge"
            todo = "re-run `gradeflow grade COURSE_DIR ASSIGNMENT` (finished submissions are not regraded)"
        else:
            what = f"{run_dir} is not a gradeflow run folder (no results/results.json)"
            todo = "give a folder such as COURSE_DIR/gradeflow_runs/ps1-20261122T101500Z"
        raise TeacherError(what, todo)
    results = read_json(results_json)
    snapshot = read_json(ws.snapshot) if ws.snapshot.is_file() else None
    out = ws.result(REPORT_HTML)
    out.write_text(build_html(results, run_dir, snapshot), encoding="utf-8")
    return out


def _files(run_dir: Path) -> Iterable[str]:
    for name in RESULTS_FILES:
        if Workspace(run_dir).result(name).is_file():
            yield f'<a href="{name}">{name}</a>'


# The page's style sheet, a package data file; the page inlines it (its CSP allows no other).
CSS = "\n" + resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")


def build_html(results: dict[str, Any], run_dir: Path, snapshot: dict[str, Any] | None = None) -> str:
    """The report's HTML for `results` (results.json's content); links point into run_dir."""
    run_dir = Path(run_dir)
    esc = sections.esc
    created = str(results.get("created") or "")[:19].replace("T", " ")
    meta = " · ".join(
        esc(x)
        for x in (
            f"course {results.get('course_id')}" if results.get("course_id") else "",
            f"run {results.get('run_id')}",
            f"sandbox {results['sandbox']}" if results.get("sandbox") else "",
            f"written {created} UTC" if created else "",
        )
        if x
    )
    body = "".join(
        (
            sections.summary(results),
            sections.problems(results, run_dir),
            sections.histogram(results),
            sections.cells(results, snapshot),
            sections.slowest(results, run_dir),
            sections.notes(results),
            sections.students(results, run_dir),
        )
    )
    files = " · ".join(_files(run_dir))
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gradeflow report: {esc(results['assignment'])}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(results["assignment"])}: grading report</h1><p class="muted">{meta}</p>'
        f"{body}"
        f'<p class="muted" id="files">Files of this run: {files}</p>'
        "</main></body></html>\n"
    )
