"""A class graded as several shard runs, handled as one thing: its status, watch, retry and sync.

`submit_class` grades a class too big for one Workflow as one run per shard, each labelled
gradeflow.io/run-group=<run-id> (pipelines.argo.shards.build_shards). A teacher gives that run id
and gets every shard: a line per shard and a total (`group_status`), a wait until all finished
(`wait_group`), a retry of only the failed shards (`retry_group`), their failed pods' logs
(`group_logs`), and a sync of every shard into the course (`sync_group`). The shards are found
by label while Argo has them, else by their run ids in the store (`shards_in_store`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from steps.collect import shard_of
from steps.contract import DAG as STEP_ORDER
from steps.errors import NotFound, TeacherError, Unreachable

from .backends import Backend
from .runs import find_run, logs, poll_until_finished, retry, warn_stderr
from .shards import LABEL_RUN, LABEL_RUN_GROUP, RUN_ID, shard_run_ids
from .status import RunStatus, StepProgress, param, run_status
from .sync import require_store, run_prefix, sync

__all__ = [
    "GroupStatus",
    "find_group",
    "find_run_or_group",
    "group_status",
    "wait_group",
    "retry_group",
    "group_logs",
    "shards_in_store",
    "sync_group",
    "group_to_sync",
    "group_sync_lines",
]


def _created(wf: dict[str, Any]) -> str:
    return wf["metadata"].get("creationTimestamp") or ""


def _shard_index(wf: dict[str, Any]) -> tuple[int, str]:
    shard = param((wf.get("spec") or {}).get("arguments"), "shard") or ""
    head = shard.split("/", 1)[0]
    return (int(head) if head.isdigit() else 0, wf["metadata"]["name"])


def find_group(backend: Backend, run: str) -> list[dict[str, Any]]:
    """The newest Workflow of each shard of run group `run`, in shard order; [] when Argo has none.

    A resubmitted shard is a new Workflow with the same run id and labels: the newest counts."""
    if not RUN_ID.match(run):
        return []
    try:
        listed = backend.list_workflows(f"{LABEL_RUN_GROUP}={run}")
    except NotFound:
        return []
    newest: dict[str, dict[str, Any]] = {}
    for wf in listed:
        rid = (wf["metadata"].get("labels") or {}).get(LABEL_RUN) or wf["metadata"]["name"]
        if rid not in newest or _created(wf) > _created(newest[rid]):
            newest[rid] = wf
    # a listing may hold no nodes: read each shard itself
    return [backend.get_workflow(wf["metadata"]["name"]) for wf in sorted(newest.values(), key=_shard_index)]


def find_run_or_group(backend: Backend, run: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the run, []) for a run's name or run id; (None, its shards) for a run group's id.

    A run is looked up first, so a single run costs what it always did."""
    try:
        return find_run(backend, run), []
    except NotFound:
        shards = find_group(backend, run)
        if not shards:
            raise
        return None, shards


@dataclass
class GroupStatus:
    """The shards of one class's run, read together."""

    run_id: str
    shards: list[RunStatus]

    @property
    def name(self) -> str:
        return self.run_id

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.shards)

    @property
    def failed_shards(self) -> list[RunStatus]:
        return [s for s in self.shards if s.phase in ("Failed", "Error")]

    @property
    def phase(self) -> str:
        """Running until every shard finished; then Succeeded only if every shard did."""
        if not self.finished:
            return "Running" if any(s.phase for s in self.shards) else "Pending"
        return "Failed" if self.failed_shards else "Succeeded"

    def total(self) -> dict[str, StepProgress]:
        out = {step: StepProgress(step) for step in STEP_ORDER}
        for s in self.shards:
            for step, p in s.steps.items():
                t = out[step]
                t.total, t.done, t.failed = t.total + p.total, t.done + p.done, t.failed + p.failed
                t.running, t.cached = t.running + p.running, t.cached + p.cached
        return out

    def lines(self) -> list[str]:
        out = [f"run group {self.run_id} ({len(self.shards)} runs, one per shard of the class): {self.phase}"]
        for s in self.shards:
            out.append("  " + s.brief())
            # the shard's failed and waiting pods, each with its own `gradeflow logs SHARD` hint
            out += ["  " + line for line in s.lines() if line.startswith(("  FAILED", "  WAITING", "    ->"))]
        phases = [s.phase or "Pending" for s in self.shards]
        counts = ", ".join(f"{phases.count(p)} {p.lower()}" for p in dict.fromkeys(phases))
        out.append(f"  total: {self.total()['execute'].line()}; runs: {counts}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_group": self.run_id,
            "phase": self.phase,
            "shards": [{"name": s.name, "run_id": s.run_id, "phase": s.phase} for s in self.shards],
            "total": {k: vars(v) for k, v in self.total().items()},
        }


def group_status(run: str, shards: list[dict[str, Any]]) -> GroupStatus:
    return GroupStatus(run, [run_status(wf) for wf in shards])


def wait_group(
    backend: Backend,
    run: str,
    *,
    poll: float = 5.0,
    timeout: float | None = None,
    progress: Callable[[GroupStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GroupStatus:
    """Poll every shard of run group `run` until all have finished; report each change to `progress`."""

    def read() -> GroupStatus:
        shards = find_group(backend, run)
        if not shards:
            raise NotFound(
                f"Argo has no run group {run!r} in {backend.where()}", "list the runs with `gradeflow status`"
            )
        return group_status(run, shards)

    return poll_until_finished(read, run, poll, timeout, progress, sleep)


def retry_group(backend: Backend, run: str, warn: Callable[[str], None] = warn_stderr) -> list[dict[str, Any]]:
    """Retry only the failed shards of run group `run` (each re-runs only its failed nodes)."""
    st = group_status(run, find_group(backend, run))
    if not st.shards:
        raise NotFound(f"Argo has no run group {run!r} in {backend.where()}", "list the runs with `gradeflow status`")
    if not st.failed_shards:
        if st.finished:
            raise TeacherError(
                f"every run of {run} succeeded: there is nothing to retry",
                "to grade again, submit a new run (`gradeflow submit --class-size N`)",
            )
        raise TeacherError(
            f"no run of {run} has failed, and some are still running",
            f"wait for them to finish (`gradeflow watch {run}`), then retry",
        )
    said: set[str] = set()

    def once(message: str) -> None:  # the version warnings are the same for every shard
        if message not in said:
            said.add(message)
            warn(message)

    return [retry(backend, s.name, warn=once) for s in st.failed_shards]


def group_logs(
    backend: Backend, run: str, *, student: str | None = None, step: str | None = None, tail: int | None = 60
) -> list[tuple[str, str]]:
    """`logs` of every shard of run group `run` that has what is asked: the failed nodes, or one
    student's (in the one shard that grades them) or one step's. Titles name the shard."""
    out: list[tuple[str, str]] = []
    for wf in find_group(backend, run):
        name, shard = wf["metadata"]["name"], param(wf["spec"].get("arguments"), "shard") or "0/1"
        index, shards = (int(x) for x in shard.split("/"))
        if student is not None and shard_of(student, shards) != index:
            continue
        if student is None and step is None and not run_status(wf).failed:
            continue
        out += [
            (f"{name}: {title}", text) for title, text in logs(backend, name, student=student, step=step, tail=tail)
        ]
    if not out:
        raise TeacherError(
            f"no run of {run} has a failed node" + (f" for {student or step}" if student or step else ""),
            "pass --student ID or --step NAME to read another node's log",
        )
    return out


def shards_in_store(run: str, store: str, store_prefix: str | None = None) -> list[str]:
    """The run ids of run group `run`'s shards that are in the store (for Argo deleted them)."""
    from ..store import open_store

    if not RUN_ID.match(run):
        return []
    present = set(open_store(run_prefix(store, store_prefix)).runs())
    counts = {int(m.group(1)) for r in present if (m := re.search(r"-\d+of(\d+)$", r))}
    for shards in sorted(counts):
        ids = shard_run_ids(run, shards)
        if shards > 1 and any(i in present for i in ids):
            return ids
    return []


def group_to_sync(
    run: str, backend: Backend | None, store: str | None, store_prefix: str | None = None
) -> list[dict[str, Any]] | None:
    """What `gradeflow sync RUN` merges: the Workflows of run group `run` ([] when only the store
    has its shards), or None when `run` is one run (or a run's URL)."""
    if "://" in run:
        return None
    if backend is not None:
        try:
            _, shards = find_run_or_group(backend, run)
            return shards or None
        except (NotFound, Unreachable):
            pass  # deleted by retention, or Argo is down: the store alone may have the group
    return [] if store and shards_in_store(run, store, store_prefix) else None


def sync_group(
    run: str,
    course_dir: str | Path,
    *,
    store: str | None,
    backend: Backend | None = None,
    store_prefix: str | None = None,
    workflows: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Merge every shard of run group `run` into the course: (each merged shard's results, why
    each other shard was not merged).

    The shards are `workflows` (or found by label) while Argo has them, else their run ids in
    the store. Shards never share a student, so their order does not matter, and a shard that
    cannot be merged yet (still running, or not in the store) keeps no other out of the gradebook.
    """
    store = require_store(store)
    if workflows is None and backend is not None:
        workflows = find_group(backend, run)
    if workflows:
        statuses = [run_status(wf) for wf in workflows]
        unfinished = [f"{st.name}: still {st.phase or 'Pending'}" for st in statuses if not st.finished]
        names = [st.name for st in statuses if st.finished]
    else:
        unfinished, names = [], shards_in_store(run, store, store_prefix)
        if not names:
            raise NotFound(
                f"neither Argo nor the store has run group {run!r}",
                "check the run id (`gradeflow status`), --store and --store-prefix",
            )
    done: list[dict[str, Any]] = []
    not_merged = list(unfinished)
    for name in names:
        try:
            done.append(sync(name, course_dir, backend=backend, store=store, store_prefix=store_prefix))
        except TeacherError as e:
            not_merged.append(f"{name}: {e.what}")
    return done, not_merged


def group_sync_lines(run: str, merged: list[dict[str, Any]], not_merged: list[str]) -> list[str]:
    """What `gradeflow sync` prints for a run group: each merged run's summary, then the total."""
    from steps.merge import summary_lines

    out = [line for results in merged for line in summary_lines(results)]
    counts = [r["counts"] for r in merged]
    out.append(
        f"run group {run}: {len(merged)} of {len(merged) + len(not_merged)} runs merged; "
        f"{sum(c.get('submissions', 0) for c in counts)} submission(s), {sum(c.get('graded', 0) for c in counts)} "
        f"graded, {sum(c.get('ungraded_submissions', 0) for c in counts)} not graded (gradeflow failed)"
    )
    out += [f"  NOT MERGED {why}" for why in not_merged]
    if merged:
        out.append(f"gradebook: {merged[0]['gradebook']} updated")
    return out
