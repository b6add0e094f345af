"""Regenerate the instructor (source) version of the example course's ps1.

Writes, next to this script::

    course/source/ps1/problems.ipynb        # functions: squares, fibonacci, word counts
    course/source/ps1/data_analysis.ipynb   # reads data/measurements.csv with stdlib csv
    course/source/ps1/data/measurements.csv

The output is byte-for-byte reproducible (fixed cell ids, no timestamps), so the
generated files are committed and ``python examples/build_source.py --check``
can verify that they are up to date.

Cell metadata follows nbgrader's schema version 3, i.e. what
``nbgrader generate_assignment`` expects in a source notebook::

    metadata.nbgrader = {grade, grade_id, locked, points (grade/task cells only),
                         schema_version: 3, solution, task}
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
PS1 = HERE / "course" / "source" / "ps1"

# --------------------------------------------------------------------------
# data/measurements.csv: 4 stations x 7 days of daily mean temperature; one
# reading (east, day 4) is missing and must be skipped by load_measurements.
# --------------------------------------------------------------------------
STATIONS = {"north": 4.0, "south": 15.0, "east": 9.5, "west": 11.0}
DAY_OFFSETS = [-1.2, 0.4, 2.1, -0.3, 1.8, 3.5, -0.9]
STATION_TWEAK = {"north": 0.3, "south": -0.2, "east": 0.1, "west": 0.0}
MISSING = {("east", 4)}


def measurement_rows() -> list[tuple[str, int, float | None]]:
    rows = []
    for station, base in STATIONS.items():
        for day, off in enumerate(DAY_OFFSETS, start=1):
            if (station, day) in MISSING:
                rows.append((station, day, None))
            else:
                tweak = STATION_TWEAK[station] * (day % 3)
                rows.append((station, day, round(base + off + tweak, 1)))
    return rows


def measurements_csv() -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["station", "day", "temperature_c"])
    for station, day, temp in measurement_rows():
        w.writerow([station, day, "" if temp is None else f"{temp:.1f}"])
    return buf.getvalue()


def _expected():
    valid = [(s, d, t) for s, d, t in measurement_rows() if t is not None]
    means = {}
    for s in STATIONS:
        temps = [t for st, _, t in valid if st == s]
        means[s] = round(sum(temps) / len(temps), 4)
    warmest = max(valid, key=lambda r: r[2])
    return len(valid), means, warmest


# --------------------------------------------------------------------------
# cell helpers: nbgrader schema v3 metadata, deterministic cell ids
# --------------------------------------------------------------------------
def _meta(grade_id, *, grade=False, solution=False, locked=False, task=False, points=None):
    md = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": task,
    }
    if grade or task:
        assert points is not None and 1 <= points <= 3, grade_id
        md["points"] = points
    return {"nbgrader": md}


def _clean(text: str) -> str:
    return text.strip("\n")


def md(cell_id, text, **nbg):
    cell = new_markdown_cell(_clean(text), id=cell_id)
    if nbg:
        cell.metadata.update(_meta(cell_id, **nbg))
    return cell


def code(cell_id, text, **nbg):
    cell = new_code_cell(_clean(text), id=cell_id)
    if nbg:
        cell.metadata.update(_meta(cell_id, **nbg))
    return cell


def solution(cell_id, text):
    """An autograded answer cell (student writes code here)."""
    return code(cell_id, text, solution=True)


def tests(cell_id, text, points):
    """A read-only autograder test cell."""
    return code(cell_id, text, grade=True, locked=True, points=points)


def readonly(cell_id, text, kind="markdown"):
    return (md if kind == "markdown" else code)(cell_id, text, locked=True)


def notebook(cells):
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


# --------------------------------------------------------------------------
# problems.ipynb
# --------------------------------------------------------------------------
def problems_notebook():
    cells = [
        readonly("intro", """
# Problem set 1: warming up with Python functions

Fill in every cell that says `YOUR CODE HERE` (delete the `raise NotImplementedError()` line)
or `YOUR ANSWER HERE`. The read-only cells below each answer contain some of the tests used to
grade your work; **more tests are hidden** and run only by the autograder. Before submitting,
restart the kernel and run all cells (*Kernel → Restart & Run All*).
"""),
        md("q1-text", """
## Question 1: squares (1 point)

Write `squares(n)` that returns the list of the squares of `0, 1, ..., n - 1`.
For instance `squares(4)` is `[0, 1, 4, 9]`, and `squares(0)` is the empty list.
"""),
        solution("squares", '''
def squares(n):
    """Return the list [0**2, 1**2, ..., (n - 1)**2]."""
    ### BEGIN SOLUTION
    return [i * i for i in range(n)]
    ### END SOLUTION
'''),
        tests("test_squares", '''
"""Check that squares returns the right list."""
assert squares(1) == [0]
assert squares(4) == [0, 1, 4, 9]
### BEGIN HIDDEN TESTS
assert squares(0) == []
assert squares(12)[-1] == 121
assert len(squares(100)) == 100
### END HIDDEN TESTS
''', points=1),
        md("q2-text", """
## Question 2: Fibonacci numbers (3 points)

Write `fibonacci(n)` returning the `n`-th Fibonacci number, with `fibonacci(0) == 0` and
`fibonacci(1) == 1`. It must return an exact `int`, be fast for `n` up to a few hundred
(no naive recursion), and raise a `ValueError` when `n` is negative.
"""),
        solution("fibonacci", '''
def fibonacci(n):
    """Return the n-th Fibonacci number (0, 1, 1, 2, 3, 5, ...)."""
    ### BEGIN SOLUTION
    if n < 0:
        raise ValueError("n must be non-negative")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
    ### END SOLUTION
'''),
        tests("test_fibonacci", '''
"""Check fibonacci on small and large inputs."""
assert fibonacci(0) == 0
assert fibonacci(1) == 1
assert fibonacci(10) == 55
assert isinstance(fibonacci(20), int)
### BEGIN HIDDEN TESTS
assert [fibonacci(i) for i in range(2, 9)] == [1, 2, 3, 5, 8, 13, 21]
assert fibonacci(90) == 2880067194370816120
assert fibonacci(300) % 1000000007 == 644264086
### END HIDDEN TESTS
''', points=2),
        tests("test_fibonacci_negative", '''
"""Check that a negative n is rejected with a ValueError."""
try:
    fibonacci(-1)
except ValueError:
    pass
else:
    raise AssertionError("fibonacci(-1) did not raise ValueError")
''', points=1),
        md("q3-text", """
## Question 3: word counts (3 points)

Write `word_counts(text)` returning a dictionary that maps each word of `text` to the number
of times it occurs. Words are compared case-insensitively (use lower case keys) and surrounding
punctuation such as `.,;:!?"'()` is not part of a word. An empty text gives an empty dictionary.
"""),
        solution("word_counts", '''
def word_counts(text):
    """Count the case-insensitive words of text, ignoring surrounding punctuation."""
    ### BEGIN SOLUTION
    counts = {}
    for raw in text.split():
        word = raw.strip(".,;:!?\\"'()").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts
    ### END SOLUTION
'''),
        tests("test_word_counts", '''
"""Check word_counts on a few sentences."""
assert word_counts("") == {}
assert word_counts("the cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}
assert word_counts("Spam, spam, SPAM!") == {"spam": 3}
### BEGIN HIDDEN TESTS
assert word_counts("  many   spaces\\tand\\nnewlines ") == {"many": 1, "spaces": 1, "and": 1, "newlines": 1}
assert word_counts('"Quoted" (words); work: too?') == {"quoted": 1, "words": 1, "work": 1, "too": 1}
assert word_counts("It's it's") == {"it's": 2}
### END HIDDEN TESTS
''', points=3),
        md("q4-text", """
## Question 4: reflection (2 points, graded by hand)

In two or three sentences: why does `fibonacci` have to avoid the naive recursive definition
`fibonacci(n - 1) + fibonacci(n - 2)`, and what is the running time of your version?
"""),
        md("fibonacci_complexity", """
The naive recursion recomputes the same values over and over, so the number of calls grows
exponentially (roughly like the Fibonacci numbers themselves) and `fibonacci(90)` would never
finish. Keeping only the last two values gives a loop of `n` additions: linear time and
constant memory.
""", grade=True, solution=True, points=2),
        md("task_most_common", """
## Question 5: most common words (2 points, graded by hand)

Use your `word_counts` on the paragraph stored in `PARAGRAPH` below and print the three most
common words together with their counts, most common first. Add as many cells as you need
below this one; your work is graded by hand.
""", task=True, locked=True, points=2),
        readonly("paragraph", '''
PARAGRAPH = """It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of
incredulity."""
''', kind="code"),
        code("task_work", "# Your work for question 5 goes here"),
    ]
    return notebook(cells)


# --------------------------------------------------------------------------
# data_analysis.ipynb
# --------------------------------------------------------------------------
def data_analysis_notebook():
    n_valid, means, warmest = _expected()
    cells = [
        readonly("da-intro", """
# Problem set 1, part 2: weather station data

The file `data/measurements.csv` holds one daily mean temperature per weather station and day,
with the columns `station`, `day` and `temperature_c`. Some readings are missing (the
`temperature_c` field is empty). Use only the standard library (`csv`): no pandas needed.
"""),
        readonly("da-setup", '''
import csv

DATA_PATH = "data/measurements.csv"
''', kind="code"),
        md("da-q1-text", """
## Question 1: loading (1 point)

Write `load_measurements(path)` returning a list of dictionaries, one per row *with* a
temperature, each with the keys `"station"` (a `str`), `"day"` (an `int`) and
`"temperature_c"` (a `float`), in file order. Skip rows whose temperature is missing.
"""),
        solution("load_measurements", '''
def load_measurements(path):
    """Read the CSV file at path into a list of typed dictionaries."""
    ### BEGIN SOLUTION
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if not row["temperature_c"].strip():
                continue
            rows.append({
                "station": row["station"],
                "day": int(row["day"]),
                "temperature_c": float(row["temperature_c"]),
            })
    return rows
    ### END SOLUTION
'''),
        tests("test_load_measurements", f'''
"""Check the loaded rows and their types."""
rows = load_measurements(DATA_PATH)
assert isinstance(rows, list)
assert rows[0] == {{"station": "north", "day": 1, "temperature_c": {measurement_rows()[0][2]!r}}}
assert all(isinstance(r["temperature_c"], float) for r in rows)
### BEGIN HIDDEN TESTS
assert len(rows) == {n_valid}
assert all(isinstance(r["day"], int) for r in rows)
### END HIDDEN TESTS
''', points=1),
        md("da-q2-text", """
## Question 2: mean per station (2 points)

Write `mean_by_station(rows)` returning a dictionary mapping each station to the mean of its
temperatures (missing readings do not count).
"""),
        solution("mean_by_station", '''
def mean_by_station(rows):
    """Return {station: mean temperature} for rows as returned by load_measurements."""
    ### BEGIN SOLUTION
    sums, counts = {}, {}
    for r in rows:
        s = r["station"]
        sums[s] = sums.get(s, 0.0) + r["temperature_c"]
        counts[s] = counts.get(s, 0) + 1
    return {s: sums[s] / counts[s] for s in sums}
    ### END SOLUTION
'''),
        tests("test_mean_by_station", f'''
"""Check the per-station means."""
means = mean_by_station(load_measurements(DATA_PATH))
assert set(means) == set({sorted(STATIONS)!r})
assert abs(means["north"] - {means["north"]!r}) < 1e-3
### BEGIN HIDDEN TESTS
assert abs(means["south"] - {means["south"]!r}) < 1e-3
assert abs(means["east"] - {means["east"]!r}) < 1e-3
assert abs(means["west"] - {means["west"]!r}) < 1e-3
### END HIDDEN TESTS
''', points=2),
        md("da-q3-text", """
## Question 3: warmest reading (2 points)

Write `warmest_reading(rows)` returning the `(station, day, temperature_c)` tuple of the
warmest reading.
"""),
        solution("warmest_reading", '''
def warmest_reading(rows):
    """Return (station, day, temperature_c) of the warmest row."""
    ### BEGIN SOLUTION
    best = max(rows, key=lambda r: r["temperature_c"])
    return best["station"], best["day"], best["temperature_c"]
    ### END SOLUTION
'''),
        tests("test_warmest_reading", f'''
"""Check the warmest reading."""
result = warmest_reading(load_measurements(DATA_PATH))
assert isinstance(result, tuple) and len(result) == 3
assert result[0] == {warmest[0]!r}
### BEGIN HIDDEN TESTS
assert result == {warmest!r}
assert warmest_reading([{{"station": "x", "day": 1, "temperature_c": -5.0}}]) == ("x", 1, -5.0)
### END HIDDEN TESTS
''', points=2),
    ]
    return notebook(cells)


def outputs() -> dict[Path, str]:
    return {
        PS1 / "problems.ipynb": nbformat.writes(problems_notebook()) + "\n",
        PS1 / "data_analysis.ipynb": nbformat.writes(data_analysis_notebook()) + "\n",
        PS1 / "data" / "measurements.csv": measurements_csv(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the committed files differ from what this script generates")
    args = ap.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("out of date: " + ", ".join(str(p.relative_to(HERE.parent)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
