"""Course access and run ids: one run id for both backends, valid wherever a run is named.

A run id names a folder in the store, an Argo workflow and a Kubernetes label value, so the
local runner and `gradeflow submit` share one function, and its ids sort in time order.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines import client, local
from pipelines.argo.workflow import RUN_ID
from steps.course import new_run_id, open_course, run_id_prefix, submission_dirs
from steps.errors import NotFound

ODD_NAMES = ["ps1", "PS 1!", "Problem_Set.2", "ü" * 3, "-x-", "a" * 100]


@pytest.mark.parametrize("assignment", ODD_NAMES)
def test_a_run_id_is_a_valid_workflow_name_and_label_value(assignment: str) -> None:
    run_id = new_run_id(assignment)
    assert RUN_ID.match(run_id), run_id
    assert len(run_id) <= 63
    assert run_id.startswith(run_id_prefix(assignment) + "-")


def test_run_ids_sort_in_time_order_and_differ_within_a_second() -> None:
    t = dt.datetime(2026, 11, 22, 10, 15, 0, tzinfo=dt.timezone.utc)
    ids = [new_run_id("ps1", t + dt.timedelta(microseconds=n)) for n in (0, 1, 999_999, 1_000_000)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert ids[0] == "ps1-20261122-101500-000000"


def test_both_backends_name_runs_with_the_same_function() -> None:
    assert client.new_run_id is new_run_id
    assert local.new_run_id is new_run_id


def test_a_missing_course_is_not_found_with_the_given_advice(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist") as e:
        open_course(tmp_path / "nowhere", "start Jupyter in the course")
    assert e.value.todo == "start Jupyter in the course"


def test_submission_dirs_are_nbgraders_submitted_folders(squares_course: Path) -> None:
    import coursekit as ck

    ck.submit(squares_course, "alice", {"squares": ck.CORRECT})
    (squares_course / "submitted" / "bob").mkdir(parents=True)  # no ps1 inside: not a submission
    _, coursedir = open_course(squares_course)
    assert submission_dirs(coursedir, "ps1") == {"alice": (squares_course / "submitted" / "alice" / "ps1").resolve()}
