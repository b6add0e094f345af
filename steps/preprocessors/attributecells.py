"""AttributeCells: a cell whose grade_id or nbgrader metadata was edited is graded as released.

A student can rename a grade_id, flip a flag (`solution`, `grade`) or strip a cell's nbgrader
metadata in Jupyter's metadata editor. nbgrader then drops the cell's id and fails the
notebook (or raises "Inconsistent checksums"). Here each released cell that has no cell of
its own in the notebook is looked for where it should be: between the nearest released cells
before and after it that are still there. It is the cell there whose source is the released
one (or the gradebook's); failing that, the one cell there that still carries nbgrader
metadata under an unknown id; failing that, for a cell the student writes in (not locked),
the one cell of its type there. The cell found gets the released metadata. Known cells get
their released grade/solution/task flags back. Cells left with nbgrader metadata under an
id the assignment does not have are graded as ordinary cells (they earn nothing).
"""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode

from .base import RepairPreprocessor, grade_id, is_nbgrader_cell, original_metadata, released_sources, source_order

__all__ = ["AttributeCells"]

FLAGS = ("grade", "solution", "task")


class AttributeCells(RepairPreprocessor):
    """Give renamed and re-flagged cells their released identity back."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        spec = self.spec(resources)
        cells = {c["name"]: c for c in spec["source_cells"]}
        order = [n for n in source_order(spec) if n in cells]
        released = released_sources(spec, resources.get("gradeflow", {}).get("config"))
        present = {grade_id(c): i for i, c in enumerate(nb.cells) if grade_id(c) in cells and is_nbgrader_cell(c)}
        self._restore_flags(nb, spec, present, resources)
        for rule in (self._by_source, self._by_metadata, self._by_place):  # strongest evidence first
            for k, name in enumerate(order):
                if name in present:
                    continue
                before = [present[n] for n in order[:k] if n in present]
                after = [present[n] for n in order[k + 1 :] if n in present]
                lo, hi = max(before, default=-1), min(after, default=len(nb.cells))
                taken = set(present.values())
                window = [
                    i for i in range(lo + 1, hi) if i not in taken and nb.cells[i].cell_type == cells[name]["cell_type"]
                ]
                found, how = rule(nb, window, released[name], bool(cells[name]["locked"]))
                if found is None:
                    continue
                old = grade_id(nb.cells[found])
                nb.cells[found].metadata["nbgrader"] = original_metadata(spec, name)
                present[name] = found
                what = f"cell {old!r}" if old else f"cell {found} (no nbgrader id)"
                self.report(
                    resources, name, "attributed", f"{what} is the released cell {name!r} ({how}): graded as {name!r}"
                )
        for i, cell in enumerate(nb.cells):
            if i not in present.values() and "nbgrader" in cell.get("metadata", {}) and is_nbgrader_cell(cell):
                old = grade_id(cell) or f"#{i}"
                del cell.metadata["nbgrader"]
                self.report(
                    resources,
                    old,
                    "unknown-cell",
                    f"cell {old!r} is not a cell of this assignment: graded as an ordinary cell (no points)",
                )
        return nb, resources

    def _restore_flags(
        self, nb: NotebookNode, spec: dict[str, Any], present: dict[str, int], resources: dict[str, Any]
    ) -> None:
        for name, i in present.items():
            meta, want = nb.cells[i].metadata.nbgrader, original_metadata(spec, name)
            edited = [f for f in FLAGS if bool(meta.get(f, False)) != want[f]]
            if edited:
                for f in edited:
                    meta[f] = want[f]
                if want.get("points") is not None and "points" not in meta:
                    meta["points"] = want["points"]
                flags = ", ".join(f"'{f}'" for f in edited)
                self.report(
                    resources,
                    name,
                    "metadata",
                    f"the nbgrader {flags} flag of cell {name!r} was edited: restored from the assignment",
                )

    @staticmethod
    def _by_source(nb: NotebookNode, window: list[int], sources: set[str], locked: bool) -> tuple[int | None, str]:
        same = [i for i in window if nb.cells[i].source.strip() in sources]
        return (same[0], "same source as released, in its place") if same else (None, "")

    @staticmethod
    def _by_metadata(nb: NotebookNode, window: list[int], sources: set[str], locked: bool) -> tuple[int | None, str]:
        flagged = [i for i in window if "nbgrader" in nb.cells[i].get("metadata", {})]
        return (flagged[0], "the nbgrader cell in its place") if len(flagged) == 1 else (None, "")

    @staticmethod
    def _by_place(nb: NotebookNode, window: list[int], sources: set[str], locked: bool) -> tuple[int | None, str]:
        # a read-only cell is never taken from the student's own cells: it is put back instead
        return (window[0], "the only cell of its type in its place") if not locked and len(window) == 1 else (None, "")
