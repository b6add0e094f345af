"""Check that every {{...}} reference in a rendered WorkflowTemplate resolves.

Argo only finds an unresolvable `{{inputs.parameters.x}}` when a pod is about to start, after
collect and restore have run; this finds it while rendering. A reference resolves when it
names a declared workflow parameter or global output, a label the workflow gets, one of the
template's own input parameters or artifacts, an output of a task the referring task depends
on (directly or not), a loop item, or one of Argo's own variables. Expression tags
(`{{=...}}`) are checked for the variables they read.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

__all__ = ["lint", "references"]

_TAG = re.compile(r"\{\{(.*?)\}\}")
_VAR = re.compile(r"\b(workflow|inputs|outputs|tasks|steps|item|pod|retries|node)((?:\.[A-Za-z0-9_/-]+)*)")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
# Argo's own variables (https://argo-workflows.readthedocs.io/en/latest/variables/)
ARGO_VARIABLES = {
    "workflow.name",
    "workflow.namespace",
    "workflow.uid",
    "workflow.status",
    "workflow.failures",
    "workflow.creationTimestamp",
    "workflow.duration",
    "workflow.mainEntrypoint",
    "workflow.serviceAccountName",
    "workflow.parameters",
    "workflow.parameters.json",
    "pod.name",
    "retries",
    "node.name",
    "tasks.name",
}


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def references(text: str) -> list[str]:
    """The variables a string reads: simple tags as written, expression tags' variables normalised."""
    out = []
    for m in _TAG.finditer(text):
        tag = m.group(1).strip()
        if not tag.startswith("="):
            out.append(tag)
            continue
        expr = re.sub(r"\[\s*'([^']*)'\s*\]", r".\1", tag[1:])  # a['b-c'] -> a.b-c
        expr = _STRING.sub("''", expr).replace("?.", ".")
        out += [v.group(1) + v.group(2) for v in _VAR.finditer(expr)]
    return out


def _ancestors(tasks: Mapping[str, Mapping[str, Any]], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        depends = tasks[todo.pop()].get("depends", "") or ""
        for dep in re.findall(r"[A-Za-z0-9_-]+(?=\.[A-Z]|\b)", depends):
            if dep in tasks and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def lint(workflow_template: Mapping[str, Any]) -> list[str]:
    """Problems in a rendered WorkflowTemplate (as a dict); an empty list means every reference resolves."""
    spec = workflow_template["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    glob = set(ARGO_VARIABLES)
    glob |= {f"workflow.parameters.{p['name']}" for p in spec.get("arguments", {}).get("parameters", [])}
    for key in list((spec.get("workflowMetadata") or {}).get("labelsFrom") or {}) + list(
        (spec.get("workflowMetadata") or {}).get("labels") or {}
    ):
        glob.add(f"workflow.labels.{key}")
    for t in templates.values():
        for p in (t.get("outputs") or {}).get("parameters", []) or []:
            if p.get("globalName"):
                glob.add(f"workflow.outputs.parameters.{p['globalName']}")

    problems: list[str] = []

    def check(where: str, texts: Iterator[str], scope: set[str], item_ok: bool = False) -> None:
        for text in texts:
            for ref in references(text):
                if ref in scope or (item_ok and (ref == "item" or ref.startswith("item."))):
                    continue
                problems.append(f"{where}: {{{{{ref}}}}} does not resolve")

    def own_scope(t: Mapping[str, Any]) -> set[str]:
        s = set(glob)
        ins = t.get("inputs") or {}
        s |= {f"inputs.parameters.{p['name']}" for p in ins.get("parameters", []) or []}
        s |= {f"inputs.artifacts.{a['name']}" for a in ins.get("artifacts", []) or []}
        s |= {f"inputs.artifacts.{a['name']}.path" for a in ins.get("artifacts", []) or []}
        return s

    for name, t in templates.items():
        scope = own_scope(t)
        if "dag" not in t:
            check(f"template {name}", _strings(t), scope)
            continue
        tasks = {task["name"]: task for task in t["dag"]["tasks"]}
        rest = {k: v for k, v in t.items() if k != "dag"}
        check(f"template {name}", _strings(rest), scope)
        for tname, task in tasks.items():
            if task.get("template") not in templates:
                problems.append(f"template {name}, task {tname}: no template named {task.get('template')!r}")
                continue
            s = set(scope)
            for dep in _ancestors(tasks, tname):
                dt = templates.get(tasks[dep].get("template"), {})
                outs = dt.get("outputs") or {}
                s |= {f"tasks.{dep}.status", f"tasks.{dep}.exitCode"}
                s |= {f"tasks.{dep}.outputs.parameters.{p['name']}" for p in outs.get("parameters", []) or []}
                s |= {f"tasks.{dep}.outputs.artifacts.{a['name']}" for a in outs.get("artifacts", []) or []}
                if "container" in dt:
                    s.add(f"tasks.{dep}.outputs.result")
            check(
                f"template {name}, task {tname}", _strings(task), s, item_ok="withParam" in task or "withItems" in task
            )
            # arguments must match what the called template declares
            called = templates[task["template"]]
            want = {p["name"] for p in (called.get("inputs") or {}).get("parameters", []) or [] if "value" not in p}
            given = {p["name"] for p in (task.get("arguments") or {}).get("parameters", []) or []}
            if want - given:
                problems.append(f"template {name}, task {tname}: {task['template']} needs {sorted(want - given)}")
            declared = {p["name"] for p in (called.get("inputs") or {}).get("parameters", []) or []}
            if given - declared:
                problems.append(
                    f"template {name}, task {tname}: {task['template']} has no input {sorted(given - declared)}"
                )
    top = {k: v for k, v in spec.items() if k != "templates"}
    check("spec", _strings(top), set(glob))
    for ref in (spec.get("entrypoint"), spec.get("onExit")):
        if ref and ref not in templates:
            problems.append(f"spec: no template named {ref!r}")
    return problems


if __name__ == "__main__":  # pragma: no cover - python -m pipelines.argo.lint argo/workflowtemplate.yaml
    import sys

    import yaml

    found = lint(yaml.safe_load(open(sys.argv[1])))
    print("\n".join(found) or "ok")
    sys.exit(1 if found else 0)
