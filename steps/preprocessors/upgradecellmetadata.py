"""UpgradeCellMetadata: read cells saved with another nbgrader metadata schema version.

nbgrader's CheckCellMetadata refuses any cell whose `schema_version` is not 3, and `nbgrader
autograde` then stops the whole run. Older versions are upgraded with nbgrader's own
upgrade code (`nbgrader.nbgraderformat`, what `nbgrader update` runs). A newer version is
read as version 3 only when the cell's metadata is valid version-3 metadata as it stands,
i.e. nothing in it would be lost or read differently; otherwise it is left for
CheckCellMetadata to refuse.
"""

from __future__ import annotations

import copy
from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import SCHEMA_VERSION, MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import SchemaMismatchError

from .base import RepairPreprocessor

__all__ = ["UpgradeCellMetadata"]


class UpgradeCellMetadata(RepairPreprocessor):
    """Bring every cell's nbgrader metadata to the schema version nbgrader grades."""

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict) or not meta:
            return cell, resources
        version = meta.get("schema_version", 0)
        if version == SCHEMA_VERSION:
            return cell, resources
        name = meta.get("grade_id") or f"#{index}"
        validator = MetadataValidator()
        if isinstance(version, int) and version < SCHEMA_VERSION:
            try:
                candidate = validator.upgrade_cell_metadata(copy.deepcopy(cell))
            except (KeyError, TypeError, ValueError):
                return cell, resources  # nbgrader cannot upgrade it: CheckCellMetadata will say why
            how = (
                f"upgraded from nbgrader metadata schema version {version} to {SCHEMA_VERSION}"
                " with nbgrader's own upgrade"
            )
        else:
            candidate = copy.deepcopy(cell)
            candidate.metadata.nbgrader["schema_version"] = SCHEMA_VERSION
            how = (
                f"claims nbgrader metadata schema version {version};"
                f" it is valid version-{SCHEMA_VERSION} metadata and was read as such"
            )
        try:
            validator.validate_cell(candidate)
        except (ValidationError, SchemaMismatchError, KeyError, TypeError, ValueError):
            return cell, resources  # not readable faithfully: CheckCellMetadata will say why
        cell.metadata = candidate.metadata
        self.report(resources, name, "schema-version", f"cell {name!r} {how}")
        return cell, resources
