"""What a real cluster would reject or get wrong, checked against the cluster's own rules.

Scenario: an administrator runs `kubectl apply -f argo/install/ -f argo/` on Argo 4.x and a
teacher submits runs with odd course and assignment ids. `kubectl apply` checks the
WorkflowTemplate against the full CRD's openAPIV3Schema (Kubernetes quantities, int-or-string,
required fields), the API server checks the core objects against Kubernetes' schemas, names
and labels must follow Kubernetes' rules, and Argo's controller then runs retries, deadlines
and the memoization cache as its source says (argoproj/argo-workflows,
workflow/controller/operator.go and workflow/controller/cache/). Each rule is quoted where it
is used; each check has a control showing it can fail.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from argo_emulator import retry_wanted, substitute
from argo_schemas import core_errors, crd_errors, json_schema_errors, name_and_label_errors
from pipelines.argo.pods import INFRASTRUCTURE_MESSAGES, MAIN_CONTAINER
from pipelines.argo.workflow import (
    DEFAULT_CLASS_SIZE,
    EXECUTE_CACHE_PREFIX,
    PARAMETERS,
    SUPPORTED_ARGO,
    build_template,
    build_workflow,
)
from steps.contract import DAG, EXIT_INFRA

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "argo" / "install"
DOCS = ROOT / "docs" / "argo.md"
DEFAULTS = {f"workflow.parameters.{p.name}": p.default for p in PARAMETERS if p.default is not None}
# the quantity rule as the CRD itself states it (k8s.io/apimachinery resource.Quantity)
QUANTITY = re.compile(
    json.loads((ROOT / "tests" / "data" / "argo-crd-v4.1.2-workflowtemplate.json").read_text())["properties"]["spec"][
        "properties"
    ]["templates"]["items"]["properties"]["container"]["properties"]["resources"]["properties"]["limits"][
        "additionalProperties"
    ]["pattern"]
)


@pytest.fixture(scope="module")
def wt() -> dict:
    return build_template().to_dict()


def templates(wt: dict) -> dict[str, dict]:
    return {t["name"]: t for t in wt["spec"]["templates"]}


def pod_templates(wt: dict) -> dict[str, dict]:
    return {n: t for n, t in templates(wt).items() if "container" in t}


def install_objects() -> list[dict]:
    return [doc for f in sorted(INSTALL.glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text())]


ODD_RUNS = [
    dict(assignment="ps1", run_id="ps1-20261122-101500", course="intro"),
    dict(
        assignment="Problem Set 1 (late submissions, resubmitted after the deadline extension)",
        run_id="r-1",
        course="Intro to CS: Fall 2026!",
    ),
    dict(
        assignment="ps1",
        run_id="x",
        course="",
        limits={"memory": 3072, "cpu": "500m", "cell-timeout": ""},
        parallelism=3,
    ),
]


# --- 1. resources and schemas --------------------------------------------------------------------


def test_template_passes_the_full_crd_and_the_json_schema(wt: dict) -> None:
    assert crd_errors(wt, "WorkflowTemplate") == []
    assert json_schema_errors(wt, "WorkflowTemplate") == []


@pytest.mark.parametrize("run", ODD_RUNS, ids=["plain", "odd-ids", "limits"])
def test_submitted_workflows_pass_the_full_crd_and_kubernetes_name_rules(run: dict) -> None:
    wf = build_workflow(**run).to_dict()
    assert crd_errors(wf, "Workflow") == [] and json_schema_errors(wf, "Workflow") == []
    assert name_and_label_errors(wf) == []


def test_the_crd_check_rejects_a_templated_quantity(wt: dict) -> None:
    """Control, the bug this fixes: `{{...}}` in container.resources is no Kubernetes quantity."""
    bad = copy.deepcopy(wt)
    execute = templates(bad)["execute"]
    execute["container"]["resources"]["limits"]["memory"] = "{{=asInt(workflow.parameters.memory) + 512}}Mi"
    execute["container"]["resources"]["limits"]["cpu"] = "{{workflow.parameters.cpu}}"
    errors = crd_errors(bad, "WorkflowTemplate")
    assert len(errors) == 2 and all("does not match" in e for e in errors)
    assert json_schema_errors(bad, "WorkflowTemplate") == []  # why the JSON schema alone missed it


def test_container_resources_are_static_quantities(wt: dict) -> None:
    for name, t in pod_templates(wt).items():
        res = t["container"]["resources"]
        for kind in ("requests", "limits"):
            assert set(res[kind]) == {"cpu", "memory", "ephemeral-storage"}, name
            for q in res[kind].values():
                assert "{{" not in q and QUANTITY.match(q), f"{name}: {q!r}"


def _apply_pod_spec_patch(pod_spec: dict, patch: dict) -> dict:
    """A strategic merge of Argo's podSpecPatch: containers and volumes merge by `name`."""
    out = copy.deepcopy(pod_spec)
    for key in ("containers", "volumes"):
        for item in patch.get(key, []):
            (target,) = [x for x in out[key] if x["name"] == item["name"]]
            _merge(target, item)
    return out


def _merge(into: dict, patch: dict) -> None:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _pod_as_argo_builds_it(t: dict, scope: dict) -> dict:
    """The pod of container template `t`: its container as `main`, its volumes, then its podSpecPatch."""
    container = {k: v for k, v in t["container"].items() if k not in ("securityContext",)}
    spec = {"containers": [{**container, "name": MAIN_CONTAINER}], "volumes": t["volumes"], "restartPolicy": "Never"}
    spec = json.loads(substitute(json.dumps(spec), scope))
    if "podSpecPatch" in t:
        spec = _apply_pod_spec_patch(spec, json.loads(substitute(t["podSpecPatch"], scope)))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    "values",
    [{}, {"memory": "3072", "cpu": "500m", "class-size": "40"}, {"memory": "256", "cpu": "2.5", "class-size": "900"}],
)
def test_pod_spec_patch_makes_valid_pods_for_any_limits(wt: dict, values: dict) -> None:
    """examples/pod-spec-patch.yaml:

    `podSpecPatch: '{"containers":[{"name":"main",
    "resources":{"limits":{"cpu": "{{workflow.parameters.cpu-limit}}" }}}]}'`."""
    scope = {
        **DEFAULTS,
        **{f"workflow.parameters.{k}": v for k, v in values.items()},
        "inputs.parameters.student": "alice",
        "workflow.parameters.image": "grader:1",
    }
    scope["workflow.parameters.assignment"], scope["workflow.parameters.run-id"] = "ps1", "r1"
    for name, t in pod_templates(wt).items():
        pod = _pod_as_argo_builds_it(t, scope)
        assert core_errors(pod) == [], name
        (main,) = pod["spec"]["containers"]
        for kind in ("requests", "limits"):
            assert all(QUANTITY.match(str(q)) for q in main["resources"][kind].values()), (name, main["resources"])
        if name.startswith("execute"):  # the notebooks' memory, papermill's 512 MiB and the 256 MiB tmpfs /tmp
            memory = int(scope["workflow.parameters.memory"]) + 512 + 256
            assert main["resources"]["limits"] == {
                "cpu": scope["workflow.parameters.cpu"],
                "memory": f"{memory}Mi",
                "ephemeral-storage": "4352Mi",
            }
            assert main["resources"]["requests"]["memory"] == f"{memory}Mi"


def test_static_resources_equal_the_patch_at_the_defaults(wt: dict) -> None:
    """A pod submitted with the defaults looks the same with or without its podSpecPatch."""
    scope = {
        **DEFAULTS,
        "inputs.parameters.student": "alice",
        "workflow.parameters.assignment": "ps1",
        "workflow.parameters.run-id": "r",
    }
    for name, t in pod_templates(wt).items():
        if "podSpecPatch" not in t:
            continue
        unpatched = {**t}
        unpatched.pop("podSpecPatch")
        assert _pod_as_argo_builds_it(t, scope) == _pod_as_argo_builds_it(unpatched, scope), name


def test_install_manifests_pass_kubernetes_schemas_and_name_rules() -> None:
    objs = install_objects()
    assert {o["kind"] for o in objs} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    }
    for o in objs:
        assert core_errors(o) == []
        assert name_and_label_errors(o) == []


def test_the_core_and_name_checks_can_fail() -> None:
    (np,) = [o for o in install_objects() if o["kind"] == "NetworkPolicy"]
    bad = copy.deepcopy(np)
    bad["spec"]["egress"][0]["ports"][0]["protocol"] = 6443
    assert core_errors(bad)
    bad = copy.deepcopy(np)
    bad["metadata"]["name"] = "Gradeflow_Policy"
    bad["metadata"]["labels"] = {"gradeflow.io/course": "Intro to CS"}
    assert len(name_and_label_errors(bad)) == 2


def test_template_names_and_labels_follow_kubernetes_rules(wt: dict) -> None:
    assert name_and_label_errors(wt) == []
    cache = templates(wt)["execute"]["memoize"]["cache"]["configMap"]["name"]
    for course, assignment in [("", "ps1"), ("Intro to CS: Fall 2026!", "Problem Set 1 " * 10)]:
        name = substitute(
            cache,
            {
                **DEFAULTS,
                "workflow.parameters.run-id": "r-1",
                "workflow.parameters.course": course,
                "workflow.parameters.assignment": assignment,
            },
        )
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


# --- 7. labels ---------------------------------------------------------------------------------


def test_no_label_comes_raw_from_a_parameter(wt: dict) -> None:
    """Argo applies labelsFrom values as they come: an assignment id with a space errors the run."""
    assert "labelsFrom" not in json.dumps(wt)
    wf = build_workflow(assignment="Problem Set 1 " * 6, run_id="r-2", course="Intro to CS!").to_dict()
    labels = wf["metadata"]["labels"]
    assert (
        labels["gradeflow.io/assignment"].startswith("Problem-Set-1") and len(labels["gradeflow.io/assignment"]) <= 63
    )
    assert name_and_label_errors(wf) == []


# --- 2. retries and their deadlines ---------------------------------------------------------------


def _go_duration(text: str) -> timedelta:
    units = {"h": 3600, "m": 60, "s": 1}
    return timedelta(seconds=sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text)))


def argo_retries_after(
    backoff: dict, first_started: datetime, last_finished: datetime, attempts: int
) -> tuple[bool, datetime | None]:
    """The backoff part of processNodeRetries (workflow/controller/operator.go), line by line.

        maxDurationDeadline = firstChildNode.StartedAt.Add(maxDuration)
        if time.Now().After(maxDurationDeadline) { ... "Max duration limit exceeded" }
        timeToWait = baseDuration * factor^(len(childNodeIds)-1)
        waitingDeadline := lastChildNode.FinishedAt.Add(timeToWait)
        if !maxDurationDeadline.IsZero() && waitingDeadline.After(maxDurationDeadline) {
            ... "Backoff would exceed max duration limit" }
        opts.executionDeadline = maxDurationDeadline

    Returns whether the node is retried (once its backoff is over) and the deadline the retried pod gets.
    """
    max_deadline = first_started + _go_duration(backoff["maxDuration"]) if backoff.get("maxDuration") else None
    wait = _go_duration(backoff["duration"]) * int(backoff.get("factor", "1")) ** (attempts - 1)
    now = last_finished + wait
    if max_deadline and (now > max_deadline or last_finished + wait > max_deadline):
        return False, None
    return True, max_deadline


@pytest.mark.parametrize("name", list(DAG) + ["copy-memoized", "execute-again"])
def test_a_crash_late_in_a_long_pod_is_still_retried(wt: dict, name: str) -> None:
    t = templates(wt)[name]
    start = datetime(2026, 11, 22, 10, 0)
    # execute may legitimately run for its wall time plus the 300 s slack: 15 minutes by default
    crashed = start + timedelta(seconds=int(substitute(str(t.get("activeDeadlineSeconds", 900)), DEFAULTS)) - 30)
    retried, deadline = argo_retries_after(t["retryStrategy"]["backoff"], start, crashed, attempts=1)
    assert retried and deadline is None, (
        f"{name}: Argo gives up ('Max duration limit exceeded') or cuts the retry short"
    )
    # merge's own exit 75 (a submission UNGRADED) is not retried: a pod that broke is
    assert retry_wanted(t["retryStrategy"], EXIT_INFRA, "Failed", "main: Error (exit code 75)") is (name != "merge")
    assert retry_wanted(t["retryStrategy"], None, "Error", "pod deleted")


def test_the_retry_model_can_refuse() -> None:
    """Control: the backoff the template had before (maxDuration 10m) refuses that retry."""
    start = datetime(2026, 11, 22, 10, 0)
    assert argo_retries_after(
        {"duration": "15s", "factor": "2", "maxDuration": "10m"}, start, start + timedelta(minutes=14), 1
    ) == (False, None)
    assert argo_retries_after(
        {"duration": "15s", "factor": "2", "maxDuration": "10m"}, start, start + timedelta(minutes=2), 1
    )[1] == start + timedelta(minutes=10)


# --- 3. which failures are retried ----------------------------------------------------------------

# Messages as Kubernetes and Argo write them (node.message = pod.status.message when set:
# operator.go inferFailedReason "Pod has a nice error message. Use that.").
KUBELET = {
    # pkg/kubelet/eviction/helpers.go: nodeLowMessageFmt + containerMessageFmt
    "node memory pressure": (
        "Failed",
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 88Mi."
        " Container main was using 1800Mi, request is 1536Mi, has larger consumption of memory. ",
    ),
    "node disk pressure": (
        "Failed",
        "The node was low on resource: ephemeral-storage. Threshold quantity: 2Gi, available: 1Gi. ",
    ),
    # nodeConditionMessageFmt
    "node condition": ("Failed", "The node had condition: [DiskPressure]. "),
    # pkg/kubelet/nodeshutdown/nodeshutdown_manager_linux.go
    "node shutdown": ("Failed", "Pod was terminated in response to imminent node shutdown."),
    # pkg/kubelet/preemption/preemption.go
    "preempted": ("Failed", "Preempted in order to admit critical pod"),
    # operator.go podReconciliation: woc.markNodeError(ctx, node.Name, argoerrors.New("", "pod deleted"))
    "pod deleted": ("Error", "pod deleted"),
    # operator.go inferFailedReason: init/wait container failures are NodeError ("%s (exit code %d): %s")
    "artifact upload failed": (
        "Error",
        "wait: Error (exit code 1): failed to put file: dial tcp 10.43.0.12:9000: i/o timeout",
    ),
    "init before main": ("Error", "Pod failed before main container starts due to ContainerCannotRun: ..."),
}
STUDENT = {
    # the same kubelet, evicting a pod for what its own containers wrote (localStorageEviction)
    "student filled its emptyDir": ("Failed", 'Usage of EmptyDir volume "workspace" exceeds the limit "4096Mi". '),
    "student filled ephemeral storage": (
        "Failed",
        'Container main exceeded its local ephemeral storage limit "5376Mi". ',
    ),
    "pod ephemeral storage": (
        "Failed",
        "Pod ephemeral local storage usage exceeds the total limit of containers 5376Mi. ",
    ),
    # kubelet: activeDeadlineSeconds
    "deadline": ("Failed", "Pod was active on the node longer than the specified deadline"),
    # operator.go inferFailedReason: main container "%s (exit code %d)"
    "memory kill": ("Failed", "main: OOMKilled (exit code 137)"),
    "student exception exits 0, a broken image exits 1": ("Failed", "main: Error (exit code 1)"),
    "teacher's problem": ("Failed", "main: Error (exit code 2)"),
}


@pytest.mark.parametrize("case", list(KUBELET))
def test_infrastructure_failures_are_retried(wt: dict, case: str) -> None:
    status, message = KUBELET[case]
    for name in pod_templates(wt):
        assert retry_wanted(templates(wt)[name]["retryStrategy"], None, status, message), f"{name}: {case}"


@pytest.mark.parametrize("case", list(STUDENT))
def test_what_the_student_or_teacher_caused_is_not_retried(wt: dict, case: str) -> None:
    status, message = STUDENT[case]
    code = int(m.group(1)) if (m := re.search(r"exit code (\d+)", message)) else None
    for name in pod_templates(wt):
        assert not retry_wanted(templates(wt)[name]["retryStrategy"], code, status, message), f"{name}: {case}"


def test_every_infrastructure_message_has_a_fixture() -> None:
    assert all(any(msg.startswith(prefix) for _, msg in KUBELET.values()) for prefix in INFRASTRUCTURE_MESSAGES)


# --- 4. the memoization cache ------------------------------------------------------------------


def _memo(wt: dict, **values: str) -> tuple[str, str]:
    m = templates(wt)["execute"]["memoize"]
    scope = {
        **DEFAULTS,
        "workflow.parameters.assignment": "ps1",
        "workflow.parameters.run-id": "r1",
        "inputs.parameters.student": "alice",
        "inputs.parameters.work-hash": "h",
    }
    scope.update({(k if "." in k else f"workflow.parameters.{k.replace('_', '-')}"): v for k, v in values.items()})
    return substitute(m["cache"]["configMap"]["name"], scope), substitute(m["key"], scope)


def test_one_cache_per_course_and_assignment(wt: dict) -> None:
    assert _memo(wt, course="intro", assignment="ps1")[0] == _memo(wt, course="intro", assignment="ps1")[0]
    names = {_memo(wt, course=c, assignment=a)[0] for c in ("intro", "algo") for a in ("ps1", "ps2")}
    assert len(names) == 4 and all(n.startswith(EXECUTE_CACHE_PREFIX) for n in names)


def test_a_cache_holds_a_large_class_many_times_over(wt: dict) -> None:
    """A ConfigMap holds at most 1 MiB (1048576 characters, docs/memoization.md FAQ). An entry is
    Argo's cache.Entry (workflow/controller/cache/cache.go: nodeID, outputs, creationTimestamp,
    lastHitTimestamp) as json.Marshal writes it, under its key."""
    t = templates(wt)["execute"]
    outputs = json.loads(
        json.dumps(t["outputs"])
        .replace("{{inputs.parameters.student}}", "s" * 40)
        .replace("{{workflow.parameters.store-prefix}}", "gradeflow")
        .replace("{{workflow.parameters.run-id}}", "ps1-20261122-101500")
    )
    outputs["parameters"][0]["value"] = "ps1-20261122-101500"
    outputs["exitCode"] = "0"
    entry = {
        "nodeID": "ps1-20261122-101500-1234567890",
        "outputs": outputs,
        "creationTimestamp": "2026-11-22T10:15:00Z",
        "lastHitTimestamp": "2026-11-22T10:15:00Z",
    }
    key = _memo(wt)[1]
    size = len(key) + len(json.dumps(entry, separators=(",", ":"))) + 8
    entries = (1024 * 1024 - 4096) // size  # metadata takes a little
    assert entries >= 4 * DEFAULT_CLASS_SIZE, f"{entries} entries of {size} bytes per cache"


def test_the_controller_gets_exactly_the_verbs_it_uses() -> None:
    """configmap_cache.go: Get in load and save, Create when the ConfigMap is missing, Update to
    save an entry or stamp lastHitTimestamp; cache_gc.go: Delete of a cache it emptied."""
    (role,) = [
        o for o in install_objects() if o["kind"] == "Role" and o["metadata"]["name"] == "gradeflow-execute-cache"
    ]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update", "delete"]}
    ]
    assert not [
        o for o in install_objects() if o["kind"] == "ConfigMap" and "gradeflow-execute-cache" == o["metadata"]["name"]
    ]


def test_the_key_counts_the_image_only_by_digest(wt: dict) -> None:
    tag = "registry.example.edu/grader:v3"
    digest = "registry.example.edu/grader@sha256:" + "a" * 64
    # a tag may point at another image tomorrow: no run reuses another's results
    assert _memo(wt, image=tag, run_id="r1")[1] != _memo(wt, image=tag, run_id="r2")[1]
    # a digest is the image: runs share results, and another digest misses
    assert _memo(wt, image=digest, run_id="r1")[1] == _memo(wt, image=digest, run_id="r2")[1]
    assert _memo(wt, image=digest)[1] != _memo(wt, image=digest.replace("a" * 64, "b" * 64))[1]
    for name in ("student", "work-hash"):
        assert _memo(wt, image=digest)[1] != _memo(wt, image=digest, **{f"inputs.parameters.{name}": "other"})[1]
    # workflow/controller/cache/cache.go: cacheKeyRegex = regexp.MustCompile("^[a-zA-Z0-9][-a-zA-Z0-9]*$"),
    # checked on every Load and Save ("invalid cache key")
    assert re.fullmatch(
        r"[a-zA-Z0-9][-a-zA-Z0-9]*",
        _memo(wt, image=tag, **{"inputs.parameters.student": "Ann Lee", "course": "a b"})[1],
    )


# --- 8. the exit handler -------------------------------------------------------------------------


def test_score_is_gated_on_nothing_global(wt: dict) -> None:
    """`argo resubmit --memoized` copies succeeded nodes but not global outputs."""
    (score,) = [t for t in templates(wt)["score-and-merge"]["dag"]["tasks"] if t["name"] == "score"]
    assert "when" not in score and "workflow.outputs" not in json.dumps(templates(wt)["score-and-merge"])
    assert all(a.get("optional") for a in templates(wt)["score"]["inputs"]["artifacts"])


# --- 12. bounded pods --------------------------------------------------------------------------


def test_every_pod_has_a_timeout_that_counts_pending(wt: dict) -> None:
    """docs/fields.md: timeout "... also includes time in which the node spends in Pending state";
    validate.go rejects a whole number ("invalid duration format in timeout")."""
    for name, t in pod_templates(wt).items():
        timeout = substitute(t["timeout"], DEFAULTS)
        assert re.fullmatch(r"(\d+[hms])+", timeout), f"{name}: {timeout!r}"
        if "activeDeadlineSeconds" in t:  # longer than the running deadline: Pending time on top
            assert _go_duration(timeout).total_seconds() > int(substitute(str(t["activeDeadlineSeconds"]), DEFAULTS))
    assert "timeout" not in templates(wt)["autograde"]  # "This duration may not be applied to Step or DAG templates"


def test_score_and_merge_scratch_grows_with_the_class(wt: dict) -> None:
    for name in ("score", "merge"):
        t = templates(wt)[name]
        small, large = ({**DEFAULTS, "workflow.parameters.class-size": n} for n in ("20", "600"))
        size = {n: json.loads(substitute(t["podSpecPatch"], s)) for n, s in (("small", small), ("large", large))}
        mib = {n: int(p["volumes"][0]["emptyDir"]["sizeLimit"][:-2]) for n, p in size.items()}
        limit = {n: int(p["containers"][0]["resources"]["limits"]["ephemeral-storage"][:-2]) for n, p in size.items()}
        assert mib["large"] - mib["small"] == 580 * 32 and limit["large"] > mib["large"]
        static = {v["name"]: v for v in t["volumes"]}["workspace"]["emptyDir"]["sizeLimit"]
        assert static == json.loads(substitute(t["podSpecPatch"], DEFAULTS))["volumes"][0]["emptyDir"]["sizeLimit"]


def test_docs_name_what_bounds_a_fork_bomb_and_the_versions() -> None:
    text = DOCS.read_text()
    assert "podPidsLimit" in text
    assert build_template().to_dict()["metadata"]["annotations"]["workflows.argoproj.io/version"] == SUPPORTED_ARGO
    for fact in ("v3.5.5", "#10426", "#12490", "#14796", "v3.6.6", "v3.7.2"):  # what the supported range rests on
        assert fact in text, fact
    for must in (
        "argo template lint",
        "--dry-run=server",
        "/api/v1/version",
        "CACHE_GC_PERIOD",
        "CACHE_GC_AFTER_NOT_HIT_DURATION",
    ):
        assert must in text, must


def test_expression_tags_compare_pod_outputs_as_data(wt: dict) -> None:
    """`when` pastes simple tags into the expression source; what a pod reported must not be pasted."""
    for t in templates(wt).values():
        for task in (t.get("dag") or {}).get("tasks", []):
            assert not re.search(r"\{\{tasks\.[^}]*outputs\.parameters", task.get("when", "")), task["name"]
    copy_task = {x["name"]: x for x in templates(wt)["execute-submission"]["dag"]["tasks"]}["copy-memoized"]
    hostile = "x' || true || 'y"
    assert (
        substitute(
            copy_task["when"], {"workflow.parameters.run-id": "r2", "tasks.execute.outputs.parameters.ran-in": hostile}
        )
        == "true"
    )
    assert (
        substitute(
            copy_task["when"],
            {"workflow.parameters.run-id": hostile, "tasks.execute.outputs.parameters.ran-in": hostile},
        )
        == "false"
    )


# --- 9. the NetworkPolicy outside the quick start -------------------------------------------------


def test_network_check_runs_under_the_execute_policy_before_any_submission(wt: dict) -> None:
    t = templates(wt)
    (np,) = [o for o in install_objects() if o["kind"] == "NetworkPolicy"]
    selector = np["spec"]["podSelector"]["matchLabels"]
    for name in ("network-check", "execute", "execute-again"):
        labels = t[name]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), f"{name} is not under the policy"
        assert t[name]["automountServiceAccountToken"] is False and t[name]["executor"] == {
            "serviceAccountName": "gradeflow-executor"
        }
    # it moves a file through the store as every execute pod does: raw in, S3 out
    check = t["network-check"]
    assert check["inputs"]["artifacts"][0]["raw"]["data"] and check["outputs"]["artifacts"][0]["s3"]["key"].endswith(
        "/network-check.txt"
    )
    tasks = {x["name"]: x for x in t["autograde"]["dag"]["tasks"]}
    assert "network-check" in tasks["execute"]["depends"]


def test_network_policy_takes_several_api_servers_and_other_dns() -> None:
    (np,) = [o for o in install_objects() if o["kind"] == "NetworkPolicy"]
    api, store, dns = np["spec"]["egress"]
    assert all("ipBlock" in peer for peer in api["to"])  # one entry per endpoint address
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert {p["port"] for p in dns["ports"]} == {53}
    assert any(
        peer.get("namespaceSelector") == {} and peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
        for peer in dns["to"]
    )
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"]  # NodeLocal DNSCache
    text = DOCS.read_text()
    for must in (
        "endpointslices",
        "ipBlock",
        "toEntities: [kube-apiserver]",
        "Calico",
        "Cilium",
        "kindnet",
        "NodeLocal DNSCache",
        "openshift-dns",
        "network-check",
    ):
        assert must in text, must
