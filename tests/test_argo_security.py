"""What keeps an execute pod from doing harm, and what keeps a retry from grading twice.

Scenario: a student's notebook runs in its own execute pod and tries what hostile code
tries: reach the Kubernetes API with the pod's token, write outside its work dir, gain
privileges, read other submissions or the gradebook, phone home, or never stop. Every
defence is a field of the rendered template or of argo/install/, and each is asserted here:
no service-account token in the pod (Argo's init/wait containers use a separate executor
account), non-root uid 1000, read-only root filesystem with emptyDirs for /tmp and
/gradeflow, all capabilities dropped, no privilege escalation, RuntimeDefault seccomp,
resource requests and limits, a pod deadline, the label the egress NetworkPolicy selects,
and only its own restored submission as input. Retries fire only for infrastructure
failures (exit 75, pod errors), never for a student's crash, timeout or memory kill.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from argo_emulator import retry_wanted, substitute
from pipelines.argo.workflow import (
    CACHE_INPUTS,
    EXECUTOR_SERVICE_ACCOUNT,
    LABEL_UNTRUSTED,
    PARAMETERS,
    WORKFLOW_SERVICE_ACCOUNT,
    build_template,
)
from steps.contract import DAG, EXIT_INFRA

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "argo" / "install"


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return {t["name"]: t for t in build_template().to_dict()["spec"]["templates"]}


@pytest.fixture(scope="module")
def install() -> dict[tuple[str, str], dict]:
    objs = {}
    for f in sorted(INSTALL.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            objs[(doc["kind"], doc["metadata"]["name"])] = doc
    return objs


def test_execute_pod_gets_no_kubernetes_token(templates: dict[str, dict]) -> None:
    t = templates["execute"]
    assert t["automountServiceAccountToken"] is False
    assert t["executor"] == {"serviceAccountName": EXECUTOR_SERVICE_ACCOUNT}
    spec = build_template().to_dict()["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == WORKFLOW_SERVICE_ACCOUNT
    assert EXECUTOR_SERVICE_ACCOUNT != WORKFLOW_SERVICE_ACCOUNT


@pytest.mark.parametrize("name", list(DAG) + ["copy-memoized", "execute-again"])
def test_every_pod_is_hardened(templates: dict[str, dict], name: str) -> None:
    t = templates[name]
    sc = t["container"]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = t["securityContext"]
    assert (
        pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000 and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    )
    # the only writable places are emptyDirs, with a size limit
    vols = {v["name"]: v for v in t["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in t["container"]["volumeMounts"]}
    for path in ("/tmp", "/gradeflow"):
        assert "emptyDir" in vols[mounts[path]] and vols[mounts[path]]["emptyDir"]["sizeLimit"]
    res = t["container"]["resources"]
    assert set(res["requests"]) == set(res["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    # no secret reaches a step: the store's keys go only to Argo's own containers
    assert not t["container"].get("envFrom") and all("valueFrom" not in e for e in t["container"].get("env", []))


@pytest.mark.parametrize("name", ["execute", "execute-again"])
def test_execute_pod_is_limited_and_isolated(templates: dict[str, dict], name: str) -> None:
    t = templates[name]
    scope = {f"workflow.parameters.{p.name}": p.default for p in PARAMETERS if p.default is not None}
    assert substitute(str(t["activeDeadlineSeconds"]), scope) == str(600 + 300)
    limits = json.loads(substitute(t["podSpecPatch"], scope))["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "1792Mi" and limits["cpu"] == "1"  # 1024 + papermill 512 + tmpfs /tmp 256
    assert t["metadata"]["labels"][LABEL_UNTRUSTED] == "true"
    assert all(LABEL_UNTRUSTED not in templates[n].get("metadata", {}).get("labels", {}) for n in DAG if n != "execute")
    assert LABEL_UNTRUSTED not in templates["copy-memoized"]["metadata"]["labels"]
    # its inputs: the snapshot and its OWN restored submission; no course, no gradebook, no other student
    assert [(a["name"], a["path"]) for a in t["inputs"]["artifacts"]] == [
        ("snapshot", "/gradeflow/snapshot.json"),
        ("restored-submission", "/gradeflow/restored/{{inputs.parameters.student}}"),
    ]
    assert all(m["mountPath"] != "/course" for m in t["container"]["volumeMounts"])
    assert t["container"]["args"][t["container"]["args"].index("--sandbox") + 1] == "pod"


def test_network_policy_cuts_the_student_pods_off(install: dict, templates: dict[str, dict]) -> None:
    np = install[("NetworkPolicy", "gradeflow-student-code-egress")]["spec"]
    assert np["podSelector"] == {"matchLabels": {LABEL_UNTRUSTED: "true"}}
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"] and np["ingress"] == []
    # egress only to the API server (one address), the object store and DNS: never "anywhere"
    for rule in np["egress"]:
        assert rule["ports"]
        for peer in rule["to"]:
            assert "0.0.0.0/0" not in str(peer)
            if "ipBlock" in peer:
                assert peer["ipBlock"]["cidr"].endswith("/32")
    assert templates["execute"]["metadata"]["labels"][LABEL_UNTRUSTED] == "true"


def test_executor_role_is_least_privilege(install: dict) -> None:
    role = install[("Role", "gradeflow-executor")]
    assert role["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    binding = install[("RoleBinding", "gradeflow-executor")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": EXECUTOR_SERVICE_ACCOUNT, "namespace": "gradeflow"}
    ]
    assert install[("ServiceAccount", WORKFLOW_SERVICE_ACCOUNT)]["automountServiceAccountToken"] is False
    assert (
        install[("Secret", f"{EXECUTOR_SERVICE_ACCOUNT}.service-account-token")]["type"]
        == "kubernetes.io/service-account-token"
    )
    # nothing in gradeflow may touch secrets
    for (kind, _), obj in install.items():
        if kind == "Role":
            assert all("secrets" not in r["resources"] for r in obj["rules"])


@pytest.mark.parametrize(
    ("exit_code", "status", "message", "retried"),
    [
        (EXIT_INFRA, "Failed", "Error (exit code 75)", True),  # our own crash
        (None, "Error", "pod deleted", True),  # the pod broke
        (
            None,
            "Failed",
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 88Mi. ",
            True,
        ),  # kubelet eviction
        (
            None,
            "Failed",
            'Usage of EmptyDir volume "workspace" exceeds the limit "4096Mi". ',
            False,
        ),  # the student filled it
        (0, "Succeeded", "", False),
        (1, "Failed", "Error (exit code 1)", False),  # the step never started (a broken image): it would fail again
        (137, "Failed", "OOMKilled (exit code 137)", False),  # the student's memory blow-up
        (
            None,
            "Failed",
            "Pod was active on the node longer than the specified deadline",
            False,
        ),  # runaway student code
        (2, "Failed", "Error (exit code 2)", False),  # a teacher's problem (missing gradebook)
    ],
)
def test_retries_only_infrastructure_failures(
    templates: dict[str, dict], exit_code: int | None, status: str, message: str, retried: bool
) -> None:
    for name in DAG:
        # merge exits 75 when a submission is UNGRADED: the same inputs would end the same way
        expected = retried and not (name == "merge" and exit_code == EXIT_INFRA)
        assert retry_wanted(templates[name]["retryStrategy"], exit_code, status, message) is expected, name


def test_memo_key_changes_with_submission_image_and_limits(templates: dict[str, dict]) -> None:
    key = templates["execute"]["memoize"]["key"]
    base = {f"workflow.parameters.{p.name}": p.default or "" for p in PARAMETERS}
    base["workflow.parameters.image"] = "grader@sha256:" + "0" * 64
    base.update({"inputs.parameters.student": "alice", "inputs.parameters.work-hash": "h1"})
    first = substitute(key, base)
    assert first == substitute(key, base) and first.startswith("execute-") and len(first) == len("execute-") + 64
    changed = [("inputs.parameters.student", "bob"), ("inputs.parameters.work-hash", "h2")] + [
        (f"workflow.parameters.{n}", "other") for n in CACHE_INPUTS
    ]
    for var, value in changed:
        assert substitute(key, {**base, var: value}) != first, f"the execute cache ignores {var}"
    assert (
        substitute(key, {**base, "workflow.parameters.store-prefix": "elsewhere"}) == first
    )  # where results go is not what they are


def test_copy_of_a_memoized_result_only_when_it_came_from_another_run(templates: dict[str, dict]) -> None:
    (copy,) = [t for t in templates["execute-submission"]["dag"]["tasks"] if t["name"] == "copy-memoized"]
    scope = {"workflow.parameters.run-id": "run-2"}
    assert substitute(copy["when"], {**scope, "tasks.execute.outputs.parameters.ran-in": "run-1"}) == "true"
    assert substitute(copy["when"], {**scope, "tasks.execute.outputs.parameters.ran-in": "run-2"}) == "false"
