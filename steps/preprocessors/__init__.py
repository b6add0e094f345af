"""gradeflow's own preprocessors: the repairs restore makes before nbgrader's sanitize list.

nbgrader's `autograde` gives up on a notebook (or on the whole run) when a student deleted,
duplicated or renamed a grade cell, edited its nbgrader metadata or saved it with another
metadata schema version. Each class here makes one such notebook gradeable again, in
nbgrader's shape: an `NbGraderPreprocessor` mapping (nb, resources) to (nb, resources), with
its own test (tests/test_repair_preprocessors.py). They run in `RECOVERY_PREPROCESSORS`
order, before ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells and
CheckCellMetadata, which then see a notebook they can grade as nbgrader always does.

The released assignment comes in `resources["gradeflow"]["notebook"]` (the snapshot's
entry for this notebook); every repair is appended to `resources["gradeflow"]["repairs"]`
as {"cell", "repair", "reason"} so restore can report it per cell.
"""

from .attributecells import AttributeCells
from .base import RepairPreprocessor, original_metadata, released_sources
from .demoteduplicatecells import DemoteDuplicateCells
from .restoredeletedcells import RestoreDeletedCells
from .upgradecellmetadata import UpgradeCellMetadata

#: The order restore runs them in: read the metadata, settle duplicates, attribute renamed or
#: re-flagged cells, then put back what is still missing.
RECOVERY_PREPROCESSORS = (UpgradeCellMetadata, DemoteDuplicateCells, AttributeCells, RestoreDeletedCells)
#: The `repair` of each record they make (nbgrader's own repairs are named by attribute).
RECOVERY_REPAIRS = ("schema-version", "duplicate", "attributed", "metadata", "unknown-cell", "deleted")

__all__ = [
    "RepairPreprocessor",
    "UpgradeCellMetadata",
    "DemoteDuplicateCells",
    "AttributeCells",
    "RestoreDeletedCells",
    "RECOVERY_PREPROCESSORS",
    "RECOVERY_REPAIRS",
    "original_metadata",
    "released_sources",
]
