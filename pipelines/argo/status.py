"""A run's progress read from its Workflow: per step done / failed / running / cached, the
failed submissions, the pods that cannot start and why, and merge's summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from steps.contract import DAG as STEP_ORDER

__all__ = [
    "StepProgress",
    "FailedNode",
    "WaitingPods",
    "RunStatus",
    "WAITING_HINTS",
    "FINISHED",
    "run_status",
    "param",
    "units",
]

FINISHED = ("Succeeded", "Failed", "Error")


# --- status -------------------------------------------------------------------------------------


@dataclass
class StepProgress:
    step: str
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    cached: int = 0

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)

    def line(self) -> str:
        if not (self.total or self.done or self.failed or self.running):
            return f"{self.step}: pending"
        parts = [f"{self.done}/{self.total} done"]
        parts += [
            f"{n} {what}"
            for n, what in ((self.failed, "failed"), (self.running, "running"), (self.cached, "cached"))
            if n
        ]
        return f"{self.step}: " + ", ".join(parts)


@dataclass
class FailedNode:
    step: str
    student: str | None
    display_name: str
    phase: str
    message: str
    node: dict[str, Any] = field(repr=False)


# Why a pod has not started (Argo puts the pod's waiting reason in the node's message), and
# what to do. The first word of the message is Kubernetes' reason.
_CANNOT_PULL = (
    "the nodes cannot pull the grader image: check its name and tag (`gradeflow submit --image`, docs/argo.md §2), "
    "that the nodes reach the registry, and imagePullSecrets for a private one"
)
WAITING_HINTS = {
    "ImagePullBackOff": _CANNOT_PULL,
    "ErrImagePull": _CANNOT_PULL,
    "InvalidImageName": "the grader image name is not valid: check `gradeflow submit --image` (docs/argo.md §2)",
    "Unschedulable": (
        "no node has room for the pod: lower --parallelism or the execute pod's CPU/memory requests, or add nodes"
    ),
    "CreateContainerConfigError": (
        "a Secret or ConfigMap the pod needs is missing, e.g. the artifact store's credentials (docs/argo.md §3)"
    ),
}


@dataclass
class WaitingPods:
    """Pods of one step that cannot start, for the same reason."""

    step: str
    reason: str
    message: str
    students: list[str]

    @property
    def hint(self) -> str:
        return WAITING_HINTS.get(self.reason, "")


@dataclass
class RunStatus:
    name: str
    run_id: str
    phase: str
    message: str
    steps: dict[str, StepProgress]
    failed: list[FailedNode]
    summary: str
    waiting: list[WaitingPods] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def brief(self) -> str:
        """One line: name, phase and execute's progress (the run list, a run group's shards)."""
        ex = self.steps["execute"]
        return f"{self.name:40} {self.phase or 'Pending':10} execute {ex.done}/{ex.total}" + (
            f", {ex.failed} failed" if ex.failed else ""
        )

    def lines(self) -> list[str]:
        head = f"run {self.run_id} ({self.name}): {self.phase or 'Pending'}"
        out = [head + (f": {self.message}" if self.message and self.phase != "Succeeded" else "")]
        out += ["  " + self.steps[s].line() for s in STEP_ORDER]
        for f in self.failed:
            who = f" {f.student}" if f.student else ""
            out.append(
                f"  FAILED {f.step}{who}: {f.message or f.phase}  (gradeflow logs "
                f"{self.name}{' --student ' + f.student if f.student else ' --step ' + f.step})"
            )
        for w in self.waiting:
            who = (
                f" ({len(w.students)} pods: {', '.join(w.students[:3])}{', ...' if len(w.students) > 3 else ''})"
                if w.students
                else ""
            )
            out.append(f"  WAITING {w.step}{who}: {w.message[:300]}")
            if w.hint:
                out.append(f"    -> {w.hint}")
        if self.summary:
            out += ["", self.summary.rstrip()]
        return out


def param(node_or_io: dict[str, Any] | None, name: str) -> str | None:
    for p in (node_or_io or {}).get("parameters", []) or []:
        if p.get("name") == name:
            return p.get("value")
    return None


def units(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One node per attempt-group: a Retry node, or a Pod that is no retry's attempt."""
    attempts = {c for n in nodes.values() if n.get("type") == "Retry" for c in n.get("children", []) or []}
    return [n for n in nodes.values() if n.get("type") in ("Retry", "Pod", "Skipped") and n.get("id") not in attempts]


# Templates whose nodes count for a step: the fan-out task, and the copy of a memoized result.
FANOUT_TEMPLATE, COPY_TEMPLATE = "execute-submission", "copy-memoized"
STEP_OF = {FANOUT_TEMPLATE: "execute", COPY_TEMPLATE: "execute"}


def _reused(nodes: dict[str, dict[str, Any]], n: dict[str, Any]) -> bool:
    """Reused by a memoized resubmit: Argo's FormulateResubmitWorkflow turns each succeeded
    Pod node into type Skipped, phase Skipped, message "original pod: <id>" (a `when` that was
    false or an omitted task is also type Skipped, with another message)."""

    def copied(node: dict[str, Any]) -> bool:
        return node.get("type") == "Skipped" and (node.get("message") or "").startswith("original pod:")

    if copied(n):
        return True
    if n.get("type") == "Retry":
        kids = [nodes[c] for c in n.get("children") or [] if c in nodes]
        return bool(kids) and all(copied(k) for k in kids)
    return False


def run_status(workflow: dict[str, Any]) -> RunStatus:
    """Progress per step (done / failed / running / cached) and the failed nodes of a run."""
    status = workflow.get("status") or {}
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    params = {
        p["name"]: p.get("value") for p in (workflow.get("spec", {}).get("arguments", {}).get("parameters") or [])
    }
    steps = {s: StepProgress(s) for s in STEP_ORDER}
    failed: list[FailedNode] = []
    waiting: dict[tuple[str, str], WaitingPods] = {}
    summary = ""
    for n in nodes.values():  # pods that cannot start: the pod itself says why (retry nodes do not)
        if n.get("type") == "Pod" and n.get("phase") == "Pending" and n.get("message"):
            step = n.get("templateName") or (n.get("templateRef") or {}).get("template") or "?"
            reason = n["message"].split(":", 1)[0].strip()
            w = waiting.setdefault((step, reason), WaitingPods(step, reason, n["message"], []))
            student = param(n.get("inputs"), "student")
            if student:
                w.students.append(student)
    counted: dict[str, tuple[bool, bool]] = {}  # student -> (done, cached) of their execute
    copies: list[dict[str, Any]] = []
    for n in units(nodes):
        template = n.get("templateName") or (n.get("templateRef") or {}).get("template")
        step = STEP_OF.get(template, template)
        if step not in steps:
            continue
        if template == COPY_TEMPLATE:
            copies.append(n)
            continue
        p = steps[step]
        phase = n.get("phase", "")
        reused = _reused(nodes, n)
        if phase in ("Skipped", "Omitted") and not reused:
            continue  # never ran: `when` false, omitted by `depends`, empty fan-out
        p.total += 1
        student = param(n.get("inputs"), "student")
        if phase == "Succeeded" or reused:
            p.done += 1
            cached = bool((n.get("memoizationStatus") or {}).get("hit")) or reused
            p.cached += cached
            if step == "execute" and student:
                counted[student] = (True, cached)
        elif phase in ("Failed", "Error"):  # Error also for a node Argo could not start (type Skipped)
            p.failed += 1
            failed.append(FailedNode(step, student, n.get("displayName", ""), phase, n.get("message", ""), n))
        else:
            p.running += 1
        if step == "merge" and phase in ("Succeeded", "Failed"):
            # a merge that exits 75 (a submission UNGRADED) still wrote its summary; older Argo
            # copies a Retry node's outputs only on success: then its last attempt has them
            attempts = [nodes[c] for c in n.get("children") or [] if c in nodes] if n.get("type") == "Retry" else []
            last = max(attempts, key=lambda a: a.get("startedAt") or "") if attempts else n
            summary = param(n.get("outputs"), "summary") or param(last.get("outputs"), "summary") or summary
    for n in copies:  # a memoized result that could not be copied into this run: that submission failed
        if n.get("phase") not in ("Failed", "Error"):
            continue
        student = param(n.get("inputs"), "student")
        ex = steps["execute"]
        done, cached = counted.pop(student, (False, False)) if student else (False, False)
        ex.done -= done
        ex.cached -= cached
        ex.failed += 1
        ex.total += not done
        why = n.get("message") or n.get("phase", "")
        failed.append(
            FailedNode(
                "execute",
                student,
                n.get("displayName", ""),
                n["phase"],
                f"copying the memoized result into this run failed: {why}",
                n,
            )
        )
    students = param(status.get("outputs"), "students")
    if students:
        steps["execute"].total = max(steps["execute"].total, len(json.loads(students)))
    return RunStatus(
        name=workflow["metadata"]["name"],
        run_id=params.get("run-id") or workflow["metadata"]["name"],
        phase=status.get("phase", ""),
        message=status.get("message", ""),
        steps=steps,
        failed=sorted(failed, key=lambda f: (STEP_ORDER.index(f.step), f.student or "")),
        summary=summary,
        waiting=[waiting[k] for k in sorted(waiting)],
    )
