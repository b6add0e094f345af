"""What the repair preprocessors share: the released cells and the repair log."""

from __future__ import annotations

import json
from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["RepairPreprocessor", "original_metadata", "released_sources", "grade_id", "is_nbgrader_cell"]


def grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_nbgrader_cell(cell: NotebookNode) -> bool:
    """A cell nbgrader treats as its own (DeduplicateIds' test): graded, a solution or locked."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return any(bool(meta.get(k, False)) for k in ("grade", "solution", "locked", "task"))


def original_metadata(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The nbgrader metadata (schema 3) the released cell `name` carries, from the snapshot."""
    grade = {c["name"]: c for c in spec["grade_cells"]}
    task = {c["name"]: c for c in spec["task_cells"]}
    source = next(c for c in spec["source_cells"] if c["name"] == name)
    meta: dict[str, Any] = {
        "grade": name in grade,
        "grade_id": name,
        "locked": bool(source["locked"]),
        "schema_version": 3,
        "solution": name in {c["name"] for c in spec["solution_cells"]},
        "task": name in task,
    }
    if name in grade or name in task:
        meta["points"] = float((grade.get(name) or task[name])["max_score"])
    return meta


_released: dict[str, dict[str, set[str]]] = {}


def released_sources(spec: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, set[str]]:
    """Per source cell, the sources a student legitimately has: the one in the gradebook and
    the released one (hidden tests cut out by nbgrader's own ClearHiddenTests), stripped.

    The same for every submission of an assignment, so kept per process (restore asks three
    times per notebook); callers only read it."""
    key = json.dumps([spec["source_cells"], config or {}], sort_keys=True, default=str)
    found = _released.get(key)
    if found is None:
        if len(_released) >= 64:
            _released.clear()
        found = _released[key] = _released_sources(spec, config)
    return found


def _released_sources(spec: dict[str, Any], config: dict[str, Any] | None) -> dict[str, set[str]]:
    from nbformat.v4 import new_code_cell, new_markdown_cell
    from nbgrader.preprocessors import ClearHiddenTests
    from traitlets.config import Config

    clear = ClearHiddenTests(config=Config(config or {}))
    out = {}
    for c in spec["source_cells"]:
        cell = new_code_cell(c["source"]) if c["cell_type"] == "code" else new_markdown_cell(c["source"])
        clear._remove_hidden_test_region(cell)  # noqa: SLF001 - nbgrader's own hidden-test rule
        out[c["name"]] = {c["source"].strip(), cell.source.strip()}
    return out


def source_order(spec: dict[str, Any]) -> list[str]:
    """The source cells in their order in the source notebook (collect records it)."""
    return list(spec.get("order") or [c["name"] for c in spec["source_cells"]])


class RepairPreprocessor(NbGraderPreprocessor):
    """Base of gradeflow's repairs: reads the released notebook and logs each repair."""

    def spec(self, resources: dict[str, Any]) -> dict[str, Any]:
        return resources["gradeflow"]["notebook"]

    def report(self, resources: dict[str, Any], cell: str, repair: str, reason: str) -> None:
        self.log.info("repaired cell %s (%s): %s", cell, repair, reason)
        resources["gradeflow"].setdefault("repairs", []).append({"cell": cell, "repair": repair, "reason": reason})
