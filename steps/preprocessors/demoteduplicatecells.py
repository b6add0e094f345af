"""DemoteDuplicateCells: a copied grade cell is an ordinary student cell, not a second grade.

Copy-pasting a read-only cell in Jupyter copies its nbgrader metadata, grade_id included.
nbgrader's DeduplicateIds keeps the *last* cell with an id and empties the metadata of the
others, which then fails CheckCellMetadata and stops `nbgrader autograde` for every student.
Here the original keeps the id: the copy whose source is the released one (first such), or
else the first copy, which is where Jupyter's paste-below leaves the original. The other
copies lose their nbgrader metadata and run as the student's own cells, as DeduplicateIds
intends for them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from nbformat.notebooknode import NotebookNode

from .base import RepairPreprocessor, grade_id, is_nbgrader_cell, released_sources

__all__ = ["DemoteDuplicateCells"]


class DemoteDuplicateCells(RepairPreprocessor):
    """Keep one cell per grade_id (the original); the copies become ordinary cells."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        seen: dict[str, list[int]] = defaultdict(list)
        for i, cell in enumerate(nb.cells):
            if is_nbgrader_cell(cell) and grade_id(cell):
                seen[grade_id(cell)].append(i)
        released = released_sources(self.spec(resources), resources.get("gradeflow", {}).get("config"))
        for name, where in seen.items():
            if len(where) < 2:
                continue
            same = [i for i in where if nb.cells[i].source.strip() in released.get(name, ())]
            original = (same or where)[0]
            for i in where:
                if i != original:
                    del nb.cells[i].metadata["nbgrader"]
            self.report(
                resources,
                name,
                "duplicate",
                f"cell {name!r} appears {len(where)} times (a copied cell): cell {original} is graded as {name!r}, "
                f"the copies (cells {', '.join(str(i) for i in where if i != original)}) run as ordinary cells",
            )
        return nb, resources
