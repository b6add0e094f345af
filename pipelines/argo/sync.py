"""`gradeflow sync`: merge a finished Argo run from the object store into the course.

The run's prefix is found from its Workflow while Argo still has it, else in the store alone;
merging is `steps.merge.merge`, the merge the local runner uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from steps.errors import NotFound, TeacherError, Unreachable
from steps.workspace import Workspace

from .backends import Backend
from .params import argo_default
from .runs import find_run

__all__ = ["sync", "run_prefix", "require_store"]


def require_store(store: str | None) -> str:
    """`store`, or the error that says which bucket sync needs."""
    if not store:
        raise TeacherError(
            "sync needs the bucket of the gradeflow artifact repository",
            "pass --store s3://BUCKET (the bucket in argo/install/artifact-repositories.yaml) or set "
            "GRADEFLOW_ARGO_STORE",
        )
    return store


def run_prefix(store: str, store_prefix: str | None = None) -> str:
    """The store URL under which runs live: <store>/<store-prefix>, the template's prefix by default."""
    prefix = store_prefix or argo_default("store-prefix") or ""
    return f"{store.rstrip('/')}/{prefix.strip('/')}"


def _run_location(
    backend: Backend | None, run: str, store: str | None, store_prefix: str | None = None
) -> tuple[str, str]:
    """(store URL of the run's prefix, run id) for a run name, or for a full run URL.

    The workflow, when Argo still has it, gives the prefix and run id; without it (deleted by
    retention, or no Argo configured) the run is found in the store alone, at
    <store>/<store-prefix>/<run>."""
    if "://" in run:
        url = run.rstrip("/")
        base, _, run_id = url.rpartition("/")
        return base, run_id
    require_store(store)
    wf = None
    if backend is not None:
        try:
            wf = find_run(backend, run)
        except (NotFound, Unreachable):
            pass  # deleted by retention, or Argo is down: the store alone has the run
    if wf is None:
        return run_prefix(store, store_prefix), run
    params = {p["name"]: p.get("value") for p in (wf.get("spec", {}).get("arguments", {}).get("parameters") or [])}
    return run_prefix(store, store_prefix or params.get("store-prefix")), params.get("run-id") or wf["metadata"]["name"]


def sync(
    run: str,
    course_dir: str | Path,
    *,
    backend: Backend | None = None,
    store: str | None = None,
    store_prefix: str | None = None,
) -> dict[str, Any]:
    """Merge a finished run from the object store into the course: its gradebook and autograded/.

    Downloads `<store>/<prefix>/<run-id>/` into a temporary workspace and calls
    `steps.merge.merge(workspace, course_dir)`, the merge the local runner uses; the run's
    results/ are also kept in COURSE_DIR/gradeflow_runs/<run-id>/results/.
    """
    from steps.course import open_course, open_gradebook
    from steps.gradebook import shown_url
    from steps.merge import merge

    from ..store import RUNS_DIR, open_store

    course_dir = Path(course_dir)
    _, coursedir = open_course(course_dir, "give the nbgrader course directory the run graded")
    # the course's gradebook (a SQLite file or a database server) must be there before anything is downloaded
    open_gradebook(coursedir, "give the nbgrader course directory the run graded").close()
    base, run_id = _run_location(backend, run, store, store_prefix)
    st = open_store(base)
    with st.workspace(run_id) as ws:
        st.pull(run_id, ws)
        if not Workspace(ws).manifest.is_file():
            raise TeacherError(
                f"{st.run_url(run_id)} has no manifest.json",
                "the run stopped before collect finished (nothing to merge), or this is not its run id: "
                "a resubmitted workflow keeps the first run's id; check --store and --store-prefix",
            )
        results = merge(ws, course_dir)
        keep = Workspace(course_dir / RUNS_DIR / run_id).results
        shutil.copytree(Workspace(ws).results, keep, dirs_exist_ok=True)
    results["run_dir"] = st.run_url(run_id)
    results["gradebook"] = shown_url(coursedir.db_url)
    return results
