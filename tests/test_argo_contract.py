"""The rendered templates and the step CLIs agree: each pod, given only its declared inputs, makes its declared outputs.

Scenario: argo/workflowtemplate.yaml (as pipelines/argo/workflow.py renders it) runs pod by pod on
this machine with tests/argo_emulator.py: for every container template, a fresh directory
stands for the pod's /gradeflow and holds ONLY the template's declared input artifacts,
fetched by their rendered keys from a store (here a local directory); the template's
command runs as `sys.executable -m steps.<name>` with the rendered arguments (execute with
`--sandbox none` instead of `pod`: there is no pod here); and every declared output must then
exist at its declared path and land at its declared key. The course is a one-notebook nbgrader
course built with nbgrader's own generate_assignment; alice's answer is right, bob's raises.
A renamed flag, a moved output or a step that starts reading an undeclared file fails here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import coursekit as ck
from argo_emulator import EmulatedRun, Emulator, substitute
from pipelines.argo.workflow import build_template
from steps.contract import DAG, EXIT_USAGE, STEPS

RUN = "contract-1"


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "gradeflow_runs" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def setup(squares_built: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    course = ck.alice_and_bob(ck.copy_course(squares_built, tmp_path_factory.mktemp("argo-contract") / "course"))
    store = tmp_path_factory.mktemp("argo-store")
    before = tree_hash(course)
    template = build_template().to_dict()
    cache: dict = {}
    run = Emulator(template, {"assignment": "ps1", "run-id": RUN}, store.as_uri(), course, cache=cache).run()
    return {"course": course, "store": store, "run": run, "template": template, "cache": cache, "before": before}


def templates(setup: dict) -> dict[str, dict]:
    return {t["name"]: t for t in setup["template"]["spec"]["templates"]}


def test_the_run_succeeds_with_one_pod_per_step_and_submission(setup: dict) -> None:
    run: EmulatedRun = setup["run"]
    assert run.phase == "Succeeded", [(p.node, p.log[-2000:]) for p in run.pods if p.exit_code != 0]
    counts = {name: len(run.by_template(name)) for name in DAG}
    assert counts == {"collect": 1, "restore": 1, "execute": 2, "score": 1, "feedback": 0, "merge": 1}, (
        "feedback only when asked (test_argo_e2e asks); merge runs without it"
    )
    assert sorted(p.parameters["student"] for p in run.by_template("execute")) == ["alice", "bob"]
    assert all(p.exit_code == 0 and p.attempts == 1 for p in run.pods)


@pytest.mark.parametrize("name", list(DAG))
def test_each_pod_held_only_its_declared_inputs(setup: dict, name: str) -> None:
    decl = templates(setup)[name].get("inputs", {}).get("artifacts", [])
    declared = [a["path"].lstrip("/") for a in decl]
    required = {a["name"] for a in decl if not a.get("optional")}
    for pod in setup["run"].by_template(name):
        allowed = [d.replace("{{inputs.parameters.student}}", pod.parameters.get("student", "")) for d in declared]
        stray = [f for f in pod.root_files if not any(f == a or f.startswith(a + "/") for a in allowed)]
        assert stray == [], f"{pod.node} got files it did not declare"
        assert required <= set(pod.inputs), f"{pod.node} ran without {required - set(pod.inputs)}"
        assert [a.name for a in STEPS[name].inputs] == [a["name"] for a in decl]


def test_an_execute_pod_sees_no_other_submission(setup: dict) -> None:
    for pod in setup["run"].by_template("execute"):
        other = "bob" if pod.parameters["student"] == "alice" else "alice"
        assert pod.root_files and not any(other in f for f in pod.root_files)
        assert not any(f.startswith("gradeflow/submissions") or "gradebook" in f for f in pod.root_files)


@pytest.mark.parametrize("name", list(DAG))
def test_each_pod_made_its_declared_outputs_at_their_keys(setup: dict, name: str) -> None:
    store: Path = setup["store"]
    for pod in setup["run"].by_template(name):
        student = pod.parameters.get("student", "")
        for a in STEPS[name].outputs:
            key = f"gradeflow/{RUN}/{a.at(student) if a.per_submission else a.path}"
            assert pod.outputs[a.name] == key
            where = store / key
            assert where.is_file() or any(p.is_file() for p in where.rglob("*")), f"{key} is empty"


def test_output_parameters_feed_the_next_steps(setup: dict) -> None:
    run: EmulatedRun = setup["run"]
    (restore,) = run.by_template("restore")
    items = json.loads(restore.output_parameters["students"])
    assert [i["student"] for i in items] == ["alice", "bob"] and all(len(i["work-hash"]) == 64 for i in items)
    assert run.global_outputs["students"] == restore.output_parameters["students"]
    assert {p.output_parameters["ran-in"] for p in run.by_template("execute")} == {RUN}
    (merge,) = run.by_template("merge")
    assert merge.output_parameters["summary"].startswith(f"ps1 run {RUN}: 2 submission(s), 2 graded")


def test_collect_reads_the_course_and_writes_nothing_to_it(setup: dict) -> None:
    assert tree_hash(setup["course"]) == setup["before"]
    manifest = json.loads((setup["store"] / "gradeflow" / RUN / "manifest.json").read_text())
    assert manifest["run_id"] == RUN and [s["student"] for s in manifest["submissions"]] == ["alice", "bob"]


def test_copy_memoized_moves_a_cached_result_into_another_run(setup: dict) -> None:
    """The one template that is not a step: its pod gets the cached artifact and re-uploads it."""
    em = Emulator(
        setup["template"], {"assignment": "ps1", "run-id": "contract-2"}, setup["store"].as_uri(), setup["course"]
    )
    pod = em.run_pod(
        templates(setup)["copy-memoized"],
        "contract-2.copy",
        {"student": "alice"},
        {"executed-submission": f"gradeflow/{RUN}/executed/alice"},
    )
    assert pod.exit_code == 0 and pod.outputs == {"executed-submission": "gradeflow/contract-2/executed/alice"}
    old, new = (
        setup["store"] / "gradeflow" / RUN / "executed" / "alice",
        setup["store"] / "gradeflow" / "contract-2" / "executed" / "alice",
    )
    assert (
        sorted(p.name for p in new.iterdir())
        == sorted(p.name for p in old.iterdir())
        == ["execute.json", "execute.log", "squares.ipynb"]
    )
    assert (new / "execute.json").read_bytes() == (old / "execute.json").read_bytes()


def test_a_cache_entry_whose_files_are_gone_is_executed_again(setup: dict, tmp_path: Path) -> None:
    """A lifecycle rule or GC removed the files behind bob's cache entry: bob's execute pod runs
    again in the new run (execute-again) instead of the run failing on a missing artifact, and
    alice's entry, whose files are there, is copied as before."""
    run_id = "contract-gone"
    t = templates(setup)
    scope = {
        f"workflow.parameters.{p['name']}": p.get("value", "")
        for p in setup["template"]["spec"]["arguments"]["parameters"]
    }
    scope.update({"workflow.parameters.assignment": "ps1", "workflow.parameters.run-id": run_id})
    (restore,) = setup["run"].by_template("restore")
    cache = {}
    for item in json.loads(restore.output_parameters["students"]):
        s = {**scope, "inputs.parameters.student": item["student"], "inputs.parameters.work-hash": item["work-hash"]}
        memo = json.loads(substitute(json.dumps(t["execute"]["memoize"]), s))
        producer = RUN if item["student"] == "alice" else "a-run-whose-files-expired"
        cache[f"{memo['cache']['configMap']['name']}/{memo['key']}"] = {
            "artifacts": {"executed-submission": f"gradeflow/{producer}/executed/{item['student']}"},
            "parameters": {"ran-in": producer},
        }
    run = Emulator(
        setup["template"],
        {"assignment": "ps1", "run-id": run_id},
        setup["store"].as_uri(),
        setup["course"],
        cache=cache,
    ).run()
    assert run.phase == "Succeeded", [(p.node, p.log[-1500:]) for p in run.pods if p.exit_code]
    assert all(p.memoized for p in run.by_template("execute"))
    copies = {p.parameters["student"]: p for p in run.by_template("copy-memoized")}
    assert (
        copies["alice"].output_parameters["result"] == "copied"
        and copies["bob"].output_parameters["result"] == "missing"
    )
    (again,) = run.by_template("execute-again")
    assert again.parameters["student"] == "bob" and again.exit_code == 0 and again.attempts == 1
    for student in ("alice", "bob"):
        assert (setup["store"] / "gradeflow" / run_id / "executed" / student / "execute.json").is_file()
    (merge,) = run.by_template("merge")
    assert "2 graded" in merge.output_parameters["summary"]


def test_score_runs_on_exit_without_global_outputs(setup: dict) -> None:
    """`argo resubmit --memoized` copies the succeeded nodes but not the `students` global
    output: score must still run, or sync would merge the previous run's results."""
    before = (setup["store"] / "gradeflow" / RUN / "results" / "results.json").stat().st_mtime_ns
    em = Emulator(setup["template"], {"assignment": "ps1", "run-id": RUN}, setup["store"].as_uri(), setup["course"])
    run = em.run_exit_handler("Succeeded")
    assert run.global_outputs == {}
    assert [(p.template, p.exit_code) for p in run.pods] == [("score", 0), ("merge", 0)]
    assert (setup["store"] / "gradeflow" / RUN / "results" / "results.json").stat().st_mtime_ns > before


def test_score_without_a_manifest_stops_without_retries(setup: dict) -> None:
    """collect never finished: score says so and exits EXIT_USAGE, which is not retried; merge does not run."""
    em = Emulator(
        setup["template"], {"assignment": "ps1", "run-id": "contract-nothing"}, setup["store"].as_uri(), setup["course"]
    )
    run = em.run_exit_handler("Failed")
    assert [(p.template, p.exit_code, p.attempts) for p in run.pods] == [("score", EXIT_USAGE, 1)]
    assert "collect did not finish" in run.pods[0].log


def test_the_work_hash_covers_the_course_execute_config(setup: dict, tmp_path: Path) -> None:
    """execute reads the course's nbgrader config (Execute.timeout, ...) from the snapshot:
    a changed config must change the memoization key, so the item's work-hash covers it."""
    from steps.restore import fan_out_items, restore

    hashes = []
    for timeout in (30, 30, 120):
        ws = tmp_path / f"ws-{len(hashes)}"
        shutil.copytree(
            setup["store"] / "gradeflow" / RUN,
            ws,
            ignore=shutil.ignore_patterns("restored", "executed", "scored", "results"),
        )
        snap = json.loads((ws / "snapshot.json").read_text())
        snap.setdefault("config", {}).setdefault("Execute", {})["timeout"] = timeout
        (ws / "snapshot.json").write_text(json.dumps(snap))
        hashes.append({i["student"]: i["work-hash"] for i in fan_out_items(restore(ws))})
    assert hashes[0] == hashes[1] and all(hashes[0][s] != hashes[2][s] for s in ("alice", "bob"))


def test_network_check_uploads_before_any_execute(setup: dict) -> None:
    run: EmulatedRun = setup["run"]
    (check,) = run.by_template("network-check")
    assert check.exit_code == 0 and (setup["store"] / "gradeflow" / RUN / "network-check.txt").is_file()


def test_blocked_uploads_fail_the_run_before_any_student_code_runs(setup: dict) -> None:
    """The policy blocks the store: network-check cannot upload its file (emulated: the file is
    gone when the wait container looks), it fails after its retries and no execute pod runs."""

    def blocked(template: str, params: dict, root: Path) -> None:
        if template == "network-check":
            (root / "gradeflow" / "network-check.txt").unlink()

    run = Emulator(
        setup["template"],
        {"assignment": "ps1", "run-id": "contract-blocked"},
        setup["store"].as_uri(),
        setup["course"],
        before_pod=blocked,
    ).run()
    assert run.phase == "Failed"
    (check,) = run.by_template("network-check")
    assert check.exit_code is None and check.attempts == 4 and "network-check.txt" in check.log
    assert run.by_template("execute") == [] and run.by_template("execute-again") == []


def test_a_class_bigger_than_class_size_stops_at_restore(setup: dict) -> None:
    """score's and merge's scratch space is sized from class-size: a bigger class stops at
    restore with what to do (EXIT_USAGE, not retried), before any notebook runs."""
    run = Emulator(
        setup["template"],
        {"assignment": "ps1", "run-id": "contract-big", "class-size": "1"},
        setup["store"].as_uri(),
        setup["course"],
    ).run()
    assert run.phase == "Failed"
    (restore,) = run.by_template("restore")
    assert (
        restore.exit_code == EXIT_USAGE
        and restore.attempts == 1
        and "2 submissions, but the run's class-size is 1" in restore.log
    )
    assert run.by_template("execute") == []
