"""Run the rendered WorkflowTemplate on this machine, pod by pod, the way Argo would.

A check that the YAML in argo/ and the step CLIs agree, without a cluster: each container
template runs as its own process (`sys.executable -m steps.<name>` with the rendered
arguments) in a fresh directory that stands for the pod's /gradeflow and holds ONLY the
template's declared input artifacts, fetched from the store by their rendered keys; after it
exits, its declared outputs are uploaded to their keys and its output parameters read from
their paths. The DAGs run in dependency order, execute fans out over restore's output, the
exit handler runs last, execute is memoized in a dict standing for the ConfigMap cache, and a
failed pod is retried when the template's retryStrategy expression says so.

What it cannot show: Kubernetes itself (security contexts, the NetworkPolicy, resource
limits, service accounts) and Argo's controller. Those are checked by tests on the rendered
objects and, for real, on a cluster (docs/argo.md). It understands the subset of Argo
templating the gradeflow template uses, and raises on anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import fsspec

__all__ = ["Emulator", "PodRun", "EmulatedRun", "evaluate", "substitute", "retry_wanted"]

_TAG = re.compile(r"\{\{(.*?)\}\}")


class _Missing:
    """What `a?.b` gives when `a` has no `b`: falsy, and missing all the way down."""

    def __getattr__(self, key: str) -> "_Missing":
        return self

    def __getitem__(self, key: str) -> "_Missing":
        return self

    def __bool__(self) -> bool:
        return False


_MISSING = _Missing()


class _NS(dict):
    """A dict that also answers attribute access; a missing attribute is _MISSING (expr's ?.)."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key, _MISSING)


def _nest(flat: Mapping[str, Any]) -> _NS:
    """{'workflow.parameters.run-id': v} -> workflow.parameters['run-id'] == v."""
    root = _NS()
    for key, value in flat.items():
        parts = _split(key)
        d = root
        for p in parts[:-1]:
            d = d.setdefault(p, _NS())
        d[parts[-1]] = value
    return root


def _split(key: str) -> list[str]:
    # the first three dots separate scopes (workflow.parameters.<name>, tasks.<t>.outputs...);
    # names themselves keep theirs (labels like gradeflow.io/run-id)
    heads = ("workflow.parameters.", "workflow.outputs.parameters.", "workflow.labels.", "inputs.parameters.", "item.")
    for h in heads:
        if key.startswith(h):
            return h.rstrip(".").split(".") + [key[len(h) :]]
    return key.split(".")


def _sha256sum(s: str) -> str:
    return hashlib.sha256(str(s).encode()).hexdigest()


_FUNCS = {
    "asInt": lambda v: int(str(v)),
    "_matches": lambda s, pattern: re.search(pattern, str(s)) is not None,
    # the sprig functions the template uses, with sprig's argument order
    "_sprig_sha256sum": _sha256sum,
    "_sprig_trunc": lambda n, s: str(s)[:n],
    "_sprig_contains": lambda substr, s: substr in str(s),
    "_sprig_ternary": lambda if_true, if_false, cond: if_true if cond else if_false,
}


def evaluate(expression: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate the expr-lang subset gradeflow's template uses (operators, ?., ??, asInt, matches, sprig.*)."""
    py = expression
    py = re.sub(r"(\S+)\s+matches\s+('(?:[^']|\\')*')", r"_matches(\1, \2)", py)
    py = re.sub(r"\bsprig\.(\w+)\(", r"_sprig_\1(", py)
    py = py.replace("?.", ".").replace("??", " or ")
    py = py.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    env = dict(_FUNCS)
    env.update(_nest(scope))
    return eval(py, {"__builtins__": {}}, env)  # noqa: S307 - our own template's expressions, in tests


def substitute(text: str, scope: Mapping[str, Any]) -> str:
    """Replace every {{tag}} (simple or =expression) in `text`; an unknown tag is an error."""

    def one(m: re.Match[str]) -> str:
        tag = m.group(1).strip()
        if tag.startswith("="):
            value = evaluate(tag[1:], scope)
            return str(value).lower() if isinstance(value, bool) else str(value)
        if tag not in scope:
            raise KeyError(f"unresolved {{{{{tag}}}}}")
        return str(scope[tag])

    return _TAG.sub(one, text)


def retry_wanted(strategy: Mapping[str, Any] | None, exit_code: int | None, status: str, message: str = "") -> bool:
    """Whether Argo would retry: the retryStrategy's expression on lastRetry.*."""
    if not strategy:
        return False
    expr = strategy.get("expression")
    if not expr:
        return status in ("Failed", "Error")
    # operator.go: `lastRetryExitCode, lastRetryDuration := "0", "0"` when the node has no exit code
    scope = {
        "lastRetry.exitCode": str(0 if exit_code is None else exit_code),
        "lastRetry.status": status,
        "lastRetry.message": message,
        "lastRetry.duration": "1",
    }
    return bool(evaluate(expr, scope))


@dataclass
class PodRun:
    """One pod: which template, what it was given, what it left, how it ended."""

    template: str
    node: str
    parameters: dict[str, str]
    inputs: dict[str, str]  # input artifact name -> path it was placed at (relative to the pod root)
    outputs: dict[str, str | None]  # output artifact name -> key it was uploaded to (None: optional, absent)
    output_parameters: dict[str, str]
    exit_code: int | None
    attempts: int = 1
    memoized: bool = False
    memo_key: str | None = None
    root_files: list[str] = field(default_factory=list)  # every file the pod root held before it ran
    log: str = ""

    @property
    def phase(self) -> str:
        return "Succeeded" if self.exit_code == 0 else "Failed"


@dataclass
class EmulatedRun:
    phase: str
    pods: list[PodRun]
    global_outputs: dict[str, str]

    def by_template(self, name: str) -> list[PodRun]:
        return [p for p in self.pods if p.template == name]


class PodFailed(Exception):
    pass


class Emulator:
    """Runs a rendered WorkflowTemplate (as a dict) against a store URL (file:// or s3://)."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        store: str,
        course_dir: str | Path,
        *,
        sandbox: str = "none",
        cache: dict[str, Any] | None = None,
        workers: int = 2,
        keep: str | Path | None = None,
        before_pod: Callable[[str, Mapping[str, str], Path], None] | None = None,
    ) -> None:
        self.spec = template["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        declared = {p["name"]: p.get("value") for p in self.spec["arguments"]["parameters"]}
        merged = {**declared, **parameters}
        missing = [k for k, v in merged.items() if v is None]
        if missing:
            raise ValueError(f"parameters without a value: {', '.join(missing)}")
        self.scope: dict[str, Any] = {f"workflow.parameters.{k}": v for k, v in merged.items()}
        self.scope["workflow.name"] = merged.get("run-id", "emulated")
        self.store = store.rstrip("/")
        self.fs, _ = fsspec.core.url_to_fs(self.store)
        self.course_dir = Path(course_dir)
        self.sandbox = sandbox
        self.cache = {} if cache is None else cache  # the memoize ConfigMap
        self.workers = workers
        self.keep = Path(keep) if keep else None
        self.before_pod = before_pod  # (template, parameters, pod root): e.g. to break a pod in a test
        self.pods: list[PodRun] = []
        self.global_outputs: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- store ---------------------------------------------------------------------------------
    def _url(self, key: str) -> str:
        return f"{self.store}/{key.strip('/')}"

    def _download(self, key: str, dest: Path) -> bool:
        url = self._url(key)
        if self.fs.isdir(url):
            dest.mkdir(parents=True, exist_ok=True)
            self.fs.get(url + "/", str(dest) + "/", recursive=True)
            return True
        if self.fs.exists(url):
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(url, str(dest))
            return True
        return False

    def _upload(self, src: Path, key: str) -> bool:
        if src.is_dir():
            files = [p for p in src.rglob("*") if p.is_file()]
            for f in files:
                self._put(f, self._url(f"{key}/{f.relative_to(src).as_posix()}"))
            return bool(files)
        if src.is_file():
            self._put(src, self._url(key))
            return True
        return False

    def _put(self, src: Path, url: str) -> None:
        self.fs.makedirs(url.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(src), url)

    # -- one pod --------------------------------------------------------------------------------
    def _pod_path(self, root: Path, path: str) -> Path:
        if path == "/gradeflow" or path.startswith("/gradeflow/"):
            return root / "gradeflow" / path[len("/gradeflow/") :] if path != "/gradeflow" else root / "gradeflow"
        raise ValueError(f"artifact path {path} is outside the pod's /gradeflow workspace")

    def _localize(self, arg: str, root: Path, course: Path) -> str:
        arg = re.sub(r"^/gradeflow(?=/|$)", str(root / "gradeflow"), arg)
        return re.sub(r"^/course(?=/|$)", str(course), arg)

    def run_pod(
        self,
        tmpl: Mapping[str, Any],
        node: str,
        params: Mapping[str, str],
        from_artifacts: Mapping[str, str] | None = None,
    ) -> PodRun:
        """Run one container template: inputs in, command, outputs out (with retries and memoization)."""
        scope = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in params.items()}}
        t = json.loads(substitute(json.dumps(tmpl), scope))
        # one dict stands for every cache ConfigMap: entries are "<configmap>/<key>"
        memo_key = f"{t['memoize']['cache']['configMap']['name']}/{t['memoize']['key']}" if "memoize" in t else None
        if memo_key:
            with self._lock:
                hit = self.cache.get(memo_key)
            if hit:
                pod = PodRun(
                    tmpl["name"],
                    node,
                    dict(params),
                    {},
                    dict(hit["artifacts"]),
                    dict(hit["parameters"]),
                    0,
                    attempts=0,
                    memoized=True,
                    memo_key=memo_key,
                )
                with self._lock:
                    self.pods.append(pod)
                return pod
        attempts = 0
        while True:
            attempts += 1
            pod = self._run_once(t, node, params, from_artifacts or {})
            pod.attempts, pod.memo_key = attempts, memo_key
            limit = int((t.get("retryStrategy") or {}).get("limit", 0))
            if (
                pod.exit_code == 0
                or attempts > limit
                or not retry_wanted(
                    t.get("retryStrategy"), pod.exit_code, "Failed" if pod.exit_code is not None else "Error"
                )
            ):
                break
        with self._lock:
            self.pods.append(pod)
            if pod.exit_code == 0 and memo_key:
                self.cache[memo_key] = {"artifacts": pod.outputs, "parameters": pod.output_parameters}
        return pod

    def _run_once(
        self, t: Mapping[str, Any], node: str, params: Mapping[str, str], from_artifacts: Mapping[str, str]
    ) -> PodRun:
        base = Path(tempfile.mkdtemp(prefix=f"gradeflow-pod-{t['name']}-", dir=self.keep))
        try:
            return self._in_pod(base, t, node, params, from_artifacts)
        finally:
            if not self.keep:
                shutil.rmtree(base, ignore_errors=True)

    def _in_pod(
        self, base: Path, t: Mapping[str, Any], node: str, params: Mapping[str, str], from_artifacts: Mapping[str, str]
    ) -> PodRun:
        root = base / "pod"
        (root / "gradeflow").mkdir(parents=True)
        placed: dict[str, str] = {}
        for art in (t.get("inputs") or {}).get("artifacts", []) or []:
            key = (art.get("s3") or {}).get("key") or from_artifacts.get(art["name"])
            dest = self._pod_path(root, art["path"])
            if "raw" in art:  # the init container writes raw data, no store involved
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(art["raw"]["data"])
                placed[art["name"]] = art["path"]
            elif key and self._download(key, dest):
                placed[art["name"]] = art["path"]
            elif not art.get("optional"):
                return PodRun(
                    t["name"],
                    node,
                    dict(params),
                    placed,
                    {},
                    {},
                    None,
                    log=f"input artifact {art['name']} ({key}) not found",
                )
        root_files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if self.before_pod:
            self.before_pod(t["name"], params, root)
        course = self.course_dir
        for vm in t["container"].get("volumeMounts", []) or []:
            if vm["mountPath"] == "/course" and vm.get("subPath"):
                course = course / vm["subPath"]
        command = list(t["container"]["command"]) + list(t["container"].get("args", []) or [])
        if command[0] == "python":
            command[0] = sys.executable
        elif shutil.which(command[0]):
            command[0] = shutil.which(command[0])  # type: ignore[assignment]
        command = [self._localize(c, root, course) for c in command]
        if "--sandbox" in command:
            command[command.index("--sandbox") + 1] = self.sandbox  # the pod sandbox is the pod; here there is none
        env = {**os.environ, "HOME": str(base / "home"), "PYTHONDONTWRITEBYTECODE": "1"}
        (base / "home").mkdir()
        proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
        outputs: dict[str, str | None] = {}
        for art in (t.get("outputs") or {}).get("artifacts", []) or []:
            src = self._pod_path(root, art["path"])
            key = art["s3"]["key"]
            if self._upload(src, key):
                outputs[art["name"]] = key
            elif art.get("optional"):
                outputs[art["name"]] = None
            elif proc.returncode == 0:
                return PodRun(
                    t["name"],
                    node,
                    dict(params),
                    placed,
                    outputs,
                    {},
                    None,
                    root_files=root_files,
                    log=f"output artifact {art['name']} missing at {art['path']}\n{proc.stderr}",
                )
        out_params: dict[str, str] = {}
        for p in (t.get("outputs") or {}).get("parameters", []) or []:
            if "value" in p:  # Argo reports the substituted value as it is (ReportOutputs)
                out_params[p["name"]] = p["value"]
                continue
            vf = p.get("valueFrom") or {}
            path = self._pod_path(root, vf["path"])
            if path.is_file():
                # executor.go SaveParameters: "Trims off a single newline for user convenience"
                out_params[p["name"]] = path.read_text().removesuffix("\n")
            elif "default" in vf:
                out_params[p["name"]] = vf["default"]
            elif proc.returncode == 0:
                return PodRun(
                    t["name"],
                    node,
                    dict(params),
                    placed,
                    outputs,
                    out_params,
                    None,
                    root_files=root_files,
                    log=f"output parameter {p['name']} missing at {vf['path']}",
                )
        return PodRun(
            t["name"],
            node,
            dict(params),
            placed,
            outputs,
            out_params,
            proc.returncode,
            root_files=root_files,
            log=proc.stdout + proc.stderr,
        )

    # -- DAGs -----------------------------------------------------------------------------------
    def _run_template(
        self, name: str, node: str, params: Mapping[str, str], from_artifacts: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        t = self.templates[name]
        if "container" in t:
            pod = self.run_pod(t, node, params, from_artifacts)
            return {
                "phase": pod.phase,
                "outputs": {
                    "parameters": pod.output_parameters,
                    "artifacts": {k: v for k, v in pod.outputs.items() if v},
                },
            }
        if "dag" in t:
            return self._run_dag(t, node, params)
        raise ValueError(f"template {name}: only container and dag templates are emulated")

    def _run_dag(self, t: Mapping[str, Any], node: str, params: Mapping[str, str]) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        scope_base = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in params.items()}}
        pending = list(t["dag"]["tasks"])
        failed = False
        while pending:
            ready = [task for task in pending if all(d in results for d in _depends_on(task))]
            if not ready:
                raise ValueError(f"{t['name']}: tasks {[x['name'] for x in pending]} wait on each other")
            for task in ready:
                pending.remove(task)
                results[task["name"]] = self._run_task(task, node, scope_base, results)
                failed |= results[task["name"]]["phase"] in ("Failed", "Error")
        return {"phase": "Failed" if failed else "Succeeded", "outputs": {"parameters": {}, "artifacts": {}}}

    def _task_scope(self, base: Mapping[str, Any], results: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        scope = dict(base)
        for name, r in results.items():
            scope[f"tasks.{name}.status"] = r["phase"]
            for k, v in r["outputs"]["parameters"].items():
                scope[f"tasks.{name}.outputs.parameters.{k}"] = v
            for k, v in r["outputs"]["artifacts"].items():
                scope[f"tasks.{name}.outputs.artifacts.{k}"] = v
        with self._lock:
            scope.update({f"workflow.outputs.parameters.{k}": v for k, v in self.global_outputs.items()})
        return scope

    def _run_task(
        self, task: Mapping[str, Any], node: str, base: Mapping[str, Any], results: Mapping[str, dict[str, Any]]
    ) -> dict[str, Any]:
        if not depends_satisfied(task.get("depends", ""), results):
            return {"phase": "Omitted", "outputs": {"parameters": {}, "artifacts": {}}}
        scope = self._task_scope(base, results)
        items = [None]
        if "withParam" in task:
            items = json.loads(substitute(task["withParam"], scope))
            if not items:
                return {"phase": "Skipped", "outputs": {"parameters": {}, "artifacts": {}}}

        def one(i_item: tuple[int, Any]) -> dict[str, Any]:
            i, item = i_item
            s = dict(scope)
            if item is not None:
                s.update({f"item.{k}": v for k, v in item.items()} if isinstance(item, dict) else {"item": item})
            if "when" in task:
                cond = substitute(task["when"], s)
                go = cond == "true" if cond in ("true", "false") else bool(evaluate(cond, {}))
                if not go:
                    return {"phase": "Skipped", "outputs": {"parameters": {}, "artifacts": {}}}
            args = task.get("arguments") or {}
            params = {p["name"]: substitute(p["value"], s) for p in args.get("parameters", []) or []}
            arts = {a["name"]: substitute(a["from"], s) for a in args.get("artifacts", []) or []}
            label = task["name"] + (
                f"({i}:{','.join(f'{k}:{v}' for k, v in sorted(item.items()))})" if isinstance(item, dict) else ""
            )
            return self._run_template(task["template"], f"{node}.{label}", params, arts)

        if len(items) == 1:
            outcomes = [one((0, items[0]))]
        else:
            with ThreadPoolExecutor(self.workers) as pool:
                outcomes = list(pool.map(one, enumerate(items)))
        phase = (
            "Failed"
            if any(o["phase"] in ("Failed", "Error") for o in outcomes)
            else outcomes[0]["phase"]
            if len(outcomes) == 1
            else "Succeeded"
        )
        out = outcomes[0]["outputs"] if len(outcomes) == 1 else {"parameters": {}, "artifacts": {}}
        if len(outcomes) == 1:
            self._export_globals(task["template"], out)
        return {"phase": phase, "outputs": out}

    def _export_globals(self, template: str, outputs: Mapping[str, Any]) -> None:
        t = self.templates[template]
        for p in (t.get("outputs") or {}).get("parameters", []) or []:
            if p.get("globalName") and p["name"] in outputs["parameters"]:
                with self._lock:
                    self.global_outputs[p["globalName"]] = outputs["parameters"][p["name"]]

    def run(self) -> EmulatedRun:
        """The entrypoint DAG, then the exit handler; the phase Argo would report."""
        self.global_outputs: dict[str, str] = {}
        main = self._run_template(self.spec["entrypoint"], self.scope["workflow.name"], {})
        return self.run_exit_handler(main["phase"])

    def run_exit_handler(self, phase: str = "Succeeded") -> EmulatedRun:
        """Only the exit handler, after an entrypoint that ended in `phase`, with the global
        outputs gathered so far (none when called alone: what `argo resubmit --memoized` gives)."""
        if self.spec.get("onExit"):
            self.scope["workflow.status"] = phase
            exit_ = self._run_template(self.spec["onExit"], self.scope["workflow.name"] + ".onExit", {})
            if phase == "Succeeded" and exit_["phase"] in ("Failed", "Error"):
                phase = exit_["phase"]
        return EmulatedRun(phase, list(self.pods), dict(self.global_outputs))


def _depends_on(task: Mapping[str, Any]) -> list[str]:
    return sorted(
        {
            m.split(".")[0]
            for m in re.findall(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?", task.get("depends", ""))
            if m not in ("and", "or")
        }
    )


def depends_satisfied(depends: str, results: Mapping[str, dict[str, Any]]) -> bool:
    if not depends:
        return True

    def term(m: re.Match[str]) -> str:
        name, _, result = m.group(0).partition(".")
        phase = results[name]["phase"]
        if not result:
            return str(phase in ("Succeeded", "Skipped"))
        return str(
            {
                "Succeeded": phase == "Succeeded",
                "Failed": phase == "Failed",
                "Errored": phase == "Error",
                "Skipped": phase == "Skipped",
                "Omitted": phase == "Omitted",
            }[result]
        )

    expr = re.sub(r"[A-Za-z0-9_-]+(?:\.[A-Z][A-Za-z]+)?", term, depends).replace("&&", " and ").replace("||", " or ")
    return bool(eval(expr, {"__builtins__": {}}, {}))  # noqa: S307 - True/False/and/or only
