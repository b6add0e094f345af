"""The install manifests in argo/install/ fit the WorkflowTemplate that needs them.

Scenario: an administrator runs `kubectl apply -n gradeflow -f argo/install/ -f argo/` on a
fresh cluster. Every file says what it is in its first line, parses as Kubernetes objects in
the gradeflow namespace (the Namespace first, since kubectl applies files in name order),
and provides what the template refers to by name: the artifact repository ConfigMap and its
key, the workflow and executor service accounts, and the Role that lets the workflow
controller create and keep execute's cache ConfigMaps (one per course and assignment).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.argo.workflow import (
    ARTIFACT_REPOSITORY,
    EXECUTOR_SERVICE_ACCOUNT,
    WORKFLOW_SERVICE_ACCOUNT,
    build_template,
)

ARGO = Path(__file__).resolve().parents[1] / "argo"


def objects() -> dict[tuple[str, str], dict]:
    out = {}
    for f in sorted((ARGO / "install").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def test_every_file_says_what_it_is() -> None:
    files = sorted(ARGO.rglob("*.yaml"))
    assert len(files) >= 7
    for f in files:
        first = f.read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, f"{f} must open with a comment saying what it is"


def test_objects_live_in_the_gradeflow_namespace_created_first() -> None:
    first = sorted((ARGO / "install").glob("*.yaml"))[0]
    assert yaml.safe_load(first.read_text())["kind"] == "Namespace"
    for (kind, name), obj in objects().items():
        assert obj["apiVersion"] and (kind == "Namespace" or obj["metadata"]["namespace"] == "gradeflow"), name


def test_what_the_template_names_is_installed() -> None:
    objs = objects()
    repo = objs[("ConfigMap", ARTIFACT_REPOSITORY.config_map)]
    assert ARTIFACT_REPOSITORY.key in repo["data"]
    s3 = yaml.safe_load(repo["data"][ARTIFACT_REPOSITORY.key])["s3"]
    assert s3["bucket"] and s3["endpoint"] and s3["accessKeySecret"]["name"] == s3["secretKeySecret"]["name"]
    assert ("Secret", s3["accessKeySecret"]["name"]) in objs
    for sa in (WORKFLOW_SERVICE_ACCOUNT, EXECUTOR_SERVICE_ACCOUNT, "gradeflow-submitter"):
        assert ("ServiceAccount", sa) in objs
    keeper = objs[("RoleBinding", "gradeflow-execute-cache")]  # the verbs: test_argo_cluster_rules.py
    assert keeper["roleRef"]["name"] == "gradeflow-execute-cache" and keeper["subjects"][0]["name"] == "argo"
    spec = build_template().to_dict()["spec"]
    pvc = spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
    default_pvc = next(p["value"] for p in spec["arguments"]["parameters"] if p["name"] == "course-pvc")
    assert pvc == "{{workflow.parameters.course-pvc}}" and ("PersistentVolumeClaim", default_pvc) in objs
