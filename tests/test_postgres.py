"""A course whose gradebook lives in PostgreSQL is graded exactly like a SQLite course.

Scenario: nbgrader's FAQ sends multi-grader courses to a database server
(`c.CourseDirectory.db_url = "postgresql://…"`). A real PostgreSQL 15 server runs for the
session (tests/pgserver.py); each course gets its own database, and the grader role logs in
over 127.0.0.1 with a password that no output may show. Then:

- parity: the example course graded by `nbgrader autograde` into one database and by
  gradeflow into a copy of it must agree cell by cell;
- every path uses the configured database: a local grade, a rerun that regrades only what
  changed, a forced retry of a failed submission, the Jupyter page (list, start, progress,
  retry) and `gradeflow sync` of an Argo run from a real S3 API (moto); no gradebook.db appears;
- Formgrader (its real HTTP API, in the same Jupyter server) saves a manual grade while
  gradeflow's merge holds that submission's transaction open, and a second grader's comment
  is in flight at the same time: all three writes survive and gradeflow does not fail;
- a server that is down or refuses the login stops the run before anything is graded (exit 2,
  the URL shown with its password hidden); a connection killed in the middle of a
  submission (pg_terminate_backend) leaves none of that submission, and a rerun completes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from processes import JupyterServer, free_port  # noqa: E402

import coursekit as ck  # noqa: E402
import parity  # noqa: E402
import pgserver  # noqa: E402
from pipelines.local import GradeOptions, grade  # noqa: E402
from steps.contract import EXIT_USAGE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "Each call squares the numbers 1..n."


def gradeflow(*args: str, wait: bool = True, **kw: Any) -> Any:
    cmd = [sys.executable, "-m", "pipelines.cli", *args]
    if not wait:
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **kw
        )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, **kw)


def db_name(course: Path) -> str:
    from sqlalchemy.engine import make_url

    from steps.course import open_course

    return make_url(open_course(course)[1].db_url).database


def grades(course: Path, student: str, notebook: str = "squares") -> dict[str, Any]:
    """Every grade and comment of one student's notebook, as the course's gradebook holds them."""
    from nbgrader.api import Gradebook

    from steps.course import open_course

    out: dict[str, Any] = {}
    with Gradebook(open_course(course)[1].db_url, "test-course") as gb:
        sub = gb.find_submission("ps1", student)
        out["timestamp"] = sub.timestamp.isoformat() if sub.timestamp else None
        out["score"] = sub.score
        nb = gb.find_submission_notebook(notebook, "ps1", student)
        for g in nb.grades:
            out[g.name] = {
                "auto_score": g.auto_score,
                "manual_score": g.manual_score,
                "extra_credit": g.extra_credit,
                "needs_manual_grade": g.needs_manual_grade,
            }
        for c in nb.comments:
            out[f"comment:{c.name}"] = {"auto_comment": c.auto_comment, "manual_comment": c.manual_comment}
    return out


def no_password_anywhere(course: Path, *texts: str) -> None:
    """The grader's password is in nbgrader_config.py and nowhere else: not in output, not in a run's files."""
    for text in texts:
        assert pgserver.PASSWORD not in text
    for path in (course / "gradeflow_runs").rglob("*"):
        if path.is_file():
            assert pgserver.PASSWORD.encode() not in path.read_bytes(), path


def blocked_by(pg: pgserver.PgServer, database: str, holder: int, timeout: float = 240) -> int:
    """The pid of a backend of `database` that waits for a lock `holder` holds (waits for one to appear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = pg.admin(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND %s = ANY(pg_blocking_pids(pid))", database, holder
        )
        if rows:
            return rows[0][0]
        time.sleep(0.2)
    raise AssertionError(f"no backend of {database} waited for pid {holder} within {timeout} s")


@contextlib.contextmanager
def comment_in_flight(course: Path, student: str, text: str) -> Iterator[Any]:
    """A second grader's Formgrader comment on `explain`, saved (UPDATE sent) but not yet committed:
    the row stays locked until the block ends. Yields (gradebook, backend pid)."""
    from nbgrader.api import Gradebook
    from sqlalchemy import text as sql

    from steps.course import open_course

    gb = Gradebook(open_course(course)[1].db_url, "test-course")
    try:
        comment = gb.find_comment("explain", "squares", "ps1", student)
        comment.manual_comment = text
        gb.db.flush()
        yield gb, gb.db.execute(sql("SELECT pg_backend_pid()")).scalar()
    finally:
        gb.close()


@pytest.fixture(scope="module")
def pg_squares(postgres: pgserver.PgServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The squares course built by nbgrader's generate_assignment straight into PostgreSQL (the template database)."""
    url = postgres.course_database("squares_template")
    return ck.squares_course(
        tmp_path_factory.mktemp("pg-squares") / "course", config=f"c.CourseDirectory.db_url = {url!r}\n"
    )


def pg_copy(postgres: pgserver.PgServer, built: Path, dest: Path, name: str) -> Path:
    """A copy of a built course with its own copy of the database."""
    course = ck.copy_course(built, dest)
    pgserver.use_database(course, postgres.course_database(name, template=db_name(built)))
    assert db_name(course) == name
    return course


# --- 2. parity --------------------------------------------------------------------------------


@pytest.mark.slow
def test_scores_equal_nbgrader_autograde_into_postgres(postgres: pgserver.PgServer, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_course", ROOT / "examples" / "make_course.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    theirs = mc.make_course(
        tmp_path / "nbgrader", variants=mc.CHEAP_VARIANTS, db_url=postgres.course_database("parity_nbgrader")
    )
    ours = pg_copy(postgres, theirs, tmp_path / "gradeflow", "parity_gradeflow")
    proc = parity.run_nbgrader(theirs, "autograde", "ps1", "--force")
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    results = grade(ours, "ps1", GradeOptions(jobs=2))
    p = parity.compare(theirs, ours, results)
    print(f"parity example course in PostgreSQL: {p.line()}")
    assert not p.different, p.different
    assert not p.skipped_above
    assert (
        len(p.identical) == len(parity.gradebook_grades(theirs)) >= len(mc.CHEAP_VARIANTS)
    )  # every grade cell of every student
    assert not (ours / "gradebook.db").exists() and not (theirs / "gradebook.db").exists()
    no_password_anywhere(ours, json.dumps(results))


# --- 3. every path uses the configured database ------------------------------------------------


def test_grade_rerun_and_retry_write_the_postgres_gradebook(
    postgres: pgserver.PgServer, pg_squares: Path, tmp_path: Path
) -> None:
    from nbgrader.api import Gradebook

    course = ck.submit_kinds(
        pg_copy(postgres, pg_squares, tmp_path / "course", "local_paths"), ["good", "wrong", "crash", "broken"]
    )
    first = grade(course, "ps1", GradeOptions(jobs=2))
    assert first["counts"]["graded"] == 2 and first["counts"]["failed"] == 1 and first["counts"]["skipped"] == 1
    assert grades(course, "good")["test_squares"]["auto_score"] == 2.0
    assert grades(course, "wrong")["test_squares"]["auto_score"] == 0.0
    assert grades(course, "crash")["test_squares"] == {
        "auto_score": 0.0,
        "manual_score": None,
        "extra_credit": None,
        "needs_manual_grade": True,
    }

    # rerun: only what changed (wrong's new answer), and what did not finish (crash, broken)
    ck.submit(course, "wrong", {"squares": ck.CORRECT}, timestamp="2026-11-21 09:00:00.000000 UTC")
    second = grade(course, "ps1", GradeOptions(jobs=2))
    assert second["unchanged"] == ["good"]
    assert sorted(s["student"] for s in second["students"]) == ["broken", "crash", "wrong"]
    assert grades(course, "wrong")["test_squares"]["auto_score"] == 2.0
    assert grades(course, "wrong")["timestamp"].startswith("2026-11-21T09:00:00")

    # retry of the failed one, forced, after a grader gave it a manual score: the score stays
    with Gradebook(f"{postgres.url('local_paths')}", "test-course") as gb:
        g = gb.find_grade("test_squares", "squares", "ps1", "crash")
        g.manual_score = 1.0
        gb.db.commit()
    retried = grade(course, "ps1", GradeOptions(jobs=1, students=["crash"], force=True))
    assert [s["student"] for s in retried["students"]] == ["crash"]
    assert grades(course, "crash")["test_squares"] == {
        "auto_score": 0.0,
        "manual_score": 1.0,
        "extra_credit": None,
        "needs_manual_grade": True,
    }
    with Gradebook(postgres.url("local_paths"), "test-course") as gb:
        assert len(gb.find_assignment("ps1").submissions) == 4  # graded three times, recorded once each
    assert not (course / "gradebook.db").exists()
    no_password_anywhere(course, json.dumps([first, second, retried]))


@pytest.fixture(scope="module")
def page_course(postgres: pgserver.PgServer, pg_squares: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pg-jupyter")
    course = ck.submit_kinds(
        pg_copy(postgres, pg_squares, root / "course", "jupyter_page"), ["good", "crash", "broken"]
    )
    ck.submit(course, "alice", {"squares": ck.WRONG})
    return course


@pytest.fixture(scope="module")
def jupyter(page_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with JupyterServer(page_course, tmp_path_factory.mktemp("pg-jupyter-home")) as server:
        yield server


def follow(jupyter: JupyterServer, job: dict[str, Any], timeout: float = 300) -> tuple[dict[str, Any], list[int]]:
    """Poll a job until it ends; return it and the `done` counts seen on the way."""
    seen, deadline = [], time.monotonic() + timeout
    while job["state"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        status, job = jupyter.call("GET", f"gradeflow/api/jobs/{job['id']}")
        assert status == 200, job
        seen.append(job["done"])
    return job, seen


def test_the_jupyter_page_lists_grades_and_retries_from_postgres(jupyter: JupyterServer, page_course: Path) -> None:
    status, course = jupyter.call("GET", "gradeflow/api/course")
    assert status == 200 and "error" not in course, course
    assert course["course_id"] == "test-course"
    assert [(a["name"], a["submissions"]) for a in course["assignments"]] == [("ps1", 4)]

    status, job = jupyter.call("POST", "gradeflow/api/jobs", {"assignment": "ps1"})
    assert status == 201, job
    job, seen = follow(jupyter, job)
    assert job["state"] == "done", (job.get("error"), job.get("log_tail"))
    assert seen and seen[-1] == 4 and job["total"] == 4
    assert job["summary"]["failed_students"] == ["crash"]
    assert grades(page_course, "good")["test_squares"]["auto_score"] == 2.0
    assert grades(page_course, "alice")["test_squares"]["auto_score"] == 0.0

    status, retry = jupyter.call("POST", f"gradeflow/api/jobs/{job['id']}/retry")
    assert status == 201, retry
    retry, _ = follow(jupyter, retry)
    assert retry["state"] == "done" and retry["students"] == ["crash"] and retry["retry_of"] == job["id"]
    assert grades(page_course, "crash")["test_squares"]["needs_manual_grade"] is True
    assert not (page_course / "gradebook.db").exists()
    no_password_anywhere(page_course, json.dumps([course, job, retry]), jupyter.log.read_text())


# --- 4. Formgrader writes while gradeflow merges -----------------------------------------------


def test_formgrader_saves_a_manual_grade_while_gradeflow_merges(
    postgres: pgserver.PgServer, jupyter: JupyterServer, page_course: Path
) -> None:
    """Three writers on alice's notebook at once, each waiting for the other's row lock, none lost.

    A second grader's comment on `explain` is saved but not committed; alice resubmitted a
    correct answer, so gradeflow's merge updates `test_squares` (its row is now locked by
    merge's transaction) and then waits for the comment's row. Formgrader now saves a manual
    grade for `test_squares` through its HTTP API and waits for merge. PostgreSQL shows each
    wait. When the comment commits, merge commits, then Formgrader's save goes through.
    """
    database = db_name(page_course)
    ck.submit(page_course, "alice", {"squares": ck.WRONG})
    assert gradeflow("grade", str(page_course), "ps1", "--student", "alice", "--force", "--jobs", "1").returncode == 0
    assert grades(page_course, "alice")["test_squares"]["auto_score"] == 0.0
    ck.submit(
        page_course, "alice", {"squares": ck.CORRECT, "explain": ANSWER}, timestamp="2026-11-21 08:00:00.000000 UTC"
    )

    with comment_in_flight(page_course, "alice", "see me after class") as (other_grader, other_pid):
        run = gradeflow("grade", str(page_course), "ps1", "--student", "alice", "--jobs", "1", wait=False)
        try:
            merge_pid = blocked_by(postgres, database, other_pid)  # merge waits for the comment's row ...
            from nbgrader.api import Gradebook

            with Gradebook(postgres.url(database), "test-course") as gb:  # a read never waits
                grade_id = gb.find_grade("test_squares", "squares", "ps1", "alice").id
                assert gb.find_grade("test_squares", "squares", "ps1", "alice").auto_score == 0.0, (
                    "merge has not committed"
                )
            answer: dict[str, Any] = {}
            saver = threading.Thread(
                target=lambda: answer.update(
                    r=jupyter.call(
                        "PUT",
                        f"formgrader/api/grade/{grade_id}",
                        {"manual_score": 1.5, "extra_credit": 0.5},
                        timeout=120,
                    )
                )
            )
            saver.start()
            blocked_by(postgres, database, merge_pid, timeout=60)  # ... and Formgrader waits for merge's
            assert saver.is_alive()
            other_grader.db.commit()
        except BaseException:
            run.kill()
            raise
        out, err = run.communicate(timeout=240)
    saver.join(120)
    assert run.returncode == 0, err[-3000:]
    assert answer["r"][0] == 200, answer
    final = grades(page_course, "alice")
    assert final["test_squares"] == {
        "auto_score": 2.0,
        "manual_score": 1.5,
        "extra_credit": 0.5,
        "needs_manual_grade": False,
    }
    assert final["comment:explain"] == {"auto_comment": None, "manual_comment": "see me after class"}
    assert final["timestamp"].startswith("2026-11-21T08:00:00")
    assert final["score"] == 2.0  # Formgrader's manual 1.5 + 0.5 extra credit overrides the auto score, as in nbgrader
    print(
        "concurrency: merge waited for a grader's comment, Formgrader waited for merge; both committed;"
        f" final {final['test_squares']}"
    )


# --- 3. sync of an Argo run --------------------------------------------------------------------

from test_argo_e2e import BUCKET, s3  # noqa: E402,F401 - the moto S3 server fixture


def test_sync_of_an_argo_run_writes_the_postgres_gradebook(
    postgres: pgserver.PgServer,
    pg_squares: Path,
    s3: Any,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    from argo_emulator import Emulator
    from pipelines.argo.workflow import build_template
    from pipelines.client import sync

    course = ck.alice_and_bob(pg_copy(postgres, pg_squares, tmp_path / "course", "argo_sync"))
    run = Emulator(build_template().to_dict(), {"assignment": "ps1", "run-id": "pg-1"}, f"s3://{BUCKET}", course).run()
    assert run.phase == "Succeeded", [p.log[-1500:] for p in run.pods if p.exit_code]
    results = sync(f"s3://{BUCKET}/gradeflow/pg-1", course)
    assert results["gradebook"] == postgres.url("argo_sync").replace(pgserver.PASSWORD, "***")
    assert grades(course, "alice")["score"] == 2.0 and grades(course, "bob")["score"] == 0.0
    assert (course / "autograded" / "alice" / "ps1" / "squares.ipynb").is_file()
    assert not (course / "gradebook.db").exists()
    no_password_anywhere(course, json.dumps(results), *(p.log for p in run.pods))


# --- 5. failure modes --------------------------------------------------------------------------


def test_a_database_that_is_down_or_refuses_the_login_stops_before_grading(
    postgres: pgserver.PgServer, pg_squares: Path, tmp_path: Path
) -> None:
    from pipelines.client import sync
    from pipelines.jupyter.handlers import _course
    from steps.errors import GradebookUnavailable

    down_port = free_port()
    cases = {
        "down": (postgres.url("squares_template", port=down_port), "Connection refused"),
        "login refused": (
            postgres.url("squares_template", password="not-" + pgserver.PASSWORD),
            "password authentication failed",
        ),
    }
    for name, (url, reason) in cases.items():
        course = ck.submit_kinds(ck.copy_course(pg_squares, tmp_path / name.replace(" ", "-")), ["good"])
        pgserver.use_database(course, url)
        run = gradeflow("grade", str(course), "ps1")
        shown = url.replace(url.split(":")[2].split("@")[0], "***")  # what sqlalchemy's hide_password shows
        assert run.returncode == EXIT_USAGE, (name, run.returncode, run.stderr[-2000:])
        assert "Traceback" not in run.stderr, run.stderr
        headline = [line for line in run.stderr.splitlines() if line.startswith("gradeflow: ")][-1]
        assert headline.startswith(f"gradeflow: cannot open the gradebook database {shown}: "), headline
        assert reason in headline and "start the database server" in headline, headline
        password = url.split(":")[2].split("@")[0]
        assert password not in run.stderr + run.stdout
        assert not (course / "autograded").exists()
        assert not [p for p in (course / "gradeflow_runs").glob("ps1-*")], "nothing graded, no run folder"
        with pytest.raises(GradebookUnavailable) as page:  # the Jupyter page says the same
            _course(course)
        assert shown in str(page.value) and pgserver.PASSWORD not in str(page.value)
        with pytest.raises(GradebookUnavailable):  # and sync, before downloading anything
            sync("s3://nowhere/gradeflow/x", course)


def test_a_connection_lost_mid_submission_writes_none_of_it_and_a_rerun_completes(
    postgres: pgserver.PgServer, pg_squares: Path, tmp_path: Path
) -> None:
    course = pg_copy(postgres, pg_squares, tmp_path / "course", "lost_connection")
    database = db_name(course)
    ck.submit(course, "alice", {"squares": ck.WRONG})
    assert gradeflow("grade", str(course), "ps1", "--jobs", "1").returncode == 0
    before = grades(course, "alice")
    autograded = course / "autograded" / "alice" / "ps1" / "squares.ipynb"
    notebook_before = autograded.read_bytes()
    ck.submit(course, "alice", {"squares": ck.CORRECT, "explain": ANSWER}, timestamp="2026-11-21 08:00:00.000000 UTC")

    with comment_in_flight(course, "alice", "draft") as (other_grader, other_pid):
        run = gradeflow("grade", str(course), "ps1", "--jobs", "1", wait=False)
        try:
            merge_pid = blocked_by(postgres, database, other_pid)  # merge is inside alice's submission
            assert postgres.admin("SELECT pg_terminate_backend(%s)", merge_pid) == [(True,)]
            out, err = run.communicate(timeout=120)
        except BaseException:
            run.kill()
            raise
        other_grader.db.rollback()
    shown = postgres.url(database).replace(pgserver.PASSWORD, "***")
    assert run.returncode == EXIT_USAGE, err[-3000:]
    headline = [line for line in err.splitlines() if line.startswith("gradeflow: ")][-1]
    assert headline.startswith(
        f"gradeflow: lost the gradebook database {shown} while writing alice's ps1: terminating connection"
    ), headline
    assert "nothing of alice's ps1 was written" in headline and "run the same command again" in headline
    assert pgserver.PASSWORD not in out + err
    assert grades(course, "alice") == before, "half a submission was written"
    assert autograded.read_bytes() == notebook_before

    rerun = gradeflow("grade", str(course), "ps1", "--jobs", "1")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = grades(course, "alice")
    assert after["test_squares"]["auto_score"] == 2.0 and after["comment:explain"]["auto_comment"] is None
    assert after["timestamp"].startswith("2026-11-21T08:00:00")
    assert autograded.read_bytes() != notebook_before
    no_password_anywhere(course, rerun.stdout, rerun.stderr)


def test_a_server_that_dropped_idle_connections_between_submissions_is_not_a_lost_database(
    postgres: pgserver.PgServer, pg_squares: Path
) -> None:
    """The run's pooled connection dies between two submissions (a server restart, an idle timeout):
    the next submission reconnects instead of reporting the gradebook lost."""
    from nbgrader.api import Gradebook

    from steps.gradebook import one_transaction

    url = postgres.course_database("idle_drop", template=db_name(pg_squares))
    with one_transaction(url), Gradebook(url, "test-course") as gb:
        gb.update_or_create_student("first")
    killed = postgres.admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'idle_drop' AND pid <> pg_backend_pid()"
    )
    assert killed, "the pooled connection was there to kill"
    with one_transaction(url), Gradebook(url, "test-course") as gb:
        gb.update_or_create_student("second")
    with Gradebook(url, "test-course") as gb:
        assert {"first", "second"} <= {s.id for s in gb.students}
