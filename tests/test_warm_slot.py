"""The local runner's warm slot: a sandbox started before its submission is known.

Scenario: a worker executes one submission, then starts its slot's next sandbox (empty, its
zygote importing) while it scores; the next submission is handed that sandbox. It must hold
nothing of any student until then, serve exactly one submission, be dropped when the limits
differ, fall back like a new sandbox when its zygote died, keep its kernels' raw output in
that submission's execute.log, and leave nothing behind when it is never used.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import FAST_LIMITS, notebook_text, require_sandbox
from steps.records import OK
from steps.sandbox import Limits, base, get_sandbox, prestart
from steps.sandbox.leftovers import leftovers

LOOK = (
    "import json, os\n"
    "print(json.dumps({'work': sorted(os.listdir('.')), 'tmp': sorted(os.listdir('/tmp')), 'uid': os.getuid()}))"
)
MARK = "open('/tmp/alice-was-here', 'w').write('x')\nopen('alice-out.txt', 'w').write('x')\nprint('{}')"
RAW = "import os\nos.write(1, b'RAW-FD-OUTPUT-FROM-THE-KERNEL\\n')\nprint('{}')"


def _submission(root: Path, name: str, cells: dict[str, str], files: dict[str, str]) -> Path:
    work = root / name / "work"
    work.mkdir(parents=True)
    for fname, text in files.items():
        (work / fname).write_text(text)
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell(src, metadata={"nbgrader": {"grade_id": key}}) for key, src in cells.items()]
    nbformat.write(nb, str(work / "nb.ipynb"))
    return work


def _execute(sandbox: str, work: Path, out: Path, limits: Limits) -> tuple[Any, dict[str, Any]]:
    record = get_sandbox(sandbox).execute_submission(work, ["nb"], out, limits, config={}, slot=0)
    text = notebook_text(out / "nb.ipynb")
    printed = {k: json.loads(v.strip().splitlines()[-1]) for k, v in text.items() if v.strip().endswith("}")}
    return record, printed


def _mine() -> dict[str, list[str]]:
    """This process's sandbox temp dirs, scratch mounts and cgroups (named for its pid). Not its
    scratch-gradebook templates (gradeflow-snapshot-*): those are a per-process cache, removed at
    exit, which earlier tests in the same pytest process may have built."""
    pid = os.getpid()
    return {
        k: [x for x in v if (f"-p{pid}-" in x or f"gradeflow-{pid}-" in x) and "gradeflow-snapshot-" not in x]
        for k, v in leftovers(alive=True).items()
    }


def _my_processes(settle: float = 5.0) -> list[str]:
    """Host processes started for this process's sandboxes (their command line names one of its
    scratch dirs), after giving killed ones a moment to go; other sessions' runs are not ours."""
    marker = f"gradeflow-execute-p{os.getpid()}-"
    deadline = time.monotonic() + settle
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (
                    (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if proc.name.isdigit()
                    else ""
                )
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{proc.name}: {cmd[:200]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_spare_left() -> Any:
    yield
    base.discard_spares()


@pytest.mark.parametrize("sandbox", ["bubblewrap", "podman"])
def test_a_started_sandbox_holds_nothing_until_it_is_handed_one_submission(sandbox: str, tmp_path: Path) -> None:
    require_sandbox(sandbox)
    limits = Limits(**FAST_LIMITS)
    prestart(sandbox, limits, 0)
    spare = base._SPARES[0][1]
    assert spare.zygote is not None and spare.zygote.proc.poll() is None  # its zygote is starting or ready
    assert list(spare.work.iterdir()) == []  # no student's file before it is handed one
    time.sleep(1.0)  # let the zygote import ipykernel, as it does while the previous submission is scored

    alice = _submission(tmp_path, "alice", {"look": LOOK, "mark": MARK}, {"alice.txt": "alice's data"})
    record, printed = _execute(sandbox, alice, tmp_path / "out-alice", limits)
    assert [o.status for o in record.notebooks] == [OK]
    assert (
        record.detail["prestarted"] is True and record.detail["teardown"]["kernels_forked"] == 1
    )  # the started zygote served it
    assert "zygote_head_start_s" in record.detail["teardown"]
    assert printed["look"]["work"] == ["alice.txt"]  # its own files, not the notebook, nothing else
    assert 0 not in base._SPARES  # used once: gone from the slot

    # as the runner does once a submission is executed: the slot's next sandbox starts, empty
    prestart(sandbox, limits, 0)
    bob = _submission(tmp_path, "bob", {"look": LOOK}, {"bob.txt": "bob's data"})
    record, printed = _execute(sandbox, bob, tmp_path / "out-bob", limits)
    assert record.detail["prestarted"] is True and [o.status for o in record.notebooks] == [OK]
    assert printed["look"]["work"] == ["bob.txt"]  # nothing alice wrote to her work dir
    assert "alice-was-here" not in printed["look"]["tmp"]  # nor to her /tmp

    # no spare left: the next submission gets a sandbox of its own, started for it
    record, printed = _execute(
        sandbox, _submission(tmp_path, "carol", {"look": LOOK}, {}), tmp_path / "out-carol", limits
    )
    assert record.detail["prestarted"] is False and [o.status for o in record.notebooks] == [OK]
    assert printed["look"]["work"] == []
    assert not any(_mine().values()), _mine()
    assert _my_processes() == []


def test_a_spare_started_for_other_limits_is_not_used(tmp_path: Path) -> None:
    require_sandbox("bubblewrap")
    prestart("bubblewrap", Limits(**FAST_LIMITS), 0)
    other = Limits(**{**FAST_LIMITS, "memory_mb": 300})
    record, _ = _execute("bubblewrap", _submission(tmp_path, "alice", {"look": LOOK}, {}), tmp_path / "out", other)
    assert record.detail["prestarted"] is False and record.notebooks[0].status == OK
    assert record.detail["limits"]["memory_mb"] == 300
    assert not any(_mine().values()), _mine()


def test_a_spare_whose_zygote_died_starts_kernels_directly_and_grades(tmp_path: Path) -> None:
    require_sandbox("bubblewrap")
    limits = Limits(**FAST_LIMITS)
    prestart("bubblewrap", limits, 0)
    spare = base._SPARES[0][1]
    assert spare.zygote is not None
    os.killpg(spare.zygote.proc.pid, signal.SIGKILL)
    spare.zygote.proc.wait()
    record, printed = _execute(
        "bubblewrap", _submission(tmp_path, "alice", {"look": LOOK}, {"alice.txt": "x"}), tmp_path / "out", limits
    )
    assert record.detail["prestarted"] is True
    assert record.notebooks[0].status == OK and record.detail["teardown"]["kernels_forked"] == 0
    assert printed["look"]["work"] == ["alice.txt"]
    assert "kernel zygote unavailable (the kernel zygote exited" in (tmp_path / "out" / "execute.log").read_text()
    assert not any(_mine().values()), _mine()


def test_what_the_kernel_of_a_spare_prints_to_its_raw_stdout_is_in_execute_log(tmp_path: Path) -> None:
    require_sandbox("bubblewrap")
    limits = Limits(**FAST_LIMITS)
    prestart("bubblewrap", limits, 0)
    record, _ = _execute("bubblewrap", _submission(tmp_path, "alice", {"raw": RAW}, {}), tmp_path / "out", limits)
    assert record.detail["prestarted"] is True and record.notebooks[0].status == OK
    log = (tmp_path / "out" / "execute.log").read_text()
    assert "RAW-FD-OUTPUT-FROM-THE-KERNEL" in log
    assert log.index("RAW-FD-OUTPUT-FROM-THE-KERNEL") < log.index(
        "[execute] nb: ok"
    )  # in order, before the notebook's last line


def test_a_spare_never_used_leaves_nothing_behind() -> None:
    require_sandbox("bubblewrap")
    prestart("bubblewrap", Limits(**FAST_LIMITS), 0)
    zygote = base._SPARES[0][1].zygote
    assert zygote is not None
    found = _mine()
    assert len(found["temp_dirs"]) == 1 and (os.geteuid() != 0 or (len(found["mounts"]) == 1 and found["cgroups"]))
    base.discard_spares()
    assert zygote.proc.poll() is not None
    assert not any(_mine().values()), _mine()
    assert _my_processes() == []
