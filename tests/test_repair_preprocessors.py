"""gradeflow's repair preprocessors, one at a time, on the squares course's release notebook.

Scenario: the teacher released `ps1/squares.ipynb` (a read-only intro, the `squares` solution
cell, the read-only `test_squares` test cell with hidden tests worth 2 points, the `explain`
written answer). A student breaks it in one way per test; each preprocessor of
steps.preprocessors gets the notebook and the released assignment in `resources`, exactly as
restore hands them over, and must leave a notebook nbgrader's own CheckCellMetadata accepts
and a repair naming the cell.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coursekit as ck  # noqa: E402
from steps.preprocessors import AttributeCells, DemoteDuplicateCells, RestoreDeletedCells, UpgradeCellMetadata  # noqa: E402


@pytest.fixture(scope="module")
def released(squares_built: Path) -> tuple[Any, dict[str, Any]]:
    """(the release notebook, the snapshot's entry for it) as collect exports them."""
    from nbgrader.api import Gradebook
    from traitlets.config import Config

    from steps.snapshot import export_snapshot

    with Gradebook(f"sqlite:///{squares_built / 'gradebook.db'}") as gb:
        snap = export_snapshot(gb, "ps1", Config(), (squares_built / "source" / "ps1",))
    nb = nbformat.read(str(squares_built / "release" / "ps1" / "squares.ipynb"), as_version=4)
    return nb, snap["notebooks"][0], snap


def _run(pp_class: type, nb: Any, spec: dict[str, Any]) -> tuple[Any, list[dict[str, str]]]:
    resources = {"gradeflow": {"notebook": spec, "config": {}, "repairs": []}}
    nb, resources = pp_class().preprocess(nb, resources)
    return nb, resources["gradeflow"]["repairs"]


def _ids(nb: Any) -> list[str | None]:
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def _valid(nb: Any) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nb)


def test_released_notebook_needs_no_repair(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    assert spec["order"] == ["intro", "squares", "test_squares", "explain"]
    for cls in (UpgradeCellMetadata, DemoteDuplicateCells, AttributeCells, RestoreDeletedCells):
        out, repairs = _run(cls, copy.deepcopy(nb), spec)
        assert repairs == [] and out == nb, cls.__name__


def test_upgrade_cell_metadata_reads_a_newer_schema_when_it_is_valid_version_3(released) -> None:
    from nbgrader.nbgraderformat import SchemaTooNewError

    nb, spec = copy.deepcopy(released[0]), released[1]
    nb.cells[2].metadata.nbgrader["schema_version"] = 4
    with pytest.raises(SchemaTooNewError):
        _valid(nb)  # what nbgrader's CheckCellMetadata does: the whole autograde run stops
    out, repairs = _run(UpgradeCellMetadata, nb, spec)
    _valid(out)
    assert out.cells[2].metadata.nbgrader == released[0].cells[2].metadata.nbgrader
    assert repairs == [{"cell": "test_squares", "repair": "schema-version", "reason": repairs[0]["reason"]}]
    assert "schema version 4" in repairs[0]["reason"]


def test_upgrade_cell_metadata_leaves_a_newer_schema_it_cannot_read(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    meta = nb.cells[2].metadata.nbgrader
    meta["schema_version"] = 4
    del meta["points"]  # a grade cell without points is no version-3 metadata
    out, repairs = _run(UpgradeCellMetadata, copy.deepcopy(nb), spec)
    assert repairs == [] and out == nb


def test_upgrade_cell_metadata_upgrades_an_older_schema_with_nbgraders_upgrade(released) -> None:
    from nbgrader.nbgraderformat import MetadataValidator, SchemaTooOldError

    nb, spec = copy.deepcopy(released[0]), released[1]
    meta = nb.cells[2].metadata.nbgrader
    meta["schema_version"] = 1  # version 1 had no `task` flag
    del meta["task"]
    with pytest.raises(SchemaTooOldError):
        _valid(nb)
    expected = MetadataValidator().upgrade_cell_metadata(copy.deepcopy(nb.cells[2])).metadata
    out, repairs = _run(UpgradeCellMetadata, nb, spec)
    _valid(out)
    assert out.cells[2].metadata == expected and out.cells[2].metadata.nbgrader["schema_version"] == 3
    assert [r["cell"] for r in repairs] == ["test_squares"] and "version 1" in repairs[0]["reason"]


def test_demote_duplicate_cells_keeps_the_released_copy_wherever_it_is(released) -> None:
    from nbgrader.preprocessors import DeduplicateIds

    nb, spec = copy.deepcopy(released[0]), released[1]
    fake = copy.deepcopy(nb.cells[2])
    fake.source = "assert True  # my copy"
    nb.cells.insert(2, fake)  # the edited copy ABOVE the original
    # nbgrader keeps the last one and empties the other's metadata (then fails validation)
    theirs, _ = DeduplicateIds().preprocess(copy.deepcopy(nb), {})
    assert theirs.cells[2].metadata.nbgrader == {} and theirs.cells[3].metadata.nbgrader["grade_id"] == "test_squares"
    out, repairs = _run(DemoteDuplicateCells, nb, spec)
    _valid(out)
    assert "nbgrader" not in out.cells[2].metadata and out.cells[2].source == fake.source
    assert out.cells[3].metadata.nbgrader["grade_id"] == "test_squares"
    assert repairs[0]["cell"] == "test_squares" and "appears 2 times" in repairs[0]["reason"]


def test_demote_duplicate_cells_keeps_the_first_when_none_is_released(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    nb.cells[1].source = ck.CORRECT
    nb.cells.insert(2, copy.deepcopy(nb.cells[1]))  # the student's answer, copied below itself
    out, repairs = _run(DemoteDuplicateCells, nb, spec)
    _valid(out)
    assert _ids(out) == ["intro", "squares", None, "test_squares", "explain"] and len(repairs) == 1


def test_attribute_cells_grades_a_renamed_cell_as_the_released_one(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    nb.cells[2].metadata.nbgrader["grade_id"] = "test_squares_v2"
    out, repairs = _run(AttributeCells, nb, spec)
    _valid(out)
    assert _ids(out) == ["intro", "squares", "test_squares", "explain"]
    assert repairs[0]["cell"] == "test_squares" and "'test_squares_v2'" in repairs[0]["reason"]


def test_attribute_cells_finds_a_cell_whose_metadata_was_removed(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    del nb.cells[2].metadata["nbgrader"]  # the test cell: found by its released source
    del nb.cells[1].metadata["nbgrader"]  # the answer cell: the only code cell in its place
    nb.cells[1].source = ck.CORRECT
    out, repairs = _run(AttributeCells, nb, spec)
    _valid(out)
    assert _ids(out) == ["intro", "squares", "test_squares", "explain"]
    assert out.cells[2].metadata.nbgrader == {
        k: v for k, v in released[0].cells[2].metadata.nbgrader.items() if k not in ("checksum", "cell_type")
    } | {"points": 2.0}
    assert {r["cell"]: r["repair"] for r in repairs} == {"squares": "attributed", "test_squares": "attributed"}


def test_attribute_cells_restores_edited_flags_and_demotes_unknown_cells(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    nb.cells[2].metadata.nbgrader["solution"] = True
    mine = nbformat.v4.new_code_cell(
        "assert True", metadata={"nbgrader": dict(nb.cells[2].metadata.nbgrader, grade_id="bonus", points=100)}
    )
    nb.cells.append(mine)  # a grade cell of the student's own making
    out, repairs = _run(AttributeCells, nb, spec)
    _valid(out)
    assert out.cells[2].metadata.nbgrader["solution"] is False
    assert "nbgrader" not in out.cells[4].metadata
    assert {r["cell"]: r["repair"] for r in repairs} == {"test_squares": "metadata", "bonus": "unknown-cell"}


def test_attribute_cells_leaves_a_deleted_read_only_cell_to_be_put_back(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    del nb.cells[2]
    nb.cells.insert(2, nbformat.v4.new_code_cell("print(squares(3))"))  # the student's own cell in its place
    out, repairs = _run(AttributeCells, copy.deepcopy(nb), spec)
    assert repairs == [] and out == nb  # a plain cell is never taken for a read-only test


def test_restore_deleted_cells_puts_cells_back_where_they_were(released, tmp_path: Path) -> None:
    from nbgrader.preprocessors import OverwriteCells

    from steps.snapshot import scratch_gradebook

    nb, spec = copy.deepcopy(released[0]), released[1]
    del nb.cells[2]  # test_squares
    del nb.cells[0]  # intro, the first cell
    nb.cells[0].source = ck.CORRECT
    out, repairs = _run(RestoreDeletedCells, nb, spec)
    _valid(out)
    assert _ids(out) == ["intro", "squares", "test_squares", "explain"]
    assert [(r["cell"], r["repair"]) for r in repairs] == [("intro", "deleted"), ("test_squares", "deleted")]
    assert "after 'squares'" in repairs[1]["reason"] and "at the top" in repairs[0]["reason"]
    assert out.cells[2].metadata.nbgrader["points"] == 2.0 and out.cells[0].metadata.nbgrader["grade"] is False
    # nbgrader's OverwriteCells then restores the test, hidden tests included, as for a kept cell
    db = scratch_gradebook(released[2], tmp_path)
    out, _ = OverwriteCells().preprocess(out, {"nbgrader": {"notebook": "squares", "assignment": "ps1", "db_url": db}})
    assert out.cells[2].source == ck.TESTS


def test_restore_deleted_cells_leaves_a_deleted_answer_deleted(released) -> None:
    nb, spec = copy.deepcopy(released[0]), released[1]
    del nb.cells[1]  # the student's own answer cell: nbgrader does not put it back either
    out, repairs = _run(RestoreDeletedCells, copy.deepcopy(nb), spec)
    assert repairs == [] and out == nb
