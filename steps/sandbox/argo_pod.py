"""The `argo-pod` sandbox: the Argo execute pod, emulated with podman, to test `pod` off-cluster.

The whole execute step runs as the pod runs it: the grader image, uid 1000, read-only root, no
capabilities, no privilege escalation, the runtime's default seccomp profile, a network (the
NetworkPolicy is the cluster's part), and the pod's writable volumes at the pod's paths:
/gradeflow holding what Argo's init container downloads (snapshot.json with the hidden tests,
restored/<student>/ with the notebooks), /tmp, and /var/run/argo with `ctr/main/` made
world-writable as Argo's emissary makes it. Inside, `python -m steps.execute --sandbox pod`
starts the kernels through Landlock exactly as in the cluster.

After the step, what the emissary and the wait container would trust is checked: anything
under /var/run/argo besides the empty `ctr/main/` (an early `exitcode`, planted
`outputs/`) could forge a result, so it fails the step (SandboxError) and is recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import steps

from ..contract import RESTORED
from ..errors import SandboxError
from ..limits import limit_arguments
from ..records import StepRecord
from ..workspace import RECORD, Workspace
from .base import Limits, Sandbox
from .podman import CONTAINER_UID, DEFAULT_IMAGE, PODMAN
from .zygote import ZYGOTE_ENV

EXECUTE_RECORD = RECORD.format(step="execute")

__all__ = ["ArgoPodSandbox", "POD_WORKDIR", "POD_VAR_RUN_ARGO", "pod_limits"]

POD_WORKDIR = "/gradeflow"  # pipelines.argo.params.WORKDIR
POD_VAR_RUN_ARGO = "/var/run/argo"  # Argo's common.VarRunArgoPath, the `var-run-argo` volume
_SOURCE = "/opt/gradeflow-src"  # this checkout's steps/, mounted over the image's copy
POD_PAPERMILL_MB = 512  # pipelines.argo.pods.PAPERMILL_MIB: the execute pod's memory beyond --memory
GRADER_PIDS = 64  # the grader's own processes and threads, on top of the kernel's --pids


def pod_limits(limits: Limits) -> tuple[int, int]:
    """(memory MiB, pids) of the whole execute pod: in a pod, these bound the kernel and the
    grader together. Memory as the template's podSpecPatch: --memory + papermill's share +
    the memory-backed /tmp; pids as the kubelet's podPidsLimit would."""
    return limits.memory_mb + POD_PAPERMILL_MB + limits.disk_mb, limits.pids + GRADER_PIDS


@dataclass(kw_only=True)
class ArgoPodSandbox(Sandbox):
    name = "argo-pod"
    guarantee = (
        "the Argo execute pod emulated with podman (grader image, uid 1000, read-only root, no capabilities, "
        "/gradeflow and /var/run/argo as in the pod), kernels in the pod sandbox (Landlock)"
    )

    image: str = DEFAULT_IMAGE  # the grader image the pod runs (gradeflow grade --sandbox-image)

    def unavailable(self) -> str | None:
        if not shutil.which("podman") or os.geteuid() != 0:
            return "the argo-pod emulation needs rootful podman"
        if subprocess.run(["podman", "image", "exists", self.image], capture_output=True).returncode != 0:
            return f"the grader image {self.image} is not built: run `bash images/grader/build.sh`"
        return None

    def execute_submission(
        self,
        work_src: Path,
        notebooks: Sequence[str],
        out_dir: Path,
        limits: Limits,
        config: dict[str, Any],
        slot: int = 0,
    ) -> StepRecord:
        workspace, student = work_src.parents[2], work_src.parent.name  # <ws>/restored/<student>/work
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="gradeflow-argo-pod-") as tmp:
            pod = Path(tmp)
            gf, var = pod / "gradeflow", pod / "var-run-argo"
            ws, pod_ws = Workspace(workspace), Workspace(gf)  # the run's, and the pod's /gradeflow
            pod_ws.path(RESTORED).mkdir(parents=True)
            shutil.copy2(ws.snapshot, pod_ws.snapshot)
            shutil.copytree(ws.restored(student), pod_ws.restored(student))
            (var / "ctr" / "main").mkdir(parents=True)
            for p in (pod, *pod.rglob("*")):
                os.lchown(p, CONTAINER_UID, CONTAINER_UID)
            for d in (var, var / "ctr", var / "ctr" / "main"):
                os.chmod(d, 0o777)  # an emptyDir is 0777; emissary makes ctr/<name> 0777 itself
            memory_mb, pids = pod_limits(limits)
            name = f"gradeflow-argo-pod-{os.getpid()}-{slot}"
            cmd = [
                *PODMAN,
                "run",
                "--rm",
                "--name",
                name,
                "--hostname",
                "execute-pod",
                "--user",
                f"{CONTAINER_UID}:{CONTAINER_UID}",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--log-driver",
                "none",
                # the NetworkPolicy's part (egress only to DNS and the store) is the cluster's; here: none
                "--network",
                "none",
                f"--memory={memory_mb}m",
                f"--memory-swap={memory_mb}m",
                f"--pids-limit={pids}",
                "--ulimit=nofile=4096:4096",
                "--ulimit=nproc=4096:4096",  # runc here needs explicit ulimits
                # /tmp: the template's memory-backed emptyDir whose sizeLimit is the disk limit
                "--tmpfs",
                f"/tmp:rw,size={limits.disk_mb}m,mode=1777",
                "-v",
                f"{gf}:{POD_WORKDIR}:rw",
                "-v",
                f"{var}:{POD_VAR_RUN_ARGO}:rw",
                "-v",
                f"{Path(steps.__file__).parent}:{_SOURCE}/steps:ro",
                "--env",
                f"PYTHONPATH={_SOURCE}",
                "--env",
                "HOME=/tmp",
                *([] if self.zygote else ["--env", f"{ZYGOTE_ENV}=0"]),  # read by the pod's `python -m steps.execute`
                self.image,
                "python",
                "-m",
                "steps.execute",
                "--workspace",
                POD_WORKDIR,
                "--student",
                student,
                "--sandbox",
                "pod",
                *limit_arguments(limits),
            ]
            start = time.monotonic()
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=limits.wall_time + 300
                )  # activeDeadlineSeconds
            except subprocess.TimeoutExpired:
                subprocess.run([*PODMAN, "rm", "--force", "--ignore", "--time", "0", name], capture_output=True)
                raise SandboxError(f"the emulated execute pod of {student} outlived its deadline") from None
            planted = sorted(
                str(p.relative_to(var)) for p in var.rglob("*") if p != var / "ctr" and p != var / "ctr" / "main"
            )
            executed = pod_ws.executed(student)
            if executed.is_dir():
                shutil.copytree(executed, out_dir, dirs_exist_ok=True)
            if planted:
                raise SandboxError(f"student code of {student} wrote Argo's {POD_VAR_RUN_ARGO}: {', '.join(planted)}")
            if proc.returncode != 0 or not (out_dir / EXECUTE_RECORD).is_file():
                raise SandboxError(
                    f"the emulated execute pod of {student} exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
                )
        record = StepRecord.load(out_dir / EXECUTE_RECORD)
        record.detail["pod_seconds"] = round(time.monotonic() - start, 3)
        record.detail["argo_var_run_written"] = planted
        record.detail["emulated"] = self.name  # the kernels ran in the "pod" sandbox inside it
        record.save(out_dir / EXECUTE_RECORD)
        return record
