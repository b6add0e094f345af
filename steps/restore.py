"""restore: validate each submitted notebook and put back its locked and test cells.

Runs nbgrader's own sanitize preprocessors (ClearOutput, DeduplicateIds, OverwriteKernelspec,
OverwriteCells, CheckCellMetadata: the list `nbgrader autograde` runs, or the course's own
c.Autograde.sanitize_preprocessors; see steps/nbgrader_pipeline.py) against a scratch
gradebook built from the snapshot, so hidden tests come back exactly as nbgrader restores
them. Before that, gradeflow's own preprocessors (steps.preprocessors) recover what a student
broke but what can still be attributed: a deleted grade cell is put back, a copied grade cell
becomes an ordinary cell, a renamed or re-flagged cell is graded as the released one, other
nbgrader metadata schema versions are read; each repair is reported per cell (REPAIRED).
What still cannot be graded faithfully (not JSON, not a notebook, cells that cannot be
attributed) is *skipped* with a reason. `strict=True` turns the recovery off (nbgrader's
behaviour): a deleted grade cell scores 0, a notebook with duplicated, renamed or re-flagged
grade cells is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import nbformat

from .cli import each_submission, step_main
from .contract import STEPS
from .errors import TeacherError
from .nbgrader_pipeline import restore_preprocessors, run_preprocessors
from .preprocessors import RECOVERY_PREPROCESSORS, released_sources
from .records import MISSING, OK, REPAIRED, SKIPPED, Manifest, NotebookOutcome, StepRecord, write_json
from .snapshot import scratch_gradebook
from .workspace import SubmissionOptions, Workspace

__all__ = ["restore", "restore_submission", "per_submission", "main", "Malformed"]

STEP = STEPS["restore"]
log = logging.getLogger("gradeflow.restore")


class Malformed(Exception):
    """A notebook that cannot be graded faithfully; the message is the teacher-facing reason."""


class _ChangeLog(logging.Handler):
    """Collects nbgrader's `report_change` warnings so they become the record's changes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


_CHANGE = re.compile(r"Attribute '(\w+)' for cell (\S+) has changed")
_WHAT = {
    "checksum": "locked cell {cell!r} was edited",
    "points": "the points of cell {cell!r} were edited",
    "cell_type": "the type of cell {cell!r} was changed",
    "locked": "cell {cell!r} was unlocked",
}


def _plain(change: str) -> str:
    """nbgrader's report_change line, as a teacher would say it."""
    m = _CHANGE.search(change)
    if not m:
        return change
    return (
        _WHAT.get(m.group(1), "attribute {attr} of cell {cell!r} was changed").format(attr=m.group(1), cell=m.group(2))
        + ": restored from the assignment"
    )


def _flags(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return {k: bool(meta.get(k, False)) for k in ("grade", "solution", "task", "locked")}


def _read(path: Path) -> Any:
    """Parse the file as an nbformat-4 notebook or raise Malformed with the specific reason."""
    raw = path.read_bytes()
    if not raw.strip():
        raise Malformed("the notebook file is empty")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Malformed(f"the notebook is not valid JSON ({e})") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise Malformed("the file is JSON but not a notebook (no cells)")
    major = data.get("nbformat")
    if major not in (3, 4):
        raise Malformed(
            f"the notebook is nbformat version {major}; gradeflow grades versions 3 and 4 (re-save it in Jupyter)"
        )
    if major == 3 and "worksheets" not in data:
        raise Malformed("the notebook says nbformat version 3 but has no worksheets (re-save it in Jupyter)")
    try:
        # nbformat 3 is converted to 4 on reading, as nbgrader reads it
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 - nbformat raises several types for a broken document
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Malformed(f"the notebook does not follow the nbformat 4 schema ({first})") from None
    return nb


def _check_structure(nb: Any, spec: dict[str, Any], add_missing_cells: bool) -> None:
    """Refuse what nbgrader would mis-grade silently: deleted, duplicated, renamed or re-flagged cells."""
    ids = [
        c.metadata.nbgrader["grade_id"]
        for c in nb.cells
        if "grade_id" in c.get("metadata", {}).get("nbgrader", {}) and any(_flags(c).values())
    ]
    dupes = sorted(g for g, n in Counter(ids).items() if n > 1)
    if dupes:
        raise Malformed(f"grade cell {dupes[0]!r} appears {Counter(ids)[dupes[0]]} times (a duplicated cell)")
    known = {c["name"]: c for c in spec["source_cells"]}
    renamed = [g for g in ids if g not in known]
    if renamed:
        raise Malformed(f"cell {renamed[0]!r} is not a cell of this assignment (a renamed grade_id?)")
    grade = {c["name"] for c in spec["grade_cells"]}
    solution = {c["name"] for c in spec["solution_cells"]}
    task = {c["name"] for c in spec["task_cells"]}
    if not add_missing_cells:
        gone = [c["name"] for c in spec["source_cells"] if c["name"] in grade | task and c["name"] not in ids]
        if gone:
            raise Malformed(f"grade cell {gone[0]!r} was deleted")
    for c in nb.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid not in known or not any(_flags(c).values()):
            continue
        f = _flags(c)
        want = {"grade": gid in grade, "solution": gid in solution, "task": gid in task}
        for flag, expected in want.items():
            if f[flag] != expected:
                raise Malformed(f"cell {gid!r} has its nbgrader '{flag}' flag changed to {f[flag]} (edited metadata)")


def _edited_locked_cells(nb: Any, spec: dict[str, Any], config: dict[str, Any]) -> set[str]:
    """Locked cells whose source the student changed (restoring hidden tests is not a change)."""
    released = released_sources({**spec, "source_cells": [c for c in spec["source_cells"] if c["locked"]]}, config)
    edited = set()
    for c in nb.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in released and c.source.strip() not in released[gid]:
            edited.add(gid)
    return edited


def _sanitize(nb: Any, resources: dict[str, Any], config: dict[str, Any]) -> tuple[Any, list[str]]:
    """Run nbgrader's sanitize preprocessors; return the notebook and the repairs they reported.

    The preprocessors log through a logger of our own, so the repairs are captured whatever
    the process's logging configuration says about the shared "traitlets" logger."""
    changes = _ChangeLog()
    capture = logging.getLogger("gradeflow.restore.nbgrader")
    capture.setLevel(logging.WARNING)
    capture.propagate = False
    capture.addHandler(changes)
    try:
        nb, resources = run_preprocessors(restore_preprocessors(config), nb, resources, log=capture)
    finally:
        capture.removeHandler(changes)
    return nb, changes.lines


def _recover(
    nb: Any, spec: dict[str, Any], config: dict[str, Any], resources: dict[str, Any]
) -> tuple[Any, list[dict[str, str]]]:
    """Run gradeflow's recovery preprocessors; return the notebook and its repairs, per cell."""
    from traitlets.config import Config

    resources = dict(resources, gradeflow={"notebook": spec, "config": config, "repairs": []})
    nb, resources = run_preprocessors(
        (cls(config=Config(config)) for cls in RECOVERY_PREPROCESSORS), nb, resources, log=log
    )
    return nb, resources["gradeflow"]["repairs"]


def restore_notebook(
    path: Path, spec: dict[str, Any], snapshot: dict[str, Any], resources: dict[str, Any], strict: bool = False
) -> tuple[Any, NotebookOutcome]:
    """Validate, recover (unless `strict`) and restore one notebook: (restored notebook or None, outcome)."""
    name = spec["name"]
    config = snapshot.get("config", {})
    add_missing = bool(config.get("OverwriteCells", {}).get("add_missing_cells", False))
    resources = dict(resources, nbgrader=dict(resources["nbgrader"], notebook=name))
    try:
        nb = _read(path)
        repairs = [] if strict else None
        if repairs is None:
            nb, repairs = _recover(nb, spec, config, resources)
        # strict: nbgrader grades a notebook with a deleted grade cell (the cell scores 0)
        _check_structure(nb, spec, add_missing or strict)
        put_back = {r["cell"] for r in repairs if r["repair"] == "deleted"}
        edited = _edited_locked_cells(nb, spec, config) - put_back
        nb, changes = _sanitize(nb, resources, config)
        # nbgrader reports every restored hidden test as a checksum change: keep only real edits
        changes = [
            c
            for c in changes
            if not ((m := _CHANGE.search(c)) and m.group(1) == "checksum" and m.group(2) not in edited)
        ]
    except Malformed as e:
        return None, NotebookOutcome(name, SKIPPED, str(e))
    except Exception as e:  # noqa: BLE001 - nbgrader's validator and friends: still the notebook's fault
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, NotebookOutcome(name, SKIPPED, f"nbgrader could not validate the notebook: {reason}")
    for c in changes:
        m = _CHANGE.search(c)
        repairs.append(
            {"cell": m.group(2) if m else "", "repair": m.group(1) if m else "nbgrader", "reason": _plain(c)}
        )
    if repairs:
        return nb, NotebookOutcome(
            name,
            REPAIRED,
            "; ".join(r["reason"] for r in repairs),
            [r["reason"] for r in repairs],
            {"repairs": repairs},
        )
    return nb, NotebookOutcome(name, OK)


def _hash_dir(root: Path, config: dict[str, Any] | None = None) -> str:
    """What execute's result depends on besides limits and image: the work dir's files and the
    course's nbgrader configuration execute reads from the snapshot (Execute.timeout, ...).
    It is part of the Argo memoization key, so a changed course config runs the notebooks again."""
    h = hashlib.sha256(json.dumps(config or {}, sort_keys=True, default=str).encode() + b"\0")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def restore_submission(
    workspace: Path, manifest: Manifest, snapshot: dict[str, Any], student: str, scratch: Path, strict: bool = False
) -> StepRecord:
    """Restore one submission into `restored/<student>/work/` and write its restore.json.

    `strict`: no recovery; a notebook nbgrader itself could not grade is skipped."""
    import time

    start = time.monotonic()
    restore_preprocessors(
        snapshot.get("config", {})
    )  # a preprocessor the course names but gradeflow cannot import is the teacher's to fix, not a skip
    sub = manifest.submission(student)
    ws = Workspace(workspace)
    src, out, work = ws.submission(student), ws.restored(student), ws.work(student)
    if out.exists():
        shutil.rmtree(out)
    # nbgrader's build dir: every submitted file but the notebooks, which are written restored
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("*.ipynb"))
    db_url = scratch_gradebook(snapshot, scratch)
    resources = {"nbgrader": {"student": student, "assignment": manifest.assignment, "db_url": db_url}}
    record = StepRecord("restore", student)
    specs = {nb["name"]: nb for nb in snapshot["notebooks"]}
    for name in manifest.notebooks:
        if name in sub.missing:
            record.notebooks.append(
                NotebookOutcome(name, MISSING, f"{name}.ipynb was not submitted: scored 0 like nbgrader")
            )
            continue
        nb, outcome = restore_notebook(src / f"{name}.ipynb", specs[name], snapshot, resources, strict)
        if nb is not None:
            nbformat.write(nb, str(work / f"{name}.ipynb"), version=4)
        record.notebooks.append(outcome)
    record.detail["work_hash"] = _hash_dir(work, snapshot.get("config"))
    record.detail["strict"] = strict
    record.seconds = round(time.monotonic() - start, 3)
    record.save(ws.record(STEP, student))
    return record


def per_submission(
    ws: Workspace, manifest: Manifest, snapshot: dict[str, Any], student: str, opts: SubmissionOptions
) -> StepRecord:
    """The local runner's chain entry (steps.workspace.PerSubmission)."""
    return restore_submission(ws, manifest, snapshot, student, opts.scratch, opts.param("strict"))


def restore(workspace: Path, students: Sequence[str] | None = None, **params: Any) -> list[StepRecord]:
    """Restore every submission in the manifest (or only `students`) through `per_submission`, with
    restore's parameters by keyword (`strict=True` turns recovery off; steps/params.py has them all)."""
    return each_submission(STEP, workspace, students, **params)


def fan_out_items(records: Sequence[StepRecord]) -> list[dict[str, str]]:
    """One entry per restored submission: its student and the content hash of its work dir.
    A submission restore failed on (steps.failures) is not executed: score passes its UNGRADED on."""
    return [{"student": r.student, "work-hash": r.detail["work_hash"]} for r in records if "work_hash" in r.detail]


def _restore_cli(workspace: Path, emit_students: Path | None, class_size: int | None, **params: Any) -> None:
    """restore, and with --emit-students the list an Argo workflow fans execute out over
    (pipelines.argo.templates); with --class-size it refuses a bigger fan-out: score and merge
    size their scratch space from it, so a bigger class must stop here, before any notebook runs."""
    records = restore(workspace, **params)
    if class_size is not None and len(records) > class_size:
        raise TeacherError(
            f"{len(records)} submissions, but the run's class-size is {class_size}: "
            "score and merge would run out of scratch space",
            f"submit the run again with class-size {len(records)} or more",
        )
    if emit_students:
        write_json(emit_students, fan_out_items(records))


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(STEP, _restore_cli, argv)


if __name__ == "__main__":
    raise SystemExit(main())
