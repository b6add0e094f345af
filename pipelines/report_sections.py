"""The report's sections: each turns results.json's content into one escaped HTML fragment.

`pipelines.report` puts them on one page; they are apart so each job stays small: this module
knows the run's data and the page's markup, `report.py` the files and the page around them.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

from steps.contract import EXECUTED_ONE, FEEDBACK, SUBMISSIONS
from steps.records import FAILED, MISSING, OK, REPAIRED, SKIPPED, TAMPERED, UNGRADED
from steps.workspace import EXECUTE_LOG, Workspace

from .store import RUNS_DIR  # a run folder there sits in its course

SLOWEST = 10  # rows in "slowest notebooks"
NEEDS_A_LOOK = (UNGRADED, FAILED, SKIPPED, TAMPERED)

__all__ = ["esc", "summary", "histogram_bins", "histogram", "cells", "slowest", "problems", "notes", "students"]


# --- small helpers -------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """`value` as HTML text or attribute value (None as empty)."""
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
    return f'<a href="{esc(href)}">{esc(label)}</a>'


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
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


# --- sections ------------------------------------------------------------------------------------


def summary(results: dict[str, Any]) -> str:
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
        f'<div class="card {cls}" data-count="{esc(label)}">'
        f'<div class="n">{esc(n)}</div><div class="l">{esc(label)}</div></div>'
        for label, n, cls in cards
    )
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{items}</div></section>'


def histogram_bins(scores: list[float], max_score: float) -> list[tuple[str, int]]:
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


def histogram(results: dict[str, Any]) -> str:
    graded = [s for s in results["students"] if s["status"] not in NEEDS_A_LOOK]
    left_out = len(results["students"]) - len(graded)
    max_score = max((float(s.get("max_score") or 0) for s in results["students"]), default=0.0)
    note = f"{len(graded)} graded submission(s), out of {_num(max_score)} points."
    if left_out:
        note += f" {left_out} skipped or failed submission(s) are left out (listed above)."
    if not graded:
        return (
            '<section id="histogram"><h2>Total scores</h2>'
            f'<p class="muted">No graded submissions in this run. {esc(note)}</p></section>'
        )
    bins = histogram_bins([float(s["score"]) for s in graded], max_score)
    W, H, left, bottom, top = 640, 240, 40, 36, 16
    plot_w, plot_h = W - left - 10, H - bottom - top
    peak = max(n for _, n in bins) or 1
    bw = plot_w / len(bins)
    parts = [
        f'<svg id="score-histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}"'
        ' role="img" aria-label="histogram of total scores">',
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
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 4, 1):.1f}" height="{h:.1f}"'
            f' data-label="{esc(label)}" data-count="{n}"><title>{esc(label)} points: {n} submission(s)</title></rect>'
        )
        if n:
            parts.append(
                f'<text x="{x + (bw - 4) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="count">{n}</text>'
            )
        parts.append(
            f'<text x="{x + (bw - 4) / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" class="tick">'
            f"{esc(label)}</text>"
        )
    parts.append("</svg>")
    return f'<section id="histogram"><h2>Total scores</h2><p class="muted">{esc(note)}</p>{"".join(parts)}</section>'


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


def cells(results: dict[str, Any], snapshot: dict[str, Any] | None) -> str:
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
                f"<tr><td>{esc(notebook)}</td><td><code>{esc(cell)}</code></td><td>{esc(kind)}</td>"
                '<td colspan="4" class="muted">no graded submission</td></tr>'
            )
            continue
        rate = st["full"] / st["n"]
        bar = f'<div class="rate"><div style="width:{rate * 100:.0f}%"></div></div>'
        rows.append(
            f'<tr data-cell="{esc(cell)}"><td>{esc(notebook)}</td><td><code>{esc(cell)}</code></td><td>{esc(kind)}</td>'
            f'<td class="num">{st["full"]}/{st["n"]} ({rate:.0%}){bar}</td>'
            f'<td class="num">{_num(st["sum"] / st["n"])} / {_num(st["max"])}</td>'
            f'<td class="num">{st["manual"] or ""}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="6" class="muted">no graded cells</td></tr>'
    return (
        '<section id="cells"><h2>Pass rate per graded cell</h2>'
        '<p class="muted">Full marks out of the submissions whose notebook was graded. '
        "Manually graded cells score 0 until a grader scores them in Formgrader.</p>"
        "<table><thead><tr><th>notebook</th><th>cell</th><th>kind</th><th>full marks</th><th>mean / max</th>"
        "<th>needs manual grade</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def slowest(results: dict[str, Any], run_dir: Path) -> str:
    timed = [
        (nb["execute_seconds"], s["student"], nb["notebook"])
        for s in results["students"]
        for nb in s["notebooks"]
        if nb.get("execute_seconds") is not None
    ]
    timed.sort(reverse=True)
    rows = "".join(
        f'<tr><td>{esc(student)}</td><td>{esc(notebook)}.ipynb</td><td class="num">{secs:.1f} s</td>'
        f"<td>{_links(run_dir, student, notebook)}</td></tr>"
        for secs, student, notebook in timed[:SLOWEST]
    )
    if not rows:
        rows = '<tr><td colspan="4" class="muted">no notebook was executed in this run</td></tr>'
    return (
        '<section id="slowest"><h2>Slowest notebooks</h2>'
        f'<p class="muted">The {min(SLOWEST, len(timed)) or ""} longest executions'
        " (seconds in the sandbox, kernel start included).</p>"
        "<table><thead><tr><th>student</th><th>notebook</th><th>execute</th><th>evidence</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def problems(results: dict[str, Any], run_dir: Path) -> str:
    rows = []
    for s in results["students"]:
        for nb in s["notebooks"]:
            if nb["status"] in NEEDS_A_LOOK:
                rows.append(
                    f'<tr class="problem" data-student="{esc(s["student"])}"><td>{esc(s["student"])}</td>'
                    f"<td>{esc(nb['notebook'])}.ipynb</td><td>{_badge(nb['status'])}</td>"
                    f'<td class="reason">{esc(nb["reason"])}</td>'
                    f"<td>{_links(run_dir, s['student'], nb['notebook'])}</td></tr>"
                )
    if rows:
        failed = sorted({s["student"] for s in results["students"] if s["status"] in (FAILED, UNGRADED)})
        retry = (
            "<p>Retry the failed ones after fixing the cause: "
            f"<code>gradeflow grade COURSE_DIR {esc(results['assignment'])} "
            + " ".join(f"--student {esc(x)}" for x in failed)
            + " --force</code></p>"
            if failed
            else ""
        )
        table = (
            "<table><thead><tr><th>student</th><th>notebook</th><th>status</th><th>reason</th><th>evidence</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{retry}"
        )
    else:
        table = '<p class="ok-text">Every submission in this run was graded.</p>'
    return (
        '<section id="problems"><h2>Skipped and failed submissions</h2>'
        '<p class="muted"><b>skipped</b>: the notebook is malformed, so it was not graded'
        " (0 points, needs manual grade). "
        "<b>failed</b>: the sandbox stopped it (a limit was hit); the log says which. "
        "<b>ungraded</b>: gradeflow or the sandbox broke: nothing was written, earlier grades stay;"
        " run again once fixed. "
        "<b>tampered</b>: its code changed how the tests run; the affected test cells got no automatic credit"
        " and need a manual grade (Formgrader).</p>"
        f"{table}</section>"
    )


def notes(results: dict[str, Any]) -> str:
    items = []
    for s in results["students"]:
        for nb in s["notebooks"]:
            if nb["status"] == REPAIRED:
                if nb.get("repairs"):  # what restore repaired, cell by cell
                    changes = "".join(
                        f"<li>cell <code>{esc(r['cell'])}</code>: {esc(r['reason'])}</li>" for r in nb["repairs"]
                    )
                    items.append(
                        f"<li>{_badge(REPAIRED)} {esc(s['student'])} / {esc(nb['notebook'])}.ipynb,"
                        f" graded after these repairs:<ul>{changes}</ul></li>"
                    )
                    continue
                changes = "".join(f"<li>{esc(c)}</li>" for c in nb.get("changes") or [])
                items.append(
                    f"<li>{_badge(REPAIRED)} {esc(s['student'])} / {esc(nb['notebook'])}.ipynb:"
                    f" {esc(nb['reason'])}<ul>{changes}</ul></li>"
                )
            elif nb["status"] == MISSING:
                items.append(
                    f"<li>{_badge(MISSING)} {esc(s['student'])} / {esc(nb['notebook'])}.ipynb:"
                    f" {esc(nb['reason'] or 'not submitted: 0 points')}</li>"
                )
    for p in results.get("problems") or []:
        items.append(f"<li>{_badge('note')} {esc(p.get('student'))}: {esc(p.get('reason'))}</li>")
    unchanged = results.get("unchanged") or []
    if unchanged:
        items.append(
            f"<li>{len(unchanged)} submission(s) unchanged since they were last graded,"
            f" not regraded in this run: {esc(', '.join(unchanged))}</li>"
        )
    if not items:
        return ""
    return f'<section id="notes"><h2>Notes</h2><ul class="notes">{"".join(items)}</ul></section>'


def students(results: dict[str, Any], run_dir: Path) -> str:
    feedback = any("feedback" in s for s in results["students"])  # the run had --feedback

    def extra(s: dict[str, Any]) -> str:
        return f'<td class="feedback">{_feedback_links(run_dir, s, results["assignment"])}</td>' if feedback else ""

    rows = "".join(
        f'<tr data-student="{esc(s["student"])}"><td>{esc(s["student"])}</td><td>{_badge(s["status"])}</td>'
        f'<td class="num">{_num(s["score"])} / {_num(s["max_score"])}</td>'
        f'<td class="num">{_num(s.get("execute_seconds"), 1)}</td>'
        f"<td>{'yes' if s.get('needs_manual_grade') else ''}</td>"
        f"<td>{_links(run_dir, s['student'])}</td>{extra(s)}</tr>"
        for s in sorted(results["students"], key=lambda s: s["student"])
    )
    return (
        '<section id="students"><h2>Every submission</h2>'
        f"<details{' open' if len(results['students']) <= 30 else ''}>"
        f"<summary>{len(results['students'])} submission(s)</summary>"
        "<table><thead><tr><th>student</th><th>status</th><th>score</th><th>execute (s)</th>"
        "<th>needs manual grade</th><th>evidence</th>"
        f"{'<th>feedback</th>' if feedback else ''}</tr></thead>"
        f"<tbody>{rows}</tbody></table></details></section>"
    )
