"""5,000 submissions on Argo: every object the controller writes stays under its real limit.

Scenario: a department regrades a 5,000-student course on Argo. Argo keeps each run in ONE
Workflow object of at most 1 MiB (workflow/packer/packer.go MAX_WORKFLOW_SIZE, compressed
node statuses included; without a database there is nothing past that), the fan-out list is
an output parameter (256 KiB where the executor falls back to a pod annotation), and the
execute cache is a ConfigMap of at most 1 MiB of values (Kubernetes ValidateConfigMap,
MaxSecretSize). tests/argo_scale_model.py builds what the controller would write for the
rendered template, run by run, and measures it; docs/performance.md "Argo at scale" has the
numbers. Here: the design in pipelines/argo/workflow.py (one run per shard of at most SHARD_SIZE)
fits with half of every limit to spare, the whole class in one run does not, and the pieces the
measurement rests on (node ids, compression, shards, cache names) are what Argo and collect do.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

import pytest
from argo_scale_model import LIMITS, compress_nodes, fnv32a, simulate, students

import coursekit as ck
from argo_emulator import substitute
from argo_schemas import crd_errors, name_and_label_errors
from pipelines.argo.backends import decode_nodes
from pipelines.argo.workflow import (
    PARAMETERS,
    RUN_ID,
    SHARD_SIZE,
    build_shards,
    build_template,
    shard_plan,
    shard_run_ids,
)
from steps.collect import collect, parse_shard, shard_of

N = 5000


@pytest.fixture(scope="module")
def template() -> dict:
    return build_template().to_dict()


@pytest.fixture(scope="module")
def sharded(template: dict):
    # Argo 3.5 to 3.7 keep one more entry per pod outside the compressed nodes: the larger case
    return simulate(N, template, argo="v3")


def test_5000_submissions_fit_as_shards_with_half_of_every_limit_to_spare(sharded) -> None:
    checks = sharded.checks()
    assert [k for k, (_, _, ok) in checks.items() if not ok] == [], checks
    # what was measured is the class, split as build_shards splits it
    runs, per_run = shard_plan(N)
    assert sharded.shards == runs == math.ceil(N / SHARD_SIZE)
    assert sharded.largest_shard <= per_run
    assert sharded.pods_by_template["execute"] == N and sharded.pods_by_template["restore"] == runs
    # the sizes are real sizes, not zero: compression needed, status far above the withParam list
    assert sharded.workflow_plain > LIMITS["workflow"] > sharded.workflow_compressed > sharded.withparam_max > 0
    assert sum(sharded.configmap_entries.values()) == N  # one execute cache entry per submission


def test_the_biggest_shard_a_run_accepts_fits_too(template: dict) -> None:
    """A shard is a hash's draw, so it may be bigger than this sample's; restore accepts up to
    the run's class-size, and a run of exactly that many still keeps half of every limit."""
    per_run = shard_plan(N)[1]
    biggest = simulate(per_run, template, argo="v3", shard_size=per_run)
    assert biggest.shards == 1 and biggest.largest_shard == per_run > SHARD_SIZE
    assert all(ok for _, _, ok in biggest.checks().values()), biggest.checks()


def test_the_whole_class_in_one_run_does_not_fit(template: dict) -> None:
    """The design before shards: 5,000 in one Workflow. The same checks fail (measured, in
    docs/performance.md: 5.6 MiB of status compressed, a 557 KiB withParam list, a 2.9 MiB cache)."""
    one = simulate(N, template, shard_size=N)
    failed = {k for k, (size, limit, _) in one.checks().items() if size > limit}
    assert {"workflow object (compressed nodes)", "withParam list", "memoization ConfigMap"} <= failed, one.checks()
    assert one.shards == 1 and one.largest_shard == N


def test_status_grows_by_five_nodes_per_submission_as_the_controller_names_them(template: dict) -> None:
    m = simulate(3, template)
    # one run: the entrypoint DAG, collect/network-check/restore (retry + pod each), the TaskGroup;
    # per submission the execute-submission DAG, execute's retry and pod, copy-memoized skipped,
    # execute-again omitted; the exit handler's DAG, score and merge (retry + pod), feedback skipped
    assert m.nodes == 1 + 6 + 1 + 5 * 3 + 1 + 4 + 1
    assert m.pods == 3 + 5


def test_node_ids_and_compressed_nodes_are_argos() -> None:
    # Go: fnv.New32a() over "" and "a" (hash/fnv test vectors); Workflow.NodeID prints it in decimal
    assert (fnv32a(""), fnv32a("a"), fnv32a("ab"), fnv32a("abc")) == (0x811C9DC5, 0xE40C292C, 0x4D2505CA, 0x1A47E90B)
    nodes = {"r-1": {"id": "r-1", "name": "r", "phase": "Succeeded"}}
    wf = {"status": {"compressedNodes": compress_nodes(nodes)}}
    assert decode_nodes(wf)["status"]["nodes"] == nodes  # what the client reads back


def test_students_are_split_into_disjoint_stable_shards() -> None:
    ids = [s["student"] for s in students(2000)]
    shards, per_run = shard_plan(len(ids))
    parts = Counter(shard_of(s, shards) for s in ids)
    assert sorted(parts) == list(range(shards)) and sum(parts.values()) == len(ids)
    assert max(parts.values()) <= per_run
    assert shard_plan(SHARD_SIZE) == (1, SHARD_SIZE) and shard_plan(SHARD_SIZE + 1)[0] == 2
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "1/0", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_shard(bad)


def test_shard_workflows_are_valid_runs_of_the_template() -> None:
    long_id = "ps1-" + "x" * 59
    wfs = [w.to_dict() for w in build_shards("ps1", long_id, class_size=1000, course="intro")]
    assert len(wfs) == 3
    names = [w["metadata"]["name"] for w in wfs]
    assert names == shard_run_ids(long_id, 3) and len(set(names)) == 3 and all(RUN_ID.match(n) for n in names)
    for i, wf in enumerate(wfs):
        assert crd_errors(wf, "Workflow") == [] and name_and_label_errors(wf) == []
        params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
        assert params["shard"] == f"{i}/3" and params["run-id"] == wf["metadata"]["name"]
        assert int(params["class-size"]) == shard_plan(1000)[1]
        assert wf["metadata"]["labels"]["gradeflow.io/run-group"] == long_id
    # a class that fits one run is the plain run it always was
    (one,) = [w.to_dict() for w in build_shards("ps1", "ps1-a", class_size=200)]
    assert one["metadata"]["name"] == "ps1-a" and "shard" not in {
        p["name"] for p in one["spec"]["arguments"]["parameters"]
    }


def _cache_name(template: dict, **values: str) -> str:
    (t,) = [t for t in template["spec"]["templates"] if t["name"] == "execute"]
    scope = {f"workflow.parameters.{p.name}": p.default for p in PARAMETERS if p.default is not None}
    scope.update({f"workflow.parameters.{k.replace('_', '-')}": v for k, v in values.items()})
    return substitute(t["memoize"]["cache"]["configMap"]["name"], scope)


def test_one_cache_per_shard_and_image_and_per_run_when_unpinned(template: dict) -> None:
    pinned = "r.example.edu/grader@sha256:" + "a" * 64
    base = {"course": "intro", "assignment": "ps1", "run_id": "r1", "image": pinned, "shard": "0/3"}
    same = _cache_name(template, **{**base, "run_id": "r2"})
    assert _cache_name(template, **base) == same  # a pinned image's results are shared by runs
    assert _cache_name(template, **{**base, "shard": "1/3"}) != same
    assert _cache_name(template, **{**base, "image": pinned.replace("a" * 64, "b" * 64)}) != same
    tag = {**base, "image": "r.example.edu/grader:v3"}
    assert _cache_name(template, **tag) != _cache_name(template, **{**tag, "run_id": "r2"})  # nobody can hit them


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory):
    course = ck.squares_course(tmp_path_factory.mktemp("shards"))
    for i in range(12):
        ck.submit(course, f"student{i:02d}", {"squares": ck.CORRECT})
    return course


def test_collect_keeps_only_its_shard(course, tmp_path) -> None:
    everyone = sorted(ck.student_ids(course))
    seen = []
    for i in range(3):
        manifest = collect(course, "ps1", tmp_path / f"s{i}", shard=(i, 3))
        got = manifest.students()
        assert got == [s for s in everyone if shard_of(s, 3) == i]
        assert sorted(p.name for p in (tmp_path / f"s{i}" / "submissions").iterdir()) == got
        seen += got
    assert sorted(seen) == everyone
    assert collect(course, "ps1", tmp_path / "all").students() == everyone
