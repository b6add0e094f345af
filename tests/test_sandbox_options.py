"""Sandbox options: read at the edges (the CLIs), carried by the sandbox object to where kernels start.

`get_sandbox(name, **options)` takes a backend's options (its dataclass fields); the local runner
resolves the sandbox once and hands that object to its workers, so an option set on the command
line (`--sandbox-image`) or in the environment (`GRADEFLOW_ZYGOTE`) reaches the kernel command.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import FAST_LIMITS, require_sandbox
from steps.errors import TeacherError
from steps.records import OK, NotebookOutcome, StepRecord
from steps.sandbox import SANDBOXES, Limits, get_sandbox, options_from_env
from steps.sandbox.podman import DEFAULT_IMAGE


def test_an_option_a_backend_does_not_take_is_refused_naming_those_that_do() -> None:
    with pytest.raises(TeacherError) as err:
        get_sandbox("bubblewrap", check=False, image="example.org/grader:1")
    assert "bubblewrap" in str(err.value) and "'image'" in str(err.value)
    takers = [n for n, cls in SANDBOXES.items() if "image" in cls.options()]
    assert sorted(takers) == ["argo-pod", "podman"]
    for name in takers:
        assert name in str(err.value)


def test_the_environment_is_read_by_the_edge_helper_only() -> None:
    assert options_from_env({}) == {"zygote": True}
    for off in ("0", "no", "false", "OFF"):
        assert options_from_env({"GRADEFLOW_ZYGOTE": off}) == {"zygote": False}
    assert options_from_env({"GRADEFLOW_ZYGOTE": "1"}) == {"zygote": True}


def test_sandbox_image_reaches_the_kernel_command_of_a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_sandbox("podman")
    from pipelines import cli, local

    seen: dict[str, Any] = {}

    def fake_grade(course_dir: Path, assignment: str, options: local.GradeOptions, progress: Any = None) -> Any:
        seen["options"] = options
        raise TeacherError("stop here", "the test only looks at the options")

    monkeypatch.setattr(local, "grade", fake_grade)
    monkeypatch.setenv("GRADEFLOW_ZYGOTE", "0")
    image = "localhost/gradeflow-test-image:absent"
    code = cli.main(["grade", str(tmp_path), "ps1", "--sandbox", "podman", "--sandbox-image", image, "--quiet"])
    assert code == 2
    options = seen["options"]
    assert options.sandbox_options == {"zygote": False, "image": image}
    # what the runner resolves once and pickles to each worker
    sandbox = pickle.loads(pickle.dumps(get_sandbox(options.sandbox, check=False, **options.sandbox_options)))
    assert (sandbox.image, sandbox.zygote) == (image, False)
    assert "is not built" in (sandbox.unavailable() or "")  # the run would be refused up front, naming it
    scratch = Path(tempfile.mkdtemp(prefix="gradeflow-test-options-"))
    (scratch / "work").mkdir()
    try:
        launcher = sandbox.make_launcher(scratch / "work", scratch, Limits(**FAST_LIMITS), 0)
        cmd = launcher.kernel_command(["python", "-m", "ipykernel_launcher", "-f", "/x/k.json"])
        assert cmd[cmd.index(image) + 1 :] == ["python", "-m", "ipykernel_launcher", "-f", "/x/k.json"]
        assert DEFAULT_IMAGE not in cmd
        evidence = launcher.close()
        assert evidence["leftover_containers"] == 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _workspace(root: Path) -> Path:
    """A one-notebook workspace as restore leaves it."""
    ws = root / "ws"
    work = ws / "restored" / "s1" / "work"
    work.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("1 + 1")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, str(work / "nb.ipynb"))
    (ws / "snapshot.json").write_text(json.dumps({"notebooks": [], "config": {}}))
    restore = StepRecord("restore", "s1")
    restore.notebooks = [NotebookOutcome("nb", OK)]
    restore.save(ws / "restored" / "s1" / "restore.json")
    return ws


@pytest.mark.parametrize("env, forked", [(None, 1), ("0", 0)])
def test_python_m_steps_execute_reads_gradeflow_zygote(
    env: str | None, forked: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sandbox("bubblewrap")
    from steps.execute import main

    if env is None:
        monkeypatch.delenv("GRADEFLOW_ZYGOTE", raising=False)
    else:
        monkeypatch.setenv("GRADEFLOW_ZYGOTE", env)
    ws = _workspace(Path(tempfile.mkdtemp(prefix="gradeflow-test-execute-", dir=tmp_path)))
    args = ["--memory", "256", "--pids", "64", "--wall-time", "60", "--disk", "32"]
    assert main(["--workspace", str(ws), "--student", "s1", "--sandbox", "bubblewrap", *args]) == 0
    record = StepRecord.load(ws / "executed" / "s1" / "execute.json")
    assert [o.status for o in record.notebooks] == [OK]
    assert record.detail["teardown"]["kernels_forked"] == forked
