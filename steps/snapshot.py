"""The gradebook snapshot: the only part of gradebook.db that leaves the teacher's side.

collect exports, for one assignment, each notebook's kernelspec and source cells (with their
grade/solution/task flags, points and checksums) plus the nbgrader configuration that restore
and score honour. restore and score then rebuild a *scratch* gradebook holding only that, so
nbgrader's own preprocessors (OverwriteCells, SaveAutoGrades, AssignLatePenalties, ...) run
unchanged against it, without the real gradebook ever being near student code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

__all__ = [
    "CONFIG_SECTIONS",
    "export_snapshot",
    "snapshot_config",
    "scratch_gradebook",
    "scratch_url",
]

# The nbgrader classes whose configuration changes how a submission is restored, executed,
# scored or shown in feedback. Only these sections travel in the snapshot.
CONFIG_SECTIONS = (
    "Autograde",
    "ClearOutput",
    "DeduplicateIds",
    "OverwriteKernelspec",
    "OverwriteCells",
    "CheckCellMetadata",
    "Execute",
    "IgnorePattern",
    "ClearMetadataPreprocessor",
    "LimitOutput",
    "SaveAutoGrades",
    "AssignLatePenalties",
    "LateSubmissionPlugin",
    "ClearHiddenTests",  # its delimiters mark what feedback leaves out
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cannot put {value!r} into the snapshot")


def snapshot_config(config: Config) -> dict[str, dict[str, Any]]:
    """The CONFIG_SECTIONS of a traitlets Config as plain JSON."""
    out: dict[str, dict[str, Any]] = {}
    for section in CONFIG_SECTIONS:
        if section not in config:
            continue
        values = {}
        for key, value in config[section].items():
            if isinstance(value, LazyConfigValue):
                value = value.get_value([] if value._extend or value._prepend else {})  # noqa: SLF001
            values[key] = _jsonable(value)
        out[section] = values
    return out


def cell_order(notebook: Path) -> list[str]:
    """The grade_ids of a source or release notebook, in notebook order ([] when unreadable).

    The gradebook keeps no cell positions; restore needs them to put a deleted cell back
    where it was."""
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception:  # noqa: BLE001 - no order: restore falls back to the gradebook's
        return []
    return [
        c.metadata.nbgrader["grade_id"] for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    ]


def export_snapshot(
    gradebook: Any, assignment: str, config: Config, notebook_dirs: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """Read one assignment's notebooks and source cells out of an open nbgrader Gradebook.

    `notebook_dirs` (the assignment's source, then release folder) give each notebook's cell
    order; without them it is the gradebook's, which is the order generate_assignment saved."""
    from sqlalchemy import text

    a = gradebook.find_assignment(assignment)
    schema = gradebook.db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    notebooks = []
    for nb in sorted(a.notebooks, key=lambda n: n.name):
        names = {c.name for c in nb.source_cells}
        order = next(
            (o for d in notebook_dirs if (o := [n for n in cell_order(Path(d) / f"{nb.name}.ipynb") if n in names])), []
        )
        order += [c.name for c in nb.source_cells if c.name not in order]
        notebooks.append(
            {
                "name": nb.name,
                "kernelspec": nb.kernelspec,
                "grade_cells": [
                    {"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type} for c in nb.grade_cells
                ],
                "solution_cells": [{"name": c.name} for c in nb.solution_cells],
                "task_cells": [
                    {"name": c.name, "max_score": c.max_score, "cell_type": c.cell_type} for c in nb.task_cells
                ],
                "source_cells": [
                    {
                        "name": c.name,
                        "cell_type": c.cell_type,
                        "locked": c.locked,
                        "source": c.source,
                        "checksum": c.checksum,
                    }
                    for c in nb.source_cells
                ],
                "order": order,
            }
        )
    return {
        "format": "gradeflow.snapshot/1",
        "schema": schema,
        "assignment": {"name": a.name, "duedate": a.duedate.isoformat() if a.duedate else None},
        "notebooks": notebooks,
        "config": snapshot_config(config),
    }


_scratch_cache: dict[str, Path] = {}
_scratch_lock = threading.Lock()


def _build_scratch(snapshot: dict[str, Any], path: Path) -> None:
    from nbgrader.api import Base, Gradebook
    from sqlalchemy import create_engine, text

    # Create the tables and stamp the schema version ourselves: nbgrader's Gradebook would
    # otherwise shell out to alembic (about 4 s) to learn the version of a new database.
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": snapshot["schema"]})
    engine.dispose()
    assignment = snapshot["assignment"]["name"]
    with Gradebook(f"sqlite:///{path}") as gb:
        gb.update_or_create_assignment(assignment, duedate=snapshot["assignment"]["duedate"])
        for nb in snapshot["notebooks"]:
            gb.update_or_create_notebook(nb["name"], assignment, kernelspec=nb["kernelspec"])
            for c in nb["grade_cells"]:
                gb.update_or_create_grade_cell(
                    c["name"], nb["name"], assignment, max_score=c["max_score"], cell_type=c["cell_type"]
                )
            for c in nb["solution_cells"]:
                gb.update_or_create_solution_cell(c["name"], nb["name"], assignment)
            for c in nb["task_cells"]:
                gb.update_or_create_task_cell(
                    c["name"], nb["name"], assignment, max_score=c["max_score"], cell_type=c["cell_type"]
                )
            for c in nb["source_cells"]:
                fields = {k: c[k] for k in ("cell_type", "locked", "source", "checksum")}
                gb.update_or_create_source_cell(c["name"], nb["name"], assignment, **fields)


def scratch_url(directory: Path) -> str:
    """The URL of the scratch gradebook `scratch_gradebook` writes to `directory`."""
    return f"sqlite:///{Path(directory) / 'gradebook.db'}"


def scratch_gradebook(snapshot: dict[str, Any], directory: Path) -> str:
    """Write a gradebook holding only the snapshot to `directory`/gradebook.db; return its URL.

    The first call per snapshot builds a template in a private temp dir; later calls copy it,
    which is what makes per-submission scratch gradebooks cheap. Reusing one `directory` for
    many submissions (one at a time) keeps the URL, and so nbgrader's engine, the same.
    """
    from .gradebook import mark_volatile, release, share_engines

    share_engines()
    key = hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()[:16]
    with _scratch_lock:
        template = _scratch_cache.get(key)
        if template is None or not template.exists():
            from multiprocessing.util import Finalize

            from .sandbox.leftovers import temp_prefix

            template = Path(tempfile.mkdtemp(prefix=temp_prefix("snapshot"))) / "gradebook.db"
            # removed when this process exits (a worker or the main run): no temp dir outlives a run
            Finalize(None, shutil.rmtree, args=(str(template.parent),), kwargs={"ignore_errors": True}, exitpriority=10)
            _build_scratch(snapshot, template)
            _scratch_cache[key] = template
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "gradebook.db"
    url = scratch_url(directory)
    mark_volatile(url)
    release(url)  # no connection may outlive the file it was opened on
    shutil.copyfile(template, target)
    return url
