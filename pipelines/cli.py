"""The `gradeflow` command: grade locally, run one step, or drive Argo.

    gradeflow grade COURSE_DIR ASSIGNMENT [--jobs N] [--student ID ...] [--cell-timeout S] [--feedback]
    gradeflow report RUN_DIR                                   (rewrite RUN_DIR/results/report.html)
    gradeflow step {collect,restore,execute,score,merge} ...   (the step CLIs, as pods run them)

Exit codes: 0 done (even when some submissions were skipped or failed: see the summary),
2 a problem the teacher can fix (the message says what to do), 75 gradeflow or the sandbox
broke (submissions it could not grade were left as they were: run again), 130/143 stopped by
SIGINT/SIGTERM (what was merged is kept; the next run does only the rest).
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
from typing import Sequence

from steps.contract import DAG, EXIT_INFRA, EXIT_OK, EXIT_USAGE
from steps.errors import InfraError, Interrupted, TeacherError
from steps.execute import add_limit_arguments, limits_from_args
from steps.sandbox import DEFAULT_SANDBOX, SANDBOXES

from .progress import choose_mode, progress_printer

__all__ = ["main", "build_parser", "add_feedback_arguments"]


def add_feedback_arguments(p: argparse.ArgumentParser) -> None:
    """--feedback and --feedback-hidden-tests, for `gradeflow grade` and `gradeflow submit --argo`."""
    from steps.feedback import HIDDEN_TESTS

    p.add_argument(
        "--feedback",
        action="store_true",
        help="also write each student's feedback (feedback/STUDENT/ASSIGNMENT/*.html, for `nbgrader release_feedback`)",
    )
    p.add_argument(
        "--feedback-hidden-tests",
        choices=HIDDEN_TESTS,
        default="redact",
        help="hidden tests in feedback: redact (default) or show them, as nbgrader does",
    )


UNSAFE_BANNER = (
    "!!! --unsafe-no-sandbox: student code will run AS YOU, with your files, network and credentials in reach.\n"
    "!!! Use it only for notebooks you trust (your own solutions)."
)


def _cmd_grade(a: argparse.Namespace) -> int:
    from steps.merge import summary_lines

    from .local import GradeOptions, grade

    sandbox = "none" if a.unsafe_no_sandbox else a.sandbox
    if sandbox == "none":
        print(UNSAFE_BANNER, file=sys.stderr)
    options = GradeOptions(
        jobs=a.jobs or os.cpu_count() or 1,
        students=a.student or None,
        sandbox=sandbox,
        limits=limits_from_args(a),
        store=a.store,
        force=a.force,
        feedback=a.feedback,
        feedback_hidden_tests=a.feedback_hidden_tests,
        max_submission_mb=a.max_submission_mb,
        gradebook_wait=a.gradebook_wait,
        strict=a.strict,
    )
    printer = progress_printer(choose_mode(a.json, a.quiet))
    try:
        results = grade(a.course_dir, a.assignment, options, progress=printer)
    finally:
        printer.close()
    if a.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(summary_lines(results)))
        print(f"results: {results['run_dir']}/results/ (report.html, results.json, grades.csv, cells.csv, summary.txt)")
    ungraded = results["counts"].get("ungraded_submissions", 0)
    if ungraded:
        print(
            f"gradeflow: {ungraded} submission(s) not graded because gradeflow or the sandbox failed (see the summary);"
            " their earlier grades are unchanged. Exit code 75: run again once fixed.",
            file=sys.stderr,
        )
        return EXIT_INFRA
    return EXIT_OK


def _cmd_report(a: argparse.Namespace) -> int:
    from .report import render_report

    print(render_report(a.run_dir))
    return EXIT_OK


def _cmd_step(a: argparse.Namespace) -> int:
    return importlib.import_module(f"steps.{a.step_name}").main(a.step_args)


LOCAL_COMMANDS = ("grade", "report", "step")


def build_parser(argo: bool = True) -> argparse.ArgumentParser:
    """The whole CLI; `argo=False` leaves out the Argo commands (and Hera's ~1 s import)."""
    p = argparse.ArgumentParser(prog="gradeflow", description="Secure, parallel autograding of nbgrader assignments.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade an assignment on this machine (sandboxed, in parallel)")
    g.add_argument("course_dir", type=Path, help="the nbgrader course directory (holds nbgrader_config.py)")
    g.add_argument("assignment", help="the assignment id, e.g. ps1")
    g.add_argument("--jobs", "-j", type=int, default=None, help="parallel execute jobs (default: CPU count)")
    g.add_argument("--student", action="append", help="grade only this student (repeatable)")
    g.add_argument(
        "--sandbox",
        default=DEFAULT_SANDBOX,
        choices=sorted(n for n in SANDBOXES if n != "none"),
        help=f"where student code runs (default {DEFAULT_SANDBOX})",
    )
    g.add_argument(
        "--unsafe-no-sandbox", action="store_true", help="run student code WITHOUT a sandbox (trusted notebooks only)"
    )
    g.add_argument(
        "--store", default=None, help="artifact store URL (default COURSE_DIR/gradeflow_runs; s3://bucket/prefix works)"
    )
    g.add_argument(
        "--force", action="store_true", help="regrade submissions that did not change since they were graded"
    )
    g.add_argument(
        "--strict",
        action="store_true",
        help="no recovery of malformed notebooks: a deleted, copied, renamed or re-flagged grade cell skips the"
        " notebook (nbgrader's behaviour) instead of being repaired",
    )
    add_feedback_arguments(g)
    g.add_argument(
        "--json",
        action="store_true",
        help="print results.json instead of the summary; progress goes to stderr as JSON lines",
    )
    g.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress output, only the summary (a live bar is shown only on a terminal)",
    )
    g.add_argument(
        "--max-submission-mb",
        type=int,
        default=200,
        help="larger submissions are skipped and listed with their size (default 200)",
    )
    g.add_argument(
        "--gradebook-wait",
        type=float,
        default=60.0,
        help="seconds to wait for a gradebook another program holds locked (default 60)",
    )
    add_limit_arguments(g)
    g.set_defaults(func=_cmd_grade)

    r = sub.add_parser("report", help="(re)write a run's HTML report, RUN_DIR/results/report.html")
    r.add_argument("run_dir", type=Path, help="a run folder, e.g. COURSE_DIR/gradeflow_runs/ps1-20261122T101500Z")
    r.set_defaults(func=_cmd_report)

    s = sub.add_parser("step", help="run one step's CLI (what an Argo pod runs)")
    s.add_argument("step_name", choices=DAG)
    s.add_argument("step_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_step)

    if not argo:
        return p
    try:
        from .client import add_argo_commands
    except ImportError:
        pass
    else:
        add_argo_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((x for x in args if not x.startswith("-")), None)
    a = build_parser(argo=command not in LOCAL_COMMANDS).parse_args(args)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(name)s %(levelname)s %(message)s"
    )
    warnings.filterwarnings("ignore", message=".*not in session.*")
    if not a.verbose:  # nbgrader's per-cell warnings go to the run's logs, not the teacher's console
        logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        return a.func(a)
    except TeacherError as e:
        print(f"gradeflow: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InfraError as e:
        logging.getLogger("gradeflow").debug("infrastructure failure", exc_info=True)
        print(f"gradeflow: {e}", file=sys.stderr)
        return EXIT_INFRA
    except (KeyboardInterrupt, Interrupted) as e:
        signum = getattr(e, "signum", 2)
        print(
            f"gradeflow: stopped ({'SIGTERM' if signum == 15 else 'SIGINT'}); submissions merged so far are kept,"
            " the next run grades only the rest",
            file=sys.stderr,
        )
        return 128 + signum
    except Exception:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        print("gradeflow: internal error (above); please report it. Exit code 75: retrying may help.", file=sys.stderr)
        return EXIT_INFRA


if __name__ == "__main__":
    raise SystemExit(main())
