"""Build a ready-to-grade copy of gradeflow's example nbgrader course.

``make_course(dest)`` copies ``examples/course`` (config + ``source/ps1``) to *dest*,
runs nbgrader's real ``generate_assignment ps1`` there (so *dest* gets ``gradebook.db``
and ``release/ps1/``), sets the ps1 due date in the gradebook, and writes one student
submission per variant in nbgrader's layout::

    dest/submitted/<student>/ps1/problems.ipynb
    dest/submitted/<student>/ps1/data_analysis.ipynb
    dest/submitted/<student>/ps1/data/measurements.csv
    dest/submitted/<student>/ps1/timestamp.txt

Submissions are the *release* notebooks with the bodies of the solution cells replaced,
which is what a student's Jupyter would save. ``dest/roster.json`` records, for each
student, the variant, the timestamp and the autograde score nbgrader is expected to give.

Command line::

    python examples/make_course.py DEST [--students N] [--seed S] [--variants a,b,...]
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
COURSE_TEMPLATE = HERE / "course"
REPO = HERE.parent
MALFORMED_BUILD = REPO / "tests" / "corpus" / "malformed" / "malformed_build.py"

COURSE_ID = "example-course"
ASSIGNMENT = "ps1"
NOTEBOOKS = ("problems", "data_analysis")
#: ps1 due date stored in the gradebook (naive datetimes are UTC, as in nbgrader).
DUE_DATE = datetime(2026, 11, 20, 17, 0, 0)

#: Variant name -> what the student did.
VARIANTS: dict[str, str] = {
    "correct": "every autograded answer right; manual answer and task left blank",
    "partial": "some tests fail, including hidden tests that the visible ones let through",
    "wrong": "answers written but every autograded test fails",
    "raises-error": "a solution cell raises NameError at top level, so its function is never defined",
    "timeout": "`while True: pass` in one solution cell: interrupted by nbgrader's 30 s cell timeout",
    "late": "all correct, but submitted after the due date",
    "missing-notebook": "correct problems.ipynb, data_analysis.ipynb not submitted",
    "locked-cell-edited": "wrong squares() and the test cell edited to pass; nbgrader restores the test",
    "blank": "release notebooks submitted unchanged",
    "manual-answer": "all correct, plus prose in the markdown answer and work for the task cell",
}
#: Everything but the 30 s timeout: safe to repeat many times.
CHEAP_VARIANTS = [v for v in VARIANTS if v != "timeout"]

#: Autograde score nbgrader gives each variant, per notebook (manually graded cells,
#: i.e. the markdown answer and the task, count 0 until a human grades them).
EXPECTED_AUTO_SCORES: dict[str, dict[str, float]] = {
    "correct": {"problems": 7, "data_analysis": 5},
    "partial": {"problems": 2, "data_analysis": 2},
    "wrong": {"problems": 0, "data_analysis": 0},
    "raises-error": {"problems": 6, "data_analysis": 5},
    "timeout": {"problems": 4, "data_analysis": 5},
    "late": {"problems": 7, "data_analysis": 5},
    "missing-notebook": {"problems": 7, "data_analysis": 0},
    "locked-cell-edited": {"problems": 6, "data_analysis": 5},
    "blank": {"problems": 0, "data_analysis": 0},
    "manual-answer": {"problems": 7, "data_analysis": 5},
}
#: Maximum points per notebook: all grade cells + task cells, as nbgrader computes it.
MAX_SCORES = {"problems": 11, "data_analysis": 5}
#: Maximum of the cells the autograder scores by itself (code test cells).
MAX_AUTO_SCORES = {"problems": 7, "data_analysis": 5}

# --------------------------------------------------------------------------
# What each variant writes in the solution cells (grade_id -> whole cell source).
# Cells not listed keep the release stub (`raise NotImplementedError()`).
# --------------------------------------------------------------------------
_PARTIAL = {
    "fibonacci": '''
def fibonacci(n):
    """Return the n-th Fibonacci number (0, 1, 1, 2, 3, 5, ...)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    # Binet's formula: fast, but floats lose precision for large n
    phi = (1 + 5 ** 0.5) / 2
    return int(round(phi ** n / 5 ** 0.5))
''',
    "word_counts": '''
def word_counts(text):
    """Count the case-insensitive words of text, ignoring surrounding punctuation."""
    counts = {}
    for word in text.split():
        word = word.strip(".,;:!?")
        counts[word] = counts.get(word, 0) + 1
    return counts
''',
    "load_measurements": '''
def load_measurements(path):
    """Read the CSV file at path into a list of typed dictionaries."""
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append({
                "station": row["station"],
                "day": int(row["day"]),
                "temperature_c": float(row["temperature_c"] or 0),
            })
    return rows
''',
}

_WRONG = {
    "squares": '''
def squares(n):
    """Return the list [0**2, 1**2, ..., (n - 1)**2]."""
    return [i * 2 for i in range(n)]
''',
    "fibonacci": '''
def fibonacci(n):
    """Return the n-th Fibonacci number (0, 1, 1, 2, 3, 5, ...)."""
    a, b = 1, 1
    for _ in range(n):
        a, b = b, a + b
    return a
''',
    "word_counts": '''
def word_counts(text):
    """Count the case-insensitive words of text, ignoring surrounding punctuation."""
    return {word: 1 for word in text.split()}
''',
    "load_measurements": '''
def load_measurements(path):
    """Read the CSV file at path into a list of typed dictionaries."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
''',
    "mean_by_station": '''
def mean_by_station(rows):
    """Return {station: mean temperature} for rows as returned by load_measurements."""
    return {r["station"]: r["temperature_c"] for r in rows}
''',
    "warmest_reading": '''
def warmest_reading(rows):
    """Return (station, day, temperature_c) of the warmest row."""
    last = rows[-1]
    return last["station"], last["day"], last["temperature_c"]
''',
}

_RAISES_ERROR = {
    "squares": '''
print("squares(5) =", squares(5))  # quick check, written before the definition

def squares(n):
    """Return the list [0**2, 1**2, ..., (n - 1)**2]."""
    return [i * i for i in range(n)]
''',
}

_TIMEOUT = {
    "word_counts": '''
text = ""
while True:  # meant to wait for some input; never ends
    pass

def word_counts(text):
    """Count the case-insensitive words of text, ignoring surrounding punctuation."""
    counts = {}
    for raw in text.split():
        word = raw.strip(".,;:!?\\"'()").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts
''',
}

_LOCKED_EDITED = {
    "squares": '''
def squares(n):
    """Return the list [0**2, 1**2, ..., (n - 1)**2]."""
    return list(range(n))
''',
}
#: What the locked-cell-edited student put in the read-only test cell.
EDITED_TEST_SQUARES = '''"""Check that squares returns the right list."""
assert squares(1) == [0]
assert True  # the other test was wrong, I removed it'''

_MANUAL = {
    "fibonacci_complexity": (
        "Calling `fibonacci(n - 1) + fibonacci(n - 2)` recursively computes the same smaller "
        "values again and again, so the number of calls grows exponentially with `n`. My loop "
        "only keeps the last two numbers and does one addition per step, so it runs in O(n) "
        "time with constant extra memory."
    ),
    "task_work": '''
counts = word_counts(PARAGRAPH)
top3 = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
for word, n in top3:
    print(f"{word}: {n}")
''',
}


def _strip_solution_markers(source: str) -> str:
    keep = [ln for ln in source.splitlines()
            if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return "\n".join(keep)


def correct_answers() -> dict[str, str]:
    """grade_id -> correct cell source, taken from the instructor's source notebooks."""
    answers = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(COURSE_TEMPLATE / "source" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and cell.cell_type == "code":
                answers[meta["grade_id"]] = _strip_solution_markers(cell.source)
    return answers


def answers_for(variant: str) -> dict[str, str]:
    """grade_id (or plain cell id, for the task work cell) -> source the student wrote."""
    correct = correct_answers()
    table = {
        "correct": correct,
        "late": correct,
        "missing-notebook": correct,
        "partial": {**correct, **_PARTIAL},
        "wrong": dict(_WRONG),
        "raises-error": {**correct, **_RAISES_ERROR},
        "timeout": {**correct, **_TIMEOUT},
        "locked-cell-edited": {**correct, **_LOCKED_EDITED},
        "blank": {},
        "manual-answer": {**correct, **_MANUAL},
        # not a class variant: the answers of the malformed corpus's score table (10 of 12)
        "imprecise-fibonacci": {**correct, "fibonacci": _PARTIAL["fibonacci"]},
    }
    if variant not in table:
        raise ValueError(f"unknown variant {variant!r}")
    return {k: v.strip("\n") for k, v in table[variant].items()}


def student_notebook(release_nb: nbformat.NotebookNode, variant: str) -> nbformat.NotebookNode:
    """The release notebook as the student of *variant* would save it."""
    nb = copy.deepcopy(release_nb)
    answers = answers_for(variant)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        key = meta.get("grade_id") if meta.get("solution") else cell.get("id")
        if key in answers:
            cell.source = answers[key]
        if variant == "locked-cell-edited" and meta.get("grade_id") == "test_squares":
            cell.source = EDITED_TEST_SQUARES
    return nb


def format_timestamp(ts: datetime) -> str:
    """nbgrader's timestamp.txt format, e.g. ``2026-11-20 10:00:00.000000 UTC``."""
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"


def write_submission(release_dir: Path, dest: Path, variant: str, timestamp: datetime) -> Path:
    """Write one regular (non-malformed) submission of *variant* into *dest* (= .../<student>/ps1)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(release_dir.rglob("*")):
        rel = path.relative_to(release_dir)
        if path.is_dir():
            continue
        if path.suffix == ".ipynb":
            if variant == "missing-notebook" and path.stem == "data_analysis":
                continue
            nb = student_notebook(nbformat.read(path, as_version=4), variant)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
    (dest / "timestamp.txt").write_text(format_timestamp(timestamp))
    return dest


def _malformed():
    """tests/corpus/malformed/malformed_build.py, loaded by path (tests/ is not a package)."""
    name = "gradeflow_malformed_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MALFORMED_BUILD)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def malformed_variants() -> list[str]:
    return list(_malformed().CASES)


def nbgrader_env() -> dict[str, str]:
    """Environment for running nbgrader: this interpreter's bin dir first on PATH.

    A new gradebook.db makes nbgrader shell out to the ``alembic`` *command* (found on
    PATH) to read the schema head; without this it may be missing (venv not activated)
    or be a slow pyenv shim.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def generate_assignment(course: Path) -> None:
    """Run nbgrader's own ``generate_assignment ps1`` in *course*."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force"],
        cwd=course, capture_output=True, text=True, env=nbgrader_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"nbgrader generate_assignment failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def set_due_date(course: Path, due: datetime = DUE_DATE, db_url: str | None = None) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(db_url or f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=due)


def plan_students(students: int | None, seed: int, variants: list[str] | None) -> list[tuple[str, str]]:
    """[(student_id, variant), ...] for the requested course."""
    if students is None:
        chosen = list(variants) if variants is not None else list(VARIANTS)
        width = 2 if len(chosen) < 100 else len(str(len(chosen)))
        plan = [(f"s{i:0{width}d}-{v}", v) for i, v in enumerate(chosen, start=1)]
    else:
        if students < 0:
            raise ValueError("students must be >= 0")
        pool = list(variants) if variants is not None else list(CHEAP_VARIANTS)
        if not pool:
            raise ValueError("no variants to cycle through")
        random.Random(seed).shuffle(pool)
        width = max(3, len(str(students)))
        plan = [(f"s{i:0{width}d}", pool[(i - 1) % len(pool)]) for i in range(1, students + 1)]
    known = set(VARIANTS) | set(malformed_variants())
    unknown = sorted({v for _, v in plan} - known)
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(known)}")
    if sum(v == "timeout" for _, v in plan) > 1:
        raise ValueError("at most one 'timeout' student: each costs a 30 s cell timeout")
    return plan


def _timestamp(rng: random.Random, variant: str) -> datetime:
    if variant == "late":
        return DUE_DATE + timedelta(hours=16, minutes=rng.randrange(60))
    # on time: between 3 days and 10 minutes before the deadline, whole seconds
    return DUE_DATE - timedelta(seconds=rng.randrange(600, 3 * 24 * 3600))


def make_course(dest: Path, students: int | None = None, seed: int = 0,
                variants: list[str] | None = None, db_url: str | None = None) -> Path:
    """Create the example course in *dest* (must not exist or be empty); return *dest*.

    - ``students=None, variants=None``: one student per entry of :data:`VARIANTS`,
      with ids ``s01-correct``, ``s02-partial``, ...
    - ``students=None, variants=[...]``: one student per listed variant, ids
      ``s<i>-<variant>``; malformed cases of tests/corpus/malformed are accepted too.
    - ``students=N``: ids ``s001``..; variants cycle through :data:`CHEAP_VARIANTS`
      (or *variants*) in an order shuffled by *seed*.

    Everything (variant order, timestamps) is deterministic given *seed*. With *db_url*
    the gradebook lives in that (empty) database instead of ``gradebook.db``, e.g.
    ``postgresql://USER:PASSWORD@HOST/DB``; nbgrader_config.py says so.
    """
    dest = Path(dest).resolve()
    plan = plan_students(students, seed, variants)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")
    shutil.copytree(
        COURSE_TEMPLATE, dest, dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            "__pycache__", ".ipynb_checkpoints", ".gitignore", "gradebook.db", "release",
            "submitted", "autograded", "feedback", "*.log"),
    )
    if db_url:
        with open(dest / "nbgrader_config.py", "a") as fh:
            fh.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    generate_assignment(dest)
    set_due_date(dest, db_url=db_url)

    release_dir = dest / "release" / ASSIGNMENT
    rng = random.Random(seed)
    roster = {}
    # regular variants win over malformed cases of the same name (missing-notebook)
    malformed = set(malformed_variants()) - set(VARIANTS)
    for student, variant in plan:
        ts = _timestamp(rng, variant)
        out = dest / "submitted" / student / ASSIGNMENT
        if variant in malformed:
            _malformed().write_case(variant, release_dir, out, timestamp=format_timestamp(ts))
            expected = None
        else:
            write_submission(release_dir, out, variant, ts)
            expected = EXPECTED_AUTO_SCORES[variant]
        roster[student] = {
            "variant": variant,
            "timestamp": format_timestamp(ts),
            "late": ts > DUE_DATE,
            "expected_auto_score": expected,
        }
    (dest / "roster.json").write_text(json.dumps({
        "course_id": COURSE_ID,
        "assignment": ASSIGNMENT,
        "duedate": format_timestamp(DUE_DATE),
        "max_score": MAX_SCORES,
        "max_auto_score": MAX_AUTO_SCORES,
        "seed": seed,
        "students": roster,
    }, indent=2) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the gradeflow example nbgrader course.")
    ap.add_argument("dest", type=Path, help="course directory to create (must not exist or be empty)")
    ap.add_argument("--students", type=int, default=None,
                    help="make N students cycling through the cheap variants (ids s001...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=None,
                    help="comma-separated variant names (default: all regular variants); "
                         "malformed cases of tests/corpus/malformed are accepted too")
    ap.add_argument("--with-malformed", action="store_true",
                    help="add two malformed submissions (a deleted test cell, invalid JSON) to the regular variants")
    ap.add_argument("--force", action="store_true", help="replace DEST if it exists")
    ap.add_argument("--db-url", default=None, help="keep the gradebook in this empty database (e.g. postgresql://USER:PASSWORD@HOST/DB) instead of gradebook.db")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v] if args.variants else None
    if args.with_malformed:
        variants = (variants or list(VARIANTS)) + ["deleted-test-cell", "invalid-json"]
    if args.force and args.dest.exists():
        shutil.rmtree(args.dest)
    dest = make_course(args.dest, students=args.students, seed=args.seed, variants=variants, db_url=args.db_url)
    roster = json.loads((dest / "roster.json").read_text())["students"]
    for sid, info in roster.items():
        print(f"{sid}\t{info['variant']}\t{info['timestamp']}")
    print(f"course ready in {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
