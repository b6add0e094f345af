"""Validate objects against the rules a real cluster applies, without a cluster.

* Argo's JSON schema (tests/data/argo-schema-v4.1.2.json) is loose: it types Kubernetes
  quantities as plain strings.
* The full CRDs' openAPIV3Schema (tests/data/argo-crd-v4.1.2-*.json, see tests/data/README.md)
  is what `kubectl apply` checks on Argo 4.x: quantity patterns, int-or-string, required
  fields. Converted for jsonschema as /work/shared/argo/README.md says: the `x-kubernetes-*`
  keys dropped, `x-kubernetes-int-or-string` read as integer-or-string (the CRD already spells
  it as `anyOf: [integer, string]`). Not evaluated: the CEL rules (`x-kubernetes-validations`),
  which only `kubectl apply --dry-run=server` on a cluster runs (docs/argo.md section 9).
* Core kinds (ConfigMap, Role, NetworkPolicy, ...) against Kubernetes' own schemas, with the
  `kubernetes-validate` package, strict (unknown fields are errors).
* Names and label values against Kubernetes' rules (k8s.io/apimachinery/pkg/util/validation).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema

DATA = Path(__file__).parent / "data"
ARGO_VERSION = "v4.1.2"
KUBERNETES_VERSION = "1.33"  # a version kubernetes-validate ships schemas for; the API kinds used are stable

# k8s.io/apimachinery/pkg/util/validation/validation.go
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # at most 253
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # at most 63
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # at most 63
QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _for_jsonschema(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _for_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_for_jsonschema(v) for v in node]
    return node


@lru_cache(maxsize=None)
def _crd_validator(kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / f"argo-crd-{ARGO_VERSION}-{kind.lower()}.json").read_text())
    return jsonschema.Draft7Validator(_for_jsonschema(schema))


@lru_cache(maxsize=None)
def _json_schema() -> dict:
    return json.loads((DATA / f"argo-schema-{ARGO_VERSION}.json").read_text())


def _errors(validator: jsonschema.protocols.Validator, obj: dict) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj))


def crd_errors(obj: dict, kind: str) -> list[str]:
    """Problems `kubectl apply` would report against the full CRD of `kind` (Workflow, WorkflowTemplate)."""
    return _errors(_crd_validator(kind), obj)


def json_schema_errors(obj: dict, kind: str) -> list[str]:
    """Problems against Argo's published JSON schema."""
    schema = {
        "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
        "definitions": _json_schema()["definitions"],
    }
    return _errors(jsonschema.Draft202012Validator(schema), obj)


def core_errors(obj: dict) -> list[str]:
    """Problems of a core Kubernetes object against Kubernetes' own (strict) schema."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {'/'.join(map(str, e.path))}: {e.message}"]
    return []


def _labels(obj: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (where, key, value) of a `labels` map anywhere in `obj`."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "labels" and isinstance(v, dict):
                for lk, lv in v.items():
                    yield f"{where}/labels", lk, lv
            else:
                yield from _labels(v, f"{where}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _labels(v, f"{where}/{i}")


def name_and_label_errors(obj: dict) -> list[str]:
    """metadata.name a DNS-1123 subdomain; every label key a qualified name, every value a label value."""
    problems = []
    name = obj.get("metadata", {}).get("name")
    if name is not None and (len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)):
        problems.append(f"name {name!r} is not a DNS-1123 subdomain")
    for where, key, value in _labels(obj):
        if "{{" in str(value):
            problems.append(f"{where}: label {key} has a templated value {value!r}: Argo applies it as it comes")
        elif not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(f"{where}: label {key}={value!r} is not a valid label value")
        if len(key.split("/")[-1]) > 63 or not QUALIFIED_NAME.match(key):
            problems.append(f"{where}: label key {key!r} is not a qualified name")
    return problems
