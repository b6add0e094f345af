"""Shared SQLAlchemy engines for nbgrader's Gradebook (steps/gradebook.py) and fast start-up.

Scenario: the squares course's snapshot is exported, scratch gradebooks are made from it in one
reused directory, as a worker does for submission after submission; the course's own
gradebook is opened through nbgrader as merge does. Engines must be shared, scratch gradebooks
must start empty every time and skip fsync, the course's gradebook must keep SQLite's
durable settings. Then: `gradeflow grade` must not pay for Hera or rfc3987_syntax imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from steps.course import assignment_gradebook, open_course
from steps.gradebook import share_engines
from steps.snapshot import export_snapshot, scratch_gradebook


@pytest.fixture
def snapshot(squares_course: Path) -> dict[str, Any]:
    config, coursedir = open_course(squares_course)
    gb = assignment_gradebook(coursedir, "ps1")
    try:
        return export_snapshot(gb, "ps1", config)
    finally:
        gb.close()


def _synchronous(gb: Any) -> int:
    from sqlalchemy import text

    return gb.db.execute(text("PRAGMA synchronous")).scalar()


def test_nbgrader_reuses_one_engine_per_database(squares_course: Path) -> None:
    from nbgrader.api import Gradebook

    share_engines()
    url = f"sqlite:///{squares_course / 'gradebook.db'}"
    with Gradebook(url) as a:
        first = a.engine
        assert a.find_assignment("ps1").name == "ps1"
    with Gradebook(url) as b:  # closed and opened again, as SaveAutoGrades does per notebook
        assert b.engine is first
        assert b.find_assignment("ps1").name == "ps1"
        assert _synchronous(b) == 2  # the course's gradebook keeps SQLite's FULL sync


def test_a_reused_scratch_directory_starts_from_the_snapshot_every_time(
    snapshot: dict[str, Any], tmp_path: Path
) -> None:
    from nbgrader.api import Gradebook

    url = scratch_gradebook(snapshot, tmp_path)
    with Gradebook(url) as gb:
        gb.update_or_create_student("alice")
        gb.update_or_create_submission("ps1", "alice")
        assert _synchronous(gb) == 0  # throwaway: no fsync
        engine = gb.engine
    again = scratch_gradebook(snapshot, tmp_path)  # the next submission in the same worker
    assert again == url
    with Gradebook(again) as gb:
        assert gb.engine is engine  # same URL, same engine: compiled statements are reused
        assert [s.id for s in gb.students] == []  # nothing of the previous submission
        assert [nb.name for nb in gb.find_assignment("ps1").notebooks] == [nb["name"] for nb in snapshot["notebooks"]]


def test_local_commands_start_without_hera_or_rfc3987_syntax() -> None:
    code = (
        "import sys, json\n"
        "from pipelines.cli import build_parser\n"
        "import nbformat\n"
        "build_parser(argo=False).parse_args(['grade', '/c', 'ps1'])\n"
        "nb = nbformat.v4.new_notebook(); nbformat.validate(nb)\n"
        "nb.cells.append({'cell_type': 'bogus'})\n"
        "try:\n    nbformat.validate(nb); invalid_caught = False\n"
        "except nbformat.ValidationError:\n    invalid_caught = True\n"
        "print(json.dumps({'hera': any(m.startswith('hera') for m in sys.modules),"
        " 'rfc3987_syntax': sys.modules.get('rfc3987_syntax', 'absent') is not None,"
        " 'invalid_caught': invalid_caught}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"hera": False, "rfc3987_syntax": False, "invalid_caught": True}


def test_the_full_cli_still_has_the_argo_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("grade", "submit", "watch", "retry"):
        assert command in out
