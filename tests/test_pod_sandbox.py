"""The `pod` sandbox's own containment, checked on this machine's kernel.

Scenario: in the Argo execute pod the grader and the kernel share uid 1000, so the kernel is
confined with Landlock before it starts. Here a child started through the pod launcher's
command (steps/sandbox/landlock.py) tries what student code would: read the hidden tests next
to its scratch dir, write outside it (Argo's /var/run/argo), connect over TCP to a listener on
127.0.0.1, and signal the grader. The whole corpus runs in the emulated pod in test_attacks.py
("argo-pod"); the template side (ran-in marker, /tmp) is checked against the rendered YAML.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from steps.sandbox import landlock
from steps.sandbox.base import Limits
from steps.sandbox.local import PodLauncher, PodSandbox

PROBE = r"""
import errno, json, os, signal, socket, sys
hidden, outside, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
def attempt(name, fn):
    try:
        fn(); out[name] = "allowed"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
attempt("read_hidden_tests", lambda: open(hidden).read())
attempt("write_outside", lambda: open(os.path.join(outside, "exitcode"), "w").write("0"))
attempt("write_scratch", lambda: open("scratch-file", "w").write("ok"))
attempt("tcp_connect", lambda: socket.create_connection(("127.0.0.1", port), 2).close())
attempt("signal_grader", lambda: os.kill(os.getppid(), 0))
print(json.dumps(out))
"""


@pytest.fixture
def confined_run(tmp_path: Path):
    if landlock.abi() < 1:
        pytest.skip(
            "LANDLOCK MISSING: this kernel offers no Landlock; the pod sandbox refuses to run here"
            " (see test_without_landlock_the_pod_sandbox_refuses)"
        )
    scratch = tmp_path / "scratch"
    (scratch / "work").mkdir(parents=True)
    hidden = tmp_path / "gradeflow" / "snapshot.json"
    hidden.parent.mkdir()
    hidden.write_text('{"hidden": "tests"}')
    outside = tmp_path / "var-run-argo" / "ctr" / "main"
    outside.mkdir(parents=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    launcher = PodLauncher(scratch / "work", scratch, Limits())
    # the pod's /tmp is the kernel's: here (tmp_path under /tmp) keep it to the scratch dir
    cmd = [
        c
        for c in launcher.kernel_command(
            [sys.executable, "-c", PROBE, str(hidden), str(outside), str(listener.getsockname()[1])]
        )
    ]
    i = cmd.index("/tmp")
    del cmd[i - 1 : i + 1]
    proc = subprocess.run(
        cmd, env=launcher.kernel_env(), cwd=scratch / "work", capture_output=True, text=True, timeout=60
    )
    listener.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout), outside, scratch


def test_the_kernel_cannot_read_the_hidden_tests_or_write_argos_files(confined_run) -> None:
    seen, outside, scratch = confined_run
    assert seen["read_hidden_tests"] == "EACCES" and seen["write_outside"] == "EACCES"
    assert not (outside / "exitcode").exists()
    assert seen["write_scratch"] == "allowed" and (scratch / "work" / "scratch-file").read_text() == "ok"


def test_the_kernel_has_no_tcp_and_cannot_signal_the_grader(confined_run) -> None:
    seen, _, _ = confined_run
    if landlock.abi() >= 4:
        assert seen["tcp_connect"] == "EACCES"
    if landlock.abi() >= 6:
        assert seen["signal_grader"] == "EPERM"
    else:
        pytest.skip(f"Landlock ABI {landlock.abi()} < 6: signals are not scoped on this kernel (docs/security.md)")


def test_without_landlock_the_pod_sandbox_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landlock, "abi", lambda: 0)
    why = PodSandbox().unavailable()
    assert why and "Landlock" in why and "5.13" in why
    with pytest.raises(OSError, match="Landlock is not available"):
        landlock.confine([], [])


def test_the_pod_emulation_has_the_templates_limits_and_layout() -> None:
    """argo-pod lays out and bounds the pod as the rendered execute template does: the ran-in
    output pasted into a `when` is a plain value (nothing in the pod can write it), /tmp is a
    memory-backed emptyDir of the disk limit, and the pod's memory is the podSpecPatch's."""
    from pipelines import argo_pods
    from pipelines.workflow import WORKDIR, build_template
    from steps.sandbox.argo_pod import POD_PAPERMILL_MB, POD_WORKDIR, pod_limits

    t = next(t for t in build_template().to_dict()["spec"]["templates"] if t["name"] == "execute")
    ran_in = next(p for p in t["outputs"]["parameters"] if p["name"] == "ran-in")
    assert "valueFrom" not in ran_in and ran_in["value"] == "{{workflow.parameters.run-id}}"
    assert t["container"]["securityContext"]["readOnlyRootFilesystem"] is True
    tmp = next(v for v in t["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {
        "medium": "Memory",
        "sizeLimit": f"{Limits().disk_mb}Mi",
    }  # ENOSPC at the disk limit, no eviction
    assert (POD_WORKDIR, POD_PAPERMILL_MB, argo_pods.EXECUTE_TMP_MIB) == (
        WORKDIR,
        argo_pods.PAPERMILL_MIB,
        Limits().disk_mb,
    )
    assert pod_limits(Limits())[0] == Limits().memory_mb + argo_pods.EXECUTE_EXTRA_MIB
