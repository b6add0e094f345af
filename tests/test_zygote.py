"""Kernels forked from the per-submission zygote (steps/sandbox/zygote*.py).

Scenario: a submission of two notebooks runs through a sandbox's `execute_submission`. The
second notebook's kernel is forked from the same zygote as the first; it must start as fresh
as a kernel of its own (no variables, modules state or processes of the first, new random
state), student code must not be able to kill or reach the zygote, and when the zygote is
switched off or broken the kernels start directly and grading is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import FAST_LIMITS, notebook_text, require_sandbox, sandbox_leftovers
from steps.records import FAILED, OK
from steps.sandbox import Limits, get_sandbox, options_from_env
from steps.sandbox.zygote import ipykernel_arguments

FIRST = {
    "state": (
        "import sys, os, json, random\nsys.gradeflow_marker = 'from the first notebook'\nsecret = 42\n"
        "print(json.dumps({'pid': os.getpid(), 'random': random.random()}))"
    ),
    "daemon": (
        "import os, time, json\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    time.sleep(300)\n    os._exit(0)\n"
        "open('/tmp/daemon.pid', 'w').write(str(pid))\nprint(json.dumps({'daemon': pid}))"
    ),
}
SECOND = {
    "state": (
        "import sys, os, json, random\n"
        "import signal\nname = lambda h: h.name if isinstance(h, signal.Handlers) else getattr(h, '__name__', str(h))\n"
        "sigs = {n: name(signal.getsignal(getattr(signal, n)))\n"
        "        for n in ('SIGPIPE', 'SIGXFSZ', 'SIGINT', 'SIGTERM', 'SIGCHLD')}\n"
        "print(json.dumps({'pid': os.getpid(), 'random': random.random(), 'marker': hasattr(sys, 'gradeflow_marker'),\n"
        "                  'secret': 'secret' in globals(), 'signals': sigs}))"
    ),
    "daemon": (
        "import os, json\npid = int(open('/tmp/daemon.pid').read())\n"
        "def alive(p):\n    try:\n        os.kill(p, 0)\n        return True\n"
        "    except ProcessLookupError:\n        return False\n"
        "print(json.dumps({'daemon_alive': alive(pid)}))"
    ),
}
ATTACK = {
    "kill": (
        "import os, signal, json\nresult = {}\nfor target in (1, -1):\n    try:\n"
        "        os.kill(target, signal.SIGKILL)\n        result[str(target)] = 'sent'\n"
        "    except OSError as e:\n        result[str(target)] = type(e).__name__\nprint(json.dumps(result))"
    ),
    "ptrace": (
        "import json\ntry:\n    open('/proc/1/mem', 'rb').read(1)\n    r = 'read'\n"
        "except OSError as e:\n    r = type(e).__name__\nprint(json.dumps({'mem': r}))"
    ),
    "socket": (
        "import json, os, socket, sys\n"
        "conn_file = sys.argv[sys.argv.index('-f') + 1]\n"
        "path = os.path.join(os.path.dirname(os.path.dirname(conn_file)), 'zygote.sock')\n"
        "s = socket.socket(socket.AF_UNIX)\ns.settimeout(5)\n"
        "try:\n    s.connect(path)\n    s.sendall(b'{\"exit\": true}\\n')\n    r = s.recv(100).decode() or 'closed'\n"
        "except OSError as e:\n    r = type(e).__name__\n"
        "print(json.dumps({'found': os.path.exists(path), 'reply': r}))"
    ),
    "alive": "import json\nprint(json.dumps({'alive': True}))",
}


def _notebook(cells: dict[str, str]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell(src, metadata={"nbgrader": {"grade_id": key}}) for key, src in cells.items()]
    return nb


def _run(
    tmp_path: Path,
    sandbox: str,
    notebooks: dict[str, dict[str, str]],
    limits: Limits | None = None,
    files: dict[str, str] | None = None,
    zygote: bool = True,
) -> tuple[Any, dict[str, dict[str, Any]]]:
    work = tmp_path / "work"
    work.mkdir()
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    for name, cells in notebooks.items():
        nbformat.write(_notebook(cells), str(work / f"{name}.ipynb"))
    out = tmp_path / "out"
    record = get_sandbox(sandbox, zygote=zygote).execute_submission(
        work, list(notebooks), out, limits or Limits(**FAST_LIMITS), config={}, slot=0
    )
    printed = {}
    for name in notebooks:
        text = notebook_text(out / f"{name}.ipynb")
        printed[name] = {
            k: json.loads(v.strip().splitlines()[-1]) for k, v in text.items() if v.strip().startswith("{")
        }
    return record, printed


@pytest.mark.parametrize("sandbox", ["bubblewrap", "podman"])
def test_the_second_notebook_gets_a_fresh_kernel(sandbox: str, tmp_path: Path) -> None:
    require_sandbox(sandbox)
    record, out = _run(tmp_path, sandbox, {"first": FIRST, "second": SECOND})
    assert [o.status for o in record.notebooks] == [OK, OK]
    assert record.detail["teardown"]["kernels_forked"] == 2  # both kernels came from the zygote
    first, second = out["first"], out["second"]
    assert second["state"]["pid"] != first["state"]["pid"]
    assert second["state"]["marker"] is False and second["state"]["secret"] is False
    assert second["state"]["random"] != first["state"]["random"]  # reseeded after the fork
    # signal dispositions of a new interpreter: a write to a closed pipe raises, it does not kill
    sigs = second["state"]["signals"]
    assert sigs == {
        "SIGPIPE": "SIG_IGN",
        "SIGXFSZ": "SIG_IGN",
        "SIGINT": "default_int_handler",
        "SIGTERM": "SIG_DFL",
        "SIGCHLD": "SIG_DFL",
    }
    # the first notebook's background process was killed before the second kernel started
    assert second["daemon"] == {"daemon_alive": False}
    assert sandbox_leftovers() == []


@pytest.mark.parametrize("sandbox", ["bubblewrap", "podman"])
def test_student_code_cannot_kill_or_read_the_zygote(sandbox: str, tmp_path: Path) -> None:
    require_sandbox(sandbox)
    record, out = _run(tmp_path, sandbox, {"attacker": ATTACK, "after": {"alive": ATTACK["alive"]}})
    assert [o.status for o in record.notebooks] == [OK, OK]
    assert out["attacker"]["alive"] == {"alive": True}  # kill(-1) did not take the kernel's own sandbox down
    assert out["attacker"]["ptrace"]["mem"] in ("PermissionError", "FileNotFoundError")
    # the kernel can reach the zygote's socket, but the zygote hangs up on it: no exit, no kernel
    assert out["attacker"]["socket"]["found"] is True
    assert out["attacker"]["socket"]["reply"] in ("closed", "BrokenPipeError", "ConnectionResetError")
    assert record.detail["teardown"]["kernels_forked"] == 2  # the zygote survived to fork the next kernel
    assert out["after"]["alive"] == {"alive": True}


def test_a_kernel_killed_for_memory_does_not_stop_the_next_notebook(tmp_path: Path) -> None:
    require_sandbox("bubblewrap")
    bomb = {"bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))"}
    record, out = _run(tmp_path, "bubblewrap", {"bomb": bomb, "after": {"alive": ATTACK["alive"]}})
    assert record.notebooks[0].status == FAILED and "kernel died" in record.notebooks[0].reason
    assert record.notebooks[1].status == OK and out["after"]["alive"] == {"alive": True}


def test_without_the_zygote_kernels_start_directly(tmp_path: Path) -> None:
    require_sandbox("bubblewrap")
    zygote = options_from_env({"GRADEFLOW_ZYGOTE": "0"})["zygote"]  # as gradeflow grade reads it
    record, out = _run(tmp_path, "bubblewrap", {"first": FIRST, "second": SECOND}, zygote=zygote)
    assert [o.status for o in record.notebooks] == [OK, OK]
    assert record.detail["teardown"]["kernels_forked"] == 0 and record.detail["teardown"]["kernels"] == 2
    assert out["second"]["state"]["marker"] is False
    # the same signal dispositions as a forked kernel (test_the_second_notebook_gets_a_fresh_kernel)
    assert out["second"]["state"]["signals"] == {
        "SIGPIPE": "SIG_IGN",
        "SIGXFSZ": "SIG_IGN",
        "SIGINT": "default_int_handler",
        "SIGTERM": "SIG_DFL",
        "SIGCHLD": "SIG_DFL",
    }


def test_a_broken_zygote_falls_back_to_direct_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_sandbox("bubblewrap")
    monkeypatch.setattr("steps.sandbox.base.ZYGOTE_SOURCE", "import sys; sys.exit(3)")
    record, out = _run(tmp_path, "bubblewrap", {"first": FIRST, "second": SECOND})
    assert [o.status for o in record.notebooks] == [OK, OK]
    assert record.detail["teardown"]["kernels_forked"] == 0
    log = (tmp_path / "out" / "execute.log").read_text()
    assert "kernel zygote unavailable (the kernel zygote exited with code 3" in log


@pytest.mark.parametrize("zygote", ["1", "0"])
def test_a_helper_module_of_the_submission_imports_as_in_a_new_kernel(zygote: str, tmp_path: Path) -> None:
    # the zygote imports with the work dir off sys.path (a student's file must not run in it);
    # the kernel must still find the submission's own modules, as a directly started one does
    require_sandbox("bubblewrap")
    cell = "import sys, json, helper\nprint(json.dumps({'value': helper.VALUE, 'path': sys.path}))"
    record, out = _run(
        tmp_path,
        "bubblewrap",
        {"uses_helper": {"imp": cell}},
        files={"helper.py": "VALUE = 42\n"},
        zygote=options_from_env({"GRADEFLOW_ZYGOTE": zygote})["zygote"],
    )
    assert record.notebooks[0].status == OK and record.detail["teardown"]["kernels_forked"] == int(zygote)
    assert out["uses_helper"]["imp"]["value"] == 42
    assert "" in out["uses_helper"]["imp"]["path"] or "/work" in out["uses_helper"]["imp"]["path"]


def test_a_forked_kernel_collects_its_garbage_and_leaves_out_what_grading_does_not_use(tmp_path: Path) -> None:
    # the zygote imports with garbage collection off and freezes what it imported; its kernels
    # must still collect what student code leaves. ipykernel's debugger (debugpy), IPython's jedi
    # completion and its terminal shell (prompt_toolkit) are left out of them, even after a
    # traceback and a completion, but student code can still import each of them itself.
    require_sandbox("bubblewrap")
    left_out = "('debugpy', 'jedi', 'parso', 'prompt_toolkit', 'IPython.terminal.embed')"
    cells = {
        "gc": (
            "import gc, sys, json, weakref\nclass Node: pass\n"
            "a, b = Node(), Node()\na.other, b.other = b, a\nref = weakref.ref(a)\ndel a, b\ngc.collect()\n"
            "print(json.dumps({'enabled': gc.isenabled(), 'cycle_collected': ref() is None}))"
        ),
        "traceback": "try:\n    get_ipython().run_cell('1/0')\nexcept Exception:\n    pass",
        "complete": (
            "import json\n_, matches = get_ipython().complete('json.dum')\nprint(json.dumps({'matches': matches}))"
        ),
        "loaded": (
            f"import json, sys\nprint(json.dumps({{'loaded': sorted(m for m in {left_out} if m in sys.modules)}}))"
        ),
        "imports": (
            "import json, debugpy, jedi, prompt_toolkit, IPython\n"
            "from IPython.terminal.embed import InteractiveShellEmbed\n"
            "print(json.dumps({'imported': [debugpy.__name__, jedi.__name__, prompt_toolkit.__name__],"
            " 'embed': [IPython.embed.__module__, InteractiveShellEmbed.__name__]}))"
        ),
    }
    record, out = _run(tmp_path, "bubblewrap", {"nb": cells})
    assert record.notebooks[0].status == OK and record.detail["teardown"]["kernels_forked"] == 1
    assert out["nb"]["gc"] == {"enabled": True, "cycle_collected": True}
    assert out["nb"]["complete"] == {"matches": ["json.dump", "json.dumps"]}
    assert out["nb"]["loaded"] == {"loaded": []}
    assert out["nb"]["imports"] == {
        "imported": ["debugpy", "jedi", "prompt_toolkit"],
        "embed": ["IPython.terminal.embed", "InteractiveShellEmbed"],
    }


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["python", "-m", "ipykernel_launcher", "-f", "/x/k.json"], ["-f", "/x/k.json"]),
        (
            ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "/x/k.json", "--debug"],
            ["-f", "/x/k.json", "--debug"],
        ),
        (["R", "--slave", "-e", "IRkernel::main()", "--args", "/x/k.json"], None),  # another language: started directly
        (["python", "-m", "ipykernel", "-f", "/x/k.json"], None),  # not the launcher we know how to replace
    ],
)
def test_only_ipykernel_launches_are_forked(argv: list[str], expected: list[str] | None) -> None:
    assert ipykernel_arguments(argv) == expected


def test_an_exit_report_arriving_with_the_pid_is_not_lost(tmp_path: Path) -> None:
    # a kernel that dies at once: the zygote's pid line and exit line can arrive in one read
    import socket
    import threading

    from steps.sandbox.zygote import Zygote

    path = tmp_path / "z.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.makefile("r").readline()
        conn.sendall(b'{"pid": 7}\n{"exit": 3}\n')
        conn.recv(16)  # until the client closes
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with open(tmp_path / "log", "w") as log:
        zygote = Zygote(["sleep", "30"], {}, tmp_path, path, log, start_timeout=10)
        try:
            kernel = zygote.spawn(["-f", "k.json"])
            assert kernel.pid == 7 and kernel.poll() == 3 and kernel.wait(timeout=1) == 3
        finally:
            zygote.kill()
            server.close()


def test_a_zygote_whose_grader_died_ends_its_kernel_and_itself(tmp_path: Path) -> None:
    """The zygote's standard input is a pipe from the grader: when the grader dies (a SIGKILL closes
    its end, as `stdin.close()` does here), the zygote kills its kernel and exits, so no sandbox
    outlives a killed run (a podman container would: it is not the grader's child)."""
    import os
    import sys
    import time

    from steps.sandbox.base import minimal_env
    from steps.sandbox.zygote import SOURCE, Zygote

    sock = tmp_path / "zygote.sock"
    env = minimal_env(str(tmp_path))
    with open(tmp_path / "log", "w") as log:
        zygote = Zygote([sys.executable, "-c", SOURCE, str(sock)], env, tmp_path, sock, log, start_timeout=60)
        try:
            kernel = zygote.spawn(["-f", str(tmp_path / "kernel.json")])
            time.sleep(0.5)
            assert kernel.poll() is None and zygote.proc.poll() is None  # both alive while the grader is
            zygote.proc.stdin.close()
            assert zygote.proc.wait(timeout=20) == 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(kernel.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"the kernel {kernel.pid} outlived its zygote")
        finally:
            zygote.kill()
