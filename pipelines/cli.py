"""The `gradeflow` command: grade locally, run one step, or drive Argo.

    gradeflow grade COURSE_DIR ASSIGNMENT [--jobs N] [--student ID ...] [--cell-timeout S]
    gradeflow step {collect,restore,execute,score,merge} ...   (the step CLIs, as pods run them)

Exit codes: 0 done (even when some submissions were skipped or failed: see the summary),
2 a problem the teacher can fix (the message says what to do), 75 gradeflow itself broke.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from steps.contract import DAG, EXIT_INFRA, EXIT_OK, EXIT_USAGE
from steps.errors import TeacherError
from steps.execute import add_limit_arguments, limits_from_args
from steps.sandbox import DEFAULT_SANDBOX, SANDBOXES

__all__ = ["main", "build_parser"]

UNSAFE_BANNER = (
    "!!! --unsafe-no-sandbox: student code will run AS YOU, with your files, network and credentials in reach.\n"
    "!!! Use it only for notebooks you trust (your own solutions)."
)


class _Progress:
    """Live progress on a terminal (rich); one line per step otherwise; nothing with --json."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None
        self.counts = {"ok": 0, "repaired": 0, "missing": 0, "skipped": 0, "failed": 0}

    def __call__(self, e: Any) -> None:
        if not self.enabled:
            return
        if e.step == "execute" and e.kind == "start" and self.tty and e.total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("execute"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("", total=e.total)
            return
        if e.kind == "submission":
            self.counts[e.status] = self.counts.get(e.status, 0) + 1
            desc = " ".join(f"{k} {v}" for k, v in self.counts.items() if v)
            if self.bar:
                self.bar.update(self.task, advance=1, description=desc)
            else:
                done = sum(self.counts.values())
                print(f"[execute] {done}/{e.total} {e.student}: {e.status} ({e.seconds:.1f} s)", file=sys.stderr)
            return
        if e.step == "execute" and e.kind == "done" and self.bar:
            self.bar.stop()
            self.bar = None
        if e.kind == "done":
            extra = f": {e.total} submission(s) to grade" if e.step == "collect" else ""
            print(f"[{e.step}] done{extra}", file=sys.stderr)


def _cmd_grade(a: argparse.Namespace) -> int:
    from steps.merge import summary_lines

    from .local import GradeOptions, grade

    sandbox = "none" if a.unsafe_no_sandbox else a.sandbox
    if sandbox == "none":
        print(UNSAFE_BANNER, file=sys.stderr)
    options = GradeOptions(jobs=a.jobs or os.cpu_count() or 1, students=a.student or None, sandbox=sandbox, limits=limits_from_args(a), store=a.store, force=a.force)
    results = grade(a.course_dir, a.assignment, options, progress=_Progress(not a.json))
    if a.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(summary_lines(results)))
        print(f"results: {results['run_dir']}/results/ (results.json, grades.csv, cells.csv, summary.txt)")
    return EXIT_OK


def _cmd_step(a: argparse.Namespace) -> int:
    return importlib.import_module(f"steps.{a.step_name}").main(a.step_args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradeflow", description="Secure, parallel autograding of nbgrader assignments.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade an assignment on this machine (sandboxed, in parallel)")
    g.add_argument("course_dir", type=Path, help="the nbgrader course directory (holds gradebook.db)")
    g.add_argument("assignment", help="the assignment id, e.g. ps1")
    g.add_argument("--jobs", "-j", type=int, default=None, help="parallel execute jobs (default: CPU count)")
    g.add_argument("--student", action="append", help="grade only this student (repeatable)")
    g.add_argument("--sandbox", default=DEFAULT_SANDBOX, choices=sorted(n for n in SANDBOXES if n != "none"), help=f"where student code runs (default {DEFAULT_SANDBOX})")
    g.add_argument("--unsafe-no-sandbox", action="store_true", help="run student code WITHOUT a sandbox (trusted notebooks only)")
    g.add_argument("--store", default=None, help="artifact store URL (default COURSE_DIR/gradeflow_runs; s3://bucket/prefix works)")
    g.add_argument("--force", action="store_true", help="regrade submissions that did not change since they were graded")
    g.add_argument("--json", action="store_true", help="print results.json instead of the summary; no progress output")
    add_limit_arguments(g)
    g.set_defaults(func=_cmd_grade)

    s = sub.add_parser("step", help="run one step's CLI (what an Argo pod runs)")
    s.add_argument("step_name", choices=DAG)
    s.add_argument("step_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_step)

    try:
        from .client import add_argo_commands
    except ImportError:
        pass
    else:
        add_argo_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        return a.func(a)
    except TeacherError as e:
        print(f"gradeflow: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradeflow: interrupted; nothing was written to the gradebook for unfinished submissions", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        print("gradeflow: internal error (above); please report it. Exit code 75: retrying may help.", file=sys.stderr)
        return EXIT_INFRA


if __name__ == "__main__":
    raise SystemExit(main())
