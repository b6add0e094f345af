"""nbgrader's preprocessor lists, as a course configures them, cut where student code runs.

Scenario: one course keeps nbgrader's defaults, another sets `c.Autograde.*_preprocessors` in
its nbgrader_config.py. restore runs the sanitize list (and anything the autograde list puts
before Execute), score what comes after Execute, merge the gradebook writers among those:
the lists `nbgrader autograde` would run, read from the snapshot collect exported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    Execute,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets.config import Config

from steps.collect import collect
from steps.errors import TeacherError
from steps.nbgrader_pipeline import merge_preprocessors, restore_preprocessors, run_preprocessors, score_preprocessors
from steps.snapshot import snapshot_config


def kinds(preprocessors: list) -> list[type]:
    return [type(p) for p in preprocessors]


def test_without_course_settings_the_lists_are_nbgraders_defaults() -> None:
    assert kinds(restore_preprocessors({})) == [
        ClearOutput,
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    assert kinds(score_preprocessors({})) == [
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    assert kinds(merge_preprocessors({})) == [SaveAutoGrades, AssignLatePenalties]


def test_a_configured_list_is_cut_at_execute_and_travels_through_the_snapshot_as_json() -> None:
    c = Config()
    c.Autograde.sanitize_preprocessors = [ClearOutput, OverwriteCells]
    c.Autograde.autograde_preprocessors = [DeduplicateIds, Execute, SaveAutoGrades, LimitOutput]
    c.LimitOutput.max_lines = 7
    exported = json.loads(json.dumps(snapshot_config(c)))  # what restore and score read
    assert kinds(restore_preprocessors(exported)) == [ClearOutput, OverwriteCells, DeduplicateIds]
    score = score_preprocessors(exported)
    assert kinds(score) == [SaveAutoGrades, LimitOutput] and score[1].max_lines == 7  # built with the course's config
    assert kinds(merge_preprocessors(exported)) == [SaveAutoGrades]


def test_a_preprocessor_gradeflow_cannot_import_is_named_to_the_teacher() -> None:
    with pytest.raises(TeacherError, match=r"c.Autograde.autograde_preprocessors names 'mycourse.Nope'"):
        score_preprocessors({"Autograde": {"autograde_preprocessors": ["mycourse.Nope"]}})


def test_collect_exports_the_courses_lists_from_nbgrader_config(squares_course: Path, tmp_path: Path) -> None:
    with open(squares_course / "nbgrader_config.py", "a") as f:
        f.write(
            "c.Autograde.sanitize_preprocessors = "
            "['nbgrader.preprocessors.ClearOutput', 'nbgrader.preprocessors.OverwriteCells']\n"
        )
    collect(squares_course, "ps1", tmp_path / "ws")
    snapshot = json.loads((tmp_path / "ws" / "snapshot.json").read_text())
    assert kinds(restore_preprocessors(snapshot["config"])) == [ClearOutput, OverwriteCells]
    assert kinds(score_preprocessors(snapshot["config"]))[0] is IgnorePattern  # the autograde list is still nbgrader's


@pytest.mark.parametrize("enabled", [True, False])
def test_a_preprocessor_the_course_disabled_stays_in_the_list_and_does_not_run(enabled: bool) -> None:
    config = {"LimitOutput": {"enabled": enabled, "max_lines": 2}}
    limit = [p for p in score_preprocessors(config) if isinstance(p, LimitOutput)]
    assert len(limit) == 1  # listed either way, as nbgrader lists it
    nb = new_notebook(
        cells=[new_code_cell("print", outputs=[new_output("stream", name="stdout", text="1\n2\n3\n4\n")])]
    )
    nb, _ = run_preprocessors(limit, nb, {})
    text = nb.cells[0].outputs[0].text
    assert (text != "1\n2\n3\n4\n") is enabled  # cut to two lines only when enabled
