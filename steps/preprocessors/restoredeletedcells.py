"""RestoreDeletedCells: a deleted test, task or read-only cell is put back where it was.

nbgrader (with its default `OverwriteCells.add_missing_cells = False`) grades a notebook
whose test cell was deleted as if the test failed, silently; with `add_missing_cells` it
puts grade cells back after the previous *grade or solution* cell (a KeyError when that one
is a read-only text cell) and task cells at the end. Here every released cell the student
cannot legitimately remove, i.e. a grade cell, a task cell or a locked cell, is put back
after the nearest cell before it in the source notebook that is still there, built by
nbgrader's own `OverwriteCells.missing_cell_transform` (with the course's
`missing_cell_notification`). OverwriteCells then restores its source, hidden tests
included, exactly as for the cells that were kept. Deleted solution cells are the student's
own work and stay deleted, as in nbgrader.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from nbformat import from_dict
from nbformat.corpus.words import generate_corpus_id as random_cell_id
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.preprocessors import OverwriteCells
from traitlets.config import Config

from .base import RepairPreprocessor, grade_id, is_nbgrader_cell, original_metadata, source_order

__all__ = ["RestoreDeletedCells"]


class RestoreDeletedCells(RepairPreprocessor):
    """Put back every missing grade, task or locked cell at its released position."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        spec = self.spec(resources)
        cells = {c["name"]: c for c in spec["source_cells"]}
        order = [n for n in source_order(spec) if n in cells]
        grade = {c["name"] for c in spec["grade_cells"]}
        task = {c["name"] for c in spec["task_cells"]}
        overwrite = OverwriteCells(config=Config(resources.get("gradeflow", {}).get("config") or {}))
        for k, name in enumerate(order):
            present = {grade_id(c): i for i, c in enumerate(nb.cells) if grade_id(c) in cells and is_nbgrader_cell(c)}
            src = cells[name]
            if name in present or not (name in grade or name in task or src["locked"]):
                continue
            meta = original_metadata(spec, name)
            if meta["grade"] or meta["task"]:
                cell = from_dict(
                    overwrite.missing_cell_transform(
                        SimpleNamespace(
                            **{key: src[key] for key in ("name", "cell_type", "locked", "source", "checksum")}
                        ),
                        meta["points"],
                        is_solution=meta["solution"],
                        is_task=meta["task"],
                    )
                )
                cell.metadata.nbgrader.update(meta)
            else:  # a read-only text or code cell: no grade cell, so not nbgrader's missing-cell form
                new = new_code_cell if src["cell_type"] == "code" else new_markdown_cell
                cell = new(
                    src["source"],
                    metadata={"deletable": False, "editable": False, "nbgrader": dict(meta, checksum=src["checksum"])},
                )
            if nb.get("nbformat_minor", 0) >= 5:  # cell ids came with nbformat 4.5
                cell.setdefault("id", random_cell_id())
            else:
                cell.pop("id", None)
            before = [present[n] for n in order[:k] if n in present]
            at = max(before, default=-1) + 1
            nb.cells.insert(at, cell)
            where = f"after {next(n for n in reversed(order[:k]) if n in present)!r}" if before else "at the top"
            self.report(
                resources,
                name,
                "deleted",
                f"cell {name!r} was deleted: put back from the assignment {where} and graded",
            )
        return nb, resources
