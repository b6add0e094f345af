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

import html
import math
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from steps.contract import EXECUTED_ONE, FEEDBACK, SUBMISSIONS
from steps.errors import TeacherError
from steps.records import FAILED, MISSING, OK, REPAIRED, SKIPPED, TAMPERED, UNGRADED, read_json
from steps.workspace import EXECUTE_LOG, REPORT_HTML, RESULTS_FILES, RESULTS_JSON, Workspace

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


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


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


def _histogram_bins(scores: list[float], max_score: float) -> list[tuple[str, int]]:
    """(label, count) bars: one per whole point up to 20 points, else ten equal bins."""
    if max_score <= 0:
        return [("0", len(scores))]
    if max_score <= 20:
        top = int(math.floor(max_score))
        labels = [str(k) for k in range(top + 1)]
        counts = [0] * (top + 1)
        for s in scores:
            counts[min(top, max(0, int(math.floor(s + 1e-9))))] += 1
        return list(zip(labels, counts))
    width = max_score / 10
    counts = [0] * 10
    for s in scores:
        counts[min(9, max(0, int((s + 1e-9) // width)))] += 1
    return [(f"{_num(i * width, 1)}–{_num((i + 1) * width, 1)}", n) for i, n in enumerate(counts)]


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
    bins = _histogram_bins([float(s["score"]) for s in graded], max_score)
    W, H, left, bottom, top = 640, 240, 40, 36, 16
    plot_w, plot_h = W - left - 10, H - bottom - top
    peak = max(n for _, n in bins) or 1
    bw = plot_w / len(bins)
    parts = [
        f'<svg id="score-histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        'role="img" aria-label="histogram of total scores">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{W - 10}" y2="{top + plot_h}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="tick">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
        f'<text x="{left + plot_w / 2}" y="{H - 4}" text-anchor="middle" class="tick">total score (points)</text>',
    ]
    for i, (label, n) in enumerate(bins):
        h = plot_h * n / peak
        x = left + i * bw + 2
        y = top + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 4, 1):.1f}" height="{h:.1f}" '
            f'data-label="{_e(label)}" data-count="{n}"><title>{_e(label)} points: {n} submission(s)</title></rect>'
        )
        if n:
            parts.append(
                f'<text x="{x + (bw - 4) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="count">{n}</text>'
            )
        parts.append(
            f'<text x="{x + (bw - 4) / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'class="tick">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return f'<section id="histogram"><h2>Total scores</h2><p class="muted">{_e(note)}</p>{"".join(parts)}</section>'


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


CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--muted:#57606a;--line:#d0d7de}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:20px 24px 48px;background:#fff;min-height:100vh}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted)}.ok-text{color:var(--ok)}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:92px}
.card .n{font-size:24px;font-weight:600}.card .l{color:var(--muted);font-size:12px}
.card.ok .n{color:var(--ok)}.card.skipped .n,.card.missing .n{color:var(--warn)}.card.failed .n{color:var(--bad)}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{white-space:nowrap}td.reason{max-width:480px;word-break:break-word}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;background:var(--muted)}
.badge.ok,.badge.repaired{background:var(--ok)}.badge.skipped,.badge.missing{background:var(--warn)}
.badge.failed,.badge.tampered{background:var(--bad)}
.rate{height:6px;background:#eaeef2;border-radius:3px;margin-top:3px;width:120px}
.rate div{height:6px;background:var(--ok);border-radius:3px}
svg .bar{fill:#0969da}svg .axis{stroke:#8c959f}svg text{font-size:11px;fill:#57606a}
svg .count{fill:#1f2328;font-weight:600}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}ul.notes li{margin:3px 0}
@media print{body{background:#fff}main{padding:0}}
"""


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
