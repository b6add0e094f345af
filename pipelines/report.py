"""The run report: one self-contained HTML page a teacher opens after grading.

`render_report(run_dir)` reads only the run's workspace layout (results/results.json, with
snapshot.json and the executed/, submissions/ folders for links), so it works on a local run
folder, on a copy of an S3 run prefix and on an Argo output artifact alike. It writes
`results/report.html`: summary counts, a histogram of total scores (inline SVG), the pass
rate of every graded cell, the slowest notebooks, and every skipped or failed submission with
its reason and relative links to its execute log and notebooks, and, for a run with
`--feedback`, to each student's feedback pages. No scripts, no external assets, and a
Content-Security-Policy that forbids both: the page shows student-controlled
text (reasons, ids), which is escaped, and nothing on it can run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from steps.contract import EXECUTED_ONE, FEEDBACK, SUBMISSIONS
from steps.errors import TeacherError
from steps.records import FAILED, MISSING, OK, REPAIRED, SKIPPED, TAMPERED, UNGRADED, read_json
from steps.workspace import EXECUTE_LOG, REPORT_HTML, RESULTS_FILES, RESULTS_JSON, Workspace

from .report_histogram import escape as _e
from .report_histogram import histogram_bins as _histogram_bins
from .report_histogram import histogram_svg
from .report_histogram import number as _num

__all__ = ["render_report", "build_html", "REPORT_NAME"]

REPORT_NAME = REPORT_HTML  # kept for importers: steps.workspace names it
SLOWEST = 10  # rows in "slowest notebooks"
RUNS_DIR = "gradeflow_runs"  # pipelines.local.RUNS_DIR: a run folder there sits in its course
NEEDS_A_LOOK = (UNGRADED, FAILED, SKIPPED, TAMPERED)


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


# --- small helpers -------------------------------------------------------------------------------


def _link(run_dir: Path, rel: str, label: str) -> str:
    """A link from results/report.html to run_dir/rel, only when that file exists (`rel` may
    climb out of the run folder with `../`)."""
    if not (run_dir / rel).is_file():
        return ""
    href = "../" + "/".join(quote(part) for part in rel.split("/"))
    return f'<a href="{_e(href)}">{_e(label)}</a>'


def _links(run_dir: Path, student: str, notebook: str | None = None) -> str:
    ws = Workspace(run_dir)
    executed, submitted = ws.rel(EXECUTED_ONE, student), ws.rel(SUBMISSIONS, student)
    found = [
        _link(run_dir, f"{executed}/{EXECUTE_LOG}", "execute log"),
        _link(run_dir, f"{executed}/{notebook}.ipynb", "executed notebook") if notebook else "",
        _link(run_dir, f"{submitted}/{notebook}.ipynb", "submitted notebook") if notebook else "",
    ]
    found = [f for f in found if f]
    return " · ".join(found) if found else '<span class="muted">no files</span>'


def _feedback_links(run_dir: Path, student: dict[str, Any], assignment: str) -> str:
    """Links to a student's feedback pages: the run's own copy (feedback/STUDENT/NOTEBOOK.html, so
    the links survive copying the run folder, as every other link does), else the course's
    (COURSE/feedback/STUDENT/ASSIGNMENT/, when the run folder is COURSE/gradeflow_runs/RUN: a
    run synced from Argo keeps only results/ there)."""
    pages = [nb for nb, status in (student.get("feedback") or {}).items() if status == OK]
    in_course = run_dir.parent.name == RUNS_DIR
    found = []
    for nb in pages:
        label = nb if len(pages) > 1 else "feedback"
        found.append(
            _link(run_dir, f"{Workspace(run_dir).rel(FEEDBACK, student['student'])}/{nb}.html", label)
            or (
                _link(run_dir, f"../../feedback/{student['student']}/{assignment}/{nb}.html", label)
                if in_course
                else ""
            )
        )
    found = [f for f in found if f]
    return " · ".join(found) if found else '<span class="muted">none</span>'


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


# --- sections ------------------------------------------------------------------------------------


def _summary(results: dict[str, Any]) -> str:
    c = results["counts"]
    cards = [
        ("submissions", c.get("submissions", 0), ""),
        ("graded", c.get("graded", 0), "ok"),
        ("notebooks ok", c.get(OK, 0), "ok"),
        ("repaired", c.get(REPAIRED, 0), "repaired"),
        ("missing", c.get(MISSING, 0), "missing"),
        ("skipped", c.get(SKIPPED, 0), "skipped"),
        ("failed", c.get(FAILED, 0), "failed"),
        ("not graded (gradeflow failed)", c.get(UNGRADED, 0), "failed"),
        ("tampered", c.get(TAMPERED, 0), "failed"),
        ("unchanged, not regraded", len(results.get("unchanged") or []), ""),
    ]
    items = "".join(
        f'<div class="card {cls}" data-count="{_e(label)}"><div class="n">{_e(n)}</div><div '
        f'class="l">{_e(label)}</div></div>'
        for label, n, cls in cards
    )
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{items}</div></section>'


def _histogram(results: dict[str, Any]) -> str:
    graded = [s for s in results["students"] if s["status"] not in NEEDS_A_LOOK]
    left_out = len(results["students"]) - len(graded)
    max_score = max((float(s.get("max_score") or 0) for s in results["students"]), default=0.0)
    note = f"{len(graded)} graded submission(s), out of {_num(max_score)} points."
    if left_out:
        note += f" {left_out} skipped or failed submission(s) are left out (listed above)."
    if not graded:
        return (
            '<section id="histogram"><h2>Total scores</h2><p class="muted">No graded submissions in this run. '
            f"{_e(note)}</p></section>"
        )
    svg = histogram_svg(_histogram_bins([float(s["score"]) for s in graded], max_score))
    return f'<section id="histogram"><h2>Total scores</h2><p class="muted">{_e(note)}</p>{svg}</section>'


def _cell_kinds(snapshot: dict[str, Any] | None) -> dict[tuple[str, str], str]:
    """(notebook, cell) -> "autograded test" or "manually graded", in the assignment's order."""
    kinds: dict[tuple[str, str], str] = {}
    for nb in (snapshot or {}).get("notebooks", []):
        solutions = {c["name"] for c in nb.get("solution_cells", [])}
        for c in nb.get("grade_cells", []):
            manual = c["name"] in solutions or c.get("cell_type") == "markdown"
            kinds[(nb["name"], c["name"])] = "manually graded" if manual else "autograded test"
        for c in nb.get("task_cells", []):
            kinds[(nb["name"], c["name"])] = "manually graded task"
    return kinds


def _cells(results: dict[str, Any], snapshot: dict[str, Any] | None) -> str:
    kinds = _cell_kinds(snapshot)
    stats: dict[tuple[str, str], dict[str, Any]] = {
        key: {"n": 0, "full": 0, "sum": 0.0, "manual": 0, "max": 0.0} for key in kinds
    }
    for s in results["students"]:
        for nb in s["notebooks"]:
            if nb["status"] not in (OK, REPAIRED):
                continue
            for cell in nb.get("cells", []):
                st = stats.setdefault(
                    (nb["notebook"], cell["cell"]), {"n": 0, "full": 0, "sum": 0.0, "manual": 0, "max": 0.0}
                )
                score, top = float(cell.get("score") or 0), float(cell.get("max_score") or 0)
                st["n"] += 1
                st["sum"] += score
                st["max"] = top
                st["full"] += top > 0 and score >= top - 1e-9
                st["manual"] += bool(cell.get("needs_manual_grade"))
    rows = []
    for (notebook, cell), st in stats.items():
        kind = kinds.get((notebook, cell), "")
        if not st["n"]:
            rows.append(
                f'<tr><td>{_e(notebook)}</td><td><code>{_e(cell)}</code></td><td>{_e(kind)}</td><td colspan="4" '
                'class="muted">no graded submission</td></tr>'
            )
            continue
        rate = st["full"] / st["n"]
        bar = f'<div class="rate"><div style="width:{rate * 100:.0f}%"></div></div>'
        rows.append(
            f'<tr data-cell="{_e(cell)}"><td>{_e(notebook)}</td><td><code>{_e(cell)}</code></td><td>{_e(kind)}</td>'
            f'<td class="num">{st["full"]}/{st["n"]} ({rate:.0%}){bar}</td><td class="num">{_num(st["sum"] / st["n"])} '
            f"/ {_num(st['max'])}</td>"
            f'<td class="num">{st["manual"] or ""}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="6" class="muted">no graded cells</td></tr>'
    return (
        '<section id="cells"><h2>Pass rate per graded cell</h2>'
        '<p class="muted">Full marks out of the submissions whose notebook was graded. Manually graded cells score 0 '
        "until a grader scores them in Formgrader.</p>"
        "<table><thead><tr><th>notebook</th><th>cell</th><th>kind</th><th>full marks</th><th>mean / max</th><th>needs "
        "manual grade</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _slowest(results: dict[str, Any], run_dir: Path) -> str:
    timed = [
        (nb["execute_seconds"], s["student"], nb["notebook"])
        for s in results["students"]
        for nb in s["notebooks"]
        if nb.get("execute_seconds") is not None
    ]
    timed.sort(reverse=True)
    rows = "".join(
        f'<tr><td>{_e(student)}</td><td>{_e(notebook)}.ipynb</td><td class="num">{secs:.1f} '
        f"s</td><td>{_links(run_dir, student, notebook)}</td></tr>"
        for secs, student, notebook in timed[:SLOWEST]
    )
    if not rows:
        rows = '<tr><td colspan="4" class="muted">no notebook was executed in this run</td></tr>'
    return (
        f'<section id="slowest"><h2>Slowest notebooks</h2><p class="muted">The {min(SLOWEST, len(timed)) or ""} '
        "longest executions (seconds in the sandbox, kernel start included).</p>"
        "<table><thead><tr><th>student</th><th>notebook</th><th>execute</th><th>evidence</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _problems(results: dict[str, Any], run_dir: Path) -> str:
    rows = []
    for s in results["students"]:
        for nb in s["notebooks"]:
            if nb["status"] in NEEDS_A_LOOK:
                rows.append(
                    '<tr class="problem" '
                    f'data-student="{_e(s["student"])}"><td>{_e(s["student"])}</td><td>{_e(nb["notebook"])}.ipynb</td>'
                    f"<td>{_badge(nb['status'])}</td>"
                    f'<td class="reason">{_e(nb["reason"])}</td>'
                    f"<td>{_links(run_dir, s['student'], nb['notebook'])}</td></tr>"
                )
    if rows:
        failed = sorted({s["student"] for s in results["students"] if s["status"] in (FAILED, UNGRADED)})
        retry = (
            "<p>Retry the failed ones after fixing the cause: <code>gradeflow grade COURSE_DIR "
            f"{_e(results['assignment'])} " + " ".join(f"--student {_e(x)}" for x in failed) + " --force</code></p>"
            if failed
            else ""
        )
        table = (
            "<table><thead><tr><th>student</th><th>notebook</th><th>status</th><th>reason</th><th>evidence</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>{retry}"
        )
    else:
        table = '<p class="ok-text">Every submission in this run was graded.</p>'
    return (
        '<section id="problems"><h2>Skipped and failed submissions</h2>'
        '<p class="muted"><b>skipped</b>: the notebook is malformed, so it was not graded (0 points, needs manual '
        "grade). "
        "<b>failed</b>: the sandbox stopped it (a limit was hit); the log says which. "
        "<b>ungraded</b>: gradeflow or the sandbox broke: nothing was written, earlier grades stay; run again once "
        "fixed. "
        "<b>tampered</b>: its code changed how the tests run; the affected test cells got no automatic credit and need "
        "a manual grade (Formgrader).</p>"
        f"{table}</section>"
    )


def _notes(results: dict[str, Any]) -> str:
    items = []
    for s in results["students"]:
        for nb in s["notebooks"]:
            if nb["status"] == REPAIRED:
                if nb.get("repairs"):  # what restore repaired, cell by cell
                    changes = "".join(
                        f"<li>cell <code>{_e(r['cell'])}</code>: {_e(r['reason'])}</li>" for r in nb["repairs"]
                    )
                    items.append(
                        f"<li>{_badge(REPAIRED)} {_e(s['student'])} / {_e(nb['notebook'])}.ipynb, graded after these "
                        f"repairs:<ul>{changes}</ul></li>"
                    )
                    continue
                changes = "".join(f"<li>{_e(c)}</li>" for c in nb.get("changes") or [])
                items.append(
                    f"<li>{_badge(REPAIRED)} {_e(s['student'])} / {_e(nb['notebook'])}.ipynb: "
                    f"{_e(nb['reason'])}<ul>{changes}</ul></li>"
                )
            elif nb["status"] == MISSING:
                items.append(
                    f"<li>{_badge(MISSING)} {_e(s['student'])} / {_e(nb['notebook'])}.ipynb: "
                    f"{_e(nb['reason'] or 'not submitted: 0 points')}</li>"
                )
    for p in results.get("problems") or []:
        items.append(f"<li>{_badge('note')} {_e(p.get('student'))}: {_e(p.get('reason'))}</li>")
    unchanged = results.get("unchanged") or []
    if unchanged:
        items.append(
            f"<li>{len(unchanged)} submission(s) unchanged since they were last graded, not regraded in this run: "
            f"{_e(', '.join(unchanged))}</li>"
        )
    if not items:
        return ""
    return f'<section id="notes"><h2>Notes</h2><ul class="notes">{"".join(items)}</ul></section>'


def _students(results: dict[str, Any], run_dir: Path) -> str:
    feedback = any("feedback" in s for s in results["students"])  # the run had --feedback

    def extra(s: dict[str, Any]) -> str:
        return f'<td class="feedback">{_feedback_links(run_dir, s, results["assignment"])}</td>' if feedback else ""

    rows = "".join(
        f'<tr data-student="{_e(s["student"])}"><td>{_e(s["student"])}</td><td>{_badge(s["status"])}</td><td '
        f'class="num">{_num(s["score"])} / {_num(s["max_score"])}</td>'
        f'<td class="num">{_num(s.get("execute_seconds"), 1)}</td>'
        f"<td>{'yes' if s.get('needs_manual_grade') else ''}</td>"
        f"<td>{_links(run_dir, s['student'])}</td>{extra(s)}</tr>"
        for s in sorted(results["students"], key=lambda s: s["student"])
    )
    return (
        '<section id="students"><h2>Every '
        f"submission</h2><details{' open' if len(results['students']) <= 30 else ''}>"
        f"<summary>{len(results['students'])} submission(s)</summary>"
        "<table><thead><tr><th>student</th><th>status</th><th>score</th><th>execute (s)</th><th>needs manual "
        f"grade</th><th>evidence</th>{'<th>feedback</th>' if feedback else ''}</tr></thead>"
        f"<tbody>{rows}</tbody></table></details></section>"
    )


def _files(run_dir: Path) -> Iterable[str]:
    for name in RESULTS_FILES:
        if Workspace(run_dir).result(name).is_file():
            yield f'<a href="{name}">{name}</a>'


CSS = Path(__file__).with_name("report.css").read_text(encoding="utf-8")  # inlined: no external assets


def build_html(results: dict[str, Any], run_dir: Path, snapshot: dict[str, Any] | None = None) -> str:
    """The report's HTML for `results` (results.json's content); links point into run_dir."""
    run_dir = Path(run_dir)
    meta = " · ".join(
        _e(x)
        for x in (
            f"course {results.get('course_id')}" if results.get("course_id") else "",
            f"run {results.get('run_id')}",
            f"sandbox {results['sandbox']}" if results.get("sandbox") else "",
            f"written {str(results.get('created', ''))[:19].replace('T', ' ')} UTC" if results.get("created") else "",
        )
        if x
    )
    files = " · ".join(_files(run_dir))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src "
        'data:">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gradeflow report: {_e(results['assignment'])}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{_e(results["assignment"])}: grading report</h1><p class="muted">{meta}</p>'
        f"{_summary(results)}{_problems(results, run_dir)}{_histogram(results)}{_cells(results, snapshot)}"
        f"{_slowest(results, run_dir)}"
        f"{_notes(results)}{_students(results, run_dir)}"
        f'<p class="muted" id="files">Files of this run: {files}</p>'
        "</main></body></html>\n"
    )
